//! Helpers of `tests/quantize.rs`: reading a file's int8 values, a small
//! CNN trained and exported through the CLI, and a fake-quantized reference
//! that runs an int8 file op by op in f32 between int8 values.

use lasagna_format::{AlignedModel, DType, Model, Op, Quant, TensorRef, WeightLayout};
use lasagna_trainer::data::{load_mnist, resolve_data_dir, Dataset, Normalization};
use lasagna_trainer::quantize::ValueQuant;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

pub fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lasagna-quantize-{}-{name}", std::process::id()))
}

pub fn value_quant(m: &Model<'_>, v: usize) -> ValueQuant {
    let info = if v == 0 {
        m.input()
    } else {
        m.op(v as u16 - 1).map(|e| e.output)
    }
    .expect("value");
    assert_eq!(info.dtype, DType::I8, "value {v}");
    let (scale, zero_point) = info.quant.expect("i8 values carry a quantization");
    ValueQuant { scale, zero_point }
}

pub fn per_channel(t: &TensorRef<'_>) -> Vec<f32> {
    match t.quant {
        Quant::PerChannel(s) => s.iter().collect(),
        q => panic!("expected per-channel scales, got {q:?}"),
    }
}

/// A small CNN trained for one epoch on 5,000 MNIST images via the CLI,
/// exported as f32 and int8 (1000 calibration images): shared by the
/// accuracy tests.
pub fn trained_pair() -> &'static (Vec<u8>, Vec<u8>, Dataset) {
    static PAIR: OnceLock<(Vec<u8>, Vec<u8>, Dataset)> = OnceLock::new();
    PAIR.get_or_init(|| {
        let toml = tmp("cnn.toml");
        std::fs::write(
            &toml,
            "input = [1, 28, 28]\n\
             [[layers]]\ntype = \"conv2d\"\nout = 8\nkernel = 3\npadding = 1\n\
             [[layers]]\ntype = \"batch_norm2d\"\n\
             [[layers]]\ntype = \"relu\"\n\
             [[layers]]\ntype = \"max_pool2d\"\nkernel = 2\n\
             [[layers]]\ntype = \"conv2d\"\nout = 8\nkernel = 3\npadding = 1\nstride = 2\n\
             [[layers]]\ntype = \"relu\"\n\
             [[layers]]\ntype = \"flatten\"\n\
             [[layers]]\ntype = \"linear\"\nout = 32\n\
             [[layers]]\ntype = \"relu\"\n\
             [[layers]]\ntype = \"linear\"\nout = 10\n\
             [optimizer]\ntype = \"adam\"\nlr = 2e-3\n\
             [training]\nepochs = 1\nbatch_size = 32\n",
        )
        .expect("write toml");
        let (trained, f32_out, int8_out) =
            (tmp("cnn.lsn"), tmp("cnn-f32.lsn"), tmp("cnn-int8.lsn"));
        let [t, m, f, q] = [&toml, &trained, &f32_out, &int8_out]
            .map(|p| p.to_str().expect("temporary paths are UTF-8"));
        let run = |args: &[&str]| {
            let o = lasagna().args(args).output().expect("run lasagna");
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let train = [
            "train",
            "--model",
            t,
            "--train-subset",
            "5500",
            "--val",
            "500",
        ];
        run(&[&train[..], &["--quiet", "--out", m]].concat());
        run(&["export", "--model-file", m, "--out", f]);
        let said = run(&[
            "export",
            "--model-file",
            m,
            "--quantize",
            "int8",
            "--out",
            q,
        ]);
        assert!(
            said.contains("int8 weights") && said.contains("calibrated on 1000 images"),
            "{said}"
        );
        let f32_bytes = std::fs::read(&f32_out).expect("f32 file");
        let int8_bytes = std::fs::read(&int8_out).expect("int8 file");
        for p in [&toml, &trained, &f32_out, &int8_out] {
            let _ = std::fs::remove_file(p);
        }
        let m = Model::parse(&f32_bytes).expect("parse");
        let (mean, std) = m.normalization();
        let data = load_mnist(&resolve_data_dir(None), Normalization { mean, std }).expect("MNIST");
        (f32_bytes, int8_bytes, data.test.subset(500))
    })
}

pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    (0..v.len()).fold(0, |b, j| if v[j] > v[b] { j } else { b })
}

/// Argmax of the f32 engine on every image of `data`.
pub fn f32_predictions(file: &[u8], data: &Dataset) -> Vec<usize> {
    let model = AlignedModel::new(file);
    let engine = lasagna_infer::Engine::new(&model).expect("engine");
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    (0..data.len())
        .map(|i| {
            let x = data.sample(i).expect("sample");
            argmax(
                engine
                    .run(bytemuck::cast_slice_mut(&mut arena), x)
                    .expect("run"),
            )
        })
        .collect()
}

