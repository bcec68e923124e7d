//! im2col and col2im: between NCHW images and the column matrix that turns a
//! convolution into a GEMM.
//!
//! The column matrix of a batch is `col [c_in * kh * kw, n * oh * ow]`: row
//! `(c, i, j)` holds, for every sample and output position, the input value
//! under kernel tap `(i, j)` of channel `c` (0 in the padding). Rows are
//! channel-major, so group `g`'s rows are one contiguous block, and a sample's
//! columns are one contiguous run within each row.
//!
//! The caller checks the dims ([`Conv2dDims::check`]) and the slice lengths;
//! given those, every index here is in bounds.

use crate::backend::Conv2dDims;

/// From this many column-matrix elements on, im2col and col2im split their
/// work over two cores: below it the hand-off costs more than it saves.
const SPLIT_MIN: usize = 1 << 16;

/// The output positions `lo..hi` along one axis whose tap at offset `tap`
/// (`i * dilation`) lands inside the input of length `len`; the input index
/// of output `o` is then `o * stride + tap - padding`.
fn inside(out: usize, len: usize, stride: usize, padding: usize, tap: usize) -> (usize, usize) {
    let lo = padding.saturating_sub(tap).div_ceil(stride);
    let hi = (len + padding)
        .saturating_sub(tap)
        .div_ceil(stride)
        .min(out);
    (lo.min(hi), hi)
}

/// `col = im2col(x)` for all `d.n` samples of `x [n, c_in, h, w]`.
pub fn im2col(d: &Conv2dDims, x: &[f32], col: &mut [f32]) {
    let per_channel = d.kh * d.kw * d.positions();
    if d.c_in < 2 || d.c_in * per_channel < SPLIT_MIN {
        im2col_channels(d, x, 0, col);
        return;
    }
    // Rows are channel-major, so each core fills its own block of rows.
    let half = d.c_in / 2;
    let (top, bottom) = col[..d.c_in * per_channel].split_at_mut(half * per_channel);
    crate::backend::cpu::threads::join(
        || im2col_channels(d, x, 0, top),
        || im2col_channels(d, x, half, bottom),
    );
}

