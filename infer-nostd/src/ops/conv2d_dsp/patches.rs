//! The patches kernel (see `conv2d_dsp`): two output positions widened
//! side by side, every two output channels one pass of `dsp::dot2x2_all`.

#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
use super::super::dsp::{neg_pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
use super::super::lanes::{neg_pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
use super::bytes::patches_bytes;
use super::kernel::{pack, Geo, Out};
use crate::quant::{saturate, Requant};

/// The patches kernel (see the module comment for the layouts): two
/// output positions widened side by side, then two output channels at
/// a time, when `kg % 4 == 0` and the scratch holds both (`4 · kg`
/// bytes, what the exporter plans); otherwise [`patches_bytes`].
// Not inlined, like `rows`: each keeps its own frame, so the deepest
// stack is one of them, not their sum (the RAM report counts it).
#[inline(never)]
pub(super) fn patches(g: &Geo, x: &[i8], w: &[i8], out: &Out<'_>, work: &mut [u32], y: &mut [i8]) {
    let kg = g.cin_g * g.ay.k * g.ax.k;
    let (q, cout, ohw) = (kg / 4, w.len() / kg.max(1), g.ohw);
    let pairs = cout.div_ceil(2);
    // The weights as words: rows of `q` words when `kg % 4 == 0` and
    // the tensor is word-aligned (the format aligns tensors to 16).
    let ww: Option<&[u32]> = bytemuck::try_cast_slice(w).ok();
    // The scratch: the two widened patches (`kg` words), then per
    // channel pair its four sums and its two channels' (multiplier,
    // shift, bias), computed once here.
    let (wide, rest) = work.split_at_mut(kg.min(work.len()));
    let (acc, rest) = rest.split_at_mut((4 * pairs).min(rest.len()));
    let chans = rest.get_mut(..6 * pairs).unwrap_or_default();
    let (Some(ww), true) = (
        ww,
        kg.is_multiple_of(4) && q > 0 && chans.len() == 6 * pairs,
    ) else {
        return patches_bytes(g, x, w, out, work, y);
    };
    for (k, c) in chans.chunks_exact_mut(3).enumerate().take(cout) {
        let (m, b) = out.channel(k);
        if let ([m0, m1], [c0, c1, c2]) = (m.to_words(), c) {
            (*c0, *c1, *c2) = (m0, m1, b as u32);
        }
    }
    let (whole, odd) = ww.split_at((cout / 2 * 2 * q).min(ww.len()));
    let level = |c: &[u32], acc: u32| match *c {
        [m0, m1, b] => level_words([m0, m1], b as i32, acc as i32, out.zp),
        _ => 0,
    };
    for a in (0..ohw).step_by(2) {
        // An odd count pairs the last position with itself.
        let b = (a + 1).min(ohw - 1);
        gather_wide::<0>(g, x, a, wide);
        gather_wide::<2>(g, x, b, wide);
        dot2x2_all(wide, whole, q, acc);
        if let (false, Some(last)) = (odd.is_empty(), acc.chunks_exact_mut(4).last()) {
            // An odd channel count: the last channel with itself.
            let [a0, _, b0, _] = dot2x2_one(wide, odd, odd);
            last.copy_from_slice(&[a0 as u32, 0, b0 as u32, 0]);
        }
        let mut planes = y.chunks_exact_mut(ohw);
        for (s, c) in acc.chunks_exact(4).zip(chans.chunks_exact(6)) {
            let (&[a0, a1, b0, b1], (c0, c1)) = (s, c.split_at(3)) else {
                continue;
            };
            if let Some(p) = planes.next() {
                store(p, a, b, level(c0, a0), level(c0, b0));
            }
            if let Some(p) = planes.next() {
                store(p, a, b, level(c1, a1), level(c1, b1));
            }
        }
    }
}

/// One level from a channel's requantization as [`Requant::to_words`]
/// wrote it: [`Requant::levels`]' arithmetic for the usual shift
/// (33 and up) inline, anything else out of line, so that the loop
/// around it keeps its registers.
#[inline(always)]
pub(super) fn level_words([mult, shift]: [u32; 2], bias: i32, acc: i32, zp: i32) -> i8 {
    if (33..=62).contains(&shift) {
        let v = acc.wrapping_add(bias);
        let hi = ((i64::from(v) * i64::from(mult as i32)) >> 32) as i32;
        saturate((hi + (1i32 << (shift - 33))) >> (shift - 32), zp)
    } else {
        level_cold([mult, shift], bias, acc, zp)
    }
}

#[cold]
#[inline(never)]
pub(super) fn level_cold(m: [u32; 2], bias: i32, acc: i32, zp: i32) -> i8 {
    saturate(Requant::from_words(m).apply(acc.wrapping_add(bias)), zp)
}

#[cfg(test)]
#[test]
pub(super) fn level_words_and_levels_are_requant_apply_on_both_branches() {
    // Multipliers from 2^-40 to 2^31 (shifts above and below 33, the
    // zero and the saturated one), accumulators small and extreme.
    let accs = [-300, -1, 0, 1, 7, 300, 70_000, i32::MAX, i32::MIN];
    for m in [1e-12f32, 3e-5, 0.2, 0.3, 0.7, 1.5, 3e9] {
        let r = Requant::new(m);
        for b in [0, -5, 1000] {
            let want: [i8; 9] = accs.map(|a| saturate(r.apply(a.wrapping_add(b)), 3));
            let got = accs.map(|a| level_words(r.to_words(), b, a, 3));
            assert_eq!(got, want, "multiplier {m}, bias {b}");
            let mut y = [0i8; 9];
            r.levels(b, 3, &accs, &mut y);
            assert_eq!(y, want, "levels: multiplier {m}, bias {b}");
        }
    }
}

/// `va` at `a` and `vb` at `b` of one channel's plane (nothing when the
/// plane is empty: the odd channel's missing partner).
#[inline(always)]
pub(super) fn store(plane: &mut [i8], a: usize, b: usize, va: i8, vb: i8) {
    if let Some(o) = plane.get_mut(a) {
        *o = va;
    }
    if let Some(o) = plane.get_mut(b) {
        *o = vb;
    }
}

/// Widens the input patch of output position `at` into `wide`, in the
/// weight's (channel, ky, kx) order, minus the zero point (so padding
/// is 0): for group `j` of four taps `t0..t3`, word `4j + LANE` holds
/// `[t0, t2]` and word `4j + LANE + 1` holds `[t1, t3]`, the lanes
/// `SXTB16` and `SXTB16 ror 8` give a weight word. `LANE` 0 is the
/// first position of a pair, 2 the second. `kg % 4 == 0`.
pub(super) fn gather_wide<const LANE: usize>(g: &Geo, x: &[i8], at: usize, wide: &mut [u32]) {
    let ow = g.ow.max(1);
    let (oy, ox) = (at / ow, at % ow);
    let (iy0, ky0, ky1) = g.ay.taps(oy);
    let (ix0, kx0, kx1) = g.ax.taps(ox);
    let (kh, kw, dy, dx) = (g.ay.k, g.ax.k, g.ay.d, g.ax.d);
    if kw == 3 && kh == 3 && dx == 1 && kx0 <= 1 && kx1 >= 2 && g.cin_g.is_multiple_of(4) {
        if ky0 == 0 && ky1 == 3 && kx0 == 0 && kx1 == 3 {
            // No tap on padding (most positions): no test per row.
            let (base, dw) = (iy0 * g.w + ix0, g.ay.d * g.w);
            let row = |c: usize, ky: usize| load(x, base + c * g.hw + ky * dw);
            three_by_three::<LANE>(g, row, wide);
        } else {
            // At most one padding column on each side: a row is the
            // word at its first inside tap, moved up a byte when the
            // left column is padding, with the zero point in the
            // padding bytes; a row on padding is all zero point.
            let zp4 = u32::from(g.zp as u8) * 0x0101_0101;
            let (shl, col) = if kx0 == 0 {
                (0, ix0)
            } else {
                (8, ix0.wrapping_add(1))
            };
            let keep = match (kx0, kx1) {
                (0, 3) => 0x00ff_ffff,
                (0, _) => 0x0000_ffff,
                (_, 3) => 0x00ff_ff00,
                _ => 0x0000_ff00,
            };
            let row = |c: usize, ky: usize| {
                if ky < ky0 || ky >= ky1 {
                    return zp4;
                }
                let at = c * g.hw + iy0.wrapping_add(ky * g.ay.d) * g.w;
                ((load(x, at.wrapping_add(col)) << shl) & keep) | (zp4 & !keep)
            };
            three_by_three::<LANE>(g, row, wide);
        }
        return;
    }
    // Any geometry: tap by tap, four to a group.
    let (mut four, mut n) = ([0i32; 4], 0);
    let mut groups = wide.chunks_exact_mut(4);
    for c in 0..g.cin_g {
        for ky in 0..kh {
            let row_in = ky >= ky0 && ky < ky1;
            // Wrapping: on padding rows and columns the index is
            // never used.
            let row = (c * g.hw).wrapping_add(iy0.wrapping_add(ky * dy).wrapping_mul(g.w));
            for kx in 0..kw {
                let v = if row_in && kx >= kx0 && kx < kx1 {
                    x.get(row.wrapping_add(ix0.wrapping_add(kx * dx)))
                        .map_or(0, |&b| i32::from(b) - g.zp)
                } else {
                    0
                };
                if let Some(d) = four.get_mut(n) {
                    *d = v;
                }
                n += 1;
                if n == 4 {
                    n = 0;
                    let [t0, t1, t2, t3] = four;
                    if let Some([e, o]) = groups.next().and_then(|gw| gw.get_mut(LANE..LANE + 2)) {
                        (*e, *o) = (pack(t0, t2), pack(t1, t3));
                    }
                }
            }
        }
    }
}

/// [`gather_wide`] for a 3 × 3 kernel (stride any, column dilation 1),
/// given its kernel rows: `row(c, ky)` is row `ky` of channel `c` as
/// a word whose bytes 0..3 are its taps (padding as the zero point).
/// Four rows (12 taps) are three groups of four bytes, each widened by
/// `SXTAB16`, which also subtracts the zero point; four channels (36
/// taps) are nine groups, so every index is a constant.
#[inline(always)]
pub(super) fn three_by_three<const LANE: usize>(
    g: &Geo,
    row: impl Fn(usize, usize) -> u32,
    wide: &mut [u32],
) {
    let neg = neg_pair(g.zp);
    for (u, blk) in wide.chunks_exact_mut(36).enumerate() {
        let c = 4 * u;
        let r = [
            row(c, 0),
            row(c, 1),
            row(c, 2),
            row(c + 1, 0),
            row(c + 1, 1),
            row(c + 1, 2),
            row(c + 2, 0),
            row(c + 2, 1),
            row(c + 2, 2),
            row(c + 3, 0),
            row(c + 3, 1),
            row(c + 3, 2),
        ];
        for (rows, b) in r.chunks_exact(4).zip(blk.chunks_exact_mut(12)) {
            let &[r0, r1, r2, r3] = rows else { continue };
            // [a0 b0 c0 a1], [b1 c1 a2 b2], [c2 a3 b3 c3].
            let groups = [
                (r0 & 0x00ff_ffff) | (r1 << 24),
                ((r1 >> 8) & 0xffff) | (r2 << 16),
                ((r2 >> 16) & 0xff) | (r3 << 8),
            ];
            for (gw, v) in b.chunks_exact_mut(4).zip(groups) {
                if let Some([e, o]) = gw.get_mut(LANE..LANE + 2) {
                    (*e, *o) = (sxtab16(neg, v), sxtab16_ror8(neg, v));
                }
            }
        }
    }
}

/// The four bytes at `at` as a little-endian word (one unaligned load
/// on the M4); bytes past the input read as 0 (callers use at most
/// the first three, which lie inside).
#[inline(always)]
pub(super) fn load(x: &[i8], at: usize) -> u32 {
    match x.get(at..at.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => load_end(x, at),
    }
}

/// [`load`] at the input's last three bytes.
#[cold]
#[inline(never)]
pub(super) fn load_end(x: &[i8], at: usize) -> u32 {
    (0..3).fold(0, |w, i| {
        w | x
            .get(at.wrapping_add(i))
            .map_or(0, |&v| u32::from(v as u8) << (8 * i))
    })
}

/// Every channel pair of `w` (rows of `q` words) against the two
/// positions [`gather_wide`] put in `wide`: `acc[4k..4k + 4]` =
/// `[A·r2k, A·r2k+1, B·r2k, B·r2k+1]`.
#[inline(always)]
pub(super) fn dot2x2_all(wide: &[u32], w: &[u32], q: usize, acc: &mut [u32]) {
    let acc: &mut [i32] = bytemuck::cast_slice_mut(acc);
    #[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
    super::super::dsp::dot2x2_all(wide, w, q, acc);
    #[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
    for (rows, s) in w.chunks_exact(2 * q.max(1)).zip(acc.chunks_exact_mut(4)) {
        let (r0, r1) = rows.split_at(q);
        s.copy_from_slice(&dot2x2_one(wide, r0, r1));
    }
}

/// `[A·r0, A·r1, B·r0, B·r1]` for one pair of rows (the portable form
/// of `dsp::dot2x2_all`'s inner loop).
pub(super) fn dot2x2_one(wide: &[u32], r0: &[u32], r1: &[u32]) -> [i32; 4] {
    let mut acc = [0i32; 4];
    for (q, (&w0, &w1)) in wide.chunks_exact(4).zip(r0.iter().zip(r1)) {
        let &[ae, ao, be, bo] = q else { continue };
        let (e0, o0) = (sxtb16(w0), sxtb16_ror8(w0));
        let (e1, o1) = (sxtb16(w1), sxtb16_ror8(w1));
        let [a0, a1, b0, b1] = &mut acc;
        *a0 = smlad(ao, o0, smlad(ae, e0, *a0));
        *a1 = smlad(ao, o1, smlad(ae, e1, *a1));
        *b0 = smlad(bo, o0, smlad(be, e0, *b0));
        *b1 = smlad(bo, o1, smlad(be, e1, *b1));
    }
    acc
}
