//! MaxPool2d: x is (c, h, w), y is (c, oh, ow). The window of output
//! `(oy, ox)` covers padded rows `oy*s .. oy*s + k` (input rows shifted by
//! `p`), clipped to the input: padding is `-inf`, so it never wins, and
//! PyTorch's `padding <= kernel / 2` rule leaves every window at least one
//! real element. The same rules as the trainer's `backend/cpu/maxpool2d.rs`.

use crate::quant::Rescale;
use lasagna_format::Window;

/// A pooling op's geometry for one sample (MaxPool2d and AvgPool2d).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
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
    /// Kernel, stride and padding (dilation is 1).
    pub window: Window,
}

/// The input range `[start, end)` that window `o` covers along one axis,
/// exactly as the trainer computes it.
#[inline]
pub(crate) fn window(o: usize, k: u8, s: u8, p: u8, len: usize) -> (usize, usize) {
    let at = o * s as usize;
    let start = at.saturating_sub(p as usize);
    // k >= p always (padding <= kernel / 2); saturating keeps a bad call sane.
    let end = (at + (k as usize).saturating_sub(p as usize)).min(len);
    (start, end.max(start))
}

/// `y[o] = max(window(o))`. NaN wins and a later NaN replaces an earlier
/// one, as in PyTorch's CPU kernel (`val > max || isnan(val)`).
pub fn forward(p: &Pool2d, x: &[f32], y: &mut [f32]) {
    pool(p, x, y, f32::NEG_INFINITY, |v, best| v > best || v.is_nan());
}

/// int8: the largest level of each window (the order of levels is the
/// order of real values), mapped to the output's quantization by
/// `rescale` when it differs (the exporter makes it equal).
pub fn forward_i8(p: &Pool2d, x: &[i8], y: &mut [i8], rescale: Option<Rescale>) {
    let w = &p.window;
    if w.kernel == [2, 2] && w.stride == [2, 2] && w.padding == [0, 0] {
        pool_2x2(p, x, y);
    } else {
        pool(p, x, y, i8::MIN, |v, best| v > best);
    }
    if let Some(r) = rescale {
        for v in y.iter_mut() {
            *v = r.apply(*v);
        }
    }
}

/// The usual 2 × 2, stride 2, no padding window (every CNN preset's
/// pooling): each output is the largest of two bytes of two input rows,
/// with no window arithmetic per element. The same levels as [`pool`]
/// (its windows clip nothing here: `ow = ⌊w / 2⌋`, `oh = ⌊h / 2⌋`).
/// Measured on the Cortex-M4 on the int8 CNN: 939 k instructions for its
/// three poolings with [`pool`].
fn pool_2x2(p: &Pool2d, x: &[i8], y: &mut [i8]) {
    let (w, ow, plane_in, plane_out) = (p.w, p.ow, p.h * p.w, p.oh * p.ow);
    if plane_in == 0 || plane_out == 0 || ow == 0 || 2 * ow > w || 2 * p.oh > p.h {
        return;
    }
    let planes = x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out));
    for (xp, yp) in planes.take(p.channels) {
        for (pair, y_row) in xp.chunks_exact(2 * w).zip(yp.chunks_exact_mut(ow)) {
            let (r0, r1) = pair.split_at(w);
            // Four outputs per step from two words of each row (Cortex-M4).
            #[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
            let (r0, r1, y_row) = four_at_a_time(r0, r1, y_row);
            let cols = r0.chunks_exact(2).zip(r1.chunks_exact(2));
            for (o, (a, b)) in y_row.iter_mut().zip(cols) {
                if let ([a0, a1], [b0, b1]) = (a, b) {
                    *o = (*a0).max(*a1).max((*b0).max(*b1));
                }
            }
        }
    }
}

/// [`pool_2x2`]'s outputs four at a time with byte-parallel maxima
/// (`SSUB8` + `SEL`, 2 instructions for 4 bytes): the vertical maxima of
/// two words of each row, then each word against itself shifted by a
/// byte, whose bytes 0 and 2 are the outputs. Returns the rows and outputs
/// left for the scalar loop. Measured on the int8 CNN: 109 k instructions
/// for its three poolings with the scalar loop alone.
#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
fn four_at_a_time<'a, 'b>(
    r0: &'a [i8],
    r1: &'a [i8],
    y: &'b mut [i8],
) -> (&'a [i8], &'a [i8], &'b mut [i8]) {
    #[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
    use super::dsp::max8;
    let word = |b: &[i8]| match *b {
        [a, b, c, d] => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => 0,
    };
    let n = (y.len() / 4).min(r0.len() / 8).min(r1.len() / 8);
    let (y4, y_rest) = y.split_at_mut(4 * n);
    let (a8, a_rest) = r0.split_at(8 * n);
    let (b8, b_rest) = r1.split_at(8 * n);
    for ((o, a), b) in y4
        .chunks_exact_mut(4)
        .zip(a8.chunks_exact(8))
        .zip(b8.chunks_exact(8))
    {
        let (a0, a1) = a.split_at(4);
        let (b0, b1) = b.split_at(4);
        let v0 = max8(word(a0), word(b0));
        let v1 = max8(word(a1), word(b1));
        let (h0, h1) = (max8(v0, v0 >> 8), max8(v1, v1 >> 8));
        let lo = (h0 & 0xff) | ((h0 >> 8) & 0xff00);
        let hi = (h1 & 0xff) | ((h1 >> 8) & 0xff00);
        o.copy_from_slice(&(lo | (hi << 16)).to_le_bytes().map(|v| v as i8));
    }
    (a_rest, b_rest, y_rest)
}

