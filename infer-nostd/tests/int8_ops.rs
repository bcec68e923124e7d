//! Every int8 op the exporter can emit, each with a test that checks it
//! exactly (bit for bit against a reference written from docs/FORMAT.md
//! §6.1 and §6.3, never from the engine's helpers).
//!
//! Lasagna's exporter (`trainer/src/quantize`, `int8_specs`) writes an int8
//! file for any model whose ops `lasagna_infer::int8_refusal` accepts; the
//! values' quantizations follow `quantize/scheme.rs` (ReLU, MaxPool2d,
//! AvgPool2d, AdaptiveAvgPool2d and Flatten share input and output). The
//! ops, and the test that pins each one:
//!
//! | int8 op (what the exporter writes) | exact test |
//! |---|---|
//! | input quantization (`quantize_input`) | `spec.rs` `s6_1_input_quantization_rounds_ties_away_from_zero` |
//! | requantization `(M, n)`, rounding half up | `spec.rs` `s6_1_requantization_edge_multipliers_saturate_or_vanish_as_stated`; whole models: here `an_exporter_shaped_int8_model_matches_the_integer_reference_bit_for_bit`, `golden_int8.rs`, `cli/tests/quantize.rs` `the_int8_engine_is_the_integer_reference_bit_for_bit_on_mnist` |
//! | Linear, row-major | `spec.rs` `s6_1_linear_accumulator_wraps_modulo_2_32`, `src/ops/linear.rs` unit test |
//! | Linear, interleaved rows (every exported Linear, FORMAT.md 6.2) | here `exported_linear_interleaved_with_and_without_bias_is_exact` |
//! | Conv2d, groups 1, padding | `spec.rs` `s6_1_conv2d_padding_taps_hold_the_input_zero_point` |
//! | Conv2d, groups / stride / dilation / no bias | here `conv2d_groups_stride_dilation_and_no_bias_are_exact` |
//! | ReLU (shared quantization, zero point lowest or not; and rescaled) | here `relu_flatten_and_maxpool_are_exact_level_maps` |
//! | MaxPool2d (padding never wins; shared and rescaled) | here `relu_flatten_and_maxpool_are_exact_level_maps` |
//! | Flatten (copy; rescale) | here `relu_flatten_and_maxpool_are_exact_level_maps` |
//! | AvgPool2d / AdaptiveAvgPool2d, shared quantization (the exporter's) | here `avgpool_with_one_quantization_is_the_rounded_mean_plus_the_zero_point` |
//! | AvgPool2d / AdaptiveAvgPool2d, rescaled | `spec.rs` `s6_1_avgpool_divides_first_then_rescales_and_the_flag_sets_the_divisor` |
//! | LeakyReLU | `spec.rs` `s6_1_leaky_relu_rounds_then_applies_the_sign` |
//! | GELU (erf and tanh), SiLU, Sigmoid, Tanh, Softmax | `spec.rs` `s6_1_float_ops_follow_the_stated_f32_steps_bit_for_bit` |
//! | LayerNorm, unfolded BatchNorm (f32 and f16 parameters) | `spec.rs` `s6_1_int8_layernorm_and_batchnorm_take_float_parameters_only`; here `layernorm_bias_and_batchnorm_mean_are_applied_with_their_signs` |
//! | LSTM (§6.3) | `src/ops/lstm_i8.rs` `matches_an_independent_integer_reference_bit_for_bit` |
//! | Embedding (§6.3) | `cli/tests/quantize_lstm.rs` `an_int8_embedding_gives_the_rescaled_row_codes_of_each_id` |
//!
//! The float ops (GELU … BatchNorm) are exact against the stated `f32`
//! steps with Rust's `libm`; the fast-math build swaps those functions, so
//! their tests are compiled out there (the integer ones here are not).
#![allow(clippy::indexing_slicing)]

mod common;

use common::spec_int8::{avg_windows, div_away, level, requant};

use common::{arena, square, Aligned, Rng};
use lasagna_format::{ModelBuilder, Op, OpSpec, Shape, TensorData, ValueType, WeightLayout};
use lasagna_infer::{scratch_bytes_int8, Engine};

/// `(scale, zero_point)`.
type Q = (f32, i32);

// ---------------------------------------------------------------- reference

