//! The int8 Linear on a weight stored in blocks of four interleaved rows
//! ([`WeightLayout::Interleaved4`](lasagna_format::WeightLayout),
//! `docs/FORMAT.md` section 6.2). x is (rows, in), the weight (out, in) in
//! that order, y is (rows, out); the integers are those of the row-major
//! [`super::linear::forward_i8`], bit for bit (the `i32` sums wrap, so their
//! order does not matter).
//!
//! Why the layout: the next four weights of four rows are 16 consecutive
//! bytes, so the Cortex-M4 loop reads them with one pointer and one
//! multiple load instead of four pointers and four loads, and every block
//! starts on a word boundary whatever `in % 4` is.

use super::linear::{dot_i8, widen, Linear};
use super::WeightScale;
use crate::quant::{saturate, QParams, Requant};
use lasagna_format::INTERLEAVE_ROWS;

/// [`super::linear::forward_i8`] for the interleaved layout: the same
/// arguments, the same outputs.
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
    let (n, out) = (p.in_features, p.out_features);
    if n == 0 || out == 0 {
        return;
    }
    let whole = n / 4 * 4;
    let tail = n - whole;
    let ratio = qx.scale / qy.scale;
    let zp = qx.zero_point;
    let finish = |o: usize, acc: i32| {
        let b = bias.and_then(|b| b.get(o)).copied().unwrap_or(0);
        let m = Requant::new(ratio * scale.of(o));
        saturate(m.apply(acc.wrapping_add(b)), qy.zero_point)
    };
    let rows = x.chunks_exact(n).zip(y.chunks_exact_mut(out));
    for (xr, yr) in rows.take(p.rows) {
        let wide = widen(xr, zp, scratch);
        let x_tail = xr.get(whole..).unwrap_or_default();
        let blocks = weight
            .chunks(INTERLEAVE_ROWS * n)
            .zip(yr.chunks_mut(INTERLEAVE_ROWS));
        for (b, (wb, yb)) in blocks.enumerate() {
            let r = yb.len();
            let (groups, tails) = (
                wb.get(..r * whole).unwrap_or_default(),
                wb.get(r * whole..).unwrap_or_default(),
            );
            let mut acc = block(xr, zp, wide, groups, r);
            if tail > 0 {
                for (a, t) in acc.iter_mut().zip(tails.chunks_exact(tail)) {
                    *a = a.wrapping_add(dot_i8(x_tail, zp, t));
                }
            }
            for (j, (yv, a)) in yb.iter_mut().zip(acc).enumerate() {
                *yv = finish(b * INTERLEAVE_ROWS + j, a);
            }
        }
    }
}

/// The whole column groups of one block of `r` rows: for each group of
/// four inputs, `r` rows' four weights one after the other.
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
#[inline]
fn block(x: &[i8], zp: i32, _wide: &[u32], groups: &[i8], r: usize) -> [i32; INTERLEAVE_ROWS] {
    let mut acc = [0i32; INTERLEAVE_ROWS];
    for (xq, wq) in x.chunks_exact(4).zip(groups.chunks_exact(4 * r.max(1))) {
        // The group's inputs, zero point subtracted once for all r rows.
        let &[x0, x1, x2, x3] = xq else { continue };
        let v = [x0, x1, x2, x3].map(|q| i32::from(q) - zp);
        for (a, w) in acc.iter_mut().zip(wq.chunks_exact(4)) {
            if let &[w0, w1, w2, w3] = w {
                let m = |x: i32, w: i8| x.wrapping_mul(i32::from(w));
                let s = m(v[0], w0).wrapping_add(m(v[1], w1));
                let t = m(v[2], w2).wrapping_add(m(v[3], w3));
                *a = a.wrapping_add(s.wrapping_add(t));
            }
        }
    }
    acc
}

