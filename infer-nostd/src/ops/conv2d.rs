//! Conv2d as direct loops (no im2col buffer, so no scratch): x is
//! (c_in, h, w), weight is (c_out, c_in / groups, kh, kw), bias is (c_out),
//! y is (c_out, oh, ow). Each output is one dot product over the group's
//! (channel, ky, kx) taps in that order, the order of the trainer's im2col
//! rows; taps that fall on zero padding are skipped (they add exact zeros).

use super::{Element, WeightScale, Weights};
use crate::quant::QParams;
use crate::quant::{saturate, Requant};
use lasagna_format::Window;

/// A Conv2d op's geometry for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Groups (both channel counts are multiples of it).
    pub groups: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height (PyTorch's formula, computed by the format reader).
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Kernel, stride, padding and dilation.
    pub window: Window,
}

/// `y[oc, oy, ox] = sum over taps of x * weight, + bias[oc]`.
pub fn forward(
    p: &Conv2d,
    x: &[f32],
    weight: Weights<'_>,
    bias: Option<Weights<'_>>,
    y: &mut [f32],
) {
    match weight {
        Weights::F32(w) => run(p, x, w, bias, y),
        Weights::F16(w) => run(p, x, w, bias, y),
        // Prepare admits only f32 and f16 weights into an f32 model.
        Weights::I8(..) | Weights::I32(_) => {}
    }
}

fn run<W: Element>(p: &Conv2d, x: &[f32], weight: &[W], bias: Option<Weights<'_>>, y: &mut [f32]) {
    each_channel(p, x, weight, y, |oc, x_g, w_oc, y_oc| {
        // The output plane is the accumulator: start at 0, add the taps,
        // then the bias (the trainer's GEMM-then-add order).
        y_oc.fill(0.0);
        accumulate(p, x_g, w_oc, (0, p.oh), y_oc, |acc, a, b: W| {
            acc + a * b.to_f32()
        });
        if let Some(b) = bias {
            let b = b.at(oc);
            y_oc.iter_mut().for_each(|v| *v += b);
        }
    });
}

/// int8: each output is `zp_y + round(M_oc · (bias[oc] + sum over taps of
/// (x − zp_x) · w))`, saturated, with `M_oc = (s_x / s_y) · s_w[oc]` (see
/// [`Requant`]). Taps on zero padding are skipped: padding is real 0, level
/// `zp_x`, and adds exactly nothing. Same loops as the f32 kernel, with
/// the `i32` accumulators in `scratch` (one output plane,
/// [`crate::scratch_bytes_int8`]). With the `arm-dsp` feature on a
/// Cortex-M4/M7 the engine runs `super::conv2d_dsp` instead, which
/// computes the same integers with `SMLAD` (and is tested against this).
#[allow(clippy::too_many_arguments)]
pub fn forward_i8(
    p: &Conv2d,
    q: (QParams, QParams),
    x: &[i8],
    weight: &[i8],
    scale: WeightScale<'_>,
    bias: Option<&[i32]>,
    scratch: &mut [u32],
    y: &mut [i8],
) {
    planes_i8(
        p,
        q,
        x,
        weight,
        scale,
        bias,
        bytemuck::cast_slice_mut(scratch),
        y,
    );
}

