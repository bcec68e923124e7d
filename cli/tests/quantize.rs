//! `lasagna export --quantize int8`: the int8 contract written by the
//! exporter (see `lasagna_trainer::quantize`), checked on the file itself,
//! and int8 against f32 on MNIST, once with a fake-quantized reference that
//! runs each op in f32 between int8 values, and once with the no_std
//! engine's int8 path.

mod quantize_common;

use lasagna_format::{
    AlignedModel, DType, Model, Op, Quant, WeightLayout, Window, FLAG_WEIGHTS_INTERLEAVED,
};
use lasagna_trainer::data::{Dataset, Normalization};
use lasagna_trainer::export::{deploy, fold_file, write_model, ExportInfo, WeightType};
use lasagna_trainer::layers::ExportOp;
use lasagna_trainer::philox::Stream;
use lasagna_trainer::quantize::{
    calibration_set, deploy_int8, export_int8, share_groups, Range, ValueQuant, DEFAULT_CALIBRATION,
};
use quantize_common::*;

const MEAN: f32 = 0.1307;
const STD: f32 = 0.3081;

fn window(k: u8, s: u8, p: u8) -> Window {
    Window {
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        dilation: [1, 1],
    }
}

fn random(r: &mut Stream, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.uniform_range(lo, hi)).collect()
}

/// Conv2d(1→2, 3x3, pad 1) → BatchNorm → ReLU → MaxPool(2) → Flatten →
/// Linear(8→3) → Softmax on a [1, 4, 4] input, with random weights.
fn small_ops(linear_bias: bool) -> Vec<ExportOp> {
    let mut r = Stream::new(42, 0);
    let mut linear = vec![random(&mut r, 24, -1.0, 1.0)];
    if linear_bias {
        linear.push(random(&mut r, 3, -0.5, 0.5));
    }
    vec![
        (
            Op::Conv2d {
                in_channels: 1,
                out_channels: 2,
                groups: 1,
                window: window(3, 1, 1),
                bias: true,
            },
            vec![random(&mut r, 18, -1.0, 1.0), vec![0.1, -0.2]],
        ),
        (
            Op::BatchNorm {
                features: 2,
                eps: 1e-5,
            },
            vec![
                vec![1.5, 0.7],
                vec![0.2, -0.1],
                vec![0.3, -0.4],
                vec![2.0, 0.5],
            ],
        ),
        (Op::Relu, vec![]),
        (
            Op::MaxPool2d {
                window: window(2, 2, 0),
            },
            vec![],
        ),
        (Op::Flatten, vec![]),
        (
            Op::Linear {
                in_features: 8,
                out_features: 3,
                bias: linear_bias,
                layout: lasagna_format::WeightLayout::RowMajor,
            },
            linear,
        ),
        (Op::Softmax, vec![]),
    ]
}

fn trained_file(ops: Vec<ExportOp>, input: &[usize], normalization: (f32, f32)) -> Vec<u8> {
    let info = ExportInfo {
        normalization,
        labels: vec!["a".into(), "b".into(), "c".into()],
        meta: vec![("lasagna.train.model".into(), "hand".into())],
    };
    write_model(input, ops, &info, WeightType::F32).expect("write the trained file")
}

/// `n` pseudo-images of 16 pixels, normalized as the data loader does.
fn images(n: usize, norm: Normalization) -> Dataset {
    let table = norm.table();
    let x = (0..n * 16)
        .map(|i| table[(i * 37 + i / 16 * 11) % 256])
        .collect();
    Dataset::new(x, vec![0; n], vec![1, 4, 4], 3).expect("dataset")
}

