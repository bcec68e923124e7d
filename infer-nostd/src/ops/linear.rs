//! Linear: `y = x W^T + b` over the last dimension.
//! x is (rows, in), weight is (out, in), bias is (out), y is (rows, out).

use super::{WeightScale, Weights};
use crate::quant::{saturate, QParams, Requant};
use lasagna_format::WeightLayout;

/// A Linear op's sizes for one sample: `rows` is the input's element count
/// divided by `in_features` (Linear acts on the last dimension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Rows of the input (product of all but the last dimension).
    pub rows: usize,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
    /// How an int8 weight's elements are ordered (f32 and f16 weights are
    /// always row-major: the format allows the flag on i8 weights only).
    pub layout: WeightLayout,
}

/// `y[r, o] = dot(x[r, :], weight[o, :]) + bias[o]`.
pub fn forward(
    p: &Linear,
    x: &[f32],
    weight: Weights<'_>,
    bias: Option<Weights<'_>>,
    y: &mut [f32],
) {
    if p.in_features == 0 || p.out_features == 0 {
        return;
    }
    let rows = x
        .chunks_exact(p.in_features)
        .zip(y.chunks_exact_mut(p.out_features))
        .take(p.rows);
    for (xr, yr) in rows {
        for (o, yv) in yr.iter_mut().enumerate() {
            let acc = weight.dot(o, xr);
            // The trainer adds the bias after the product (GEMM, then
            // add_bias); the same order here keeps parity to rounding.
            *yv = match bias {
                Some(b) => acc + b.at(o),
                None => acc,
            };
        }
    }
}

/// int8, row-major weights: `y[r, o] = zp_y + round(M_o · (bias[o] + sum_k (x[r, k] − zp_x) · w[o, k]))`,
/// saturated, with `M_o = (s_x / s_y) · s_w[o]` as a [`Requant`]. The sum
/// is exact in `i32` (wrapping, never panicking, for rows longer than
/// 65,000 that could overflow it).
#[allow(clippy::too_many_arguments)]
pub fn forward_i8(
    p: &Linear,
    (qx, qy): (QParams, QParams),
    x: &[i8],
    weight: &[i8],
    scale: WeightScale<'_>,
    bias: Option<&[i32]>,
    scratch: &mut [u32],
    y: &mut [i8],
) {
    let n = p.in_features;
    if n == 0 || p.out_features == 0 {
        return;
    }
    // Interleaved weights are [`super::linear_interleaved::forward_i8`]'s
    // (the engine sends each layout to its kernel).
    if p.layout != WeightLayout::RowMajor {
        return;
    }
    let ratio = qx.scale / qy.scale;
    let zp = qx.zero_point;
    let finish = |o: usize, acc: i32| {
        let b = bias.and_then(|b| b.get(o)).copied().unwrap_or(0);
        let m = Requant::new(ratio * scale.of(o));
        saturate(m.apply(acc.wrapping_add(b)), qy.zero_point)
    };
    let rows = x.chunks_exact(n).zip(y.chunks_exact_mut(p.out_features));
    for (xr, yr) in rows.take(p.rows) {
        let wide = widen(xr, zp, scratch);
        let mut w_rows = weight.chunks_exact(n);
        let mut blocks = yr.chunks_exact_mut(BLOCK);
        let mut o = 0;
        // BLOCK outputs at a time: each input element is loaded (and its
        // zero point subtracted) once for BLOCK multiply-accumulates.
        for yb in &mut blocks {
            let mut ws: [&[i8]; BLOCK] = [&[]; BLOCK];
            for w in ws.iter_mut() {
                match w_rows.next() {
                    Some(r) => *w = r,
                    None => return,
                }
            }
            let acc = dot_block(xr, zp, wide, ws);
            for (j, (yv, a)) in yb.iter_mut().zip(acc).enumerate() {
                *yv = finish(o + j, a);
            }
            o += BLOCK;
        }
        for (j, (yv, wr)) in blocks.into_remainder().iter_mut().zip(w_rows).enumerate() {
            *yv = finish(o + j, dot_one(xr, zp, wide, wr));
        }
    }
}

/// `sum_k (x[k] − zp) · w[k]` in wrapping `i32`.
#[inline]
pub(crate) fn dot_i8(x: &[i8], zp: i32, w: &[i8]) -> i32 {
    let mut acc = 0i32;
    for (&a, &b) in x.iter().zip(w) {
        acc = acc.wrapping_add((i32::from(a) - zp).wrapping_mul(i32::from(b)));
    }
    acc
}

