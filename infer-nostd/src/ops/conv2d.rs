//! Conv2d as direct loops (no im2col buffer, so no scratch): x is
//! (c_in, h, w), weight is (c_out, c_in / groups, kh, kw), bias is (c_out),
//! y is (c_out, oh, ow). Each output is one dot product over the group's
//! (channel, ky, kx) taps in that order, the order of the trainer's im2col
//! rows; taps that fall on zero padding are skipped (they add exact zeros).

use super::{Element, WeightScale, Weights};
use crate::quant::{saturate, QParams, Requant};
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

/// The kernel taps `k0..k1` of output position `o` whose input index
/// `o * stride - pad + k * dil` lies in `0..n`, and that index for `k0`.
/// Shared with nothing else: pooling clips its windows the trainer's way.
#[inline]
pub(crate) fn taps(
    o: usize,
    stride: u8,
    pad: u8,
    dil: u8,
    k: u8,
    n: usize,
) -> (usize, usize, usize) {
    let d = i64::from(dil.max(1));
    let base = o as i64 * i64::from(stride) - i64::from(pad);
    // First tap at or past index 0: ceil(-base / d) when base is negative.
    let k0 = if base >= 0 { 0 } else { (-base + d - 1) / d };
    // Taps with base + k d < n: k < (n - base) / d.
    let room = n as i64 - base;
    let k1 = if room > 0 {
        ((room + d - 1) / d).min(i64::from(k))
    } else {
        0
    };
    let k0 = k0.min(k1);
    let first = (base + k0 * d).max(0);
    (k0 as usize, k1 as usize, first as usize)
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
    // Product first, then bias: the trainer's GEMM-then-add order.
    direct(
        p,
        x,
        weight,
        y,
        |_| 0.0f32,
        |acc, a, b: W| acc + a * b.to_f32(),
        |oc, acc| match bias {
            Some(b) => acc + b.at(oc),
            None => acc,
        },
    );
}

/// int8: each output is `zp_y + round(M_oc · (bias[oc] + sum over taps of
/// (x − zp_x) · w))`, saturated, with `M_oc = (s_x / s_y) · s_w[oc]` (see
/// [`Requant`]). Taps on zero padding are skipped: padding is real 0, level
/// `zp_x`, and adds exactly nothing. Same loops as the f32 kernel.
#[allow(clippy::too_many_arguments)]
pub fn forward_i8(
    p: &Conv2d,
    (qx, qy): (QParams, QParams),
    x: &[i8],
    weight: &[i8],
    scale: WeightScale<'_>,
    bias: Option<&[i32]>,
    y: &mut [i8],
) {
    let (ratio, zp) = (qx.scale / qy.scale, qx.zero_point);
    // One multiplier per output channel, formed when the channel starts.
    let mut m = (usize::MAX, Requant::default());
    direct(
        p,
        x,
        weight,
        y,
        |oc| bias.and_then(|b| b.get(oc)).copied().unwrap_or(0),
        |acc: i32, a: i8, b: i8| acc.wrapping_add((i32::from(a) - zp).wrapping_mul(i32::from(b))),
        |oc, acc| {
            if m.0 != oc {
                m = (oc, Requant::new(ratio * scale.of(oc)));
            }
            saturate(m.1.apply(acc), qy.zero_point)
        },
    );
}

/// Output columns computed together: their accumulators live in registers
/// or on the stack, and each weight is loaded once per chunk.
const CHUNK: usize = 32;

/// The output columns `ox` whose tap `kx` lands inside the input row:
/// `0 <= ox * s + kx * d - p < w`, as `lo..hi` within `0..ow`.
#[inline]
fn columns(kx: usize, s: usize, d: usize, pad: usize, w: usize, ow: usize) -> (usize, usize) {
    let off = kx * d;
    let lo = if pad > off {
        (pad - off).div_ceil(s)
    } else {
        0
    };
    let hi = if w + pad > off {
        (w + pad - off).div_ceil(s)
    } else {
        0
    };
    (lo.min(ow), hi.min(ow).max(lo.min(ow)))
}