/// The range of every value of an f32 model file over `data`, observed in
/// the no_std engine (what calibration must have seen).
fn observed_ranges(f32_file: &[u8], data: &Dataset) -> Vec<Range> {
    let model = AlignedModel::new(f32_file);
    let engine = lasagna_infer::Engine::new(&model).expect("engine");
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let mut ranges = vec![Range::EMPTY; engine.model().op_count() as usize + 1];
    for i in 0..data.len() {
        let x = data.sample(i).expect("sample");
        engine
            .run_observed(arena, x, &mut |v, d| {
                ranges[v].observe(d);
            })
            .expect("run");
    }
    ranges
}

#[test]
fn every_value_is_int8_with_the_contract_scales_and_zero_points() {
    let file = trained_file(small_ops(true), &[1, 4, 4], (MEAN, STD));
    let data = images(
        7,
        Normalization {
            mean: MEAN,
            std: STD,
        },
    );
    let (out, report) = deploy_int8(&file, &data).expect("int8 export");
    assert_eq!((report.ops, report.folded), ((7, 6), 1));
    let m = Model::parse(&out).expect("the int8 file reads back");
    // Input: pixels map to code p - 128.
    let input = value_quant(&m, 0);
    assert_eq!(input, ValueQuant::pixels(MEAN, STD).expect("pixels"));
    assert_eq!(input.zero_point, (255.0f32 * MEAN).round() as i32 - 128);
    assert_eq!(input.scale, (1.0 / (255.0 * f64::from(STD))) as f32);
    let (f32_file, _) = deploy(&file, WeightType::F32).expect("f32 deploy");
    let ranges = observed_ranges(&f32_file, &data);
    // Conv (BN folded) → ReLU → MaxPool → Flatten share one quantization,
    // from the ReLU'd conv range: its zero point is the lowest code.
    let kinds: Vec<Op> = m.ops().map(|e| e.op).collect();
    assert_eq!(share_groups(&kinds), vec![0, 1, 1, 1, 1, 5, 6]);
    let conv = ValueQuant::from_range(ranges[1].relu().union(ranges[2]).union(ranges[3]));
    for v in 1..=4 {
        assert_eq!(value_quant(&m, v), conv, "value {v}");
    }
    assert_eq!(conv.zero_point, -128);
    assert!(ranges[1].min < 0.0, "the test needs negative conv outputs");
    assert_eq!(value_quant(&m, 5), ValueQuant::from_range(ranges[5]));
    assert_eq!(value_quant(&m, 6), ValueQuant::SOFTMAX);
    assert_eq!(
        (ValueQuant::SOFTMAX.scale, ValueQuant::SOFTMAX.zero_point),
        (1.0 / 256.0, -128)
    );
    for e in m.ops() {
        assert_eq!(
            e.scratch.1 as usize,
            lasagna_infer::scratch_bytes_int8(&e.op, &e.input.shape),
            "op {}: the scratch the engine asks for in int8",
            e.index
        );
    }
}

#[test]
fn weights_are_per_channel_symmetric_and_biases_are_in_accumulator_units() {
    let file = trained_file(small_ops(true), &[1, 4, 4], (MEAN, STD));
    let data = images(
        5,
        Normalization {
            mean: MEAN,
            std: STD,
        },
    );
    let (out, _) = deploy_int8(&file, &data).expect("int8 export");
    let m = Model::parse(&out).expect("parse");
    let folded = fold_file(&file).expect("fold").ops;
    for (e, (op, t)) in m.ops().zip(&folded) {
        // The exporter stores every int8 Linear weight interleaved
        // (FORMAT.md 6.2) and says so in the op's flags.
        assert_eq!(e.op, op.with_weight_layout(WeightLayout::Interleaved4));
        if !matches!(op, Op::Linear { .. } | Op::Conv2d { .. }) {
            assert_eq!(e.n_tensors, 0);
            continue;
        }
        let w = m.op_tensor(&e, 0).expect("weight");
        assert_eq!(w.dtype, DType::I8);
        let scales = per_channel(&w);
        let per = w.as_i8().expect("codes").len() / scales.len();
        let codes =
            e.op.weight_layout()
                .row_major(w.as_i8().expect("codes"), scales.len(), per);
        for (c, (&s, row)) in scales.iter().zip(t[0].chunks(per)).enumerate() {
            let max = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            assert_eq!(s, max / 127.0, "op {} channel {c}", e.index);
            let q = &codes[c * per..(c + 1) * per];
            assert_eq!(q.iter().map(|v| v.unsigned_abs()).max(), Some(127));
            assert!(q.iter().all(|&v| v != -128));
            for (&qv, &wv) in q.iter().zip(row) {
                assert!((f32::from(qv) * s - wv).abs() <= s / 2.0 * 1.0001);
            }
        }
        let b = m.op_tensor(&e, 1).expect("bias");
        assert_eq!((b.dtype, b.quant), (DType::I32, Quant::None));
        let s_in = f64::from(value_quant(&m, e.index as usize).scale);
        for (c, (&bq, &bv)) in b.as_i32().expect("i32").iter().zip(&t[1]).enumerate() {
            let want = (f64::from(bv) / (s_in * f64::from(scales[c]))).round() as i32;
            assert_eq!(bq, want, "op {} bias {c}", e.index);
        }
    }
}