/// The lane arithmetic of `dsp::max8` in portable Rust, for the host tests.
#[cfg(all(test, not(all(feature = "arm-dsp", target_arch = "arm"))))]
fn max8(a: u32, b: u32) -> u32 {
    let mut r = [0u8; 4];
    for ((r, x), y) in r.iter_mut().zip(a.to_le_bytes()).zip(b.to_le_bytes()) {
        *r = (x as i8).max(y as i8) as u8;
    }
    u32::from_le_bytes(r)
}

/// The window loop shared by both element types: `better(v, best)` says
/// whether `v` replaces the running maximum that starts at `lowest`.
#[inline(always)]
fn pool<T: Copy>(p: &Pool2d, x: &[T], y: &mut [T], lowest: T, better: impl Fn(T, T) -> bool) {
    let (ow, plane_in, plane_out) = (p.ow, p.h * p.w, p.oh * p.ow);
    // `chunks_exact` panics on a zero size: every size it gets is checked here.
    if plane_in == 0 || plane_out == 0 || ow == 0 {
        return;
    }
    let win = &p.window;
    let planes = x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out));
    for (xp, yp) in planes.take(p.channels) {
        for (oy, y_row) in yp.chunks_exact_mut(ow).enumerate() {
            let (y0, y1) = window(oy, win.kernel[0], win.stride[0], win.padding[0], p.h);
            for (ox, out) in y_row.iter_mut().enumerate() {
                let (x0, x1) = window(ox, win.kernel[1], win.stride[1], win.padding[1], p.w);
                let mut best = lowest;
                for iy in y0..y1 {
                    let Some(row) = xp.get(iy * p.w + x0..iy * p.w + x1) else {
                        continue;
                    };
                    for &v in row {
                        if better(v, best) {
                            best = v;
                        }
                    }
                }
                *out = best;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;
    use crate::ops::testutil::values;
    use std::vec;
    use std::vec::Vec;

    fn naive(p: &Pool2d, x: &[f32]) -> Vec<f32> {
        let win = p.window;
        let mut y = vec![0.0; p.channels * p.oh * p.ow];
        for c in 0..p.channels {
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let mut best = f32::NEG_INFINITY;
                    for ky in 0..win.kernel[0] as i64 {
                        for kx in 0..win.kernel[1] as i64 {
                            let iy =
                                (oy * win.stride[0] as usize) as i64 - win.padding[0] as i64 + ky;
                            let ix =
                                (ox * win.stride[1] as usize) as i64 - win.padding[1] as i64 + kx;
                            if iy < 0 || ix < 0 || iy >= p.h as i64 || ix >= p.w as i64 {
                                continue; // -inf padding
                            }
                            best = best.max(x[(c * p.h + iy as usize) * p.w + ix as usize]);
                        }
                    }
                    y[(c * p.oh + oy) * p.ow + ox] = best;
                }
            }
        }
        y
    }

    pub(crate) fn pool(
        c: usize,
        h: usize,
        w: usize,
        k: [u8; 2],
        s: [u8; 2],
        pad: [u8; 2],
    ) -> Pool2d {
        let out =
            |a: usize, n: usize| (n + 2 * pad[a] as usize - k[a] as usize) / s[a] as usize + 1;
        Pool2d {
            channels: c,
            h,
            w,
            oh: out(0, h),
            ow: out(1, w),
            window: Window {
                kernel: k,
                stride: s,
                padding: pad,
                dilation: [1, 1],
            },
        }
    }

    #[test]
    fn matches_naive_max_with_minus_infinity_padding() {
        for (n, &(c, h, w, k, s, pad)) in [
            (2, 6, 6, [2, 2], [2, 2], [0, 0]),
            // The 2 × 2 fast path with an odd height and width (the last
            // row and column belong to no window).
            (3, 7, 5, [2, 2], [2, 2], [0, 0]),
            // Rows long enough for the four-at-a-time loop, and a rest.
            (2, 5, 19, [2, 2], [2, 2], [0, 0]),
            (1, 7, 5, [3, 3], [2, 2], [1, 1]),
            (3, 5, 8, [3, 2], [1, 2], [1, 0]),
            (1, 1, 1, [1, 1], [1, 1], [0, 0]),
        ]
        .iter()
        .enumerate()
        {
            let p = pool(c, h, w, k, s, pad);
            // All negative, so a zero-padding bug would show as a 0 output.
            let x: Vec<f32> = values(c * h * w, n as u64)
                .iter()
                .map(|v| v - 2.0)
                .collect();
            let mut y = vec![0.0; c * p.oh * p.ow];
            forward(&p, &x, &mut y);
            assert_eq!(y, naive(&p, &x));
            // int8 levels order like reals: the same windows win.
            let xq: Vec<i8> = x.iter().map(|v| (v * 40.0) as i8).collect();
            let mut yq = vec![0i8; y.len()];
            forward_i8(&p, &xq, &mut yq, None);
            let as_f: Vec<f32> = xq.iter().map(|&v| v as f32).collect();
            let want: Vec<i8> = naive(&p, &as_f).iter().map(|&v| v as i8).collect();
            assert_eq!(yq, want);
        }
    }

    #[test]
    fn nan_wins_like_pytorch() {
        let p = pool(1, 2, 2, [2, 2], [2, 2], [0, 0]);
        let mut y = [0.0];
        forward(&p, &[1.0, f32::NAN, 3.0, 2.0], &mut y);
        assert!(y[0].is_nan());
    }
}
