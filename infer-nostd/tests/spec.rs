//! `docs/FORMAT.md` against the engine: each test pins one rule the spec
//! states (the section is in the test's name), with a reference written
//! here from the spec's text alone, so that a change to either side that
//! breaks the other fails here. Integer rules are compared bit for bit.
#![allow(clippy::indexing_slicing)]

mod common;

use common::spec_int8::{avg_windows, div_away, level, requant};

use common::{arena, assert_close, run_engine, square, Aligned, Net, Rng};
use lasagna_format::{ModelBuilder, Op, OpSpec, Shape, TensorData, ValueType};
use lasagna_infer::quant::Requant;
use lasagna_infer::{scratch_bytes, scratch_bytes_int8, scratch_min_bytes_int8, Engine, Error};

type Q = (f32, i32);

fn vt((scale, zero_point): Q) -> ValueType {
    ValueType::I8 { scale, zero_point }
}

/// A one-op int8 model.
fn int8_model(input: &[u32], qx: Q, op: Op, tensors: Vec<TensorData>, qy: Q) -> Aligned {
    let shape = Shape::new(input).expect("input shape");
    let mut b = ModelBuilder::new(input);
    b.input_type(vt(qx));
    b.push(OpSpec {
        op,
        tensors,
        output: vt(qy),
        scratch_bytes: scratch_bytes_int8(&op, &shape) as u32,
    });
    Aligned::new(&b.build().expect("int8 model builds"))
}

fn run_i8(file: &Aligned, x: &[i8]) -> Vec<i8> {
    let e = Engine::new(file.bytes()).expect("engine");
    let mut a = arena(e.arena_bytes());
    e.run_i8(bytemuck::cast_slice_mut(&mut a), x)
        .expect("run")
        .to_vec()
}

/// §6.1 "Input" and "quantize": roundf ties away from zero, zp added in f32.
fn spec_quantize(x: f32, (s, zp): Q) -> i8 {
    let v = libm::roundf(x / s) + zp as f32;
    if v.is_nan() {
        0
    } else {
        v.clamp(-128.0, 127.0) as i8
    }
}

#[cfg(not(feature = "fast-math"))]
fn deq(q: i8, (s, zp): Q) -> f32 {
    s * (i32::from(q) - zp) as f32
}

fn all_levels() -> Vec<i8> {
    (-128..=127).map(|v| v as i8).collect()
}

#[test]
fn s6_1_requantization_edge_multipliers_saturate_or_vanish_as_stated() {
    let two30 = f32::from_bits((127 + 30) << 23);
    let ms = [
        1.0f32,
        0.75,
        1.0e-3,
        0.5,
        two30,                               // saturates: M = 2^31 - 1, n = 1
        f32::from_bits(two30.to_bits() - 1), // the largest that does not
        1.0e12,
        f32::MAX,
        f32::INFINITY, // s_x / s_y overflowing f32: zero
        f32::NAN,
        0.0,
        -0.5,
        f32::from_bits(1),                      // subnormal: zero
        f32::from_bits((127 - 32) << 23),       // 2^-32: the smallest kept
        f32::from_bits(((127 - 32) << 23) - 1), // just below: zero
    ];
    let accs = [
        i32::MIN,
        -1_000_001,
        -3,
        -1,
        0,
        1,
        2,
        3,
        5,
        1_000_001,
        i32::MAX,
    ];
    for &m in &ms {
        for &acc in &accs {
            assert_eq!(
                Requant::new(m).apply(acc),
                requant(m, acc),
                "m {m:e} ({:#010x}) acc {acc}",
                m.to_bits()
            );
        }
    }
    // The named cases, spelled out.
    assert_eq!(Requant::new(two30).apply(1), 1 << 30);
    assert_eq!(Requant::new(f32::INFINITY).apply(i32::MAX), 0);
    assert_eq!(Requant::new(f32::from_bits(1)).apply(i32::MAX), 0);
    // Half up, also for negatives: -2.5 -> -2.
    assert_eq!(Requant::new(0.5).apply(-5), -2);
}

