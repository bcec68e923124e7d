//! MaxPool2d on the CPU: `x` is `(N*C, H, W)` planes, `y` and `argmax` are
//! `(N*C, OH, OW)`. The window of output `(oy, ox)` covers padded rows
//! `oy*sh .. oy*sh + kh` (input rows shifted by `ph`), clipped to the input:
//! padding is `-inf`, so it never wins, and PyTorch's `padding <= kernel / 2`
//! rule leaves every window at least one real element.

use crate::backend::Pool2dDims;

/// The input range `[start, end)` that window `o` covers along one axis.
#[inline]
pub(crate) fn window(o: usize, k: usize, s: usize, p: usize, len: usize) -> (usize, usize) {
    // Padded coordinates `o*s .. o*s + k`, shifted back by `p`; `k >= p`
    // always (padding <= kernel / 2), so the end never underflows.
    let start = (o * s).saturating_sub(p);
    let end = (o * s + k - p).min(len);
    (start, end)
}

/// `y[o] = max(window(o))`, `argmax[o] = ih * W + iw` of the first maximum in
/// row-major window order. NaN wins and a later NaN replaces an earlier one,
/// as in PyTorch's CPU kernel (`val > max || isnan(val)`).
pub fn forward(d: &Pool2dDims, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
    let (plane_in, plane_out) = (d.h * d.w, d.oh * d.ow);
    if plane_in == 0 || plane_out == 0 {
        return;
    }
    let planes = x
        .chunks_exact(plane_in)
        .zip(y.chunks_exact_mut(plane_out))
        .zip(argmax.chunks_exact_mut(plane_out));
    let two_by_two = (d.kh, d.kw, d.sh, d.sw, d.ph, d.pw) == (2, 2, 2, 2, 0, 0);
    for ((xp, yp), ap) in planes {
        if two_by_two {
            forward_2x2(d, xp, yp, ap);
            continue;
        }
        for oy in 0..d.oh {
            let (y0, y1) = window(oy, d.kh, d.sh, d.ph, d.h);
            let row = oy * d.ow;
            for ox in 0..d.ow {
                let (x0, x1) = window(ox, d.kw, d.sw, d.pw, d.w);
                // PyTorch starts from -inf at the first real position, so an
                // all -inf window reports that position.
                let mut best = f32::NEG_INFINITY;
                let mut at = y0 * d.w + x0;
                for iy in y0..y1 {
                    let line = iy * d.w;
                    for (i, &v) in xp[line + x0..line + x1].iter().enumerate() {
                        if v > best || v.is_nan() {
                            best = v;
                            at = line + x0 + i;
                        }
                    }
                }
                yp[row + ox] = best;
                ap[row + ox] = at as u32;
            }
        }
    }
}

/// The CNN's MaxPool2d(2): four candidates per output, compared with selects
/// instead of branches. The generic loop's data-dependent branches
/// mispredicted on about half the windows and made pooling the slowest op of
/// a CNN step. Same first-maximum-in-row-major-order and NaN rules.
fn forward_2x2(d: &Pool2dDims, xp: &[f32], yp: &mut [f32], ap: &mut [u32]) {
    let w = d.w;
    for oy in 0..d.oh {
        let top = 2 * oy * w;
        let (r0, r1) = (&xp[top..top + w], &xp[top + w..top + 2 * w]);
        let (yr, ar) = (
            &mut yp[oy * d.ow..(oy + 1) * d.ow],
            &mut ap[oy * d.ow..(oy + 1) * d.ow],
        );
        for ox in 0..d.ow {
            let c = 2 * ox;
            let (mut best, mut at) = (r0[c], (top + c) as u32);
            let cands = [
                (r0[c + 1], top + c + 1),
                (r1[c], top + w + c),
                (r1[c + 1], top + w + c + 1),
            ];
            for (v, i) in cands {
                // Bit masks, not `if`: the compiler kept a branch for the
                // `bool` select, and it mispredicted as often as the loop's.
                let t = (v > best) | v.is_nan();
                let mask = 0u32.wrapping_sub(t as u32);
                best = f32::from_bits((best.to_bits() & !mask) | (v.to_bits() & mask));
                at = (at & !mask) | (i as u32 & mask);
            }
            yr[ox] = best;
            ar[ox] = at;
        }
    }
}