/// §6.1 Flatten/ReLU/MaxPool: a level of `qx` as a level of `qy`
/// (unchanged when the quantizations are equal).
fn rescale(q: i8, qx: Q, qy: Q) -> i8 {
    if qx == qy {
        q
    } else {
        level(requant(qx.0 / qy.0, i32::from(q) - qx.1), qy.1)
    }
}

/// Linear, weights row-major `[out, in]`, input `[rows, in]`.
fn linear_ref(x: &[i8], w: &[i8], s_w: &[f32], bias: Option<&[i32]>, qx: Q, qy: Q) -> Vec<i8> {
    let out = s_w.len();
    let inp = w.len() / out;
    let mut y = Vec::new();
    for row in x.chunks(inp) {
        for o in 0..out {
            let mut acc = bias.map_or(0, |b| b[o]);
            for k in 0..inp {
                acc = acc.wrapping_add((i32::from(row[k]) - qx.1) * i32::from(w[o * inp + k]));
            }
            y.push(level(requant((qx.0 / qy.0) * s_w[o], acc), qy.1));
        }
    }
    y
}

/// FORMAT.md 6.2: `(o, k)` of a row-major `[out, in]` weight moved to
/// `4b·in + (k/4·n + j)·4 + k%4` (`k < 4G`), else `4b·in + 4G·n + j·T + (k − 4G)`.
fn interleave(w: &[i8], out: usize, inp: usize) -> Vec<i8> {
    let (g, t) = (inp / 4, inp % 4);
    let mut s = vec![0i8; w.len()];
    for o in 0..out {
        let (b, j) = (o / 4, o % 4);
        let n = 4.min(out - 4 * b);
        for k in 0..inp {
            let at = if k < 4 * g {
                4 * b * inp + (k / 4 * n + j) * 4 + k % 4
            } else {
                4 * b * inp + 4 * g * n + j * t + (k - 4 * g)
            };
            s[at] = w[o * inp + k];
        }
    }
    s
}

/// Conv2d geometry: `[c, h, w]` in, window, groups.
#[derive(Clone, Copy)]
struct ConvGeom {
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    groups: usize,
}

impl ConvGeom {
    fn out(&self, n: usize) -> usize {
        (n + 2 * self.pad - self.dil * (self.k - 1) - 1) / self.stride + 1
    }
}

/// Conv2d: padding taps hold `zp_x` and add `(zp_x − zp_x) · w = 0`.
fn conv_ref(
    g: ConvGeom,
    x: &[i8],
    w: &[i8],
    s_w: &[f32],
    bias: Option<&[i32]>,
    qx: Q,
    qy: Q,
) -> Vec<i8> {
    let (cin_g, cout_g) = (g.cin / g.groups, g.cout / g.groups);
    let (oh, ow) = (g.out(g.h), g.out(g.w));
    let mut y = Vec::new();
    for oc in 0..g.cout {
        let grp = oc / cout_g;
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias.map_or(0, |b| b[oc]);
                for ic in 0..cin_g {
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let iy = (oy * g.stride + ky * g.dil) as i64 - g.pad as i64;
                            let ix = (ox * g.stride + kx * g.dil) as i64 - g.pad as i64;
                            let xv = if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                qx.1
                            } else {
                                i32::from(
                                    x[((grp * cin_g + ic) * g.h + iy as usize) * g.w + ix as usize],
                                )
                            };
                            let wv = i32::from(w[((oc * cin_g + ic) * g.k + ky) * g.k + kx]);
                            acc = acc.wrapping_add((xv - qx.1) * wv);
                        }
                    }
                }
                y.push(level(requant((qx.0 / qy.0) * s_w[oc], acc), qy.1));
            }
        }
    }
    y
}

/// MaxPool2d over `[c, h, w]`: the largest level inside the input (padding
/// is −∞ and never wins), then mapped to `qy`.
fn maxpool_ref(
    x: &[i8],
    (c, h, w): (usize, usize, usize),
    k: usize,
    s: usize,
    p: usize,
    qx: Q,
    qy: Q,
) -> Vec<i8> {
    let out = |n: usize| (n + 2 * p - k) / s + 1;
    let mut y = Vec::new();
    for ch in 0..c {
        for oy in 0..out(h) {
            for ox in 0..out(w) {
                let mut best: Option<i8> = None;
                for ky in 0..k {
                    for kx in 0..k {
                        let (iy, ix) = (
                            (oy * s + ky) as i64 - p as i64,
                            (ox * s + kx) as i64 - p as i64,
                        );
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            let v = x[(ch * h + iy as usize) * w + ix as usize];
                            best = Some(best.map_or(v, |b| b.max(v)));
                        }
                    }
                }
                y.push(rescale(best.expect("a window touches the input"), qx, qy));
            }
        }
    }
    y
}