#[test]
fn s6_1_input_quantization_rounds_ties_away_from_zero() {
    let q = (0.5f32, -3);
    let file = int8_model(&[6], q, Op::Relu, vec![], q);
    let e = Engine::new(file.bytes()).expect("engine");
    let x = [0.25f32, -0.25, 63.75, -1.0e9, 1.0e9, f32::NAN];
    let mut got = [0i8; 6];
    e.quantize_input(&x, &mut got).expect("quantize");
    let want: Vec<i8> = x.iter().map(|&v| spec_quantize(v, q)).collect();
    assert_eq!(got.to_vec(), want);
    assert_eq!(got, [-2, -4, 125, -128, 127, 0]);
    // The MNIST choice: pixel p becomes level p - 128 for every p.
    let (mean, std) = (0.1307f32, 0.3081f32);
    let s_in = 1.0 / (255.0 * std);
    let zp_in = (255.0 * mean).round() as i32 - 128;
    for p in 0..=255u8 {
        let x = (f32::from(p) / 255.0 - mean) / std;
        assert_eq!(
            i32::from(spec_quantize(x, (s_in, zp_in))),
            i32::from(p) - 128,
            "pixel {p}"
        );
    }
}

#[test]
fn s6_1_linear_accumulator_wraps_modulo_2_32() {
    // 70,000 products of 255 * 127 = 2,266,950,000 > 2^31 - 1: the sum
    // wraps to -2,028,017,296, which times 2^-24 is -120.88 -> -121. A
    // saturating sum would give 127.
    let n = 70_000u32;
    let op = Op::Linear {
        in_features: n,
        out_features: 1,
        bias: false,
        layout: lasagna_format::WeightLayout::RowMajor,
    };
    let w = TensorData::i8_per_channel(&[1, n], &vec![127i8; n as usize], vec![1.0]);
    let (qx, qy) = ((1.0f32, -128), (f32::from_bits((127 + 24) << 23), 0));
    let file = int8_model(&[n], qx, op, vec![w], qy);
    let got = run_i8(&file, &vec![127i8; n as usize]);
    let acc = (0..n).fold(0i32, |a, _| a.wrapping_add(255 * 127));
    assert_eq!(acc, -2_028_017_296);
    let m = (qx.0 / qy.0) * 1.0;
    assert_eq!(got, vec![level(requant(m, acc), qy.1)]);
    assert_eq!(got, vec![-121]);
}

#[test]
fn s6_1_a_multiplier_that_overflows_f32_gives_the_output_zero_point() {
    let op = Op::Linear {
        in_features: 4,
        out_features: 2,
        bias: false,
        layout: lasagna_format::WeightLayout::RowMajor,
    };
    let w = TensorData::i8_per_channel(&[2, 4], &[1, 2, 3, 4, -5, 6, -7, 8], vec![1.0, 2.0]);
    // s_x / s_y = 3e38 / 1e-30 is +inf in f32.
    let file = int8_model(&[4], (3.0e38, 0), op, vec![w], (1.0e-30, 9));
    assert_eq!(run_i8(&file, &[10, -20, 30, 40]), vec![9, 9]);
}

#[test]
fn s6_1_conv2d_padding_taps_hold_the_input_zero_point() {
    let rng = &mut Rng(21);
    let (cin, cout, h, w) = (2usize, 3usize, 5usize, 6usize);
    let op = Op::Conv2d {
        in_channels: cin as u16,
        out_channels: cout as u16,
        groups: 1,
        window: square(3, 1, 1, 1),
        bias: true,
    };
    let wq: Vec<i8> = (0..cout * cin * 9)
        .map(|_| rng.range(0, 255) as i32 as i8)
        .collect();
    let scales = vec![0.02f32, 0.03, 0.015];
    let bias = [100i32, -250, 7];
    let (qx, qy) = ((0.05f32, 37), (0.4f32, -11));
    let file = int8_model(
        &[cin as u32, h as u32, w as u32],
        qx,
        op,
        vec![
            TensorData::i8_per_channel(&[cout as u32, cin as u32, 3, 3], &wq, scales.clone()),
            TensorData::i32(&[cout as u32], &bias),
        ],
        qy,
    );
    let x: Vec<i8> = (0..cin * h * w)
        .map(|_| rng.range(0, 255) as i32 as i8)
        .collect();
    let got = run_i8(&file, &x);
    // Reference: pad the input explicitly with level zp_x, then sum all 9
    // taps of every output, padded ones included.
    let (ph, pw) = (h + 2, w + 2);
    let mut padded = vec![qx.1 as i8; cin * ph * pw];
    for c in 0..cin {
        for y in 0..h {
            for xx in 0..w {
                padded[(c * ph + y + 1) * pw + xx + 1] = x[(c * h + y) * w + xx];
            }
        }
    }
    let mut want = Vec::new();
    for oc in 0..cout {
        let m = (qx.0 / qy.0) * scales[oc];
        for oy in 0..h {
            for ox in 0..w {
                let mut acc = bias[oc];
                for c in 0..cin {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let xv = i32::from(padded[(c * ph + oy + ky) * pw + ox + kx]);
                            let wv = i32::from(wq[((oc * cin + c) * 3 + ky) * 3 + kx]);
                            acc = acc.wrapping_add((xv - qx.1) * wv);
                        }
                    }
                }
                want.push(level(requant(m, acc), qy.1));
            }
        }
    }
    assert_eq!(got, want);
}