#[test]
fn a_linear_without_bias_stays_without_one_and_metadata_and_labels_are_kept() {
    let file = trained_file(small_ops(false), &[1, 4, 4], (MEAN, STD));
    let (out, _) = deploy_int8(
        &file,
        &images(
            3,
            Normalization {
                mean: MEAN,
                std: STD,
            },
        ),
    )
    .expect("int8 export");
    let m = Model::parse(&out).expect("parse");
    let linear = m.op(4).expect("op 4");
    assert!(matches!(linear.op, Op::Linear { bias: false, .. }));
    assert_eq!(linear.op.weight_layout(), WeightLayout::Interleaved4);
    assert_ne!(linear.op.encode().1 & FLAG_WEIGHTS_INTERLEAVED, 0);
    assert_eq!(linear.n_tensors, 1);
    assert_eq!(m.labels().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(m.meta_get("lasagna.train.model"), Some("hand"));
    assert_eq!(m.meta_get("lasagna.export.weights"), Some("int8"));
    assert_eq!(m.meta_get("lasagna.export.calibration"), Some("3"));
    assert_eq!(m.meta_get("lasagna.export.folded_batchnorm"), Some("1"));
    assert_eq!(m.normalization(), (MEAN, STD));
}

#[test]
fn without_normalization_the_input_is_calibrated_like_any_value() {
    let file = trained_file(small_ops(true), &[1, 4, 4], (0.0, 1.0));
    let data = images(4, Normalization::NONE);
    let (out, _) = deploy_int8(&file, &data).expect("int8 export");
    let m = Model::parse(&out).expect("parse");
    let (f32_file, _) = deploy(&file, WeightType::F32).expect("f32 deploy");
    let ranges = observed_ranges(&f32_file, &data);
    assert_eq!(value_quant(&m, 0), ValueQuant::from_range(ranges[0]));
}

#[test]
fn the_same_images_give_the_same_bytes() {
    let file = trained_file(small_ops(true), &[1, 4, 4], (MEAN, STD));
    let data = images(
        9,
        Normalization {
            mean: MEAN,
            std: STD,
        },
    );
    let a = deploy_int8(&file, &data).expect("first").0;
    let b = deploy_int8(&file, &data).expect("second").0;
    assert_eq!(a, b);
    // The first N of a larger set are the N that calibrate.
    let first = calibration_set(
        &images(
            20,
            Normalization {
                mean: MEAN,
                std: STD,
            },
        ),
        9,
    )
    .expect("subset");
    assert_eq!(first, data);
    assert_eq!(deploy_int8(&file, &first).expect("subset").0, a);
}

/// A trained one-op LSTM file over `[4, 4]`.
fn lstm_file() -> Vec<u8> {
    trained_file(
        vec![(
            Op::Lstm {
                input_size: 4,
                hidden_size: 3,
                layers: 1,
                return_sequences: false,
                cell_shift: 0,
            },
            vec![vec![0.1; 48], vec![0.1; 36], vec![0.0; 12], vec![0.0; 12]],
        )],
        &[4, 4],
        (MEAN, STD),
    )
}

#[test]
fn lstm_exports_int8_token_models_need_tokens_and_bad_calibration_counts_are_clear_errors() {
    // LSTM has an int8 form (FORMAT.md section 6.3): i8 weights, i32
    // biases, and a cell_shift from calibration.
    let (int8, _) = deploy_int8(&lstm_file(), &images(2, Normalization::NONE)).expect("int8 LSTM");
    let m = Model::parse(&int8).expect("parse");
    let e = m.op(0).expect("op 0");
    assert!(
        matches!(
            e.op,
            Op::Lstm {
                cell_shift: 1..=15,
                ..
            }
        ),
        "{:?}",
        e.op
    );
    let dtypes: Vec<DType> = (0..4)
        .map(|j| m.op_tensor(&e, j).expect("tensor").dtype)
        .collect();
    assert_eq!(dtypes, [DType::I8, DType::I8, DType::I32, DType::I32]);
    assert_eq!(e.output.dtype, DType::I8);

    // `lasagna export` calibrates on MNIST images, which are not token ids.
    let mut b = lasagna_format::ModelBuilder::new(&[3]);
    b.input_type(lasagna_format::ValueType::I32).op(
        Op::Embedding { num: 5, dim: 2 },
        vec![lasagna_format::TensorData::f32(&[5, 2], &[0.5; 10])],
    );
    let emb = b.build().expect("embedding model");
    let e = export_int8(std::path::Path::new("emb.lsn"), &emb, 10, None)
        .expect_err("token model on MNIST")
        .to_string();
    assert!(
        e.contains("emb.lsn") && e.contains("token ids") && e.contains("--quantize f16"),
        "{e}"
    );

    let file = trained_file(small_ops(true), &[1, 4, 4], (MEAN, STD));
    let data = images(
        3,
        Normalization {
            mean: MEAN,
            std: STD,
        },
    );
    let (int8, _) = deploy_int8(&file, &data).expect("int8");
    let e = deploy_int8(&int8, &data)
        .expect_err("already int8")
        .to_string();
    assert!(e.contains("already int8"), "{e}");

    let e = calibration_set(&data, 0).expect_err("0").to_string();
    assert!(
        e.contains("--calibration") && e.contains("at least 1"),
        "{e}"
    );
    let e = calibration_set(&data, 4).expect_err("too many").to_string();
    assert!(e.contains("--calibration") && e.contains("only 3"), "{e}");
    assert_eq!(DEFAULT_CALIBRATION, 1000);

    let wrong = Dataset::new(vec![0.0; 9], vec![0], vec![1, 3, 3], 3).expect("dataset");
    let e = deploy_int8(&file, &wrong).expect_err("shape").to_string();
    assert!(e.contains("[1, 4, 4]") && e.contains("[1, 3, 3]"), "{e}");
}

#[test]
fn f32_and_f16_deploys_are_the_plain_builder_of_the_folded_ops() {
    // The int8 work refactored `write_model`; f32 and f16 files must keep
    // their bytes: the builder fed the folded tensors, as before.
    let file = trained_file(small_ops(true), &[1, 4, 4], (MEAN, STD));
    let folded = fold_file(&file).expect("fold");
    for w in [WeightType::F32, WeightType::F16] {
        let mut b = lasagna_format::ModelBuilder::new(&[1, 4, 4]);
        b.normalization(MEAN, STD).labels(["a", "b", "c"]);
        for (k, v) in &folded.info.meta {
            b.meta(k.clone(), v.clone());
        }
        b.meta("lasagna.export.weights", w.name());
        for (op, tensors) in &folded.ops {
            let data = tensors
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let dims = op.tensor_spec(j).expect("spec").2;
                    match w {
                        WeightType::F32 => lasagna_format::TensorData::f32(dims.dims(), t),
                        WeightType::F16 => lasagna_format::TensorData::f16(dims.dims(), t),
                    }
                })
                .collect();
            b.op(*op, data);
        }
        let want = b.build().expect("builder");
        assert_eq!(deploy(&file, w).expect("deploy").0, want, "{}", w.name());
    }
}

