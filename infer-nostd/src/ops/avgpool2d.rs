//! AvgPool2d and AdaptiveAvgPool2d: x is (c, h, w), y is (c, oh, ow). Sums
//! run in `f32`, row by row, and divide at the end, the trainer's order
//! (`backend/cpu/avgpool2d.rs`), so results agree to the last bit or two.

use super::maxpool2d::{window, Pool2d};
use crate::quant::{div_round, saturate, QParams, Requant};

/// An AdaptiveAvgPool2d op's geometry for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adaptive {
    /// Channels (planes).
    pub channels: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

/// PyTorch's divisor of window `(oy, ox)`: with `count_include_pad`, the
/// window's size clipped to the padded input (the whole kernel when
/// `ceil_mode=False`); without, the number of real elements.
#[inline]
fn divisor(p: &Pool2d, include_pad: bool, oy: usize, ox: usize) -> usize {
    let win = &p.window;
    let (kh, kw) = (win.kernel[0] as usize, win.kernel[1] as usize);
    let (sh, sw) = (win.stride[0] as usize, win.stride[1] as usize);
    let (ph, pw) = (win.padding[0] as usize, win.padding[1] as usize);
    if include_pad {
        let rows = (oy * sh + kh).min(p.h + 2 * ph).saturating_sub(oy * sh);
        let cols = (ox * sw + kw).min(p.w + 2 * pw).saturating_sub(ox * sw);
        rows * cols
    } else {
        let (y0, y1) = window(oy, win.kernel[0], win.stride[0], win.padding[0], p.h);
        let (x0, x1) = window(ox, win.kernel[1], win.stride[1], win.padding[1], p.w);
        (y1 - y0) * (x1 - x0)
    }
}

/// Sum of rows `y0..y1`, columns `x0..x1` of a `w`-wide plane: each row
/// summed on its own, then added (the trainer's order).
#[inline]
fn block_sum(plane: &[f32], w: usize, (y0, y1): (usize, usize), (x0, x1): (usize, usize)) -> f32 {
    let mut sum = 0.0f32;
    for iy in y0..y1 {
        if let Some(row) = plane.get(iy * w + x0..iy * w + x1) {
            sum += row.iter().sum::<f32>();
        }
    }
    sum
}

/// `y[o] = sum(window(o)) / divisor(o)`.
pub fn forward(p: &Pool2d, count_include_pad: bool, x: &[f32], y: &mut [f32]) {
    let (ow, plane_in, plane_out) = (p.ow, p.h * p.w, p.oh * p.ow);
    // `chunks_exact` panics on a zero size: every size it gets is checked here.
    if plane_in == 0 || plane_out == 0 || ow == 0 {
        return;
    }
    let win = &p.window;
    let planes = x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out));
    for (xp, yp) in planes.take(p.channels) {
        for (oy, y_row) in yp.chunks_exact_mut(ow).enumerate() {
            let rows = window(oy, win.kernel[0], win.stride[0], win.padding[0], p.h);
            for (ox, out) in y_row.iter_mut().enumerate() {
                let cols = window(ox, win.kernel[1], win.stride[1], win.padding[1], p.w);
                *out =
                    block_sum(xp, p.w, rows, cols) / divisor(p, count_include_pad, oy, ox) as f32;
            }
        }
    }
}

/// Bin `i` of `out` over `len` positions: `[floor(i len / out), ceil((i+1) len / out))`,
/// PyTorch's adaptive pooling bins.
#[inline]
pub(crate) fn adaptive_bin(i: usize, len: usize, out: usize) -> (usize, usize) {
    let out = out.max(1);
    let start = i * len / out;
    let end = ((i + 1) * len).div_ceil(out);
    (start, end)
}

/// Output `(i, j)` is the mean of rows `adaptive_bin(i, h, oh)` and columns
/// `adaptive_bin(j, w, ow)`, divided by the bin height, then width
/// (PyTorch's order of division).
pub fn adaptive_forward(p: &Adaptive, x: &[f32], y: &mut [f32]) {
    let (ow, plane_in, plane_out) = (p.ow, p.h * p.w, p.oh * p.ow);
    // `chunks_exact` panics on a zero size: every size it gets is checked here.
    if plane_in == 0 || plane_out == 0 || ow == 0 {
        return;
    }
    let planes = x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out));
    for (xp, yp) in planes.take(p.channels) {
        for (i, y_row) in yp.chunks_exact_mut(ow).enumerate() {
            let rows = adaptive_bin(i, p.h, p.oh);
            for (j, out) in y_row.iter_mut().enumerate() {
                let cols = adaptive_bin(j, p.w, p.ow);
                let sum = block_sum(xp, p.w, rows, cols);
                *out = sum / (rows.1 - rows.0) as f32 / (cols.1 - cols.0) as f32;
            }
        }
    }
}

