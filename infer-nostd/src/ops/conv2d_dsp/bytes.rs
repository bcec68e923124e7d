//! The patches kernel with the patches kept as bytes and widened inside
//! the dot product: for `kg % 4 != 0` or a file planned for one patch.

#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
use super::super::dsp::{neg_pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
use super::super::lanes::{neg_pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
use super::kernel::{Geo, Out};

/// The patches kernel's layouts with the patches kept as bytes: when
/// `kg % 4 != 0` or the scratch has no room for a widened patch.
#[inline(never)]
pub(super) fn patches_bytes(
    g: &Geo,
    x: &[i8],
    w: &[i8],
    out: &Out<'_>,
    work: &mut [u32],
    y: &mut [i8],
) {
    let kg = g.cin_g * g.ay.k * g.ax.k;
    let quads = kg.div_ceil(4);
    let neg = neg_pair(g.zp);
    let cout = w.len() / kg.max(1);
    // The block of output channels `i`, `i + 1` at positions `pa`, `pb`.
    let block = |y: &mut [i8], i: usize, pa: usize, pb: usize, [a0, a1, b0, b1]: [i32; 4]| {
        let c = out.channel(i);
        put(y, g.ohw, i, pa, pb, [out.level(c, a0), out.level(c, b0)]);
        if i + 1 < cout {
            let c = out.channel(i + 1);
            put(
                y,
                g.ohw,
                i + 1,
                pa,
                pb,
                [out.level(c, a1), out.level(c, b1)],
            );
        }
    };
    // Rows taken two at a time; an odd count pairs the last with itself.
    let pairs = |i: usize| {
        let r0 = w.get(i * kg..(i + 1) * kg).unwrap_or_default();
        let r1 = w.get((i + 1) * kg..(i + 2) * kg).unwrap_or(r0);
        (r0, r1)
    };
    if work.len() >= 2 * quads {
        let (a, b) = work.split_at_mut(quads.min(work.len()));
        let b = b.get_mut(..quads).unwrap_or_default();
        for pa in (0..g.ohw).step_by(2) {
            let pb = (pa + 1).min(g.ohw - 1);
            gather(g, x, pa, bytemuck::cast_slice_mut(a));
            gather(g, x, pb, bytemuck::cast_slice_mut(b));
            for i in (0..cout).step_by(2) {
                let (r0, r1) = pairs(i);
                block(y, i, pa, pb, dot2x2_bytes(a, b, neg, r0, r1));
            }
        }
        return;
    }
    // One patch, one position at a time.
    let Some(a) = work.get_mut(..quads) else {
        return;
    };
    for at in 0..g.ohw {
        gather(g, x, at, bytemuck::cast_slice_mut(a));
        for i in (0..cout).step_by(2) {
            let (r0, r1) = pairs(i);
            block(y, i, at, at, dot2x2_bytes(a, a, neg, r0, r1));
        }
    }
}

/// Writes channel `oc`'s levels at positions `pa` and `pb`.
#[inline(always)]
pub(super) fn put(y: &mut [i8], ohw: usize, oc: usize, pa: usize, pb: usize, v: [i8; 2]) {
    if let Some(o) = y.get_mut(oc * ohw + pa) {
        *o = v[0];
    }
    if let Some(o) = y.get_mut(oc * ohw + pb) {
        *o = v[1];
    }
}

/// Copies the input patch of output position `at` into `stage` as
/// bytes, in the weight's (channel, ky, kx) order; taps on padding and
/// the bytes past the patch get the zero point, which widening turns
/// into 0.
pub(super) fn gather(g: &Geo, x: &[i8], at: usize, stage: &mut [u8]) {
    let ow = g.ow.max(1);
    let (oy, ox) = (at / ow, at % ow);
    let (iy0, ky0, ky1) = g.ay.taps(oy);
    let (ix0, kx0, kx1) = g.ax.taps(ox);
    let (kh, kw, dy, dx) = (g.ay.k, g.ax.k, g.ay.d, g.ax.d);
    let zp = g.zp as u8;
    let kg = g.cin_g * kh * kw;
    let (patch, past) = stage.split_at_mut(kg.min(stage.len()));
    past.fill(zp);
    let inside = ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw;
    if inside && dx == 1 && kw == 3 {
        // Most positions of the usual 3 × 3 kernel: three bytes per
        // kernel row, no tap on padding.
        let mut o = 0;
        for c in 0..g.cin_g {
            let mut at = c * g.hw + iy0 * g.w + ix0;
            for _ in 0..kh {
                if let (Some([d0, d1, d2]), Some(&[a, b, e])) =
                    (patch.get_mut(o..o + 3), x.get(at..at + 3))
                {
                    (*d0, *d1, *d2) = (a as u8, b as u8, e as u8);
                }
                o += 3;
                at += dy * g.w;
            }
        }
        return;
    }
    let mut dst = patch.chunks_exact_mut(kw.max(1));
    for c in 0..g.cin_g {
        for ky in 0..kh {
            let Some(d) = dst.next() else {
                return;
            };
            if ky < ky0 || ky >= ky1 {
                d.fill(zp);
                continue;
            }
            let row = c * g.hw + iy0.wrapping_add(ky * dy) * g.w;
            for (kx, v) in d.iter_mut().enumerate() {
                *v = if kx >= kx0 && kx < kx1 {
                    x.get(row + ix0.wrapping_add(kx * dx))
                        .map_or(zp, |&b| b as u8)
                } else {
                    zp
                };
            }
        }
    }
}

/// `[A·r0, A·r1, B·r0, B·r1]` for two patches as bytes (`a`, `b`), widened here:
/// `SXTAB16` adds `neg` (`−zp` in both lanes) while it widens.
#[inline(never)]
pub(super) fn dot2x2_bytes(a: &[u32], b: &[u32], neg: u32, r0: &[i8], r1: &[i8]) -> [i32; 4] {
    let (mut a0, mut a1, mut b0, mut b1) = (0i32, 0i32, 0i32, 0i32);
    let (w0s, w1s) = (r0.chunks_exact(4), r1.chunks_exact(4));
    let (t0, t1) = (tail_word(w0s.remainder()), tail_word(w1s.remainder()));
    let mut xs = a.iter().zip(b);
    let mut mac = |w0: u32, w1: u32, xa: u32, xb: u32| {
        let (ae, ao) = (sxtab16(neg, xa), sxtab16_ror8(neg, xa));
        let (e, o) = (sxtb16(w0), sxtb16_ror8(w0));
        a0 = smlad(ao, o, smlad(ae, e, a0));
        let (e1, o1) = (sxtb16(w1), sxtb16_ror8(w1));
        a1 = smlad(ao, o1, smlad(ae, e1, a1));
        let (be, bo) = (sxtab16(neg, xb), sxtab16_ror8(neg, xb));
        b0 = smlad(bo, o, smlad(be, e, b0));
        b1 = smlad(bo, o1, smlad(be, e1, b1));
    };
    for ((w0, w1), (&xa, &xb)) in w0s.zip(w1s).zip(xs.by_ref()) {
        mac(word(w0), word(w1), xa, xb);
    }
    if let Some((&xa, &xb)) = xs.next() {
        mac(t0, t1, xa, xb);
    }
    [a0, a1, b0, b1]
}

/// Four bytes as a little-endian word (an unaligned load on the M4).
#[inline(always)]
pub(super) fn word(b: &[i8]) -> u32 {
    match *b {
        [a, b, c, d, ..] => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => 0,
    }
}

/// Up to three bytes as a word, zero-padded.
#[inline(always)]
pub(super) fn tail_word(b: &[i8]) -> u32 {
    b.iter()
        .rev()
        .fold(0u32, |acc, &v| (acc << 8) | u32::from(v as u8))
}