pub fn agreement(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

pub fn quantize(x: f32, q: ValueQuant) -> i32 {
    ((x / q.scale).round() as i32 + q.zero_point).clamp(-128, 127)
}

/// Fake quantization: each op of the int8 file runs in f32 (through a
/// one-op f32 model in the no_std engine) on its dequantized int8 input,
/// with dequantized weights and biases, and its output is requantized with
/// the file's scale and zero point. An integer engine computes the same up
/// to the rounding of its fixed-point rescale.
pub fn fake_quant_predictions(int8_file: &[u8], data: &Dataset) -> Vec<usize> {
    let m = Model::parse(int8_file).expect("parse");
    let quants: Vec<ValueQuant> = (0..=m.op_count() as usize)
        .map(|v| value_quant(&m, v))
        .collect();
    let mut files = Vec::new();
    for e in m.ops() {
        let s_in = quants[e.index as usize].scale;
        let mut tensors = Vec::new();
        for j in 0..e.n_tensors {
            let t = m.op_tensor(&e, j).expect("tensor");
            let values: Vec<f32> = match (t.dtype, j) {
                (DType::I32, 1) => {
                    let s_w = per_channel(&m.op_tensor(&e, 0).expect("weight"));
                    let b = t.as_i32().expect("bias");
                    b.iter()
                        .zip(&s_w)
                        .map(|(&b, &s)| b as f32 * s_in * s)
                        .collect()
                }
                // The weight in row-major order whatever its stored layout.
                (_, 0) => (0..t.shape.numel() as usize)
                    .map(|i| t.value_f32_in(e.op.weight_layout(), i).expect("value"))
                    .collect(),
                _ => (0..t.shape.numel() as usize)
                    .map(|i| t.value_f32(i).expect("value"))
                    .collect(),
            };
            tensors.push(lasagna_format::TensorData::f32(t.shape.dims(), &values));
        }
        let mut b = lasagna_format::ModelBuilder::new(e.input.shape.dims());
        b.op(e.op.with_weight_layout(WeightLayout::RowMajor), tensors);
        let file = b.build().expect("one-op model");
        files.push(AlignedModel::new(&file));
    }
    let engines: Vec<lasagna_infer::Engine<'_>> = files
        .iter()
        .map(|f| lasagna_infer::Engine::new(f).expect("engine"))
        .collect();
    let max_arena = engines.iter().map(|e| e.arena_bytes()).max().unwrap_or(0);
    let mut arena = vec![0u32; max_arena.div_ceil(4)];
    (0..data.len())
        .map(|i| {
            let mut q: Vec<i32> = data
                .sample(i)
                .expect("sample")
                .iter()
                .map(|&x| quantize(x, quants[0]))
                .collect();
            for (k, engine) in engines.iter().enumerate() {
                let (qi, qo) = (quants[k], quants[k + 1]);
                let x: Vec<f32> = q
                    .iter()
                    .map(|&c| qi.scale * (c - qi.zero_point) as f32)
                    .collect();
                let y = engine
                    .run(bytemuck::cast_slice_mut(&mut arena), &x)
                    .expect("run");
                q = y.iter().map(|&v| quantize(v, qo)).collect();
            }
            argmax(&q)
        })
        .collect()
}

/// §6.1's requantization, from the bits of the `f32` multiplier `m`:
/// `M = (2^23 + f) · 2^7`, `n = 157 − e`, `(acc · M + 2^(n−1)) >> n`
/// saturated to `i32` (`M = 0` for a non-positive, subnormal or non-finite
/// `m` or `n > 62`; `M = 2^31 − 1, n = 1` for `n ≤ 0`).
pub fn requant(m: f32, acc: i32) -> i32 {
    let b = m.to_bits();
    let e = ((b >> 23) & 0xff) as i32;
    let (big_m, n): (i128, i32) = if b >> 31 != 0 || e == 0 || e == 0xff || 157 - e > 62 {
        (0, 1)
    } else if 157 - e <= 0 {
        ((1 << 31) - 1, 1)
    } else {
        ((((b & 0x7f_ffff) | 0x80_0000) as i128) << 7, 157 - e)
    };
    let r = (i128::from(acc) * big_m + (1i128 << (n - 1))) >> n;
    r.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
}

fn level(v: i32, zp: i32) -> i8 {
    v.saturating_add(zp).clamp(-128, 127) as i8
}

/// An int8 file run by an integer reference written from FORMAT.md §6.1
/// (no code shared with `lasagna-infer`): the output levels of `x` (input
/// levels). Covers what `lasagna export --quantize int8` writes for a CNN
/// (Conv2d, ReLU, MaxPool2d, Flatten, Linear); another op panics.
pub fn integer_reference(m: &Model<'_>, x: &[i8]) -> Vec<i8> {
    let mut v = x.to_vec();
    for e in m.ops() {
        let qx = value_quant(m, e.index as usize);
        let qy = value_quant(m, e.index as usize + 1);
        let d: Vec<usize> = e.input.shape.dims().iter().map(|&a| a as usize).collect();
        let od: Vec<usize> = e.output.shape.dims().iter().map(|&a| a as usize).collect();
        let rescale = |q: i8| {
            if qx == qy {
                q
            } else {
                level(
                    requant(qx.scale / qy.scale, i32::from(q) - qx.zero_point),
                    qy.zero_point,
                )
            }
        };
        // Weight codes row-major, per-channel scales, the i32 bias if any.
        let params = || {
            let w = m.op_tensor(&e, 0).expect("weight");
            let s = per_channel(&w);
            let per = w.shape.numel() as usize / s.len();
            let codes =
                e.op.weight_layout()
                    .row_major(w.as_i8().expect("codes"), s.len(), per);
            let b = (e.n_tensors > 1).then(|| {
                m.op_tensor(&e, 1)
                    .expect("bias")
                    .as_i32()
                    .expect("i32")
                    .to_vec()
            });
            (codes, s, per, b)
        };
        v = match e.op {
            Op::Linear { .. } => {
                let (w, s, per, b) = params();
                v.chunks(per)
                    .flat_map(|row| {
                        (0..s.len())
                            .map(|o| {
                                let mut acc = b.as_ref().map_or(0, |b| b[o]);
                                for (k, &xv) in row.iter().enumerate() {
                                    acc = acc.wrapping_add(
                                        (i32::from(xv) - qx.zero_point) * i32::from(w[o * per + k]),
                                    );
                                }
                                let m = (qx.scale / qy.scale) * s[o];
                                level(requant(m, acc), qy.zero_point)
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect()
            }
            Op::Conv2d {
                out_channels,
                groups,
                window: wd,
                ..
            } => {
                let (w, s, _, b) = params();
                let (cin, h, wi, oh, ow) = (d[0], d[1], d[2], od[1], od[2]);
                let (cout, groups) = (usize::from(out_channels), usize::from(groups));
                let (cin_g, cout_g) = (cin / groups, cout / groups);
                let (kh, kw) = (usize::from(wd.kernel[0]), usize::from(wd.kernel[1]));
                let mut y = Vec::with_capacity(cout * oh * ow);
                for oc in 0..cout {
                    let g = oc / cout_g;
                    let m = (qx.scale / qy.scale) * s[oc];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = b.as_ref().map_or(0, |b| b[oc]);
                            for ic in 0..cin_g {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let iy = tap(oy, ky, wd, 0);
                                        let ix = tap(ox, kx, wd, 1);
                                        // A padding tap holds zp_x: it adds 0.
                                        if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wi as i64 {
                                            continue;
                                        }
                                        let xv = v[((g * cin_g + ic) * h + iy as usize) * wi
                                            + ix as usize];
                                        let wv = w[((oc * cin_g + ic) * kh + ky) * kw + kx];
                                        acc = acc.wrapping_add(
                                            (i32::from(xv) - qx.zero_point) * i32::from(wv),
                                        );
                                    }
                                }
                            }
                            y.push(level(requant(m, acc), qy.zero_point));
                        }
                    }
                }
                y
            }
            Op::MaxPool2d { window: wd } => {
                let (c, h, wi, oh, ow) = (d[0], d[1], d[2], od[1], od[2]);
                let mut y = Vec::with_capacity(c * oh * ow);
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut best = i8::MIN;
                            for ky in 0..usize::from(wd.kernel[0]) {
                                for kx in 0..usize::from(wd.kernel[1]) {
                                    let iy = tap(oy, ky, wd, 0);
                                    let ix = tap(ox, kx, wd, 1);
                                    if iy >= 0 && ix >= 0 && iy < h as i64 && ix < wi as i64 {
                                        best =
                                            best.max(v[(ch * h + iy as usize) * wi + ix as usize]);
                                    }
                                }
                            }
                            y.push(rescale(best));
                        }
                    }
                }
                y
            }
            Op::Relu => v
                .iter()
                .map(|&q| rescale(q.max(qx.zero_point as i8)))
                .collect(),
            Op::Flatten => v.iter().map(|&q| rescale(q)).collect(),
            op => panic!("integer reference: op {} ({op:?}) not covered", e.index),
        };
    }
    v
}

/// The input coordinate that output `o`'s kernel tap `k` reads on `axis`
/// (negative or past the end inside the padding).
fn tap(o: usize, k: usize, wd: lasagna_format::Window, axis: usize) -> i64 {
    (o * usize::from(wd.stride[axis]) + k * usize::from(wd.dilation[axis])) as i64
        - i64::from(wd.padding[axis])
}