/// The portable build does not widen: its loops subtract the zero point
/// as they go, and the compiler vectorizes them on the host.
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
#[inline]
pub(super) fn widen<'s>(_x: &[i8], _zp: i32, scratch: &'s mut [u32]) -> &'s [u32] {
    scratch
}

/// Output rows per block: four in the portable loop (it vectorizes on the
/// host), three with the DSP instructions (see [`dot_block`]).
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
const BLOCK: usize = 4;
#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
const BLOCK: usize = 3;

/// [`dot_i8`] of a row left over after the blocks.
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
#[inline]
fn dot_one(x: &[i8], zp: i32, _wide: &[u32], w: &[i8]) -> i32 {
    dot_i8(x, zp, w)
}

/// [`dot_i8`] of one `x` with four weight rows.
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
#[inline]
fn dot_block(x: &[i8], zp: i32, _wide: &[u32], w: [&[i8]; 4]) -> [i32; 4] {
    let [w0, w1, w2, w3] = w;
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    for ((((&a, &b0), &b1), &b2), &b3) in x.iter().zip(w0).zip(w1).zip(w2).zip(w3) {
        let v = i32::from(a) - zp;
        a0 = a0.wrapping_add(v.wrapping_mul(i32::from(b0)));
        a1 = a1.wrapping_add(v.wrapping_mul(i32::from(b1)));
        a2 = a2.wrapping_add(v.wrapping_mul(i32::from(b2)));
        a3 = a3.wrapping_add(v.wrapping_mul(i32::from(b3)));
    }
    [a0, a1, a2, a3]
}

/// Widens each group of four input bytes, zero point subtracted, into two
/// words of `i16` pairs, `[x0 − zp, x2 − zp]` and `[x1 − zp, x3 − zp]`
/// (the scratch [`crate::scratch_bytes_int8`] plans), once per input row.
#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
#[inline]
pub(super) fn widen<'s>(x: &[i8], zp: i32, scratch: &'s mut [u32]) -> &'s [u32] {
    use super::dsp::{neg_pair, sxtab16, sxtab16_ror8, word};
    let off = neg_pair(zp);
    let mut used = 0;
    for (q, pair) in x.chunks_exact(4).zip(scratch.chunks_exact_mut(2)) {
        let xw = word(q);
        if let [e, o] = pair {
            *e = sxtab16(off, xw);
            *o = sxtab16_ror8(off, xw);
        }
        used += 2;
    }
    scratch.get(..used).unwrap_or_default()
}

/// [`dot_i8`] of one `x` with three weight rows with `SMLAD` on the
/// widened input (see [`super::dsp`]); the same integers as the portable
/// loop, bit for bit. Three rows keep every pointer, accumulator and
/// operand of the inner loop in the Cortex-M4's registers (four spill to
/// the stack): 21 instructions per 12 multiply-accumulates.
#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
#[inline]
fn dot_block(x: &[i8], zp: i32, wide: &[u32], w: [&[i8]; 3]) -> [i32; 3] {
    let [a0, a1, a2] = super::dsp::dot3_wide(wide, w);
    let [w0, w1, w2] = w;
    let done = wide.len() * 2;
    let tail = |w: &[i8]| {
        dot_i8(
            x.get(done..).unwrap_or_default(),
            zp,
            w.get(done..).unwrap_or_default(),
        )
    };
    [
        a0.wrapping_add(tail(w0)),
        a1.wrapping_add(tail(w1)),
        a2.wrapping_add(tail(w2)),
    ]
}