#[test]
fn s6_1_leaky_relu_rounds_then_applies_the_sign() {
    // The second pair makes s_x / s_y exactly 0.5, so that with alpha -1
    // or -0.5 some products are exact ties, where rounding before or after
    // the sign differ.
    for ((qx, qy), alpha) in [((0.07f32, 13), (0.05f32, -20)), ((0.5, 3), (1.0, -2))]
        .into_iter()
        .flat_map(|q| [-0.3f32, 0.25, 0.0, -1.7, -1.0, -0.5].map(|a| (q, a)))
    {
        let file = int8_model(&[256], qx, Op::LeakyRelu { alpha }, vec![], qy);
        let got = run_i8(&file, &all_levels());
        let r = qx.0 / qy.0;
        let neg = alpha.abs() * r;
        let sign = if alpha < 0.0 { -1 } else { 1 };
        let want: Vec<i8> = all_levels()
            .iter()
            .map(|&q| {
                let d = i32::from(q) - qx.1;
                let y = if d > 0 {
                    requant(r, d)
                } else {
                    sign * requant(neg, d)
                };
                level(y, qy.1)
            })
            .collect();
        assert_eq!(got, want, "alpha {alpha}, q {qx:?} -> {qy:?}");
    }
}

#[test]
fn s6_1_avgpool_divides_first_then_rescales_and_the_flag_sets_the_divisor() {
    let rng = &mut Rng(5);
    let (c, h, w) = (2usize, 7usize, 6usize);
    let x: Vec<i8> = (0..c * h * w)
        .map(|_| rng.range(0, 255) as i32 as i8)
        .collect();
    let (qx, qy) = ((0.1f32, 5), (0.3f32, -7));
    let (k, s, p) = (3usize, 2usize, 1usize);
    for include_pad in [true, false] {
        let op = Op::AvgPool2d {
            window: square(k as u8, s as u8, p as u8, 1),
            count_include_pad: include_pad,
        };
        let file = int8_model(&[c as u32, h as u32, w as u32], qx, op, vec![], qy);
        let got = run_i8(&file, &x);
        // Sum inside the input, divide (ties away), then rescale.
        let want: Vec<i8> = avg_windows(&x, (c, h, w), (k, s, p), include_pad, qx.1)
            .into_iter()
            .map(|(sum, count)| level(requant(qx.0 / qy.0, div_away(sum, count)), qy.1))
            .collect();
        assert_eq!(got, want, "count_include_pad {include_pad}");
    }
    // Adaptive: bins floor(i n / out) .. ceil((i + 1) n / out).
    let op = Op::AdaptiveAvgPool2d { out_h: 3, out_w: 4 };
    let file = int8_model(&[c as u32, h as u32, w as u32], qx, op, vec![], qy);
    let got = run_i8(&file, &x);
    let mut want = Vec::new();
    for ch in 0..c {
        for i in 0..3 {
            for j in 0..4 {
                let (y0, y1) = (i * h / 3, ((i + 1) * h).div_ceil(3));
                let (x0, x1) = (j * w / 4, ((j + 1) * w).div_ceil(4));
                let mut sum = 0i32;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        sum += i32::from(x[(ch * h + iy) * w + ix]) - qx.1;
                    }
                }
                let mean = div_away(sum, ((y1 - y0) * (x1 - x0)) as i32);
                want.push(level(requant(qx.0 / qy.0, mean), qy.1));
            }
        }
    }
    assert_eq!(got, want, "adaptive");
}