/// Sum of `q − zp` over a block (the int8 form of [`block_sum`]).
#[inline]
fn block_sum_i8(
    plane: &[i8],
    w: usize,
    zp: i32,
    (y0, y1): (usize, usize),
    (x0, x1): (usize, usize),
) -> i32 {
    let mut sum = 0i32;
    for iy in y0..y1 {
        if let Some(row) = plane.get(iy * w + x0..iy * w + x1) {
            for &q in row {
                sum = sum.wrapping_add(i32::from(q) - zp);
            }
        }
    }
    sum
}

/// The output level of a mean of `q − zp_x` levels: the same level when the
/// quantizations agree (the exporter's choice), else requantized.
#[inline]
fn level(mean: i32, (qx, qy): (QParams, QParams), m: Requant) -> i8 {
    if qx == qy {
        saturate(mean, qx.zero_point)
    } else {
        saturate(m.apply(mean), qy.zero_point)
    }
}

/// int8 AvgPool2d: `round(sum(q − zp_x) / divisor)` (ties away from zero,
/// TFLite Micro's rounding; padding is level `zp_x`, real 0), then
/// the output level (requantized if the quantizations differ).
pub fn forward_i8(p: &Pool2d, include_pad: bool, q: (QParams, QParams), x: &[i8], y: &mut [i8]) {
    let (ow, plane_in, plane_out) = (p.ow, p.h * p.w, p.oh * p.ow);
    if plane_in == 0 || plane_out == 0 || ow == 0 {
        return;
    }
    let (win, m) = (&p.window, Requant::new(q.0.scale / q.1.scale));
    let planes = x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out));
    for (xp, yp) in planes.take(p.channels) {
        for (oy, y_row) in yp.chunks_exact_mut(ow).enumerate() {
            let rows = window(oy, win.kernel[0], win.stride[0], win.padding[0], p.h);
            for (ox, out) in y_row.iter_mut().enumerate() {
                let cols = window(ox, win.kernel[1], win.stride[1], win.padding[1], p.w);
                let sum = block_sum_i8(xp, p.w, q.0.zero_point, rows, cols);
                let count = divisor(p, include_pad, oy, ox) as i32;
                *out = level(div_round(sum, count), q, m);
            }
        }
    }
}

