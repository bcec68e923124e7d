//! The int8 LSTM and Embedding (FORMAT.md section 6.3): a small row-LSTM
//! trained through the CLI and exported int8 keeps its f32 accuracy on
//! MNIST, and an int8 Embedding gives the levels its section defines.

// Shared with tests/quantize.rs, which uses the helpers this file does not.
#[allow(dead_code)]
mod quantize_common;

use lasagna_format::{AlignedModel, Model, Op, Quant};
use lasagna_trainer::data::{load_mnist, resolve_data_dir, Dataset, Normalization};
use lasagna_trainer::export::{write_model, ExportInfo, WeightType};
use lasagna_trainer::philox::Stream;
use lasagna_trainer::quantize::deploy_int8;
use quantize_common::*;

/// A 2-layer row-LSTM (hidden 32) trained for two epochs on 5,000 MNIST
/// images through the CLI, exported int8 through the library on 1000
/// training images: the int8 engine is within half a point of the f32
/// engine on 500 test images.
#[test]
fn a_two_layer_int8_lstm_is_within_half_a_point_of_f32_on_mnist() {
    let toml = tmp("lstm.toml");
    std::fs::write(
        &toml,
        "input = [28, 28]\n\
         [[layers]]\ntype = \"lstm\"\nhidden = 32\nlayers = 2\n\
         [[layers]]\ntype = \"linear\"\nout = 10\n\
         [optimizer]\ntype = \"adam\"\nlr = 5e-3\n\
         [training]\nepochs = 2\nbatch_size = 32\n",
    )
    .expect("write toml");
    let trained = tmp("lstm.lsn");
    let [t, m] = [&toml, &trained].map(|p| p.to_str().expect("UTF-8 temporary paths"));
    let o = lasagna()
        .args([
            "train",
            "--model",
            t,
            "--train-subset",
            "5500",
            "--val",
            "500",
        ])
        .args(["--quiet", "--out", m])
        .output()
        .expect("run lasagna");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f32_file = std::fs::read(&trained).expect("trained file");
    for p in [&toml, &trained] {
        let _ = std::fs::remove_file(p);
    }
    let (mean, std) = Model::parse(&f32_file).expect("parse").normalization();
    let data = load_mnist(&resolve_data_dir(None), Normalization { mean, std }).expect("MNIST");
    let (int8_file, _) = deploy_int8(&f32_file, &data.train.subset(1000)).expect("int8 export");

    let m = Model::parse(&int8_file).expect("parse int8");
    let lstm = m.op(0).expect("op 0");
    let Op::Lstm { cell_shift, .. } = lstm.op else {
        panic!("op 0 is {:?}", lstm.op)
    };
    assert!((8..=15).contains(&cell_shift), "cell_shift {cell_shift}");
    for j in 0..8u16 {
        let t = m.op_tensor(&lstm, j).expect("tensor");
        let want = if j % 4 < 2 { "i8" } else { "i32" };
        assert_eq!(t.dtype.name(), want, "tensor {j}");
        if j % 4 < 2 {
            assert!(matches!(t.quant, Quant::PerChannel(_)), "tensor {j}");
        }
    }

    let test = data.test.subset(500);
    let labels: Vec<usize> = test.y.iter().map(|&y| y as usize).collect();
    let want = f32_predictions(&f32_file, &test);
    let model = AlignedModel::new(&int8_file);
    let engine = lasagna_infer::Engine::new(&model).expect("int8 engine");
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let mut q = vec![0i8; engine.input_len()];
    let got: Vec<usize> = (0..test.len())
        .map(|i| {
            engine
                .quantize_input(test.sample(i).expect("sample"), &mut q)
                .expect("quantize");
            argmax(
                engine
                    .run_i8(bytemuck::cast_slice_mut(&mut arena), &q)
                    .expect("run_i8"),
            )
        })
        .collect();
    let (a32, a8) = (agreement(&want, &labels), agreement(&got, &labels));
    let agree = agreement(&got, &want);
    eprintln!("500 test images: f32 {a32:.3}, int8 LSTM {a8:.3}, argmax agreement {agree:.3}");
    assert!(a32 > 0.8, "the f32 LSTM did not train: {a32}");
    assert!((a8 - a32).abs() <= 0.005, "int8 accuracy {a8} vs f32 {a32}");
}

fn random(r: &mut Stream, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.uniform_range(lo, hi)).collect()
}

/// `n` token sequences of `len` ids below `num`, stored as `f32` as the
/// trainer stores them.
fn tokens(n: usize, len: usize, num: usize) -> Dataset {
    let x = (0..n * len)
        .map(|i| ((i * 7 + i / len * 3) % num) as f32)
        .collect();
    Dataset::new(x, vec![0; n], vec![len], 3).expect("dataset")
}

fn info() -> ExportInfo {
    ExportInfo {
        normalization: (0.0, 1.0),
        labels: vec![],
        meta: vec![],
    }
}