/// §6.1 AvgPool2d with one quantization: `clamp(zp + round(Σ(q − zp) / count))`.
fn avgpool_ref(
    x: &[i8],
    (c, h, w): (usize, usize, usize),
    k: usize,
    s: usize,
    p: usize,
    include_pad: bool,
    zp: i32,
) -> Vec<i8> {
    avg_windows(x, (c, h, w), (k, s, p), include_pad, zp)
        .into_iter()
        .map(|(sum, count)| level(div_away(sum, count), zp))
        .collect()
}

/// AdaptiveAvgPool2d with one quantization: bins `floor(i·n/out) .. ceil((i+1)·n/out)`.
fn adaptive_ref(
    x: &[i8],
    (c, h, w): (usize, usize, usize),
    (oh, ow): (usize, usize),
    zp: i32,
) -> Vec<i8> {
    let mut y = Vec::new();
    for ch in 0..c {
        for i in 0..oh {
            for j in 0..ow {
                let (y0, y1) = (i * h / oh, ((i + 1) * h).div_ceil(oh));
                let (x0, x1) = (j * w / ow, ((j + 1) * w).div_ceil(ow));
                let mut sum = 0i32;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        sum += i32::from(x[(ch * h + iy) * w + ix]) - zp;
                    }
                }
                y.push(level(div_away(sum, ((y1 - y0) * (x1 - x0)) as i32), zp));
            }
        }
    }
    y
}

/// ReLU: `max(q, zp_x)`, then mapped to `qy`.
fn relu_ref(x: &[i8], qx: Q, qy: Q) -> Vec<i8> {
    x.iter()
        .map(|&q| rescale(q.max(qx.1 as i8), qx, qy))
        .collect()
}

/// LeakyReLU: `apply₊(d)` for `d > 0`, else `sign(α) · apply₋(d)`.
fn leaky_ref(x: &[i8], alpha: f32, qx: Q, qy: Q) -> Vec<i8> {
    let r = qx.0 / qy.0;
    let neg = alpha.abs() * r;
    let sign = if alpha < 0.0 { -1 } else { 1 };
    x.iter()
        .map(|&q| {
            let d = i32::from(q) - qx.1;
            level(
                if d > 0 {
                    requant(r, d)
                } else {
                    sign * requant(neg, d)
                },
                qy.1,
            )
        })
        .collect()
}

// ------------------------------------------------------------------ engine

fn vt((scale, zero_point): Q) -> ValueType {
    ValueType::I8 { scale, zero_point }
}

/// An int8 model: input `qx`, then each op with its tensors and output.
fn model(input: &[u32], qx: Q, ops: Vec<(Op, Vec<TensorData>, Q)>) -> Aligned {
    let mut shape = Shape::new(input).expect("input shape");
    let mut b = ModelBuilder::new(input);
    b.input_type(vt(qx));
    for (op, tensors, qy) in ops {
        b.push(OpSpec {
            op,
            tensors,
            output: vt(qy),
            scratch_bytes: scratch_bytes_int8(&op, &shape) as u32,
        });
        shape = op.infer_shape(shape).expect("shapes chain");
    }
    Aligned::new(&b.build().expect("int8 model builds"))
}

fn run(file: &Aligned, x: &[i8]) -> Vec<i8> {
    let e = Engine::new(file.bytes()).expect("engine");
    let mut a = arena(e.arena_bytes());
    e.run_i8(bytemuck::cast_slice_mut(&mut a), x)
        .expect("run")
        .to_vec()
}

fn levels(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| (rng.range(0, 255) as i32 - 128) as i8)
        .collect()
}

/// Symmetric weight codes in `[-127, 127]`, as the exporter writes.
fn weights(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| (rng.range(0, 254) as i32 - 127) as i8)
        .collect()
}

/// Fails at the first differing level, naming it.
fn assert_levels(got: &[i8], want: &[i8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        let diffs = (0..got.len()).filter(|&i| got[i] != want[i]).count();
        panic!(
            "{what}: element {i}: engine level {} but the reference gives {} ({diffs} of {} levels differ)",
            got[i],
            want[i],
            got.len()
        );
    }
}