/// The portable int8 kernel: [`accumulate`] into one `i32` output row at a
/// time, then requantize the row.
#[allow(clippy::too_many_arguments)]
fn planes_i8(
    p: &Conv2d,
    (qx, qy): (QParams, QParams),
    x: &[i8],
    weight: &[i8],
    scale: WeightScale<'_>,
    bias: Option<&[i32]>,
    scratch: &mut [i32],
    y: &mut [i8],
) {
    let (ratio, zp) = (qx.scale / qy.scale, qx.zero_point);
    // One output row of accumulators at a time (4 · ow bytes of scratch,
    // not a whole plane: the plane set the int8 CNN's arena). Each output
    // still sums its taps in the same order, so the integers are the same.
    let Some(acc) = scratch.get_mut(..p.ow) else {
        return;
    };
    if p.ow == 0 {
        return;
    }
    each_channel(p, x, weight, y, |oc, x_g, w_oc, y_oc| {
        let b = bias.and_then(|b| b.get(oc)).copied().unwrap_or(0);
        let m = Requant::new(ratio * scale.of(oc));
        for (oy, y_row) in y_oc.chunks_exact_mut(p.ow).enumerate() {
            acc.fill(b);
            accumulate(p, x_g, w_oc, (oy, oy + 1), acc, |acc: i32, a: i8, b: i8| {
                acc.wrapping_add((i32::from(a) - zp).wrapping_mul(i32::from(b)))
            });
            for (o, &a) in y_row.iter_mut().zip(acc.iter()) {
                *o = saturate(m.apply(a), qy.zero_point);
            }
        }
    });
}