/// §6.1: the smooth int8 ops are bit-exact with the stated f32 steps and
/// Rust's `libm` (the fast-math build swaps the functions, so it is exempt).
#[cfg(not(feature = "fast-math"))]
#[test]
fn s6_1_float_ops_follow_the_stated_f32_steps_bit_for_bit() {
    let (qx, qy) = ((0.06f32, -9), (0.011f32, 3));
    let sigmoid = |x: f32| {
        if x >= 0.0 {
            1.0 / (1.0 + libm::expf(-x))
        } else {
            let e = libm::expf(x);
            e / (1.0 + e)
        }
    };
    let cases: [(Op, &dyn Fn(f32) -> f32); 5] = [
        (Op::Sigmoid, &sigmoid),
        (Op::Tanh, &libm::tanhf),
        (Op::Silu, &|x| x * sigmoid(x)),
        (Op::Gelu { tanh: false }, &|x| {
            0.5 * x * (1.0 + libm::erff(x * 0.707_106_77))
        }),
        (Op::Gelu { tanh: true }, &|x| {
            0.5 * x * (1.0 + libm::tanhf(0.797_884_6 * (x + 0.044_715 * x * x * x)))
        }),
    ];
    for (op, f) in cases {
        let file = int8_model(&[256], qx, op, vec![], qy);
        let got = run_i8(&file, &all_levels());
        let want: Vec<i8> = all_levels()
            .iter()
            .map(|&q| spec_quantize(f(deq(q, qx)), qy))
            .collect();
        assert_eq!(got, want, "{op:?}");
    }
    // Softmax: q_max, e(q) = expf(s_x (q - q_max)), the sum left to right.
    let qs = (1.0f32 / 256.0, -128);
    let file = int8_model(&[4, 64], qx, Op::Softmax, vec![], qs);
    let x = all_levels();
    let got = run_i8(&file, &x);
    let mut want = Vec::new();
    for row in x.chunks(64) {
        let max = *row.iter().max().expect("row");
        let e = |q: i8| libm::expf(qx.0 * (i32::from(q) - i32::from(max)) as f32);
        let mut sum = 0.0f32;
        for &q in row {
            sum += e(q);
        }
        let inv = 1.0 / sum;
        want.extend(row.iter().map(|&q| spec_quantize(e(q) * inv, qs)));
    }
    assert_eq!(got, want, "softmax");
}

/// §6.1: LayerNorm and unfolded BatchNorm in an int8 model, with `f32` and
/// `f16` parameters, bit for bit; `i32` parameters refused.
#[cfg(not(feature = "fast-math"))]
#[test]
fn s6_1_int8_layernorm_and_batchnorm_take_float_parameters_only() {
    let (qx, qy) = ((0.05f32, 4), (0.02f32, -6));
    let x: Vec<i8> = all_levels();
    let (cols, rows) = (16usize, 16usize);
    let wv: Vec<f32> = (0..cols).map(|k| 0.5 + k as f32 / 16.0).collect();
    let bv: Vec<f32> = (0..cols).map(|k| k as f32 / 10.0 - 0.7).collect();
    let eps = 1.0e-5f32;
    let ln = Op::LayerNorm {
        size: cols as u32,
        eps,
    };
    for f16 in [false, true] {
        let t = |v: &[f32]| {
            if f16 {
                TensorData::f16(&[cols as u32], v)
            } else {
                TensorData::f32(&[cols as u32], v)
            }
        };
        let file = int8_model(
            &[rows as u32, cols as u32],
            qx,
            ln,
            vec![t(&wv), t(&bv)],
            qy,
        );
        let got = run_i8(&file, &x);
        let round = |v: f32| {
            if f16 {
                half::f16::from_f32(v).to_f32()
            } else {
                v
            }
        };
        let mut want = Vec::new();
        for row in x.chunks(cols) {
            let d: Vec<f64> = row.iter().map(|&q| f64::from(deq(q, qx))).collect();
            let mean = d.iter().sum::<f64>() / cols as f64;
            let var = d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
            let rstd = 1.0 / libm::sqrtf((var + f64::from(eps)) as f32);
            for (k, &q) in row.iter().enumerate() {
                let v = (deq(q, qx) - mean as f32) * rstd * round(wv[k]) + round(bv[k]);
                want.push(spec_quantize(v, qy));
            }
        }
        assert_eq!(got, want, "LayerNorm, f16 parameters: {f16}");
    }
    // BatchNorm over 4 channels of 8x8.
    let bn = Op::BatchNorm { features: 4, eps };
    let p: [Vec<f32>; 4] = [
        vec![1.2, 0.8, -0.5, 2.0],
        vec![0.1, -0.2, 0.3, 0.0],
        vec![0.5, -1.0, 0.25, 2.0],
        vec![1.5, 0.7, 2.2, 0.9],
    ];
    let file = int8_model(
        &[4, 8, 8],
        qx,
        bn,
        p.iter().map(|v| TensorData::f32(&[4], v)).collect(),
        qy,
    );
    let got = run_i8(&file, &x);
    let want: Vec<i8> = x
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let c = i / 64;
            let scale = p[0][c] / libm::sqrtf(p[3][c] + eps);
            spec_quantize((deq(q, qx) - p[2][c]) * scale + p[1][c], qy)
        })
        .collect();
    assert_eq!(got, want, "BatchNorm");
    // An i32 bias for LayerNorm is refused: no int8 form of its parameters.
    let file = int8_model(
        &[rows as u32, cols as u32],
        qx,
        ln,
        vec![
            TensorData::f32(&[cols as u32], &wv),
            TensorData::i32(&[cols as u32], &vec![1; cols]),
        ],
        qy,
    );
    assert!(
        matches!(Engine::new(file.bytes()), Err(Error::Unsupported { .. })),
        "an i32 LayerNorm bias must be refused"
    );
}