fn linear(inp: usize, out: usize, bias: bool) -> Op {
    Op::Linear {
        in_features: inp as u32,
        out_features: out as u32,
        bias,
        layout: WeightLayout::Interleaved4,
    }
}

fn conv_op(g: ConvGeom, bias: bool) -> Op {
    Op::Conv2d {
        in_channels: g.cin as u16,
        out_channels: g.cout as u16,
        groups: g.groups as u16,
        window: square(g.k as u8, g.stride as u8, g.pad as u8, g.dil as u8),
        bias,
    }
}

// ------------------------------------------------------------------- tests

#[test]
fn exported_linear_interleaved_with_and_without_bias_is_exact() {
    let rng = &mut Rng(31);
    // Ragged last block (out % 4 = 3), tail columns (in % 4 = 3), a full
    // block, several rows; zero points away from 0 on both sides.
    for &(rows, inp, out, bias) in &[
        (3usize, 11usize, 7usize, true),
        (1, 16, 8, false),
        (2, 5, 1, true),
        (1, 3, 4, true),
    ] {
        let (qx, qy) = ((0.031f32, -17), (0.047f32, 9));
        let w = weights(rng, out * inp);
        let s_w: Vec<f32> = (0..out).map(|o| 0.004 + 0.0013 * o as f32).collect();
        let b: Vec<i32> = (0..out).map(|_| rng.range(0, 4000) as i32 - 2000).collect();
        let mut t = vec![TensorData::i8_per_channel(
            &[out as u32, inp as u32],
            &interleave(&w, out, inp),
            s_w.clone(),
        )];
        if bias {
            t.push(TensorData::i32(&[out as u32], &b));
        }
        let file = model(
            &[rows as u32, inp as u32],
            qx,
            vec![(linear(inp, out, bias), t, qy)],
        );
        let x = levels(rng, rows * inp);
        let want = linear_ref(&x, &w, &s_w, bias.then_some(&b[..]), qx, qy);
        assert_levels(
            &run(&file, &x),
            &want,
            &format!("Linear {rows}x{inp} -> {out}, bias {bias}"),
        );
    }
}

#[test]
fn conv2d_groups_stride_dilation_and_no_bias_are_exact() {
    let rng = &mut Rng(32);
    let cases = [
        // groups 2, stride 2, padding 1 (the exported CNN's second conv)
        ConvGeom {
            cin: 4,
            cout: 6,
            h: 9,
            w: 8,
            k: 3,
            stride: 2,
            pad: 1,
            dil: 1,
            groups: 2,
        },
        // depthwise, dilation 2
        ConvGeom {
            cin: 3,
            cout: 3,
            h: 7,
            w: 7,
            k: 3,
            stride: 1,
            pad: 2,
            dil: 2,
            groups: 3,
        },
        // one input channel, 5x5 kernel, no padding, odd output channels
        ConvGeom {
            cin: 1,
            cout: 5,
            h: 8,
            w: 6,
            k: 5,
            stride: 1,
            pad: 0,
            dil: 1,
            groups: 1,
        },
        // a 1x1 conv
        ConvGeom {
            cin: 6,
            cout: 2,
            h: 3,
            w: 4,
            k: 1,
            stride: 1,
            pad: 0,
            dil: 1,
            groups: 1,
        },
    ];
    for (n, g) in cases.into_iter().enumerate() {
        for bias in [true, false] {
            let (qx, qy) = ((0.05f32, 23), (0.09f32, -40));
            let per = g.cin / g.groups * g.k * g.k;
            let w = weights(rng, g.cout * per);
            let s_w: Vec<f32> = (0..g.cout).map(|c| 0.006 + 0.002 * c as f32).collect();
            let b: Vec<i32> = (0..g.cout)
                .map(|_| rng.range(0, 3000) as i32 - 1500)
                .collect();
            let dims = [
                g.cout as u32,
                (g.cin / g.groups) as u32,
                g.k as u32,
                g.k as u32,
            ];
            let mut t = vec![TensorData::i8_per_channel(&dims, &w, s_w.clone())];
            if bias {
                t.push(TensorData::i32(&[g.cout as u32], &b));
            }
            let file = model(
                &[g.cin as u32, g.h as u32, g.w as u32],
                qx,
                vec![(conv_op(g, bias), t, qy)],
            );
            let x = levels(rng, g.cin * g.h * g.w);
            let want = conv_ref(g, &x, &w, &s_w, bias.then_some(&b[..]), qx, qy);
            assert_levels(
                &run(&file, &x),
                &want,
                &format!("Conv2d case {n}, bias {bias}"),
            );
        }
    }
}

