//! Properties over random f32/f16 models: the engine never panics (on
//! damaged files, wrong input or arena sizes), it refuses exactly what is
//! wrong, and an op gives the same bits in place as out of place.
mod common;

use common::{arena, fix_crc, Aligned, Net, Rng};
use lasagna_format::{Op, Shape, Window};
use lasagna_infer::{Engine, Error};
use proptest::prelude::*;

fn window(rng: &mut Rng, h: u32, w: u32, pool: bool) -> Option<Window> {
    let k = [rng.range(1, 3) as u8, rng.range(1, 3) as u8];
    let (p, d) = if pool {
        (
            [
                rng.range(0, (k[0] / 2) as u32) as u8,
                rng.range(0, (k[1] / 2) as u32) as u8,
            ],
            [1, 1],
        )
    } else {
        (
            [rng.range(0, 2) as u8, rng.range(0, 2) as u8],
            [rng.range(1, 2) as u8, rng.range(1, 2) as u8],
        )
    };
    let win = Window {
        kernel: k,
        stride: [rng.range(1, 2) as u8, rng.range(1, 2) as u8],
        padding: p,
        dilation: d,
    };
    (win.out_len(0, h).is_some() && win.out_len(1, w).is_some()).then_some(win)
}

/// An op that accepts `x`, or an activation if the random choice does not fit.
fn random_op(rng: &mut Rng, x: Shape) -> Op {
    let d = x.dims().to_vec();
    let activation = |rng: &mut Rng| match rng.range(0, 6) {
        0 => Op::Relu,
        1 => Op::LeakyRelu { alpha: rng.f32() },
        2 => Op::Gelu { tanh: rng.coin() },
        3 => Op::Silu,
        4 => Op::Sigmoid,
        5 => Op::Tanh,
        _ => Op::Softmax,
    };
    let candidate = match rng.range(0, 9) {
        0 | 1 => Op::Linear {
            in_features: x.last(),
            out_features: rng.range(1, 12),
            bias: rng.coin(),
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        2 if d.len() == 3 && d[0] <= 8 => {
            let g = if rng.coin() { 1 } else { d[0] as u16 };
            match window(rng, d[1], d[2], false) {
                Some(window) => Op::Conv2d {
                    in_channels: d[0] as u16,
                    out_channels: g * rng.range(1, 3) as u16,
                    groups: g,
                    window,
                    bias: rng.coin(),
                },
                None => activation(rng),
            }
        }
        3 if d.len() == 3 => match window(rng, d[1], d[2], true) {
            Some(window) if rng.coin() => Op::MaxPool2d { window },
            Some(window) => Op::AvgPool2d {
                window,
                count_include_pad: rng.coin(),
            },
            None => activation(rng),
        },
        4 if d.len() == 3 => Op::AdaptiveAvgPool2d {
            out_h: rng.range(1, 3) as u16,
            out_w: rng.range(1, 3) as u16,
        },
        5 if d.len() <= 3 => Op::BatchNorm {
            features: d[0],
            eps: 1e-5,
        },
        6 => Op::LayerNorm {
            size: x.last(),
            eps: rng.f32().abs() + 1e-5,
        },
        7 if d.len() == 2 => Op::Lstm {
            input_size: d[1],
            hidden_size: rng.range(1, 6),
            layers: rng.range(1, 3) as u8,
            return_sequences: rng.coin(),
            cell_shift: 0,
        },
        8 => Op::Flatten,
        _ => activation(rng),
    };
    if candidate.infer_shape(x).is_ok() {
        candidate
    } else {
        activation(rng)
    }
}

/// A random f32-activation model: image, sequence, vector or token input.
fn random_net(seed: u64) -> Net {
    let rng = &mut Rng(seed);
    let mut net = match rng.range(0, 3) {
        0 => Net::new(&[rng.range(1, 4), rng.range(1, 9), rng.range(1, 9)]),
        1 => Net::new(&[rng.range(1, 6), rng.range(1, 6)]),
        2 => Net::new(&[rng.range(1, 24)]),
        _ => {
            let mut n = Net::new(&[rng.range(1, 6)]);
            n.tokens = true;
            let op = Op::Embedding {
                num: rng.range(1, 20),
                dim: rng.range(1, 5),
            };
            n.push(op, rng);
            n
        }
    };
    let mut shape = Shape::new(&net.input).unwrap_or_default();
    if let Some(l) = net.layers.last() {
        shape = l.op.infer_shape(shape).unwrap_or(shape);
    }
    for _ in 0..rng.range(1, 7) {
        let op = random_op(rng, shape);
        shape = op.infer_shape(shape).unwrap_or(shape);
        net.push(op, rng);
    }
    net
}

/// An input for `e`: values in [-2, 2), or ids mostly inside the table.
fn input_for(e: &Engine<'_>, rng: &mut Rng) -> Vec<f32> {
    (0..e.input_len()).map(|_| rng.f32() * 2.0).collect()
}

fn run_any(e: &Engine<'_>, bytes: &mut [u8], x: &[f32], ids: &[i32]) -> Result<Vec<f32>, Error> {
    if e.input_dtype() == lasagna_format::DType::I32 {
        e.run_tokens(bytes, ids).map(|y| y.to_vec())
    } else {
        e.run(bytes, x).map(|y| y.to_vec())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn in_place_and_out_of_place_plans_give_identical_bits(seed in any::<u64>(), f16 in any::<bool>()) {
        let net = random_net(seed);
        let (a, b) = (net.build(f16), net.build_out_of_place(f16));
        let rng = &mut Rng(seed ^ 0x5555);
        let x: Vec<f32> = (0..net.input.iter().product::<u32>()).map(|_| rng.f32() * 2.0).collect();
        let ids: Vec<f32> = x.iter().map(|v| (v.abs() * 100.0) as u32 as f32).collect();
        let input = if net.tokens { &ids } else { &x };
        let (ya, yb) = (common::run_engine(&a, input), common::run_engine(&b, input));
        match (ya, yb) {
            (Ok(ya), Ok(yb)) => {
                let (ba, bb): (Vec<u32>, Vec<u32>) =
                    (ya.iter().map(|v| v.to_bits()).collect(), yb.iter().map(|v| v.to_bits()).collect());
                prop_assert_eq!(ba, bb);
            }
            // Only token ids outside the table may fail, and then both fail alike.
            (ya, yb) => {
                prop_assert!(matches!(ya, Err(Error::TokenOutOfRange { .. })), "{:?}", ya);
                prop_assert_eq!(ya, yb);
            }
        }
    }

    #[test]
    fn damaged_files_are_refused_or_run_without_panicking(
        seed in any::<u64>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        recompute_crc in any::<bool>(),
    ) {
        let file = random_net(seed).build(seed & 1 == 1);
        let mut bytes = file.bytes().to_vec();
        for (at, v) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
        if recompute_crc {
            fix_crc(&mut bytes);
        }
        let damaged = Aligned::new(&bytes);
        let engine = Engine::new(damaged.bytes());
        if let Ok(e) = engine {
            // Weights may now be anything; shapes and the plan were revalidated.
            if e.arena_bytes() <= 1 << 22 {
                let rng = &mut Rng(seed);
                let x = input_for(&e, rng);
                let ids: Vec<i32> = (0..e.input_len()).map(|_| rng.range(0, 40) as i32 - 5).collect();
                let mut a = arena(e.arena_bytes());
                let r = run_any(&e, bytemuck::cast_slice_mut(&mut a), &x, &ids);
                if let Ok(y) = r {
                    prop_assert_eq!(y.len(), e.output_len());
                }
            }
        }
    }

    #[test]
    fn truncated_files_are_refused(seed in any::<u64>(), cut in any::<prop::sample::Index>()) {
        let file = random_net(seed).build(false);
        let n = cut.index(file.bytes().len());
        let cut = Aligned::new(&file.bytes()[..n]);
        prop_assert!(matches!(Engine::new(cut.bytes()), Err(Error::Format(_))));
    }

    #[test]
    fn wrong_input_or_arena_sizes_are_errors_and_right_ones_run(
        seed in any::<u64>(),
        input_delta in -3i64..3,
        arena_delta in -9i64..9,
        shift in 0usize..4,
    ) {
        let file = random_net(seed).build(false);
        let e = Engine::new(file.bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let n_in = (e.input_len() as i64 + input_delta).max(0) as usize;
        let n_arena = (e.arena_bytes() as i64 + arena_delta).max(0) as usize;
        let mut a = arena(n_arena + shift);
        let all: &mut [u8] = bytemuck::cast_slice_mut(&mut a);
        let bytes = &mut all[shift..shift + n_arena];
        let x = vec![0.5f32; n_in];
        let ids = vec![0i32; n_in];
        let r = run_any(&e, bytes, &x, &ids);
        if n_in != e.input_len() {
            prop_assert!(matches!(r, Err(Error::InputLength { .. })), "{:?}", r);
        } else if n_arena < e.arena_bytes() {
            prop_assert_eq!(r, Err(Error::ArenaTooSmall { needed: e.arena_bytes(), got: n_arena }));
        } else if shift != 0 {
            prop_assert_eq!(r, Err(Error::ArenaMisaligned { needed: e.arena_bytes(), align: 4 }));
        } else {
            let y = r.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(y.len(), e.output_len());
        }
    }
}
