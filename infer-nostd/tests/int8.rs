//! The int8 path end to end: small networks quantized here (per-channel
//! symmetric weights, per-tensor activations calibrated on the f32 engine),
//! run by the engine's integer kernels, and compared with the f32 engine on
//! the same (dequantized) weights.

mod common;

use common::{arena, fix_crc, square, Aligned, Net, Rng};
use lasagna_format::{ModelBuilder, Op, OpSpec, Plan, TensorData, ValueType};
use lasagna_infer::{Engine, Error};

/// `(scale, zero_point)` for a calibrated range, the exporter's rule.
fn qparams(lo: f32, hi: f32) -> (f32, i32) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

/// Per-channel symmetric levels of a weight with `channels` rows.
fn quantize_weight(w: &[f32], channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / channels;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for row in w.chunks(per) {
        let m = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        scales.push(s);
        q.extend(
            row.iter()
                .map(|v| (v / s).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

struct Quantized {
    int8: Vec<u8>,
    /// The f32 net with the weights the int8 file really holds.
    f32: Aligned,
    /// That net's description (its dequantized weights and biases).
    deq: Net,
    input: (f32, i32),
    /// Every value's `(scale, zero_point)`, input first.
    values: Vec<(f32, i32)>,
}

/// Calibrates `net` on `inputs` and writes it as int8 (and as f32 with the
/// dequantized weights, for comparison).
fn quantize(net: &Net, inputs: &[Vec<f32>]) -> Quantized {
    let f = net.build(false);
    let e = Engine::new(f.bytes()).expect("f32 engine");
    let n_values = net.layers.len() + 1;
    let mut ranges = vec![(f32::MAX, f32::MIN); n_values];
    let mut a = arena(e.arena_bytes());
    for x in inputs {
        e.run_observed(bytemuck::cast_slice_mut(&mut a), x, &mut |v, d| {
            for &x in d {
                ranges[v].0 = ranges[v].0.min(x);
                ranges[v].1 = ranges[v].1.max(x);
            }
        })
        .expect("calibration run");
    }
    let q: Vec<(f32, i32)> = ranges.iter().map(|&(lo, hi)| qparams(lo, hi)).collect();
    let vt = |i: usize| ValueType::I8 {
        scale: q[i].0,
        zero_point: q[i].1,
    };
    let mut b = ModelBuilder::new(&net.input);
    b.input_type(vt(0));
    let mut deq = net.clone();
    let mut shape = lasagna_format::Shape::new(&net.input).expect("input shape");
    for (i, l) in net.layers.iter().enumerate() {
        let channels = match l.op {
            Op::Linear { out_features, .. } => Some(out_features),
            Op::Conv2d { out_channels, .. } => Some(u32::from(out_channels)),
            _ => None,
        };
        let tensors = match channels {
            Some(c) => {
                let (wq, s) = quantize_weight(&l.tensors[0], c as usize);
                let dims = l.op.tensor_spec(0).expect("weight").2;
                let per = wq.len() / c as usize;
                deq.layers[i].tensors[0] = wq
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| v as f32 * s[k / per])
                    .collect();
                let mut t = vec![TensorData::i8_per_channel(dims.dims(), &wq, s.clone())];
                if let Some(bias) = l.tensors.get(1) {
                    let bq: Vec<i32> = bias
                        .iter()
                        .zip(&s)
                        .map(|(&v, &sw)| (v as f64 / (q[i].0 as f64 * sw as f64)).round() as i32)
                        .collect();
                    deq.layers[i].tensors[1] = bq
                        .iter()
                        .zip(&s)
                        .map(|(&v, &sw)| (v as f64 * q[i].0 as f64 * sw as f64) as f32)
                        .collect();
                    t.push(TensorData::i32(&[c], &bq));
                }
                t
            }
            None => l
                .tensors
                .iter()
                .enumerate()
                .map(|(j, v)| TensorData::f32(l.op.tensor_spec(j).expect("spec").2.dims(), v))
                .collect(),
        };
        b.push(OpSpec {
            op: l.op,
            tensors,
            output: vt(i + 1),
            scratch_bytes: lasagna_infer::scratch_bytes_int8(&l.op, &shape) as u32,
        });
        shape = l.op.infer_shape(shape).expect("shape");
    }
    Quantized {
        int8: b.build().expect("int8 model builds"),
        f32: deq.build(false),
        deq,
        input: q[0],
        values: q,
    }
}

fn conv(cin: u16, cout: u16, groups: u16, k: u8, s: u8, p: u8) -> Op {
    Op::Conv2d {
        in_channels: cin,
        out_channels: cout,
        groups,
        window: square(k, s, p, 1),
        bias: true,
    }
}

fn nets() -> Vec<Net> {
    let rng = &mut Rng(7);
    let mut cnn = Net::new(&[2, 9, 9]);
    cnn.push(conv(2, 4, 1, 3, 1, 1), rng)
        .push(Op::Relu, rng)
        .push(
            Op::MaxPool2d {
                window: square(2, 2, 0, 1),
            },
            rng,
        )
        .push(conv(4, 6, 2, 3, 2, 1), rng)
        .push(Op::LeakyRelu { alpha: 0.1 }, rng)
        .push(
            Op::AvgPool2d {
                window: square(2, 1, 1, 1),
                count_include_pad: false,
            },
            rng,
        )
        .push(Op::AdaptiveAvgPool2d { out_h: 1, out_w: 2 }, rng)
        .push(Op::Flatten, rng)
        .push(
            Op::Linear {
                in_features: 12,
                out_features: 5,
                bias: true,
                layout: lasagna_format::WeightLayout::RowMajor,
            },
            rng,
        )
        .push(Op::Tanh, rng);
    let mut mlp = Net::new(&[20]);
    mlp.push(
        Op::Linear {
            in_features: 20,
            out_features: 13,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        rng,
    )
    .push(Op::Sigmoid, rng)
    .push(
        Op::Linear {
            in_features: 13,
            out_features: 7,
            bias: false,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        rng,
    )
    .push(Op::Gelu { tanh: false }, rng)
    .push(
        Op::Linear {
            in_features: 7,
            out_features: 4,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        rng,
    )
    .push(Op::Softmax, rng);
    vec![cnn, mlp]
}

fn inputs(net: &Net, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let rng = &mut Rng(seed);
    let len = net.input.iter().product::<u32>() as usize;
    (0..n).map(|_| rng.vec(len)).collect()
}

fn run_i8(file: &Aligned, x: &[i8]) -> Result<Vec<i8>, Error> {
    let e = Engine::new(file.bytes())?;
    let mut a = arena(e.arena_bytes());
    Ok(e.run_i8(bytemuck::cast_slice_mut(&mut a), x)?.to_vec())
}

/// How far an op can move an error already in its input, in the `∞`-norm
/// (largest element): `|op(a) − op(b)| ≤ L · max|a − b|`.
///
/// - Linear, Conv2d: the largest `Σ |w|` of an output row (channel), on the
///   dequantized weights both engines use (padding taps are 0 on both sides).
/// - ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Tanh: 1.
///   LeakyReLU: `max(1, |alpha|)`. Sigmoid: `max σ' = 1/4`.
/// - GELU: `max |d/dx x·Φ(x)| = 1.1289` (at `x = √2`), 1.13 also bounds
///   the tanh form; SiLU: `max |d/dx x·σ(x)| = 1.0998` (at `x ≈ 2.40`).
/// - Softmax: `∂p_i/∂x_j = p_i (δ_ij − p_j)`, a row sum of
///   `2 p_i (1 − p_i) ≤ 1/2`.
fn lipschitz(layer: &common::Layer) -> f64 {
    let rows = |w: &[f32], per: usize| {
        w.chunks(per)
            .map(|r| r.iter().map(|v| f64::from(v.abs())).sum::<f64>())
            .fold(0.0f64, f64::max)
    };
    match layer.op {
        Op::Linear { in_features, .. } => rows(&layer.tensors[0], in_features as usize),
        Op::Conv2d { out_channels, .. } => {
            let w = &layer.tensors[0];
            rows(w, w.len() / usize::from(out_channels))
        }
        Op::LeakyRelu { alpha } => f64::from(alpha.abs()).max(1.0),
        Op::Sigmoid => 0.25,
        Op::Gelu { .. } => 1.13,
        Op::Silu => 1.1,
        Op::Softmax => 0.5,
        _ => 1.0,
    }
}

#[test]
fn int8_outputs_track_the_f32_engine_after_every_op() {
    // The bound, derived. Both engines get the same input (the f32 engine
    // the dequantized input levels), so the error starts at E_0 = 0. Op i
    // maps value i (error E_i, real units) to value i + 1 with scale s_y:
    //
    //   E_{i+1} = L_i · E_i + s_y / 2 + [AvgPool: s_x / 2] + clip_{i+1} + slack
    //
    // - `L_i · E_i`: what the op does to its input's error ([`lipschitz`]).
    //   The int8 engine computes the op on exactly the dequantized levels
    //   and weights the f32 engine is given (integer sums are exact), so
    //   nothing else enters before rounding.
    // - `s_y / 2`: the output is rounded once to a level (requantization
    //   rounds half up, `quantize` to nearest: at most half a level).
    //   AvgPool rounds twice: the mean in input levels (`s_x / 2`), then
    //   the rescale.
    // - `clip`: the calibration's error. Ranges are calibrated on the
    //   original weights, the reference runs the dequantized ones, so a
    //   value can fall outside its int8 range; `clip` is the largest
    //   distance measured here (0 when nothing is clipped).
    // - `slack`: f32 rounding in the multipliers and in the f32 engine,
    //   1e-3 levels per op (measured below 1e-4); with fast-math, 0.01 real
    //   units for the float functions, both engines evaluating the same
    //   approximation with up to 2.5e-3 error (src/math.rs).
    //
    // That bound grows with every Linear (`L` is a sum of |w| over a row),
    // so deep in a net it is loose. Each op is therefore also checked
    // alone, which is tight: op k's int8 output against the f32 op run on
    // the dequantized levels the int8 engine gave op k as input (E_i = 0),
    // within `1/2 [+ s_x / (2 s_y) for a pool] + clip + slack` levels. A
    // kernel that rounds wrong (truncation: up to a whole level) or
    // misplaces one tap breaks that at the op where it happens.
    let fast = cfg!(feature = "fast-math");
    for (n, full) in nets().iter().enumerate() {
        // Every prefix of the net, so an error is pinned to the op that
        // adds it. `prev` holds the previous prefix's int8 outputs: the
        // input levels of op k (calibration of value i depends only on
        // the ops before it, so every prefix quantizes it alike).
        let mut prev: Vec<Vec<i8>> = Vec::new();
        let mut prev_values: Vec<(f32, i32)> = Vec::new();
        let mut shape = lasagna_format::Shape::new(&full.input).expect("input shape");
        for k in 1..=full.layers.len() {
            let mut net = full.clone();
            net.layers.truncate(k);
            let xs = inputs(&net, 32, 200 + n as u64);
            let q = quantize(&net, &xs);
            let file = Aligned::new(&q.int8);
            let e = Engine::new(file.bytes()).expect("int8 engine");
            assert!(e.is_int8());
            assert_eq!(e.input_quant(), Some(q.input));
            let (scale, zp) = e.output_quant().expect("output quant");
            assert_eq!((scale, zp), q.values[k]);
            let f32_engine = Engine::new(q.f32.bytes()).expect("f32 engine");
            let mut fa = arena(f32_engine.arena_bytes());
            if k > 1 {
                assert_eq!(q.values[..k], prev_values[..], "prefixes quantize alike");
            }
            // Op k alone, in f32, on the dequantized weights.
            let mut alone = Net::new(shape.dims());
            alone.layers.push(q.deq.layers[k - 1].clone());
            let alone = alone.build(false);
            let (s_x, zp_x) = q.values[k - 1];
            let (mut worst, mut worst_op, mut clip_op) = (0.0f32, 0.0f32, 0.0f64);
            let mut clip = vec![0.0f64; k + 1];
            let mut outs = Vec::new();
            for (j, x) in xs.iter().enumerate() {
                let mut xq = vec![0i8; x.len()];
                e.quantize_input(x, &mut xq).expect("quantize");
                let op_in = if k == 1 { &xq } else { &prev[j] };
                let op_x: Vec<f32> = op_in
                    .iter()
                    .map(|&v| s_x * (v as i32 - zp_x) as f32)
                    .collect();
                let op_want = common::run_engine(&alone, &op_x).expect("one-op f32 run");
                let (s_in, zp_in) = q.input;
                let xd: Vec<f32> = xq
                    .iter()
                    .map(|&v| s_in * (v as i32 - zp_in) as f32)
                    .collect();
                let got = run_i8(&file, &xq).expect("int8 run");
                let want = f32_engine
                    .run_observed(bytemuck::cast_slice_mut(&mut fa), &xd, &mut |v, d| {
                        let (s, z) = q.values[v];
                        let (lo, hi) = (s * (-128 - z) as f32, s * (127 - z) as f32);
                        for &y in d {
                            let out = (lo - y).max(y - hi).max(0.0);
                            clip[v] = clip[v].max(f64::from(out));
                        }
                    })
                    .expect("f32 run")
                    .to_vec();
                let (lo, hi) = (scale * (-128 - zp) as f32, scale * (127 - zp) as f32);
                for ((&g, &w), &w1) in got.iter().zip(&want).zip(&op_want) {
                    let real = scale * (g as i32 - zp) as f32;
                    worst = worst.max((real - w).abs() / scale);
                    worst_op = worst_op.max((real - w1).abs() / scale);
                    clip_op = clip_op.max(f64::from((lo - w1).max(w1 - hi).max(0.0)));
                }
                outs.push(got);
            }
            let mut bound = 0.0f64;
            for (i, layer) in q.deq.layers.iter().enumerate() {
                let (s_x, s_y) = (f64::from(q.values[i].0), f64::from(q.values[i + 1].0));
                let pool = matches!(
                    layer.op,
                    Op::AvgPool2d { .. } | Op::AdaptiveAvgPool2d { .. }
                );
                let float_fn = matches!(
                    layer.op,
                    Op::Sigmoid | Op::Tanh | Op::Gelu { .. } | Op::Silu | Op::Softmax
                );
                bound = lipschitz(layer) * bound
                    + s_y / 2.0
                    + if pool { s_x / 2.0 } else { 0.0 }
                    + clip[i + 1]
                    + 1e-3 * s_y
                    + if fast && float_fn { 0.01 } else { 0.0 };
            }
            let bound = bound / f64::from(scale);
            let layer = &net.layers[k - 1];
            let op = layer.op.kind();
            let pool = matches!(
                layer.op,
                Op::AvgPool2d { .. } | Op::AdaptiveAvgPool2d { .. }
            );
            let float_fn = matches!(
                layer.op,
                Op::Sigmoid | Op::Tanh | Op::Gelu { .. } | Op::Silu | Op::Softmax
            );
            let bound_op =
                0.5 + if pool {
                    f64::from(s_x / scale) / 2.0
                } else {
                    0.0
                } + clip_op / f64::from(scale)
                    + 1e-3
                    + if fast && float_fn {
                        0.01 / f64::from(scale)
                    } else {
                        0.0
                    };
            println!(
                "net {n}, op {k} ({op}) alone: worst |int8 - f32| {worst_op:.3} levels, derived bound {bound_op:.3}; \
                 ops 1..={k}: {worst:.3} levels, derived bound {bound:.3}"
            );
            assert!(
                f64::from(worst_op) <= bound_op,
                "net {n}, op {k} ({op}) alone: int8 is {worst_op} levels from f32 on the same input levels, \
                 above the derived bound {bound_op:.3} (half a level of rounding, plus clipping {:.3})",
                clip_op / f64::from(scale)
            );
            assert!(
                f64::from(worst) <= bound,
                "net {n}, ops 1..={k} (last {op}): int8 is {worst} levels from f32, above the derived bound {bound:.3}"
            );
            prev = outs;
            prev_values = q.values.clone();
            shape = layer.op.infer_shape(shape).expect("shape");
        }
    }
}

#[test]
fn int8_in_place_and_out_of_place_plans_give_identical_levels() {
    for (n, net) in nets().iter().enumerate() {
        let q = quantize(net, &inputs(net, 16, 300 + n as u64));
        let planned = Aligned::new(&q.int8);
        let m = lasagna_format::Model::parse(planned.bytes()).expect("parses");
        let mut b = ModelBuilder::from_model(&m).expect("rebuild");
        let shapes = b.shapes().expect("shapes");
        let mut offsets = Vec::new();
        let mut end = 0u32;
        for s in &shapes {
            offsets.push(end);
            end += (s.numel() as u32).div_ceil(4) * 4;
        }
        // Scratch after every value; the ops that need none get offset 0.
        let needs: Vec<u32> = m
            .ops()
            .map(|e| lasagna_infer::scratch_bytes_int8(&e.op, &e.input.shape) as u32)
            .collect();
        let most = needs.iter().copied().max().unwrap_or(0);
        b.with_plan(Plan {
            arena_bytes: end + most,
            value_offsets: offsets,
            scratch_offsets: needs
                .iter()
                .map(|&n| if n == 0 { 0 } else { end })
                .collect(),
        });
        let spread = Aligned::new(&b.build().expect("out of place"));
        for x in inputs(net, 8, 400 + n as u64) {
            let e = Engine::new(planned.bytes()).expect("engine");
            let mut xq = vec![0i8; x.len()];
            e.quantize_input(&x, &mut xq).expect("quantize");
            assert_eq!(run_i8(&planned, &xq), run_i8(&spread, &xq), "net {n}");
        }
    }
}

#[test]
fn int8_calls_are_checked_like_f32_ones() {
    let net = &nets()[1];
    let q = quantize(net, &inputs(net, 4, 9));
    let file = Aligned::new(&q.int8);
    let e = Engine::new(file.bytes()).expect("engine");
    let mut a = arena(e.arena_bytes());
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut a);
    let err = e.run(bytes, &[0.0; 20]).expect_err("f32 into int8");
    assert!(err.to_string().contains("`run_i8`"), "{err}");
    assert_eq!(
        e.run_i8(bytes, &[0; 19]),
        Err(Error::InputLength {
            expected: 20,
            got: 19
        })
    );
    let needed = e.arena_bytes();
    assert_eq!(
        e.run_i8(&mut bytes[..needed - 1], &[0; 20]),
        Err(Error::ArenaTooSmall {
            needed,
            got: needed - 1
        })
    );
    assert!(e.quantize_input(&[0.0; 20], &mut [0; 3]).is_err());
}

mod damaged {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Mutated int8 files (behind a recomputed CRC half the time, so
        /// they reach validation and the engine) are refused with an error
        /// or run without panicking.
        #[test]
        fn damaged_int8_files_are_refused_or_run_without_panicking(
            which in 0usize..2,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            recompute_crc in any::<bool>(),
        ) {
            let net = &nets()[which];
            let q = quantize(net, &inputs(net, 4, 77));
            let mut bytes = q.int8.clone();
            for (at, v) in &edits {
                let i = at.index(bytes.len());
                bytes[i] = *v;
            }
            if recompute_crc {
                fix_crc(&mut bytes);
            }
            let file = Aligned::new(&bytes);
            if let Ok(e) = Engine::new(file.bytes()) {
                if e.arena_bytes() <= 1 << 22 && e.input_len() <= 1 << 16 {
                    let mut a = arena(e.arena_bytes());
                    let x = vec![3i8; e.input_len()];
                    let _ = e.run_i8(bytemuck::cast_slice_mut(&mut a), &x);
                    let _ = e.run(bytemuck::cast_slice_mut(&mut a), &vec![0.0; e.input_len()]);
                }
            };
        }
    }
}