#[test]
fn relu_flatten_and_maxpool_are_exact_level_maps() {
    let rng = &mut Rng(33);
    let all: Vec<i8> = (-128..=127).map(|v| v as i8).collect();
    // ReLU: shared with zero point lowest (the exporter's conv → ReLU, an
    // identity), shared with zero point inside the range, and rescaled.
    for (qx, qy) in [
        ((0.1f32, -128), (0.1f32, -128)),
        ((0.1, 17), (0.1, 17)),
        ((0.1, 17), (0.07, -100)),
    ] {
        let file = model(&[256], qx, vec![(Op::Relu, vec![], qy)]);
        assert_levels(
            &run(&file, &all),
            &relu_ref(&all, qx, qy),
            &format!("ReLU {qx:?} -> {qy:?}"),
        );
    }
    // Flatten: a copy with one quantization, a rescale with two.
    for (qx, qy) in [((0.2f32, 5), (0.2f32, 5)), ((0.2, 5), (0.3, -9))] {
        let file = model(&[4, 8, 8], qx, vec![(Op::Flatten, vec![], qy)]);
        let want: Vec<i8> = all.iter().map(|&q| rescale(q, qx, qy)).collect();
        assert_levels(
            &run(&file, &all),
            &want,
            &format!("Flatten {qx:?} -> {qy:?}"),
        );
    }
    // MaxPool2d: 2x2 stride 2 (the exported CNN's), and 3x3 stride 2
    // padding 1 over a ragged edge, shared and rescaled.
    let (c, h, w) = (3usize, 9usize, 10usize);
    let x = levels(rng, c * h * w);
    for &(k, s, p) in &[(2usize, 2usize, 0usize), (3, 2, 1), (3, 1, 1)] {
        for (qx, qy) in [((0.1f32, -3), (0.1f32, -3)), ((0.1, -3), (0.15, 11))] {
            let op = Op::MaxPool2d {
                window: square(k as u8, s as u8, p as u8, 1),
            };
            let file = model(&[c as u32, h as u32, w as u32], qx, vec![(op, vec![], qy)]);
            let want = maxpool_ref(&x, (c, h, w), k, s, p, qx, qy);
            assert_levels(
                &run(&file, &x),
                &want,
                &format!("MaxPool2d k{k} s{s} p{p} {qx:?} -> {qy:?}"),
            );
        }
    }
}

#[test]
fn avgpool_with_one_quantization_is_the_rounded_mean_plus_the_zero_point() {
    let rng = &mut Rng(34);
    let (c, h, w) = (2usize, 7usize, 9usize);
    let x = levels(rng, c * h * w);
    for zp in [-128, 6, 127] {
        let q = (0.1f32, zp);
        for &(k, s, p) in &[(2usize, 2usize, 0usize), (3, 2, 1), (2, 1, 1)] {
            for include_pad in [true, false] {
                let op = Op::AvgPool2d {
                    window: square(k as u8, s as u8, p as u8, 1),
                    count_include_pad: include_pad,
                };
                let file = model(&[c as u32, h as u32, w as u32], q, vec![(op, vec![], q)]);
                let want = avgpool_ref(&x, (c, h, w), k, s, p, include_pad, zp);
                assert_levels(
                    &run(&file, &x),
                    &want,
                    &format!("AvgPool2d k{k} s{s} p{p} include_pad {include_pad} zp {zp}"),
                );
            }
        }
        for (oh, ow) in [(1usize, 1usize), (3, 4), (7, 2)] {
            let op = Op::AdaptiveAvgPool2d {
                out_h: oh as u16,
                out_w: ow as u16,
            };
            let file = model(&[c as u32, h as u32, w as u32], q, vec![(op, vec![], q)]);
            let want = adaptive_ref(&x, (c, h, w), (oh, ow), zp);
            assert_levels(
                &run(&file, &x),
                &want,
                &format!("AdaptiveAvgPool2d {oh}x{ow} zp {zp}"),
            );
        }
    }
}