/// §9 "How much scratch each op gets": the table, op by op.
#[test]
fn s9_scratch_bytes_follow_the_table() {
    let shape = |d: &[u32]| Shape::new(d).expect("shape");
    for (fi, fo) in [(784u32, 256u32), (7, 3), (4, 1), (1, 9)] {
        let op = Op::Linear {
            in_features: fi,
            out_features: fo,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        };
        assert_eq!(
            scratch_bytes_int8(&op, &shape(&[fi])),
            8 * (fi as usize / 4)
        );
        assert_eq!(scratch_bytes(&op, &shape(&[fi])), 0);
    }
    for (cin, cout, groups, k, pad, h) in [
        (1u16, 16u16, 1u16, 3u8, 1u8, 28u32),
        (32, 64, 1, 3, 1, 7),
        (4, 4, 4, 5, 0, 9),
    ] {
        let op = Op::Conv2d {
            in_channels: cin,
            out_channels: cout,
            groups,
            window: square(k, 1, pad, 1),
            bias: true,
        };
        let o = (h + 2 * u32::from(pad) - u32::from(k) + 1) as usize;
        let patch = usize::from(cin / groups) * usize::from(k) * usize::from(k);
        let row = 4 * o * (usize::from(k) * usize::from(k)).div_ceil(2);
        let pairs = usize::from(cout / groups).div_ceil(2);
        assert_eq!(
            scratch_bytes_int8(&op, &shape(&[u32::from(cin), h, h])),
            row.max(16 * (patch / 4) + 40 * pairs),
            "{op:?}"
        );
        // What the engine runs with (files planned for one patch).
        assert_eq!(
            scratch_min_bytes_int8(&op, &shape(&[u32::from(cin), h, h])),
            row.max(8 * (patch / 4)),
            "{op:?}"
        );
        assert_eq!(scratch_bytes(&op, &shape(&[u32::from(cin), h, h])), 0);
    }
    let lstm = Op::Lstm {
        input_size: 28,
        hidden_size: 64,
        layers: 2,
        return_sequences: false,
        cell_shift: 0,
    };
    assert_eq!(
        scratch_bytes(&lstm, &shape(&[28, 28])),
        4 * (2 * 2 * 64 + 4 * 64)
    );
    assert_eq!(
        scratch_bytes_int8(&lstm, &shape(&[28, 28])),
        2 * (2 * 64 + 4 * 64) + 2 * 64
    );
    for op in [Op::Relu, Op::Softmax, Op::Flatten, Op::Tanh] {
        assert_eq!(scratch_bytes(&op, &shape(&[10])), 0);
        assert_eq!(scratch_bytes_int8(&op, &shape(&[10])), 0);
    }
}

