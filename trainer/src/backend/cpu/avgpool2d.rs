//! AvgPool2d and AdaptiveAvgPool2d on the CPU: `x` is `(N*C, H, W)` planes,
//! `y` is `(N*C, OH, OW)`. Sums run in `f32` over windows that are small
//! (a few to a few hundred elements), and divide at the end as PyTorch does.

use super::maxpool2d::window;
use crate::backend::{adaptive_bin, Pool2dDims};

/// PyTorch's divisor of window `(oy, ox)`: with `count_include_pad`, the
/// window's size clipped to the padded input (the whole kernel when
/// `ceil_mode=False`); without, the number of real elements.
#[inline]
fn divisor(d: &Pool2dDims, include_pad: bool, oy: usize, ox: usize) -> f32 {
    if include_pad {
        let rows = (oy * d.sh + d.kh).min(d.h + 2 * d.ph) - oy * d.sh;
        let cols = (ox * d.sw + d.kw).min(d.w + 2 * d.pw) - ox * d.sw;
        (rows * cols) as f32
    } else {
        let (y0, y1) = window(oy, d.kh, d.sh, d.ph, d.h);
        let (x0, x1) = window(ox, d.kw, d.sw, d.pw, d.w);
        ((y1 - y0) * (x1 - x0)) as f32
    }
}

/// `y[o] = sum(window(o)) / divisor(o)`.
pub fn forward(d: &Pool2dDims, include_pad: bool, x: &[f32], y: &mut [f32]) {
    let (plane_in, plane_out) = (d.h * d.w, d.oh * d.ow);
    if plane_in == 0 || plane_out == 0 {
        return;
    }
    for (xp, yp) in x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out)) {
        for oy in 0..d.oh {
            let (y0, y1) = window(oy, d.kh, d.sh, d.ph, d.h);
            for ox in 0..d.ow {
                let (x0, x1) = window(ox, d.kw, d.sw, d.pw, d.w);
                let mut sum = 0.0f32;
                for iy in y0..y1 {
                    sum += xp[iy * d.w + x0..iy * d.w + x1].iter().sum::<f32>();
                }
                yp[oy * d.ow + ox] = sum / divisor(d, include_pad, oy, ox);
            }
        }
    }
}

/// `dx = 0`, then `dx[window(o)] += dy[o] / divisor(o)`.
pub fn backward(d: &Pool2dDims, include_pad: bool, dy: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    let (plane_in, plane_out) = (d.h * d.w, d.oh * d.ow);
    if plane_in == 0 || plane_out == 0 {
        return;
    }
    for (dxp, dyp) in dx
        .chunks_exact_mut(plane_in)
        .zip(dy.chunks_exact(plane_out))
    {
        for oy in 0..d.oh {
            let (y0, y1) = window(oy, d.kh, d.sh, d.ph, d.h);
            for ox in 0..d.ow {
                let (x0, x1) = window(ox, d.kw, d.sw, d.pw, d.w);
                let g = dyp[oy * d.ow + ox] / divisor(d, include_pad, oy, ox);
                for iy in y0..y1 {
                    dxp[iy * d.w + x0..iy * d.w + x1]
                        .iter_mut()
                        .for_each(|v| *v += g);
                }
            }
        }
    }
}

/// Adaptive pooling from `h x w` planes to `oh x ow`: output `(i, j)` is the
/// mean of rows `adaptive_bin(i, h, oh)` and columns `adaptive_bin(j, w, ow)`,
/// divided by the bin height, then width (PyTorch's order of division).
pub fn adaptive_forward(h: usize, w: usize, oh: usize, ow: usize, x: &[f32], y: &mut [f32]) {
    let (plane_in, plane_out) = (h * w, oh * ow);
    if plane_in == 0 || plane_out == 0 {
        return;
    }
    for (xp, yp) in x.chunks_exact(plane_in).zip(y.chunks_exact_mut(plane_out)) {
        for i in 0..oh {
            let (y0, y1) = adaptive_bin(i, h, oh);
            for j in 0..ow {
                let (x0, x1) = adaptive_bin(j, w, ow);
                let mut sum = 0.0f32;
                for iy in y0..y1 {
                    sum += xp[iy * w + x0..iy * w + x1].iter().sum::<f32>();
                }
                yp[i * ow + j] = sum / (y1 - y0) as f32 / (x1 - x0) as f32;
            }
        }
    }
}

/// `dx = 0`, then `dx[bin(o)] += dy[o] / bin height / bin width`.
pub fn adaptive_backward(h: usize, w: usize, oh: usize, ow: usize, dy: &[f32], dx: &mut [f32]) {
    dx.fill(0.0);
    let (plane_in, plane_out) = (h * w, oh * ow);
    if plane_in == 0 || plane_out == 0 {
        return;
    }
    for (dxp, dyp) in dx
        .chunks_exact_mut(plane_in)
        .zip(dy.chunks_exact(plane_out))
    {
        for i in 0..oh {
            let (y0, y1) = adaptive_bin(i, h, oh);
            for j in 0..ow {
                let (x0, x1) = adaptive_bin(j, w, ow);
                let g = dyp[i * ow + j] / (y1 - y0) as f32 / (x1 - x0) as f32;
                for iy in y0..y1 {
                    dxp[iy * w + x0..iy * w + x1]
                        .iter_mut()
                        .for_each(|v| *v += g);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;

    #[test]
    fn the_divisor_counts_padding_only_when_asked() -> Result<()> {
        // One 2x2 plane of ones, kernel 2, stride 2, padding 1: 2x2 outputs,
        // each window holding one real element and three padded zeros.
        let d = Pool2dDims::new(1, 1, (2, 2), (2, 2), (2, 2), (1, 1))?;
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut y = vec![0.0; 4];
        forward(&d, true, &x, &mut y);
        assert_eq!(y, [0.25, 0.5, 0.75, 1.0]);
        forward(&d, false, &x, &mut y);
        assert_eq!(y, x);
        let mut dx = vec![7.0; 4];
        backward(&d, true, &[4.0, 4.0, 4.0, 4.0], &mut dx);
        assert_eq!(dx, [1.0; 4]);
        Ok(())
    }

    #[test]
    fn adaptive_pooling_of_seven_into_three_averages_overlapping_bins() {
        let x: Vec<f32> = (0..7).map(|v| v as f32).collect();
        let mut y = vec![0.0; 3];
        adaptive_forward(1, 7, 1, 3, &x, &mut y);
        // Bins [0, 3), [2, 5), [4, 7).
        assert_eq!(y, [1.0, 3.0, 5.0]);
        let mut dx = vec![9.0; 7];
        adaptive_backward(1, 7, 1, 3, &[3.0, 3.0, 3.0], &mut dx);
        assert_eq!(dx, [1.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0]);
    }
}