/// A one-op Embedding(12, 5) exported int8 on token sequences: every
/// output level is `sat8(zp + round(q · (s_row / s_y)))` of its row's
/// codes `q = round(w / s_row)`, `s_row = max |row| / 127`, rounding half
/// up, computed here in f64 from the file's own scales.
#[test]
fn an_int8_embedding_gives_the_rescaled_row_codes_of_each_id() {
    let (num, dim, len) = (12usize, 5usize, 6usize);
    let mut r = Stream::new(7, 0);
    let table = random(&mut r, num * dim, -2.0, 2.0);
    let op = Op::Embedding {
        num: num as u32,
        dim: dim as u32,
    };
    let file = write_model(
        &[len],
        vec![(op, vec![table.clone()])],
        &info(),
        WeightType::F32,
    )
    .expect("f32 file");
    let (int8, _) = deploy_int8(&file, &tokens(4, len, num)).expect("int8 export");
    let m = Model::parse(&int8).expect("parse");
    let e = m.op(0).expect("op");
    let (s_y, zp) = e.output.quant.expect("i8 output");
    let t = m.op_tensor(&e, 0).expect("table");
    let Quant::PerChannel(scales) = t.quant else {
        panic!("{:?}", t.quant)
    };
    let model = AlignedModel::new(&int8);
    let engine = lasagna_infer::Engine::new(&model).expect("engine");
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let ids: Vec<i32> = (0..len as i32).map(|i| (i * 5 + 2) % num as i32).collect();
    let got = engine
        .run_tokens_i8(bytemuck::cast_slice_mut(&mut arena), &ids)
        .expect("run_tokens_i8")
        .to_vec();
    for (p, &id) in ids.iter().enumerate() {
        let row = id as usize;
        let s = scales.get(row).expect("scale");
        let max = table[row * dim..(row + 1) * dim]
            .iter()
            .fold(0.0f32, |a, v| a.max(v.abs()));
        assert_eq!(s, max / 127.0, "row {row} scale");
        let m = f64::from(s / s_y);
        for k in 0..dim {
            let w = table[row * dim + k];
            let q = (f64::from(w) / f64::from(s)).round().clamp(-127.0, 127.0);
            let want = ((q * m + 0.5).floor() + f64::from(zp)).clamp(-128.0, 127.0) as i8;
            assert_eq!(got[p * dim + k], want, "id {id} element {k}");
            // And it is the f32 table's value to within one output step.
            let real = f64::from(s_y) * f64::from(i32::from(want) - zp);
            assert!(
                (real - f64::from(w)).abs() <= f64::from(s_y),
                "id {id} element {k}"
            );
        }
    }
    let bad = engine.run_tokens_i8(bytemuck::cast_slice_mut(&mut arena), &[0, 1, 2, 12, 0, 0]);
    assert!(
        matches!(
            bad,
            Err(lasagna_infer::Error::TokenOutOfRange {
                position: 3,
                id: 12,
                ..
            })
        ),
        "{bad:?}"
    );
}

/// Embedding → LSTM → Linear on tokens, random weights, exported int8:
/// the int8 engine's outputs are the f32 engine's to within a few output
/// steps (every int8 op of a token model, calibrated on token sequences).
#[test]
fn an_int8_token_model_with_an_lstm_tracks_its_f32_outputs() {
    let (num, dim, hidden, len) = (10u32, 4u32, 6u32, 7usize);
    let mut r = Stream::new(9, 0);
    let ops = vec![
        (
            Op::Embedding { num, dim },
            vec![random(&mut r, 40, -1.0, 1.0)],
        ),
        (
            Op::Lstm {
                input_size: dim,
                hidden_size: hidden,
                layers: 1,
                return_sequences: false,
                cell_shift: 0,
            },
            vec![
                random(&mut r, 96, -0.8, 0.8),
                random(&mut r, 144, -0.8, 0.8),
                random(&mut r, 24, -0.3, 0.3),
                random(&mut r, 24, -0.3, 0.3),
            ],
        ),
        (
            Op::Linear {
                in_features: hidden,
                out_features: 3,
                bias: true,
                layout: lasagna_format::WeightLayout::RowMajor,
            },
            vec![random(&mut r, 18, -1.0, 1.0), random(&mut r, 3, -0.2, 0.2)],
        ),
    ];
    let file = write_model(&[len], ops, &info(), WeightType::F32).expect("f32 file");
    let data = tokens(64, len, num as usize);
    let (int8, _) = deploy_int8(&file, &data).expect("int8 export");
    let (fm, qm) = (AlignedModel::new(&file), AlignedModel::new(&int8));
    let (f, q) = (
        lasagna_infer::Engine::new(&fm).expect("f32 engine"),
        lasagna_infer::Engine::new(&qm).expect("int8 engine"),
    );
    let (s_y, zp) = q.output_quant().expect("int8 output");
    let mut a = vec![0u32; f.arena_bytes().max(q.arena_bytes()).div_ceil(4)];
    let mut worst = 0.0f32;
    for i in 0..data.len() {
        let ids: Vec<i32> = data
            .sample(i)
            .expect("sample")
            .iter()
            .map(|&v| v as i32)
            .collect();
        let want = f
            .run_tokens(bytemuck::cast_slice_mut(&mut a), &ids)
            .expect("f32")
            .to_vec();
        let got = q
            .run_tokens_i8(bytemuck::cast_slice_mut(&mut a), &ids)
            .expect("int8");
        for (&g, &w) in got.iter().zip(&want) {
            worst = worst.max((s_y * (i32::from(g) - zp) as f32 - w).abs() / s_y);
        }
    }
    eprintln!("worst |int8 − f32| over 64 sequences: {worst:.2} output steps");
    assert!(worst <= 2.5, "worst error {worst} output steps");
}