/// [`dot_i8`] of a row left over after the blocks.
#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
#[inline]
fn dot_one(x: &[i8], zp: i32, wide: &[u32], w: &[i8]) -> i32 {
    let done = wide.len() * 2;
    super::dsp::dot1_wide(wide, w).wrapping_add(dot_i8(
        x.get(done..).unwrap_or_default(),
        zp,
        w.get(done..).unwrap_or_default(),
    ))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ops::testutil::{assert_close, values};
    use std::vec;
    use std::vec::Vec;

    fn naive(rows: usize, i: usize, o: usize, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
        let mut y = vec![0.0f64; rows * o];
        for r in 0..rows {
            for c in 0..o {
                let mut s = 0.0f64;
                for k in 0..i {
                    s += x[r * i + k] as f64 * w[c * i + k] as f64;
                }
                y[r * o + c] = s + b.map_or(0.0, |b| b[c] as f64);
            }
        }
        y
    }

    #[test]
    fn matches_a_naive_product_with_and_without_bias_on_several_rows() {
        for &(rows, i, o) in &[(1, 1, 1), (1, 7, 3), (3, 16, 5), (2, 64, 10)] {
            let x = values(rows * i, 1);
            let w = values(o * i, 2);
            let b = values(o, 3);
            for bias in [false, true] {
                let p = Linear {
                    rows,
                    in_features: i,
                    out_features: o,
                    layout: WeightLayout::RowMajor,
                };
                let mut y = vec![0.0; rows * o];
                let bw = bias.then_some(Weights::F32(&b));
                forward(&p, &x, Weights::F32(&w), bw, &mut y);
                let want = naive(rows, i, o, &x, &w, bias.then_some(&b[..]));
                assert_close(&y, &want, 1e-5);
            }
        }
    }

    #[test]
    fn f16_weights_give_the_product_with_the_rounded_weights() {
        let (i, o) = (9, 4);
        let x = values(i, 4);
        let w32 = values(o * i, 5);
        let w16: Vec<half::f16> = w32.iter().map(|&v| half::f16::from_f32(v)).collect();
        let rounded: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
        let p = Linear {
            rows: 1,
            in_features: i,
            out_features: o,
            layout: WeightLayout::RowMajor,
        };
        let mut y = vec![0.0; o];
        forward(&p, &x, Weights::F16(&w16), None, &mut y);
        assert_close(&y, &naive(1, i, o, &x, &rounded, None), 1e-6);
    }

    #[test]
    fn short_buffers_do_not_panic() {
        let p = Linear {
            rows: 2,
            in_features: 3,
            out_features: 2,
            layout: WeightLayout::RowMajor,
        };
        let mut y = [0.0; 1];
        forward(&p, &[1.0; 2], Weights::F32(&[1.0; 1]), None, &mut y);
        let p0 = Linear {
            rows: 1,
            in_features: 0,
            out_features: 0,
            layout: WeightLayout::RowMajor,
        };
        forward(&p0, &[], Weights::F32(&[]), None, &mut []);
    }

    #[test]
    fn int8_matches_a_naive_integer_reference_for_every_block_remainder() {
        use crate::quant::Requant;
        let (qx, qy) = (
            QParams {
                scale: 0.02,
                zero_point: -7,
            },
            QParams {
                scale: 0.05,
                zero_point: 3,
            },
        );
        for &(rows, i, o) in &[(1, 1, 1), (1, 9, 3), (2, 16, 4), (1, 33, 7), (3, 5, 10)] {
            let lcg = |n: usize, seed: u64| -> Vec<i8> {
                values(n, seed).iter().map(|v| (v * 127.0) as i8).collect()
            };
            let (x, w) = (lcg(rows * i, 11), lcg(o * i, 12));
            let b: Vec<i32> = (0..o as i32).map(|c| c * 37 - 100).collect();
            let scales: Vec<u8> = (0..o)
                .flat_map(|c| (0.001f32 * (c + 1) as f32).to_le_bytes())
                .collect();
            let s = lasagna_format::Scales::from_le_bytes(&scales);
            let p = Linear {
                rows,
                in_features: i,
                out_features: o,
                layout: WeightLayout::RowMajor,
            };
            let mut y = vec![0i8; rows * o];
            let mut scratch = vec![0u32; i / 4 * 2];
            forward_i8(
                &p,
                (qx, qy),
                &x,
                &w,
                WeightScale::Channel(s),
                Some(&b),
                &mut scratch,
                &mut y,
            );
            for r in 0..rows {
                for c in 0..o {
                    let mut acc = b[c];
                    for k in 0..i {
                        acc += (x[r * i + k] as i32 + 7) * w[c * i + k] as i32;
                    }
                    let m = Requant::new((0.02f32 / 0.05) * (0.001 * (c + 1) as f32));
                    let want = (m.apply(acc) + 3).clamp(-128, 127) as i8;
                    assert_eq!(y[r * o + c], want, "row {r} out {c}");
                }
            }
        }
    }
}