/// `dx = 0`, then `dx[argmax[o]] += dy[o]` in each plane. Returns the first
/// index that lies outside its plane (a corrupt `argmax`), leaving `dx` partly
/// written.
pub fn backward(d: &Pool2dDims, dy: &[f32], argmax: &[u32], dx: &mut [f32]) -> Result<(), u32> {
    dx.fill(0.0);
    let (plane_in, plane_out) = (d.h * d.w, d.oh * d.ow);
    if plane_in == 0 || plane_out == 0 {
        return Ok(());
    }
    let planes = dx
        .chunks_exact_mut(plane_in)
        .zip(dy.chunks_exact(plane_out))
        .zip(argmax.chunks_exact(plane_out));
    for ((dxp, dyp), ap) in planes {
        for (&g, &i) in dyp.iter().zip(ap) {
            match dxp.get_mut(i as usize) {
                Some(v) => *v += g,
                None => return Err(i),
            }
        }
    }
    Ok(())
}

/// The backward of the ReLU (and Dropout) before the pool, absorbed:
/// `dx = x > 0 ? dx * scale : 0`, with `x` the pool's forward input. The
/// ReLU layer's own `x > 0 ? dy : 0` after the Dropout's `dy * scale`, so
/// the fused op is bit-identical to the separate ones (`scale` 1: exact).
pub fn relu_gate(x: &[f32], scale: f32, dx: &mut [f32]) {
    for (dx, &x) in dx.iter_mut().zip(x) {
        *dx = if x > 0.0 { *dx * scale } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Result;

    #[test]
    fn ties_go_to_the_first_maximum_and_padding_never_wins() -> Result<()> {
        // One 2x3 plane, kernel 2, stride 1, padding 1: 3x4 outputs.
        let d = Pool2dDims::new(1, 1, (2, 3), (2, 2), (1, 1), (1, 1))?;
        let x = [-5.0, -5.0, -7.0, -5.0, -9.0, -9.0];
        let (mut y, mut a) = (vec![0.0; 12], vec![0u32; 12]);
        forward(&d, &x, &mut y, &mut a);
        // Corner windows see one real element; the rest take the first -5.
        assert_eq!(
            y,
            [-5.0, -5.0, -5.0, -7.0, -5.0, -5.0, -5.0, -7.0, -5.0, -5.0, -9.0, -9.0]
        );
        assert_eq!(a, [0, 0, 1, 2, 0, 0, 1, 2, 3, 3, 4, 5]);
        Ok(())
    }

    #[test]
    fn nan_propagates_like_pytorch() -> Result<()> {
        let d = Pool2dDims::new(1, 1, (1, 4), (1, 4), (1, 1), (0, 0))?;
        let x = [1.0, f32::NAN, 3.0, 2.0];
        let (mut y, mut a) = (vec![0.0; 1], vec![0u32; 1]);
        forward(&d, &x, &mut y, &mut a);
        assert!(y[0].is_nan());
        assert_eq!(a, [1]);
        Ok(())
    }

    #[test]
    fn backward_scatters_overlapping_windows_and_refuses_a_corrupt_index() -> Result<()> {
        let d = Pool2dDims::new(1, 1, (1, 3), (1, 2), (1, 1), (0, 0))?;
        let mut dx = vec![9.0; 3];
        assert_eq!(backward(&d, &[1.0, 2.0], &[1, 1], &mut dx), Ok(()));
        assert_eq!(dx, [0.0, 3.0, 0.0]);
        assert_eq!(backward(&d, &[1.0, 2.0], &[1, 3], &mut dx), Err(3));
        Ok(())
    }
}
