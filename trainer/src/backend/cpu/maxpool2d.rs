//! MaxPool2d on the CPU: `x` is `(N*C, H, W)` planes, `y` and `argmax` are
//! `(N*C, OH, OW)`. The window of output `(oy, ox)` covers padded rows
//! `oy*sh .. oy*sh + kh` (input rows shifted by `ph`), clipped to the input:
//! padding is `-inf`, so it never wins, and PyTorch's `padding <= kernel / 2`
//! rule leaves every window at least one real element.

use super::threads;
use crate::backend::Pool2dDims;

/// From this many input elements on, a pass splits its planes over two
/// cores; the CNN's pools see 800 K and 400 K per batch.
const SPLIT_MIN: usize = 1 << 15;

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
    let planes = y.len() / plane_out.max(1);
    if planes < 2 || x.len() < SPLIT_MIN {
        return forward_planes(d, x, y, argmax);
    }
    // Planes are contiguous in x, y and argmax: each core pools its own.
    let h = planes / 2;
    let (x0, x1) = x.split_at(h * plane_in);
    let (y0, y1) = y.split_at_mut(h * plane_out);
    let (a0, a1) = argmax.split_at_mut(h * plane_out);
    threads::join(
        || forward_planes(d, x0, y0, a0),
        || forward_planes(d, x1, y1, a1),
    );
}

/// [`forward`] of the planes in `y`, on this thread.
fn forward_planes(d: &Pool2dDims, x: &[f32], y: &mut [f32], argmax: &mut [u32]) {
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
/// Compiled for AVX2 too: the selects then vectorize.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
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

/// [`backward`] then, with `gate`, [`relu_gate`] over `(x, scale)`, with
/// the planes split over two cores (each half zeroes, scatters and gates
/// its own planes). A fused one-pass 2x2 variant (each element written once)
/// measured 2.8x the instructions of these passes under callgrind, and was
/// dropped. Errors as [`backward`].
pub fn backward_gated(
    d: &Pool2dDims,
    dy: &[f32],
    argmax: &[u32],
    gate: Option<(&[f32], f32)>,
    dx: &mut [f32],
) -> Result<(), u32> {
    let run = |dy: &[f32], argmax: &[u32], gate: Option<(&[f32], f32)>, dx: &mut [f32]| {
        backward(d, dy, argmax, dx)?;
        if let Some((x, scale)) = gate {
            relu_gate(x, scale, dx);
        }
        Ok(())
    };
    let (plane_in, plane_out) = (d.h * d.w, d.oh * d.ow);
    let planes = dx.len() / plane_in.max(1);
    if plane_out == 0 || planes < 2 || dx.len() < SPLIT_MIN {
        return run(dy, argmax, gate, dx);
    }
    let h = planes / 2;
    let (dy0, dy1) = dy.split_at(h * plane_out);
    let (a0, a1) = argmax.split_at(h * plane_out);
    let (dx0, dx1) = dx.split_at_mut(h * plane_in);
    let (g0, g1) = match gate {
        Some((x, s)) => {
            let (x0, x1) = x.split_at(h * plane_in);
            (Some((x0, s)), Some((x1, s)))
        }
        None => (None, None),
    };
    let (mut r0, mut r1) = (Ok(()), Ok(()));
    threads::join(|| r0 = run(dy0, a0, g0, dx0), || r1 = run(dy1, a1, g1, dx1));
    r0.and(r1)
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

    /// The two-core path against the passes on one core, bit for bit: odd
    /// sizes (a row and a column no window covers), signed zeros, a NaN, with
    /// and without a gate, small and large batches; and an argmax moved to
    /// another window.
    #[test]
    fn the_split_backward_is_bit_identical_to_scatter_then_gate() -> Result<()> {
        for (n, c, h, w) in [(1, 2, 5, 7), (4, 16, 28, 28)] {
            let d = Pool2dDims::new(n, c, (h, w), (2, 2), (2, 2), (0, 0))?;
            let (ni, no) = (d.in_len(), d.out_len());
            let mut x: Vec<f32> = (0..ni).map(|i| (i as f32 * 0.61).sin()).collect();
            x[..4].copy_from_slice(&[0.0, -0.0, f32::NAN, 1.0]);
            let mut dy: Vec<f32> = (0..no).map(|i| (i as f32 * 0.37).cos()).collect();
            dy[0] = -0.0;
            let (mut y, mut a) = (vec![0.0; no], vec![0u32; no]);
            forward(&d, &x, &mut y, &mut a);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            for gate in [None, Some((&x[..], 1.0)), Some((&x[..], 1.25))] {
                let mut want = vec![f32::NAN; ni];
                assert_eq!(backward(&d, &dy, &a, &mut want), Ok(()));
                if let Some((x, s)) = gate {
                    relu_gate(x, s, &mut want);
                }
                let mut got = vec![f32::NAN; ni];
                assert_eq!(backward_gated(&d, &dy, &a, gate, &mut got), Ok(()));
                assert_eq!(bits(&got), bits(&want), "{d:?}");
            }
            // Winner moved to another window of the same plane: the scatter's answer.
            let mut bad = a.clone();
            bad[0] = a[1];
            let mut want = vec![0.0; ni];
            assert_eq!(backward(&d, &dy, &bad, &mut want), Ok(()));
            let mut got = vec![f32::NAN; ni];
            assert_eq!(backward_gated(&d, &dy, &bad, None, &mut got), Ok(()));
            assert_eq!(bits(&got), bits(&want));
        }
        Ok(())
    }
}
