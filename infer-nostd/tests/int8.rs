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
    input: (f32, i32),
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
        input: q[0],
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

#[test]
fn int8_outputs_track_the_f32_engine_after_every_op() {
    for (n, full) in nets().iter().enumerate() {
        // Every prefix of the net, so an error is pinned to the op that
        // adds it. Calibrated on the inputs it is evaluated on: no clipping.
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
            let mut worst = 0.0f32;
            for x in &xs {
                let mut xq = vec![0i8; x.len()];
                e.quantize_input(x, &mut xq).expect("quantize");
                let got = run_i8(&file, &xq).expect("int8 run");
                let want = common::run_engine(&q.f32, x).expect("f32 run");
                for (&g, &w) in got.iter().zip(&want) {
                    worst = worst.max((scale * (g as i32 - zp) as f32 - w).abs() / scale);
                }
            }
            // In output levels (255 span the calibrated range). Rounding
            // adds about half a level per op, and a steep op (Tanh after a
            // wide-range Linear) magnifies what came before: 10% of the
            // range bounds these untrained nets; a wrong kernel is far off.
            let op = net.layers[k - 1].op.kind();
            println!("net {n}, {k} ops (last {op}): worst |int8 - f32| {worst:.2} levels");
            assert!(
                worst <= 25.5,
                "net {n}, {k} ops (last {op}): {worst} levels"
            );
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