#[test]
fn fake_quantized_int8_agrees_with_f32_on_mnist() {
    let (f32_file, int8_file, test) = trained_pair();
    let want = f32_predictions(f32_file, test);
    let got = fake_quant_predictions(int8_file, test);
    let labels: Vec<usize> = test.y.iter().map(|&y| y as usize).collect();
    let (a32, a8) = (agreement(&want, &labels), agreement(&got, &labels));
    let agree = agreement(&got, &want);
    eprintln!("500 test images: f32 {a32:.3}, fake int8 {a8:.3}, argmax agreement {agree:.3}");
    assert!(a32 > 0.85, "the f32 model did not train: {a32}");
    // See `the_int8_engine_agrees_with_f32_on_mnist` for these floors.
    assert!(agree >= 0.99, "int8 and f32 argmax agree on only {agree}");
    assert!(a8 >= a32 - 0.01, "int8 accuracy {a8} vs f32 {a32}");
}

/// NEEDS the engine's int8 API (`input_dtype`, `quantize_input`, `run_i8`,
/// `output_quant`): int8 in `lasagna-infer` against f32 on 500 test images.
#[test]
fn the_int8_engine_agrees_with_f32_on_mnist() {
    let (f32_file, int8_file, test) = trained_pair();
    let want = f32_predictions(f32_file, test);
    let model = AlignedModel::new(int8_file);
    let engine = lasagna_infer::Engine::new(&model).expect("int8 engine");
    assert_eq!(engine.input_dtype(), DType::I8);
    let m = Model::parse(int8_file).expect("parse");
    let last = value_quant(&m, m.op_count() as usize);
    assert_eq!(engine.output_quant(), Some((last.scale, last.zero_point)));
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let mut q = vec![0i8; engine.input_len()];
    let got: Vec<usize> = (0..test.len())
        .map(|i| {
            let x = test.sample(i).expect("sample");
            engine.quantize_input(x, &mut q).expect("quantize input");
            argmax(
                engine
                    .run_i8(bytemuck::cast_slice_mut(&mut arena), &q)
                    .expect("run_i8"),
            )
        })
        .collect();
    let labels: Vec<usize> = test.y.iter().map(|&y| y as usize).collect();
    let (a32, a8) = (agreement(&want, &labels), agreement(&got, &labels));
    let agree = agreement(&got, &want);
    eprintln!("500 test images: f32 {a32:.3}, int8 engine {a8:.3}, argmax agreement {agree:.3}");
    // Float to int8 is not exact, so this is a floor, not an identity: the
    // integer path itself is checked bit for bit below
    // (`the_int8_engine_is_the_integer_reference_bit_for_bit_on_mnist`), and
    // the error each op adds (at most half an output level, plus what the
    // calibration clips) is derived and checked op by op in
    // `infer-nostd/tests/int8.rs`. An argmax can flip only where the f32
    // top-2 margin is within the logit error; on this model that happens
    // on 1 image of 500 (measured: agreement 0.998, int8 0.2 points above
    // f32). The floors allow 5 flips (1%) and 5 images of accuracy (1
    // point), a margin for retraining noise that is still 3x tighter than
    // before (0.97 and 2 points).
    assert!(agree >= 0.99, "int8 and f32 argmax agree on only {agree}");
    assert!(a8 >= a32 - 0.01, "int8 accuracy {a8} vs f32 {a32}");
}

