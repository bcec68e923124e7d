//! The rows kernel (see `conv2d_dsp`): one input channel, at most 16
//! taps, one output row of widened patches at a time.

#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
use super::super::dsp::smlad;
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
use super::super::lanes::smlad;
use super::kernel::{pack, Chans, Geo, Out, CHAN_BLOCK, ROW_TAPS};
use crate::quant::Requant;

/// The rows kernel (see the module comment), for one input channel
/// and at most [`ROW_TAPS`] taps. `work` holds one output row of
/// widened patches, `⌈kk/2⌉` words each, taps in natural order.
#[inline(never)]
pub(super) fn rows(g: &Geo, x: &[i8], w: &[i8], out: &Out<'_>, work: &mut [u32], y: &mut [i8]) {
    let (kh, kw) = (g.ay.k, g.ax.k.max(1));
    let kk = (kh * kw).max(1);
    let pairs = kk.div_ceil(2).max(1);
    let Some(row) = work.get_mut(..g.ow * pairs) else {
        return;
    };
    let chans = Chans::new(out, 0, (w.len() / kk).min(CHAN_BLOCK));
    let mut acc = [0i32; RUN];
    for oy in 0..g.ohw / g.ow.max(1) {
        let (iy0, ky0, ky1) = g.ay.taps(oy);
        for (ox, patch) in row.chunks_exact_mut(pairs).enumerate() {
            let (ix0, kx0, kx1) = g.ax.taps(ox);
            if let (true, Ok([p0, p1, p2, p3, p4])) = (
                ky0 == 0 && ky1 == 3 && kx0 == 0 && kx1 == 3 && g.ay.d == 1 && g.ax.d == 1,
                <&mut [u32; 5]>::try_from(&mut *patch),
            ) {
                // The usual 3 × 3 kernel away from the border: three
                // bytes from each of three rows, nine taps in five pairs.
                let o = iy0 * g.w + ix0;
                let (r0, r1, r2) = (
                    x.get(o..o + 3),
                    x.get(o + g.w..o + g.w + 3),
                    x.get(o + 2 * g.w..o + 2 * g.w + 3),
                );
                if let (Some(&[a, b, c]), Some(&[d, e, f]), Some(&[h, i, j])) = (r0, r1, r2) {
                    let t = |v: i8| i32::from(v) - g.zp;
                    (*p0, *p1, *p2, *p3, *p4) = (
                        pack(t(a), t(b)),
                        pack(t(c), t(d)),
                        pack(t(e), t(f)),
                        pack(t(h), t(i)),
                        pack(t(j), 0),
                    );
                    continue;
                }
            }
            let tap = |k: usize| {
                let (ky, kx) = (k / kw, k % kw);
                if k >= kk || ky < ky0 || ky >= ky1 || kx < kx0 || kx >= kx1 {
                    return 0;
                }
                let at = iy0.wrapping_add(ky * g.ay.d) * g.w + ix0.wrapping_add(kx * g.ax.d);
                x.get(at).map_or(0, |&v| i32::from(v) - g.zp)
            };
            for (j, v) in patch.iter_mut().enumerate() {
                *v = pack(tap(2 * j), tap(2 * j + 1));
            }
        }
        for (oc, w_oc) in w.chunks_exact(kk).enumerate() {
            let mut wp = [0u32; ROW_TAPS / 2];
            for (j, v) in wp.iter_mut().enumerate().take(pairs) {
                let at = |k: usize| w_oc.get(k).map_or(0, |&b| i32::from(b));
                *v = pack(at(2 * j), at(2 * j + 1));
            }
            let Some(y_row) = y.get_mut(oc * g.ohw + oy * g.ow..oc * g.ohw + (oy + 1) * g.ow)
            else {
                return;
            };
            let c = if oc < CHAN_BLOCK {
                chans.get(oc)
            } else {
                out.channel(oc)
            };
            match pairs {
                5 => run_row::<5>(row, &wp, out, c, &mut acc, y_row),
                _ => run_row_any(row, &wp, pairs, out, c, y_row),
            }
        }
    }
}

/// Outputs per run of [`run_row`] (its sums sit on the stack).
pub(super) const RUN: usize = 32;

/// One channel along one output row, `P` weight pairs in registers:
/// sums first, then levels, [`RUN`] outputs at a time, so that each
/// loop keeps its values in registers (one loop doing both spilled the
/// weights: 27 instructions per output).
#[inline(always)]
pub(super) fn run_row<const P: usize>(
    row: &[u32],
    wp: &[u32; ROW_TAPS / 2],
    out: &Out<'_>,
    c: (Requant, i32),
    acc: &mut [i32; RUN],
    y: &mut [i8],
) {
    let mut w = [0u32; P];
    for (d, &s) in w.iter_mut().zip(wp) {
        *d = s;
    }
    for (patches, y) in row.chunks(P * RUN).zip(y.chunks_mut(RUN)) {
        sums::<P>(patches, &w, acc);
        let (m, b) = c;
        m.levels(b, out.zp, acc, y);
    }
}

/// `acc[i]` = patch `i` of `patches` against the `P` weight pairs.
#[inline(always)]
pub(super) fn sums<const P: usize>(patches: &[u32], w: &[u32; P], acc: &mut [i32; RUN]) {
    #[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
    if let Ok(w5) = <&[u32; 5]>::try_from(&w[..]) {
        super::super::dsp::dot5_run(patches, w5, acc);
        return;
    }
    for (patch, a) in patches.chunks_exact(P).zip(acc.iter_mut()) {
        let mut s = 0i32;
        for (&xv, &wv) in patch.iter().zip(w) {
            s = smlad(xv, wv, s);
        }
        *a = s;
    }
}

/// [`run_row`] for any pair count.
pub(super) fn run_row_any(
    row: &[u32],
    wp: &[u32; ROW_TAPS / 2],
    pairs: usize,
    out: &Out<'_>,
    c: (Requant, i32),
    y: &mut [i8],
) {
    for (patch, o) in row.chunks_exact(pairs.max(1)).zip(y.iter_mut()) {
        let mut acc = 0i32;
        for (&xv, &wv) in patch.iter().zip(wp) {
            acc = smlad(xv, wv, acc);
        }
        *o = out.level(c, acc);
    }
}