/// FORMAT.md §6.1's LayerNorm and BatchNorm formulas with parameters chosen
/// so that the sign of each additive term decides many levels: a bias as
/// large as the normalized spread, and running means far from 0 (a wrong
/// sign moves every level of the channel). `spec.rs` pins the same
/// formulas bit for bit on other parameters.
#[cfg(not(feature = "fast-math"))]
#[test]
fn layernorm_bias_and_batchnorm_mean_are_applied_with_their_signs() {
    let quantize = |v: f32, (s, zp): Q| -> i8 {
        let r = libm::roundf(v / s) + zp as f32;
        if r.is_nan() {
            0
        } else {
            r.clamp(-128.0, 127.0) as i8
        }
    };
    let deq = |q: i8, (s, zp): Q| s * (i32::from(q) - zp) as f32;
    let rng = &mut Rng(35);
    let (qx, qy) = ((0.03f32, -11), (0.025f32, 4));
    let (rows, cols) = (6usize, 12usize);
    let x = levels(rng, rows * cols);
    let wv: Vec<f32> = (0..cols).map(|k| 0.4 + 0.05 * k as f32).collect();
    let bv: Vec<f32> = (0..cols)
        .map(|k| if k % 2 == 0 { 0.9 } else { -1.1 } + 0.01 * k as f32)
        .collect();
    let eps = 1.0e-5f32;
    let ln = Op::LayerNorm {
        size: cols as u32,
        eps,
    };
    let t = vec![
        TensorData::f32(&[cols as u32], &wv),
        TensorData::f32(&[cols as u32], &bv),
    ];
    let file = model(&[rows as u32, cols as u32], qx, vec![(ln, t, qy)]);
    let mut want = Vec::new();
    for row in x.chunks(cols) {
        let d: Vec<f64> = row.iter().map(|&q| f64::from(deq(q, qx))).collect();
        let mean = d.iter().sum::<f64>() / cols as f64;
        let var = d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let rstd = 1.0 / libm::sqrtf((var + f64::from(eps)) as f32);
        for (k, &q) in row.iter().enumerate() {
            want.push(quantize(
                (deq(q, qx) - mean as f32) * rstd * wv[k] + bv[k],
                qy,
            ));
        }
    }
    assert_levels(&run(&file, &x), &want, "LayerNorm");

    let (c, s) = (3usize, 20usize);
    let x = levels(rng, c * s);
    let p: [Vec<f32>; 4] = [
        vec![0.8, -1.3, 1.1],
        vec![0.3, -0.25, 0.05],
        vec![1.2, -0.9, 0.6],
        vec![0.7, 1.9, 0.35],
    ];
    let bn = Op::BatchNorm {
        features: c as u32,
        eps,
    };
    let t = p.iter().map(|v| TensorData::f32(&[c as u32], v)).collect();
    let file = model(&[c as u32, s as u32], qx, vec![(bn, t, qy)]);
    let want: Vec<i8> = x
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let ch = i / s;
            let scale = p[0][ch] / libm::sqrtf(p[3][ch] + eps);
            quantize((deq(q, qx) - p[2][ch]) * scale + p[1][ch], qy)
        })
        .collect();
    assert_levels(&run(&file, &x), &want, "BatchNorm (unfolded)");
}