/// §4.1 LSTM: zero initial state, layers stacked step by step, and
/// return-sequences on the last layer only.
#[test]
fn s4_1_lstm_starts_at_zero_stacks_layers_and_returns_the_last_layer() {
    let (t, inp, hid) = (5usize, 3usize, 4usize);
    let rng = &mut Rng(9);
    for return_sequences in [false, true] {
        let mut net = Net::new(&[t as u32, inp as u32]);
        net.push(
            Op::Lstm {
                input_size: inp as u32,
                hidden_size: hid as u32,
                layers: 2,
                return_sequences,
                cell_shift: 0,
            },
            rng,
        );
        let x = rng.vec(t * inp);
        let got = run_engine(&net.build(false), &x).expect("lstm runs");
        // Reference from the spec's sentences, in f64.
        let tens = &net.layers[0].tensors;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut seq: Vec<Vec<f64>> = x
            .chunks(inp)
            .map(|r| r.iter().map(|&v| f64::from(v)).collect())
            .collect();
        for l in 0..2 {
            let (wih, whh, bih, bhh) = (
                &tens[4 * l],
                &tens[4 * l + 1],
                &tens[4 * l + 2],
                &tens[4 * l + 3],
            );
            let n_in = seq[0].len();
            let (mut h, mut c) = (vec![0.0f64; hid], vec![0.0f64; hid]);
            let mut out = Vec::new();
            for xt in &seq {
                let g: Vec<f64> = (0..4 * hid)
                    .map(|r| {
                        let a: f64 = (0..n_in)
                            .map(|k| f64::from(wih[r * n_in + k]) * xt[k])
                            .sum();
                        let b: f64 = (0..hid).map(|k| f64::from(whh[r * hid + k]) * h[k]).sum();
                        a + b + f64::from(bih[r]) + f64::from(bhh[r])
                    })
                    .collect();
                for k in 0..hid {
                    let (i, f, gg, o) = (
                        sig(g[k]),
                        sig(g[hid + k]),
                        g[2 * hid + k].tanh(),
                        sig(g[3 * hid + k]),
                    );
                    c[k] = f * c[k] + i * gg;
                    h[k] = o * c[k].tanh();
                }
                out.push(h.clone());
            }
            seq = out;
        }
        let want: Vec<f64> = if return_sequences {
            seq.concat()
        } else {
            seq[t - 1].clone()
        };
        // fast-math swaps exp and tanh for approximations with the error
        // bounds `math::measured_error_bounds` states (exp 2.5e-3 relative,
        // tanh 1.2e-3 absolute); two stacked layers over five steps stay
        // within 5e-3 of the f64 reference.
        let tol = if cfg!(feature = "fast-math") {
            5e-3
        } else {
            1e-5
        };
        assert_close(&got, &want, tol, "2-layer LSTM");
    }
}

/// §4.1 Embedding: ids are passed as `i32` themselves; an id outside the
/// table is an error naming its position.
#[test]
fn s4_1_embedding_takes_ids_and_refuses_one_outside_the_table() {
    let rng = &mut Rng(3);
    let mut net = Net::new(&[4]);
    net.tokens = true;
    net.push(Op::Embedding { num: 6, dim: 2 }, rng);
    let file = net.build(false);
    let table = net.layers[0].tensors[0].clone();
    let e = Engine::new(file.bytes()).expect("engine");
    let mut a = arena(e.arena_bytes());
    let out = e
        .run_tokens(bytemuck::cast_slice_mut(&mut a), &[5, 0, 2, 5])
        .expect("ids inside the table")
        .to_vec();
    let want: Vec<f32> = [5usize, 0, 2, 5]
        .iter()
        .flat_map(|&r| table[r * 2..r * 2 + 2].to_vec())
        .collect();
    assert_eq!(out, want);
    for (ids, position, id) in [([0, 6, 1, 1], 1usize, 6i32), ([0, 1, -1, 9], 2, -1)] {
        match e.run_tokens(bytemuck::cast_slice_mut(&mut a), &ids) {
            Err(Error::TokenOutOfRange {
                position: p,
                id: i,
                num,
            }) => {
                assert_eq!((p, i, num), (position, id, 6));
            }
            other => panic!("ids {ids:?}: expected TokenOutOfRange, got {other:?}"),
        }
    }
}