/// [`block`] with `SMLAD` on the widened input: a whole block of four rows
/// read as words goes to [`super::dsp::dot4_interleaved`]; the last block
/// of `out % 4` rows (or a block that is not word-aligned, which a
/// validated file never has) takes the word-by-word loop.
#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
#[inline]
fn block(_x: &[i8], _zp: i32, wide: &[u32], groups: &[i8], r: usize) -> [i32; INTERLEAVE_ROWS] {
    use super::dsp::{dot4_interleaved, mac_word, word, words};
    if r == INTERLEAVE_ROWS {
        if let Some(w) = words(groups) {
            return dot4_interleaved(wide, w);
        }
    }
    let mut acc = [0i32; INTERLEAVE_ROWS];
    for (xp, wq) in wide.chunks_exact(2).zip(groups.chunks_exact(4 * r.max(1))) {
        if let [xe, xo] = *xp {
            for (a, w) in acc.iter_mut().zip(wq.chunks_exact(4)) {
                *a = mac_word(*a, xe, xo, word(w));
            }
        }
    }
    acc
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::super::linear;
    use super::*;
    use crate::ops::testutil::values;
    use lasagna_format::WeightLayout;
    use std::vec;
    use std::vec::Vec;

    fn run(p: &Linear, x: &[i8], w: &[i8], b: Option<&[i32]>, q: (QParams, QParams)) -> Vec<i8> {
        let scales: Vec<u8> = (0..p.out_features)
            .flat_map(|c| (0.0007f32 * (c % 5 + 1) as f32).to_le_bytes())
            .collect();
        let s = lasagna_format::Scales::from_le_bytes(&scales);
        let mut y = vec![0i8; p.rows * p.out_features];
        let mut scratch = vec![0u32; p.in_features / 4 * 2];
        let scale = WeightScale::Channel(s);
        match p.layout {
            WeightLayout::RowMajor => {
                linear::forward_i8(p, q, x, w, scale, b, &mut scratch, &mut y)
            }
            WeightLayout::Interleaved4 => forward_i8(p, q, x, w, scale, b, &mut scratch, &mut y),
        }
        y
    }

    #[test]
    fn interleaved_and_row_major_weights_give_the_same_outputs_with_tail_rows_and_columns() {
        let q = (
            QParams {
                scale: 0.03,
                zero_point: 5,
            },
            QParams {
                scale: 0.04,
                zero_point: -2,
            },
        );
        // out % 4 and in % 4 take every value; (1, 784, 10) is the MLP's
        // last layer shape class, (2, 9, 6) has two rows.
        let shapes = [
            (1, 1, 1),
            (1, 3, 3),
            (1, 4, 4),
            (1, 7, 5),
            (2, 9, 6),
            (1, 13, 7),
            (3, 16, 8),
            (1, 30, 9),
            (1, 784, 10),
        ];
        for &(rows, i, o) in &shapes {
            let lcg = |n: usize, seed: u64| -> Vec<i8> {
                values(n, seed).iter().map(|v| (v * 127.0) as i8).collect()
            };
            let (mut x, mut w) = (lcg(rows * i, 21), lcg(o * i, 22));
            // The extremes of both operands: (x − zp) = −133, w = −128.
            x[0] = -128;
            w[0] = -128;
            let b: Vec<i32> = (0..o as i32).map(|c| c * 53 - 200).collect();
            let row_major = Linear {
                rows,
                in_features: i,
                out_features: o,
                layout: WeightLayout::RowMajor,
            };
            let interleaved = Linear {
                layout: WeightLayout::Interleaved4,
                ..row_major
            };
            let stored = WeightLayout::Interleaved4.store(&w, o, i);
            if o > 1 && i > 4 {
                assert_ne!(stored, w, "({rows}, {i}, {o}): the layouts must differ");
            }
            for bias in [Some(&b[..]), None] {
                assert_eq!(
                    run(&interleaved, &x, &stored, bias, q),
                    run(&row_major, &x, &w, bias, q),
                    "({rows}, {i}, {o}), bias {}",
                    bias.is_some()
                );
            }
        }
    }
}