/// A whole int8 model shaped like the exporter's CNN: quantizations shared
/// across ReLU, MaxPool2d, AvgPool2d and Flatten, Linear interleaved, every
/// op integer. The engine's output levels equal the reference's bit for bit
/// on 64 random inputs (the model-level check of requantization's rounding:
/// truncating instead moves levels in every layer).
#[test]
fn an_exporter_shaped_int8_model_matches_the_integer_reference_bit_for_bit() {
    let rng = &mut Rng(36);
    let q_in: Q = (1.0 / (255.0 * 0.3081), -95);
    let q1: Q = (0.021, -128); // conv1 → ReLU → MaxPool (shared, ReLU fused)
    let q2: Q = (0.034, 12); // conv2 (grouped, strided) output
    let q3: Q = (0.027, -30); // LeakyReLU → AvgPool → Flatten (shared)
    let q4: Q = (0.11, 3); // Linear 1 → ReLU (shared, zero point not lowest)
    let q5: Q = (0.08, -7); // Linear 2 (logits)
    let g1 = ConvGeom {
        cin: 1,
        cout: 4,
        h: 12,
        w: 12,
        k: 3,
        stride: 1,
        pad: 1,
        dil: 1,
        groups: 1,
    };
    let g2 = ConvGeom {
        cin: 4,
        cout: 6,
        h: 6,
        w: 6,
        k: 3,
        stride: 2,
        pad: 1,
        dil: 1,
        groups: 2,
    };
    let (w1, s1, b1) = (
        weights(rng, 4 * 9),
        vec![0.011f32, 0.009, 0.013, 0.008],
        vec![120i32, -340, 57, 0],
    );
    let (w2, s2) = (
        weights(rng, 6 * 2 * 9),
        vec![0.004f32, 0.005, 0.003, 0.006, 0.0045, 0.0035],
    );
    let b2: Vec<i32> = (0..6).map(|_| rng.range(0, 2000) as i32 - 1000).collect();
    // conv2 out [6, 3, 3] → AvgPool 2x2 s1 → [6, 2, 2] → Flatten 24.
    let (w3, s3) = (
        weights(rng, 10 * 24),
        (0..10)
            .map(|o| 0.003 + 0.0004 * o as f32)
            .collect::<Vec<_>>(),
    );
    let b3: Vec<i32> = (0..10).map(|_| rng.range(0, 600) as i32 - 300).collect();
    let (w4, s4) = (
        weights(rng, 5 * 10),
        (0..5).map(|o| 0.01 + 0.002 * o as f32).collect::<Vec<_>>(),
    );
    let b4: Vec<i32> = (0..5).map(|_| rng.range(0, 200) as i32 - 100).collect();
    let alpha = 0.1f32;
    let avg = Op::AvgPool2d {
        window: square(2, 1, 0, 1),
        count_include_pad: false,
    };
    let file = model(
        &[1, 12, 12],
        q_in,
        vec![
            (
                conv_op(g1, true),
                vec![
                    TensorData::i8_per_channel(&[4, 1, 3, 3], &w1, s1.clone()),
                    TensorData::i32(&[4], &b1),
                ],
                q1,
            ),
            (Op::Relu, vec![], q1),
            (
                Op::MaxPool2d {
                    window: square(2, 2, 0, 1),
                },
                vec![],
                q1,
            ),
            (
                conv_op(g2, true),
                vec![
                    TensorData::i8_per_channel(&[6, 2, 3, 3], &w2, s2.clone()),
                    TensorData::i32(&[6], &b2),
                ],
                q2,
            ),
            (Op::LeakyRelu { alpha }, vec![], q3),
            (avg, vec![], q3),
            (Op::Flatten, vec![], q3),
            (
                linear(24, 10, true),
                vec![
                    TensorData::i8_per_channel(&[10, 24], &interleave(&w3, 10, 24), s3.clone()),
                    TensorData::i32(&[10], &b3),
                ],
                q4,
            ),
            (Op::Relu, vec![], q4),
            (
                linear(10, 5, true),
                vec![
                    TensorData::i8_per_channel(&[5, 10], &interleave(&w4, 5, 10), s4.clone()),
                    TensorData::i32(&[5], &b4),
                ],
                q5,
            ),
        ],
    );
    let mut differing = 0;
    let mut first = None;
    for n in 0..64 {
        let x = levels(rng, 144);
        let v = conv_ref(g1, &x, &w1, &s1, Some(&b1), q_in, q1);
        let v = relu_ref(&v, q1, q1);
        let v = maxpool_ref(&v, (4, 12, 12), 2, 2, 0, q1, q1);
        let v = conv_ref(g2, &v, &w2, &s2, Some(&b2), q1, q2);
        let v = leaky_ref(&v, alpha, q2, q3);
        let v = avgpool_ref(&v, (6, 3, 3), 2, 1, 0, false, q3.1);
        let v = linear_ref(&v, &w3, &s3, Some(&b3), q3, q4);
        let v = relu_ref(&v, q4, q4);
        let want = linear_ref(&v, &w4, &s4, Some(&b4), q4, q5);
        let got = run(&file, &x);
        if got != want {
            differing += 1;
            first.get_or_insert((n, got, want));
        }
    }
    if let Some((n, got, want)) = first {
        panic!("{differing} of 64 inputs give other output levels than the integer reference; input {n}: engine {got:?}, reference {want:?}");
    }
}