/// The exported int8 CNN (Conv2d, ReLU, MaxPool2d, strided Conv2d, ReLU,
/// Flatten, Linear, ReLU, Linear: every op integer) in the engine against
/// an integer reference written from FORMAT.md §6.1 in
/// `quantize_common::integer_reference`: the same output levels, bit for
/// bit, on all 500 test images. Requantization that truncates instead of
/// rounding, or any other change to the integer arithmetic, fails here.
#[test]
fn the_int8_engine_is_the_integer_reference_bit_for_bit_on_mnist() {
    let (_, int8_file, test) = trained_pair();
    let model = AlignedModel::new(int8_file);
    let engine = lasagna_infer::Engine::new(&model).expect("int8 engine");
    let m = Model::parse(int8_file).expect("parse");
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let mut q = vec![0i8; engine.input_len()];
    let (mut differ, mut levels, mut first) = (0usize, 0usize, None);
    for i in 0..test.len() {
        engine
            .quantize_input(test.sample(i).expect("sample"), &mut q)
            .expect("quantize input");
        let got = engine
            .run_i8(bytemuck::cast_slice_mut(&mut arena), &q)
            .expect("run_i8")
            .to_vec();
        let want = integer_reference(&m, &q);
        levels += got.len();
        if got != want {
            differ += 1;
            first.get_or_insert((i, got, want));
        }
    }
    eprintln!(
        "{} test images, {levels} output levels: {differ} images differ from the integer reference",
        test.len()
    );
    if let Some((i, got, want)) = first {
        panic!(
            "{differ} of {} images give other output levels than the integer reference; \
             image {i}: engine {got:?}, reference {want:?}",
            test.len()
        );
    }
}