/// The output positions `o` whose tap `k` lands inside an input of `n`:
/// `0 <= o * s + k * d - pad < n`, as `lo..hi` within `0..out`.
#[inline]
fn reach(k: usize, s: usize, d: usize, pad: usize, n: usize, out: usize) -> (usize, usize) {
    let off = k * d;
    let lo = if pad > off {
        (pad - off).div_ceil(s)
    } else {
        0
    };
    let hi = if n + pad > off {
        (n + pad - off).div_ceil(s)
    } else {
        0
    };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// Calls `f(oc, input group, weights of oc, output plane of oc)` for every
/// output channel (sizes checked: `chunks_exact` panics on zero).
#[inline(always)]
fn each_channel<X, W, Y>(
    p: &Conv2d,
    x: &[X],
    weight: &[W],
    y: &mut [Y],
    mut f: impl FnMut(usize, &[X], &[W], &mut [Y]),
) {
    let win = &p.window;
    let kk = win.kernel[0] as usize * win.kernel[1] as usize;
    let groups = p.groups.max(1);
    let (cin_g, cout_g) = (p.in_channels / groups, p.out_channels / groups);
    let (hw, ohw) = (p.h * p.w, p.oh * p.ow);
    let kg = cin_g * kk;
    if [hw, ohw, kk, kg, cout_g, p.ow, p.w, win.kernel[1] as usize].contains(&0) {
        return;
    }
    let per_out = weight.chunks_exact(kg).zip(y.chunks_exact_mut(ohw));
    for (oc, (w_oc, y_oc)) in per_out.enumerate().take(p.out_channels) {
        let g = oc / cout_g;
        let Some(x_g) = x.get(g * cin_g * hw..(g + 1) * cin_g * hw) else {
            return;
        };
        f(oc, x_g, w_oc, y_oc);
    }
}

/// Adds every tap of one output channel to the accumulators `acc` of its
/// output rows `rows.0 .. rows.1` (`acc` holds those rows, `ow` each): for
/// each input channel, ky and kx in that order, the weight times the input
/// it meets, at every output the tap reaches (taps on padding are skipped:
/// they add exact zeros). Each output therefore sums its taps in the order
/// of the trainer's im2col rows, whichever rows are asked for, and the
/// per-tap bookkeeping is paid once per output row, not per output.
#[inline(always)]
fn accumulate<X: Copy, W: Copy, A: Copy>(
    p: &Conv2d,
    x_g: &[X],
    w_oc: &[W],
    rows: (usize, usize),
    acc: &mut [A],
    mac: impl Fn(A, X, W) -> A,
) {
    let win = &p.window;
    let (kh, kw) = (win.kernel[0] as usize, win.kernel[1] as usize);
    let (sh, sw) = (win.stride[0].max(1) as usize, win.stride[1].max(1) as usize);
    let (dh, dw) = (
        win.dilation[0].max(1) as usize,
        win.dilation[1].max(1) as usize,
    );
    let (ph, pw) = (win.padding[0] as usize, win.padding[1] as usize);
    let (w, ow, hw) = (p.w, p.ow, p.h * p.w);
    if [hw, kh * kw, kw, w, ow].contains(&0) {
        return;
    }
    for (x_plane, w_plane) in x_g.chunks_exact(hw).zip(w_oc.chunks_exact(kh * kw)) {
        for (ky, w_row) in w_plane.chunks_exact(kw).enumerate() {
            let (oy0, oy1) = reach(ky, sh, dh, ph, p.h, p.oh);
            let (oy0, oy1) = (oy0.max(rows.0), oy1.min(rows.1));
            for (kx, &wv) in w_row.iter().enumerate() {
                let (ox0, ox1) = reach(kx, sw, dw, pw, w, ow);
                if ox0 >= ox1 {
                    continue;
                }
                // Input column of output `ox0` (past the padding by
                // construction, so no underflow).
                let ix0 = (ox0 * sw + kx * dw).saturating_sub(pw);
                for oy in oy0..oy1 {
                    let iy = (oy * sh + ky * dh).saturating_sub(ph);
                    let Some(xs) = x_plane.get(iy * w + ix0..(iy + 1) * w) else {
                        continue;
                    };
                    let r = (oy - rows.0) * ow;
                    let Some(a) = acc.get_mut(r + ox0..r + ox1) else {
                        continue;
                    };
                    if sw == 1 {
                        for (a, &xv) in a.iter_mut().zip(xs) {
                            *a = mac(*a, xv, wv);
                        }
                    } else {
                        for (a, &xv) in a.iter_mut().zip(xs.iter().step_by(sw)) {
                            *a = mac(*a, xv, wv);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;
    use crate::ops::testutil::{assert_close, values};
    use std::vec;
    use std::vec::Vec;

    fn naive(p: &Conv2d, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
        let win = p.window;
        let (kh, kw) = (win.kernel[0] as i64, win.kernel[1] as i64);
        let (cin_g, cout_g) = (p.in_channels / p.groups, p.out_channels / p.groups);
        let mut y = vec![0.0f64; p.out_channels * p.oh * p.ow];
        for oc in 0..p.out_channels {
            let g = oc / cout_g;
            for oy in 0..p.oh as i64 {
                for ox in 0..p.ow as i64 {
                    let mut s = 0.0f64;
                    for ic in 0..cin_g {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = oy * win.stride[0] as i64 - win.padding[0] as i64
                                    + ky * win.dilation[0] as i64;
                                let ix = ox * win.stride[1] as i64 - win.padding[1] as i64
                                    + kx * win.dilation[1] as i64;
                                if iy < 0 || ix < 0 || iy >= p.h as i64 || ix >= p.w as i64 {
                                    continue;
                                }
                                let xv =
                                    x[((g * cin_g + ic) * p.h + iy as usize) * p.w + ix as usize];
                                let wv = w[((oc * cin_g + ic) * kh as usize + ky as usize)
                                    * kw as usize
                                    + kx as usize];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y[(oc * p.oh + oy as usize) * p.ow + ox as usize] =
                        s + b.map_or(0.0, |b| b[oc] as f64);
                }
            }
        }
        y
    }

    /// A Conv2d's geometry from its window and input (also the DSP
    /// kernels' tests').
    pub(crate) fn geometry(
        cin: usize,
        cout: usize,
        groups: usize,
        h: usize,
        w: usize,
        win: Window,
    ) -> Conv2d {
        let out = |a: usize, n: usize| {
            let (k, s, p, d) = (
                win.kernel[a] as usize,
                win.stride[a] as usize,
                win.padding[a] as usize,
                win.dilation[a] as usize,
            );
            (n + 2 * p - d * (k - 1) - 1) / s + 1
        };
        Conv2d {
            in_channels: cin,
            out_channels: cout,
            groups,
            h,
            w,
            oh: out(0, h),
            ow: out(1, w),
            window: win,
        }
    }

    #[test]
    fn matches_naive_loops_over_padding_stride_dilation_and_groups() {
        let cases = [
            // (cin, cout, groups, h, w, kernel, stride, padding, dilation)
            (1, 4, 1, 6, 6, [3, 3], [1, 1], [1, 1], [1, 1]),
            (2, 3, 1, 7, 5, [3, 2], [2, 1], [0, 1], [1, 1]),
            (4, 4, 4, 5, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
            (4, 6, 2, 9, 8, [3, 3], [2, 3], [2, 1], [2, 2]),
            (3, 2, 1, 4, 4, [4, 4], [1, 1], [3, 3], [1, 1]),
            (1, 1, 1, 1, 1, [1, 1], [1, 1], [0, 0], [1, 1]),
        ];
        for (n, &(cin, cout, groups, h, w, kernel, stride, padding, dilation)) in
            cases.iter().enumerate()
        {
            let win = Window {
                kernel,
                stride,
                padding,
                dilation,
            };
            let p = geometry(cin, cout, groups, h, w, win);
            let x = values(cin * h * w, 10 + n as u64);
            let wt = values(
                cout * cin / groups * kernel[0] as usize * kernel[1] as usize,
                20 + n as u64,
            );
            let b = values(cout, 30 + n as u64);
            for bias in [false, true] {
                let mut y = vec![0.0; cout * p.oh * p.ow];
                forward(
                    &p,
                    &x,
                    Weights::F32(&wt),
                    bias.then_some(Weights::F32(&b)),
                    &mut y,
                );
                assert_close(&y, &naive(&p, &x, &wt, bias.then_some(&b[..])), 1e-5);
            }
            // int8 on the same geometry: the naive f64 sum of integer
            // products is exact, so it is the integer reference.
            let (qx, qy) = (
                QParams {
                    scale: 0.03,
                    zero_point: 5,
                },
                QParams {
                    scale: 0.07,
                    zero_point: -9,
                },
            );
            let xq: Vec<i8> = x.iter().map(|v| (v * 127.0) as i8).collect();
            let wq: Vec<i8> = wt.iter().map(|v| (v * 127.0) as i8).collect();
            let bq: Vec<i32> = b.iter().map(|v| (v * 3000.0) as i32).collect();
            let scales: Vec<u8> = (0..cout)
                .flat_map(|c| (0.002f32 + 0.001 * c as f32).to_le_bytes())
                .collect();
            let s = WeightScale::Channel(lasagna_format::Scales::from_le_bytes(&scales));
            let shifted: Vec<f32> = xq.iter().map(|&v| (v as i32 - 5) as f32).collect();
            let wf: Vec<f32> = wq.iter().map(|&v| v as f32).collect();
            let sums = naive(&p, &shifted, &wf, None);
            let mut y = vec![0i8; cout * p.oh * p.ow];
            let mut scratch = vec![0u32; p.oh * p.ow];
            forward_i8(&p, (qx, qy), &xq, &wq, s, Some(&bq), &mut scratch, &mut y);
            for (i, (&got, &sum)) in y.iter().zip(&sums).enumerate() {
                let oc = i / (p.oh * p.ow);
                let m = Requant::new((0.03f32 / 0.07) * s.of(oc));
                let want = (m.apply(sum as i32 + bq[oc]) - 9).clamp(-128, 127) as i8;
                assert_eq!(got, want, "case {n}, output {i}");
            }
        }
    }

    #[test]
    fn reach_covers_exactly_the_in_range_outputs() {
        for k in 0..5usize {
            for (s, p, d, n, out) in [
                (1, 1, 1, 5, 5),
                (2, 2, 2, 6, 4),
                (3, 0, 1, 4, 2),
                (1, 3, 1, 2, 5),
            ] {
                let (lo, hi) = reach(k, s, d, p, n, out);
                let inside: Vec<usize> = (0..out)
                    .filter(|&o| {
                        let i = (o * s + k * d) as i64 - p as i64;
                        i >= 0 && i < n as i64
                    })
                    .collect();
                let got: Vec<usize> = (lo..hi).collect();
                assert_eq!(got, inside, "k {k}, s {s}, p {p}, d {d}, n {n}, out {out}");
            }
        }
    }
}