/// The loops both precisions share. For each output channel and output row,
/// `CHUNK` columns at a time: accumulators start at `start(oc)`, then every
/// tap in (input channel, ky, kx) order adds `mac(acc, x, w)` to every
/// column it reaches (taps on padding are skipped: they add exact zeros),
/// and `finish(oc, acc)` gives the output. Each output therefore sums its
/// taps in the order of the trainer's im2col rows, and the innermost loop
/// runs over consecutive columns with one weight.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn direct<X: Copy, W: Copy, A: Copy, Y>(
    p: &Conv2d,
    x: &[X],
    weight: &[W],
    y: &mut [Y],
    start: impl Fn(usize) -> A,
    mac: impl Fn(A, X, W) -> A,
    mut finish: impl FnMut(usize, A) -> Y,
) {
    let win = &p.window;
    let (kh, kw) = (win.kernel[0] as usize, win.kernel[1] as usize);
    let (dh, dw) = (
        win.dilation[0].max(1) as usize,
        win.dilation[1].max(1) as usize,
    );
    let (sw, pw) = (win.stride[1].max(1) as usize, win.padding[1] as usize);
    let groups = p.groups.max(1);
    let (cin_g, cout_g) = (p.in_channels / groups, p.out_channels / groups);
    let (w, ow) = (p.w, p.ow);
    let (hw, ohw, kk) = (p.h * w, p.oh * ow, kh * kw);
    let kg = cin_g * kk;
    // `chunks_exact` panics on a zero size: every size it gets is checked here.
    if [hw, ohw, kk, kg, cout_g, ow, w, kw].contains(&0) {
        return;
    }
    let per_out = weight.chunks_exact(kg).zip(y.chunks_exact_mut(ohw));
    for (oc, (w_oc, y_oc)) in per_out.enumerate().take(p.out_channels) {
        let g = oc / cout_g;
        let Some(x_g) = x.get(g * cin_g * hw..(g + 1) * cin_g * hw) else {
            return;
        };
        let a0 = start(oc);
        for (oy, y_row) in y_oc.chunks_exact_mut(ow).enumerate() {
            let (ky0, ky1, iy0) = taps(
                oy,
                win.stride[0],
                win.padding[0],
                win.dilation[0],
                win.kernel[0],
                p.h,
            );
            for (c, y_chunk) in y_row.chunks_mut(CHUNK).enumerate() {
                let (c0, c1) = (c * CHUNK, c * CHUNK + y_chunk.len());
                let mut acc = [a0; CHUNK];
                for (x_plane, w_plane) in x_g.chunks_exact(hw).zip(w_oc.chunks_exact(kk)) {
                    let x_rows = x_plane.chunks_exact(w).skip(iy0).step_by(dh);
                    let w_rows = w_plane.chunks_exact(kw).skip(ky0).take(ky1 - ky0);
                    for (x_row, w_row) in x_rows.zip(w_rows) {
                        for (kx, &wv) in w_row.iter().enumerate() {
                            let (lo, hi) = columns(kx, sw, dw, pw, w, ow);
                            let (lo, hi) = (lo.max(c0), hi.min(c1));
                            if lo >= hi {
                                continue;
                            }
                            // Input column of output `lo`; `lo` is past the
                            // padding, so this does not underflow.
                            let ix = (lo * sw + kx * dw).saturating_sub(pw);
                            let Some(xs) = x_row.get(ix..) else {
                                continue;
                            };
                            let Some(a) = acc.get_mut(lo - c0..hi - c0) else {
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
                for (o, &a) in y_chunk.iter_mut().zip(&acc) {
                    *o = finish(oc, a);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
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

    fn geometry(cin: usize, cout: usize, groups: usize, h: usize, w: usize, win: Window) -> Conv2d {
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
            forward_i8(&p, (qx, qy), &xq, &wq, s, Some(&bq), &mut y);
            for (i, (&got, &sum)) in y.iter().zip(&sums).enumerate() {
                let oc = i / (p.oh * p.ow);
                let m = Requant::new((0.03f32 / 0.07) * s.of(oc));
                let want = (m.apply(sum as i32 + bq[oc]) - 9).clamp(-128, 127) as i8;
                assert_eq!(got, want, "case {n}, output {i}");
            }
        }
    }

    #[test]
    fn taps_cover_exactly_the_in_range_positions() {
        for o in 0..6 {
            for (s, p, d, k, n) in [
                (1, 1, 1, 3, 5),
                (2, 2, 2, 3, 6),
                (3, 0, 1, 2, 4),
                (1, 3, 1, 4, 2),
            ] {
                let (k0, k1, first) = taps(o, s, p, d, k, n);
                let inside: Vec<u8> = (0..k)
                    .filter(|&kk| {
                        let i = o as i64 * s as i64 - p as i64 + kk as i64 * d as i64;
                        i >= 0 && i < n as i64
                    })
                    .collect();
                let got: Vec<u8> = (k0 as u8..k1 as u8).collect();
                assert_eq!(got, inside, "o {o}, s {s}, p {p}, d {d}, k {k}, n {n}");
                if k0 < k1 {
                    assert_eq!(
                        first as i64,
                        o as i64 * s as i64 - p as i64 + k0 as i64 * d as i64
                    );
                }
            }
        }
    }
}