#[test]
fn the_cli_refuses_bad_calibration_with_a_hint() {
    let lstm = tmp("lstm.lsn");
    std::fs::write(
        &lstm,
        trained_file(
            vec![(
                Op::Lstm {
                    input_size: 28,
                    hidden_size: 3,
                    layers: 1,
                    return_sequences: false,
                    cell_shift: 0,
                },
                vec![vec![0.1; 336], vec![0.1; 36], vec![0.0; 12], vec![0.0; 12]],
            )],
            &[28, 28],
            (MEAN, STD),
        ),
    )
    .expect("write");
    let cases: &[(&[&str], &str)] = &[
        (&["--quantize", "int8", "--calibration", "0"], "at least 1"),
        (&["--calibration", "10"], "--quantize int8"),
    ];
    for (args, needle) in cases {
        let o = lasagna()
            .arg("export")
            .arg("--model-file")
            .arg(&lstm)
            .args(*args)
            .arg("--out")
            .arg(tmp("never.lsn"))
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in: {err}"
        );
    }
    let _ = std::fs::remove_file(&lstm);
}

#[test]
fn export_int8_refuses_before_it_loads_mnist_and_names_the_file() {
    let lstm = lstm_file();
    // No MNIST here: an error about the data would mean it was loaded first.
    let nowhere = Some(std::path::Path::new("/nonexistent/mnist"));
    let path = std::path::Path::new("lstm.lsn");
    let (already, _) = deploy_int8(&lstm, &images(2, Normalization::NONE)).expect("int8 LSTM");
    let e = export_int8(path, &already, 10, nowhere)
        .expect_err("already int8")
        .to_string();
    assert!(
        e.contains("lstm.lsn: the model file is already int8"),
        "{e}"
    );
    let e = export_int8(path, &lstm, 0, nowhere)
        .expect_err("0 images")
        .to_string();
    assert!(
        e.contains("--calibration") && e.contains("at least 1"),
        "{e}"
    );
    let e = export_int8(path, &[b'#'; 64], 10, nowhere)
        .expect_err("not a model")
        .to_string();
    assert!(
        e.contains("lstm.lsn") && e.contains("not a Lasagna model"),
        "{e}"
    );
}