/// int8 AdaptiveAvgPool2d: the bin's `round(sum(q − zp_x) / (bin height ·
/// bin width))`, then the output level.
pub fn adaptive_forward_i8(p: &Adaptive, q: (QParams, QParams), x: &[i8], y: &mut [i8]) {
    let (ow, plane_in, plane_out) = (p.ow, p.h * p.w, p.oh * p.ow);
    if plane_in == 0 || plane_out == 0 || ow == 0 {
        return;
    }
    let m = Requant::new(q.0.scale / q.1.scale);
    let planes = x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out));
    for (xp, yp) in planes.take(p.channels) {
        for (i, y_row) in yp.chunks_exact_mut(ow).enumerate() {
            let rows = adaptive_bin(i, p.h, p.oh);
            for (j, out) in y_row.iter_mut().enumerate() {
                let cols = adaptive_bin(j, p.w, p.ow);
                let sum = block_sum_i8(xp, p.w, q.0.zero_point, rows, cols);
                let count = ((rows.1 - rows.0) * (cols.1 - cols.0)) as i32;
                *out = level(div_round(sum, count), q, m);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ops::maxpool2d::tests::pool;
    use crate::ops::testutil::{assert_close, values};
    use std::vec;
    use std::vec::Vec;

    fn naive(p: &Pool2d, include_pad: bool, x: &[f32]) -> Vec<f64> {
        let win = p.window;
        let mut y = vec![0.0f64; p.channels * p.oh * p.ow];
        for c in 0..p.channels {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let (mut s, mut real, mut padded) = (0.0f64, 0usize, 0usize);
                    for ky in 0..win.kernel[0] as i64 {
                        for kx in 0..win.kernel[1] as i64 {
                            let iy =
                                (oy * win.stride[0] as usize) as i64 - win.padding[0] as i64 + ky;
                            let ix =
                                (ox * win.stride[1] as usize) as i64 - win.padding[1] as i64 + kx;
                            padded += 1;
                            if iy < 0 || ix < 0 || iy >= p.h as i64 || ix >= p.w as i64 {
                                continue;
                            }
                            real += 1;
                            s += x[(c * p.h + iy as usize) * p.w + ix as usize] as f64;
                        }
                    }
                    let div = if include_pad { padded } else { real };
                    y[(c * p.oh + oy) * p.ow + ox] = s / div as f64;
                }
            }
        }
        y
    }

    #[test]
    fn matches_naive_mean_with_and_without_counting_padding() {
        for (n, &(c, h, w, k, s, pad)) in [
            (2, 6, 6, [2, 2], [2, 2], [0, 0]),
            (1, 7, 5, [3, 3], [2, 2], [1, 1]),
            (3, 5, 8, [3, 2], [1, 2], [1, 1]),
            (1, 4, 4, [4, 4], [1, 1], [2, 2]),
        ]
        .iter()
        .enumerate()
        {
            let p = pool(c, h, w, k, s, pad);
            let x = values(c * h * w, 40 + n as u64);
            for include in [false, true] {
                let mut y = vec![0.0; c * p.oh * p.ow];
                forward(&p, include, &x, &mut y);
                assert_close(&y, &naive(&p, include, &x), 1e-6);
                // int8, same quantization in and out: the rounded mean of
                // the levels minus the zero point, plus the zero point.
                let qp = QParams {
                    scale: 0.1,
                    zero_point: -20,
                };
                let xq: Vec<i8> = x.iter().map(|v| (v * 100.0) as i8).collect();
                let shifted: Vec<f32> = xq.iter().map(|&v| (v as i32 + 20) as f32).collect();
                let mut yq = vec![0i8; y.len()];
                forward_i8(&p, include, (qp, qp), &xq, &mut yq);
                let want: Vec<i8> = naive(&p, include, &shifted)
                    .iter()
                    .map(|m| (m.round() as i32 - 20).clamp(-128, 127) as i8)
                    .collect();
                assert_eq!(yq, want, "case {n}, include_pad {include}");
            }
        }
    }

    fn naive_adaptive(p: &Adaptive, x: &[f32]) -> Vec<f64> {
        let mut y = vec![0.0f64; p.channels * p.oh * p.ow];
        for c in 0..p.channels {
            for i in 0..p.oh {
                for j in 0..p.ow {
                    // floor / ceil in floating point, independent of adaptive_bin.
                    let y0 = (i as f64 * p.h as f64 / p.oh as f64).floor() as usize;
                    let y1 = ((i + 1) as f64 * p.h as f64 / p.oh as f64).ceil() as usize;
                    let x0 = (j as f64 * p.w as f64 / p.ow as f64).floor() as usize;
                    let x1 = ((j + 1) as f64 * p.w as f64 / p.ow as f64).ceil() as usize;
                    let mut s = 0.0f64;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            s += x[(c * p.h + iy) * p.w + ix] as f64;
                        }
                    }
                    y[(c * p.oh + i) * p.ow + j] = s / ((y1 - y0) * (x1 - x0)) as f64;
                }
            }
        }
        y
    }

    #[test]
    fn adaptive_matches_pytorchs_bins_down_up_and_global() {
        for (n, &(c, h, w, oh, ow)) in [
            (2, 7, 7, 3, 3),
            (1, 3, 5, 5, 2),
            (4, 6, 4, 1, 1),
            (1, 5, 5, 5, 5),
        ]
        .iter()
        .enumerate()
        {
            let p = Adaptive {
                channels: c,
                h,
                w,
                oh,
                ow,
            };
            let x = values(c * h * w, 50 + n as u64);
            let mut y = vec![0.0; c * oh * ow];
            adaptive_forward(&p, &x, &mut y);
            assert_close(&y, &naive_adaptive(&p, &x), 1e-6);
            // int8 with a different output quantization: rounded mean, then
            // requantized by s_x / s_y.
            let (qx, qy) = (
                QParams {
                    scale: 0.1,
                    zero_point: 7,
                },
                QParams {
                    scale: 0.25,
                    zero_point: -3,
                },
            );
            let xq: Vec<i8> = x.iter().map(|v| (v * 120.0) as i8).collect();
            let shifted: Vec<f32> = xq.iter().map(|&v| (v as i32 - 7) as f32).collect();
            let mut yq = vec![0i8; y.len()];
            adaptive_forward_i8(&p, (qx, qy), &xq, &mut yq);
            let m = Requant::new(0.1f32 / 0.25);
            let want: Vec<i8> = naive_adaptive(&p, &shifted)
                .iter()
                .map(|v| saturate(m.apply(v.round() as i32), -3))
                .collect();
            assert_eq!(yq, want, "case {n}");
        }
        assert_eq!(
            (0..3).map(|i| adaptive_bin(i, 7, 3)).collect::<Vec<_>>(),
            [(0, 3), (2, 5), (4, 7)]
        );
    }
}