/// The rows of channels `c0..` that fit in `col` (which starts at channel `c0`'s first row).
fn im2col_channels(d: &Conv2dDims, x: &[f32], c0: usize, col: &mut [f32]) {
    let (oh, ow, plane) = (d.oh, d.ow, d.h * d.w);
    let (sh, sw) = (d.stride[0], d.stride[1]);
    let p = oh * ow;
    let np = d.n * p;
    if np == 0 {
        return;
    }
    let mut rows = col.chunks_exact_mut(np);
    for c in c0..d.c_in {
        for i in 0..d.kh {
            let ty = i * d.dilation[0];
            let (ylo, yhi) = inside(oh, d.h, sh, d.padding[0], ty);
            for j in 0..d.kw {
                let tx = j * d.dilation[1];
                let (xlo, xhi) = inside(ow, d.w, sw, d.padding[1], tx);
                let Some(row) = rows.next() else { return };
                for (n, dst) in row.chunks_exact_mut(p).enumerate() {
                    let src = &x[(n * d.c_in + c) * plane..][..plane];
                    dst[..ylo * ow].fill(0.0);
                    dst[yhi * ow..].fill(0.0);
                    for oy in ylo..yhi {
                        let iy = oy * sh + ty - d.padding[0];
                        let srow = &src[iy * d.w..][..d.w];
                        let drow = &mut dst[oy * ow..][..ow];
                        drow[..xlo].fill(0.0);
                        drow[xhi..].fill(0.0);
                        if xlo == xhi {
                            // Every tap of this row is in the padding; `ix0` may lie past the row.
                            continue;
                        }
                        let ix0 = (xlo * sw + tx).saturating_sub(d.padding[1]);
                        let drow = &mut drow[xlo..xhi];
                        if sw == 1 {
                            drow.copy_from_slice(&srow[ix0..ix0 + drow.len()]);
                        } else {
                            for (k, v) in drow.iter_mut().enumerate() {
                                *v = srow[ix0 + k * sw];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dx = col2im(col)` for all `d.n` samples of `dx [n, c_in, h, w]`,
/// overwriting `dx`: each input element gets the sum of the column entries
/// that read it in [`im2col`].
pub fn col2im(d: &Conv2dDims, col: &[f32], dx: &mut [f32]) {
    let sample = d.c_in * d.h * d.w;
    let dx = &mut dx[..d.n * sample];
    dx.fill(0.0);
    if d.n < 2 || d.col_rows() * d.positions() < SPLIT_MIN {
        col2im_samples(d, col, 0, dx);
        return;
    }
    // Samples are contiguous in dx, so each core sums into its own samples.
    let half = d.n / 2;
    let (top, bottom) = dx.split_at_mut(half * sample);
    crate::backend::cpu::threads::join(
        || col2im_samples(d, col, 0, top),
        || col2im_samples(d, col, half, bottom),
    );
}

/// Adds into the samples `n0..` that fit in `dx` (which starts at sample `n0`).
fn col2im_samples(d: &Conv2dDims, col: &[f32], n0: usize, dx: &mut [f32]) {
    let (oh, ow, plane) = (d.oh, d.ow, d.h * d.w);
    let (sh, sw) = (d.stride[0], d.stride[1]);
    let p = oh * ow;
    let np = d.n * p;
    if np == 0 || plane == 0 {
        return;
    }
    let samples = dx.len() / (d.c_in * plane);
    let mut rows = col.chunks_exact(np);
    for c in 0..d.c_in {
        for i in 0..d.kh {
            let ty = i * d.dilation[0];
            let (ylo, yhi) = inside(oh, d.h, sh, d.padding[0], ty);
            for j in 0..d.kw {
                let tx = j * d.dilation[1];
                let (xlo, xhi) = inside(ow, d.w, sw, d.padding[1], tx);
                let Some(row) = rows.next() else { return };
                if xlo == xhi {
                    continue;
                }
                for s in 0..samples {
                    let src = &row[(n0 + s) * p..][..p];
                    let dst = &mut dx[(s * d.c_in + c) * plane..][..plane];
                    for oy in ylo..yhi {
                        let iy = oy * sh + ty - d.padding[0];
                        let drow = &mut dst[iy * d.w..][..d.w];
                        let srow = &src[oy * ow + xlo..oy * ow + xhi];
                        let ix0 = (xlo * sw + tx).saturating_sub(d.padding[1]);
                        if sw == 1 {
                            for (v, g) in drow[ix0..ix0 + srow.len()].iter_mut().zip(srow) {
                                *v += g;
                            }
                        } else {
                            for (k, g) in srow.iter().enumerate() {
                                drow[ix0 + k * sw] += g;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;

    /// The column entry for row `(c, i, j)` and column `(n, oy, ox)`, straight from the definition.
    fn naive_entry(
        d: &Conv2dDims,
        x: &[f32],
        c: usize,
        i: usize,
        j: usize,
        n: usize,
        oy: usize,
        ox: usize,
    ) -> f32 {
        let iy = (oy * d.stride[0] + i * d.dilation[0]) as isize - d.padding[0] as isize;
        let ix = (ox * d.stride[1] + j * d.dilation[1]) as isize - d.padding[1] as isize;
        if iy < 0 || ix < 0 || iy >= d.h as isize || ix >= d.w as isize {
            return 0.0;
        }
        x[((n * d.c_in + c) * d.h + iy as usize) * d.w + ix as usize]
    }

    #[test]
    fn im2col_matches_the_definition_and_col2im_is_its_transpose() -> Result<()> {
        let mut s = crate::philox::Stream::new(5, 0);
        // (n, c, h, w, kernel, stride, padding, dilation); the big one takes the two-core path.
        let cases = [
            (2, 3, 5, 7, [3, 2], [1, 2], [1, 0], [1, 2]),
            (1, 1, 4, 4, [4, 4], [1, 1], [0, 0], [1, 1]),
            (3, 2, 6, 5, [2, 3], [3, 2], [2, 1], [2, 1]),
            // The last tap column lies wholly in the right padding.
            (1, 1, 1, 3, [1, 4], [1, 1], [0, 2], [1, 2]),
            (8, 4, 28, 28, [3, 3], [1, 1], [1, 1], [1, 1]),
        ];
        for (n, c, h, w, k, st, pd, dl) in cases {
            let d = Conv2dDims::new(n, [c, h, w], 1, k, st, pd, dl, 1)?;
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|_| s.uniform_range(-1.0, 1.0))
                .collect();
            let np = d.positions();
            let mut col = vec![f32::NAN; d.col_rows() * np];
            im2col(&d, &x, &mut col);
            // <col, r> must equal <x, col2im(r)> for any r: col2im is im2col's adjoint.
            let r: Vec<f32> = (0..col.len()).map(|_| s.uniform_range(-1.0, 1.0)).collect();
            let mut dx = vec![f32::NAN; x.len()];
            col2im(&d, &r, &mut dx);
            let mut lhs = 0.0f64;
            for ci in 0..c {
                for i in 0..k[0] {
                    for j in 0..k[1] {
                        let row = (ci * k[0] + i) * k[1] + j;
                        for ni in 0..n {
                            for oy in 0..d.oh {
                                for ox in 0..d.ow {
                                    let at = row * np + (ni * d.oh + oy) * d.ow + ox;
                                    let want = naive_entry(&d, &x, ci, i, j, ni, oy, ox);
                                    assert_eq!(col[at], want, "{d:?}: row {row}, column {at}");
                                    lhs += col[at] as f64 * r[at] as f64;
                                }
                            }
                        }
                    }
                }
            }
            let rhs: f64 = x.iter().zip(&dx).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!(
                (lhs - rhs).abs() <= 1e-3 * (1.0 + lhs.abs()),
                "{d:?}: {lhs} vs {rhs}"
            );
        }
        Ok(())
    }
}
