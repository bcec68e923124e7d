//! The Cortex-M4 int8 Conv2d (feature `arm-dsp`): the same integers as
//! the portable kernel in `conv2d.rs` (each output is the wrapping `i32`
//! sum of exact products `(x − zp_x) · w` plus the bias, requantized by the
//! channel's [`Requant`]), computed with `SMLAD`, two products per
//! instruction. The sums are the same in any order, so the kernels are free
//! to pick theirs.
//!
//! Two kernels, chosen by the geometry:
//! - **Rows** (one input channel per group and at most 16 taps, such as
//!   an image's first layer): one output row's patches are widened once
//!   (`ow · ⌈kk/2⌉` words), then each channel's few weights stay in
//!   registers along the row.
//! - **Patches** (the rest), a partial im2col: the input patches of two
//!   output positions are widened side by side into `i16` lanes minus the
//!   zero point (whole kernel rows at a time when no tap falls on padding,
//!   most positions; padding is the zero point, so it widens to 0), in the
//!   lane order `SXTB16` gives a weight word, so the weights are widened
//!   in registers and each feeds both positions: every two output
//!   channels are one pass of `dsp::dot2x2_wide` over the pair, 15
//!   instructions per 16 multiply-accumulates.
//!
//! The exporter plans scratch for two widened patches
//! ([`crate::scratch_bytes_int8`]: the larger of the portable kernel's
//! `i32` row, a row of one-channel patches, and `4 · kg` bytes for a
//! `kg`-tap patch). Files planned for one patch
//! ([`crate::scratch_min_bytes_int8`]) and patches with `kg % 4 != 0` run
//! with the patches kept as bytes and widened inside the dot product, two
//! positions at a time if they fit, else one (slower, but the engine never
//! runs with less room than one).
//!
//! On the host (tests only) the DSP instructions are replaced by portable
//! functions with the same lane arithmetic, so the unit tests run these
//! very loops against the portable kernel on every geometry class and
//! every scratch layout.

#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
pub(crate) use kernel::forward_i8;

#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
mod kernel {
    use super::super::conv2d::Conv2d;
    use super::super::WeightScale;

    /// Taps of a one-channel kernel up to which the rows kernel runs (its
    /// weights, at most 8 pairs, stay in registers).
    const ROW_TAPS: usize = 16;
    use crate::quant::{saturate, QParams, Requant};

    #[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
    use super::super::dsp::{neg_pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};
    #[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
    use super::lanes::{neg_pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};

    /// The geometry along one axis: kernel, stride, padding, dilation,
    /// input length.
    #[derive(Clone, Copy)]
    struct Axis {
        k: usize,
        s: usize,
        p: usize,
        d: usize,
        n: usize,
    }

    impl Axis {
        /// For output `o`: the input index of tap 0 (wrapped when it lies
        /// in the padding) and the taps `lo..hi` that land inside the input.
        #[inline(always)]
        fn taps(&self, o: usize) -> (usize, usize, usize) {
            let start = o * self.s;
            let lo = if self.p > start {
                (self.p - start).div_ceil(self.d.max(1))
            } else {
                0
            };
            let hi = if self.n + self.p > start {
                (self.n + self.p - start).div_ceil(self.d.max(1))
            } else {
                0
            };
            let (lo, hi) = (lo.min(self.k), hi.min(self.k));
            (start.wrapping_sub(self.p), lo, hi.max(lo))
        }
    }

    /// One group's input geometry.
    struct Geo {
        ay: Axis,
        ax: Axis,
        cin_g: usize,
        hw: usize,
        w: usize,
        ow: usize,
        ohw: usize,
        zp: i32,
    }

    /// One group's requantization.
    struct Out<'a> {
        ratio: f32,
        scale: WeightScale<'a>,
        /// First output channel of the group.
        oc0: usize,
        bias: Option<&'a [i32]>,
        zp: i32,
    }

    impl Out<'_> {
        /// Channel `oc`'s (within the group) multiplier and bias: the
        /// portable kernel's `Requant::new(ratio · s_w[oc])`.
        #[inline(always)]
        fn channel(&self, oc: usize) -> (Requant, i32) {
            let b = self.bias.and_then(|b| b.get(self.oc0 + oc)).copied();
            (
                Requant::new(self.ratio * self.scale.of(self.oc0 + oc)),
                b.unwrap_or(0),
            )
        }

        #[inline(always)]
        fn level(&self, (m, b): (Requant, i32), acc: i32) -> i8 {
            saturate(m.apply(acc.wrapping_add(b)), self.zp)
        }
    }

    /// Output channels whose requantization [`Chans`] holds at once for
    /// the rows kernel (12 bytes of stack each; past them it computes a
    /// channel's once per output row).
    const CHAN_BLOCK: usize = 16;

    /// Channels `first..first + n`'s multipliers and biases, computed once
    /// per call: computed per output, they cost more than the 9
    /// multiply-accumulates of a first layer's output.
    struct Chans {
        m: [Requant; CHAN_BLOCK],
        b: [i32; CHAN_BLOCK],
    }

    impl Chans {
        fn new(out: &Out<'_>, first: usize, n: usize) -> Chans {
            let mut c = Chans {
                // Multiplier 0 (shift 1, a valid `apply`) past `n`.
                m: [Requant::new(0.0); CHAN_BLOCK],
                b: [0; CHAN_BLOCK],
            };
            for (k, (m, b)) in c.m.iter_mut().zip(c.b.iter_mut()).enumerate().take(n) {
                (*m, *b) = out.channel(first + k);
            }
            c
        }

        #[inline(always)]
        fn get(&self, k: usize) -> (Requant, i32) {
            match (self.m.get(k), self.b.get(k)) {
                (Some(&m), Some(&b)) => (m, b),
                _ => (Requant::new(0.0), 0),
            }
        }
    }

    /// See the module comment; `scratch` is what the plan reserved.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_i8(
        p: &Conv2d,
        (qx, qy): (QParams, QParams),
        x: &[i8],
        weight: &[i8],
        scale: WeightScale<'_>,
        bias: Option<&[i32]>,
        scratch: &mut [u32],
        y: &mut [i8],
    ) {
        let win = &p.window;
        let axis = |a: usize, n: usize| {
            let at = |v: [u8; 2]| usize::from(v.get(a).copied().unwrap_or(1));
            Axis {
                k: at(win.kernel),
                s: at(win.stride).max(1),
                p: at(win.padding),
                d: at(win.dilation).max(1),
                n,
            }
        };
        let (ay, ax) = (axis(0, p.h), axis(1, p.w));
        let groups = p.groups.max(1);
        let (cin_g, cout_g) = (p.in_channels / groups, p.out_channels / groups);
        let (hw, ohw, kk) = (p.h * p.w, p.oh * p.ow, ay.k * ax.k);
        let kg = cin_g * kk;
        if [hw, ohw, kg, cout_g, p.ow].contains(&0) {
            return;
        }
        let geo = Geo {
            ay,
            ax,
            cin_g,
            hw,
            w: p.w,
            ow: p.ow,
            ohw,
            zp: qx.zero_point,
        };
        for g in 0..groups {
            let (Some(x_g), Some(w_g), Some(y_g)) = (
                x.get(g * cin_g * hw..(g + 1) * cin_g * hw),
                weight.get(g * cout_g * kg..(g + 1) * cout_g * kg),
                y.get_mut(g * cout_g * ohw..(g + 1) * cout_g * ohw),
            ) else {
                return;
            };
            let out = Out {
                ratio: qx.scale / qy.scale,
                scale,
                oc0: g * cout_g,
                bias,
                zp: qy.zero_point,
            };
            if cin_g == 1 && kk <= ROW_TAPS && p.ow * kk.div_ceil(2) <= scratch.len() {
                rows(&geo, x_g, w_g, &out, scratch, y_g);
            } else {
                patches(&geo, x_g, w_g, &out, scratch, y_g);
            }
        }
    }

    /// The patches kernel (see the module comment for the layouts): two
    /// output positions widened side by side, then two output channels at
    /// a time, when `kg % 4 == 0` and the scratch holds both (`4 · kg`
    /// bytes, what the exporter plans); otherwise [`patches_bytes`].
    // Not inlined, like `rows`: each keeps its own frame, so the deepest
    // stack is one of them, not their sum (the RAM report counts it).
    #[inline(never)]
    fn patches(g: &Geo, x: &[i8], w: &[i8], out: &Out<'_>, work: &mut [u32], y: &mut [i8]) {
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
    fn level_words([mult, shift]: [u32; 2], bias: i32, acc: i32, zp: i32) -> i8 {
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
    fn level_cold(m: [u32; 2], bias: i32, acc: i32, zp: i32) -> i8 {
        saturate(Requant::from_words(m).apply(acc.wrapping_add(bias)), zp)
    }

    #[cfg(test)]
    #[test]
    fn level_words_and_levels_are_requant_apply_on_both_branches() {
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
    fn store(plane: &mut [i8], a: usize, b: usize, va: i8, vb: i8) {
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
    fn gather_wide<const LANE: usize>(g: &Geo, x: &[i8], at: usize, wide: &mut [u32]) {
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
                        if let Some([e, o]) =
                            groups.next().and_then(|gw| gw.get_mut(LANE..LANE + 2))
                        {
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
    fn three_by_three<const LANE: usize>(
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
    fn load(x: &[i8], at: usize) -> u32 {
        match x.get(at..at.wrapping_add(4)) {
            Some(&[a, b, c, d]) => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
            _ => load_end(x, at),
        }
    }

    /// [`load`] at the input's last three bytes.
    #[cold]
    #[inline(never)]
    fn load_end(x: &[i8], at: usize) -> u32 {
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
    fn dot2x2_all(wide: &[u32], w: &[u32], q: usize, acc: &mut [u32]) {
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
    fn dot2x2_one(wide: &[u32], r0: &[u32], r1: &[u32]) -> [i32; 4] {
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

    /// The patches kernel's layouts with the patches kept as bytes: when
    /// `kg % 4 != 0` or the scratch has no room for a widened patch.
    #[inline(never)]
    fn patches_bytes(g: &Geo, x: &[i8], w: &[i8], out: &Out<'_>, work: &mut [u32], y: &mut [i8]) {
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
    fn put(y: &mut [i8], ohw: usize, oc: usize, pa: usize, pb: usize, v: [i8; 2]) {
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
    fn gather(g: &Geo, x: &[i8], at: usize, stage: &mut [u8]) {
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
    fn dot2x2_bytes(a: &[u32], b: &[u32], neg: u32, r0: &[i8], r1: &[i8]) -> [i32; 4] {
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
    fn word(b: &[i8]) -> u32 {
        match *b {
            [a, b, c, d, ..] => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
            _ => 0,
        }
    }

    /// Up to three bytes as a word, zero-padded.
    #[inline(always)]
    fn tail_word(b: &[i8]) -> u32 {
        b.iter()
            .rev()
            .fold(0u32, |acc, &v| (acc << 8) | u32::from(v as u8))
    }

    /// The rows kernel (see the module comment), for one input channel
    /// and at most [`ROW_TAPS`] taps. `work` holds one output row of
    /// widened patches, `⌈kk/2⌉` words each, taps in natural order.
    #[inline(never)]
    fn rows(g: &Geo, x: &[i8], w: &[i8], out: &Out<'_>, work: &mut [u32], y: &mut [i8]) {
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
    const RUN: usize = 32;

    /// One channel along one output row, `P` weight pairs in registers:
    /// sums first, then levels, [`RUN`] outputs at a time, so that each
    /// loop keeps its values in registers (one loop doing both spilled the
    /// weights: 27 instructions per output).
    #[inline(always)]
    fn run_row<const P: usize>(
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
    fn sums<const P: usize>(patches: &[u32], w: &[u32; P], acc: &mut [i32; RUN]) {
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
    fn run_row_any(
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

    /// Two `i16` values as one word of lanes `[lo, hi]`.
    #[inline(always)]
    fn pack(lo: i32, hi: i32) -> u32 {
        (lo as u32 & 0xffff) | ((hi as u32) << 16)
    }
}

/// The DSP instructions' lane arithmetic in portable Rust, so that the
/// host tests run the kernels above (ARM ARM A7.7: SXTAB16, SXTB16,
/// SMLAD).
#[cfg(all(test, not(all(feature = "arm-dsp", target_arch = "arm"))))]
mod lanes {
    fn lanes(v: u32) -> (i32, i32) {
        (
            i32::from(v as u16 as i16),
            i32::from((v >> 16) as u16 as i16),
        )
    }

    fn join(lo: i32, hi: i32) -> u32 {
        (lo as u32 & 0xffff) | ((hi as u32 & 0xffff) << 16)
    }

    pub fn sxtab16(a: u32, b: u32) -> u32 {
        let (lo, hi) = lanes(a);
        join(
            lo + i32::from(b as u8 as i8),
            hi + i32::from((b >> 16) as u8 as i8),
        )
    }

    pub fn sxtab16_ror8(a: u32, b: u32) -> u32 {
        sxtab16(a, b.rotate_right(8))
    }

    pub fn sxtb16(b: u32) -> u32 {
        sxtab16(0, b)
    }

    pub fn sxtb16_ror8(b: u32) -> u32 {
        sxtab16(0, b.rotate_right(8))
    }

    pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let ((a0, a1), (b0, b1)) = (lanes(a), lanes(b));
        acc.wrapping_add(a0 * b0).wrapping_add(a1 * b1)
    }

    pub fn neg_pair(zp: i32) -> u32 {
        join(-zp, -zp)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::super::conv2d::{self, Conv2d};
    use super::super::WeightScale;
    use super::*;
    use crate::ops::testutil::values;
    use crate::quant::QParams;
    use lasagna_format::{Scales, Window};
    use std::vec;
    use std::vec::Vec;

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

    /// Levels spread over the whole `i8` range, extremes included.
    fn levels(n: usize, seed: u64) -> Vec<i8> {
        let mut v: Vec<i8> = values(n, seed)
            .iter()
            .map(|v| (v * 128.0).clamp(-128.0, 127.0) as i8)
            .collect();
        for (i, x) in v.iter_mut().enumerate().take(4) {
            *x = if i % 2 == 0 { -128 } else { 127 };
        }
        v
    }

    #[test]
    fn dsp_kernels_give_the_portable_kernels_levels_on_every_geometry_class() {
        let cases = [
            // (cin, cout, groups, h, w, kernel, stride, padding, dilation)
            // One channel, 3 x 3 (the rows kernel), an odd channel count.
            (1, 5, 1, 7, 6, [3, 3], [1, 1], [1, 1], [1, 1]),
            // One channel, strided, dilated, 2 x 4 (rows kernel, 4 pairs).
            (1, 3, 1, 9, 11, [2, 4], [2, 3], [1, 2], [2, 1]),
            // One channel, 5 x 5 = 25 taps: the patches kernel.
            (1, 4, 1, 8, 8, [5, 5], [1, 1], [2, 2], [1, 1]),
            // Depthwise (one channel per group): rows kernel per group.
            (4, 4, 4, 5, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
            // The CNN's middle layers, smaller: 3 x 3, pad 1, kg % 4 == 0.
            (4, 6, 1, 6, 6, [3, 3], [1, 1], [1, 1], [1, 1]),
            (8, 7, 1, 5, 7, [3, 3], [1, 1], [1, 1], [1, 1]),
            // kg % 4 == 2 and 3, odd positions, odd channels.
            (2, 3, 1, 7, 5, [3, 2], [2, 1], [0, 1], [1, 1]),
            (3, 5, 1, 5, 5, [3, 3], [1, 1], [1, 1], [1, 1]),
            // Groups, stride, dilation, padding on both axes.
            (4, 6, 2, 9, 8, [3, 3], [2, 3], [2, 1], [2, 2]),
            // Padding wider than the input: windows with no tap inside.
            (3, 2, 1, 4, 4, [4, 4], [1, 1], [3, 3], [1, 1]),
            // 3 x 3 with dilation (not the 3-byte fast copy).
            (2, 4, 1, 9, 9, [3, 3], [1, 1], [2, 2], [2, 2]),
            // 3 x 3 words with stride 2, row dilation 2, padding on x only.
            (4, 3, 1, 7, 6, [3, 3], [2, 2], [0, 1], [2, 1]),
            // One column wide: both padding columns at once.
            (8, 2, 1, 3, 1, [3, 3], [1, 1], [1, 1], [1, 1]),
            // More output channels than the rows kernel's block (16), odd.
            (4, 35, 1, 4, 4, [3, 3], [1, 1], [1, 1], [1, 1]),
            (1, 35, 1, 5, 4, [3, 3], [1, 1], [1, 1], [1, 1]),
            // 1 x 1 and a single output.
            (5, 3, 1, 3, 3, [1, 1], [1, 1], [0, 0], [1, 1]),
            (2, 2, 1, 1, 1, [1, 1], [1, 1], [0, 0], [1, 1]),
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
            let kg = cin / groups * kernel[0] as usize * kernel[1] as usize;
            let x = levels(cin * h * w, 10 + n as u64);
            // Word-aligned, like a tensor in a file (the patches kernel
            // reads whole words; an unaligned tensor takes the bytes path).
            let wt_bytes = levels(cout * kg, 20 + n as u64);
            let mut wt_words = vec![0u32; wt_bytes.len().div_ceil(4)];
            bytemuck::cast_slice_mut::<u32, i8>(&mut wt_words)[..wt_bytes.len()]
                .copy_from_slice(&wt_bytes);
            let wt = &bytemuck::cast_slice::<u32, i8>(&wt_words)[..wt_bytes.len()];
            let bias: Vec<i32> = values(cout, 30 + n as u64)
                .iter()
                .map(|v| (v * 20_000.0) as i32)
                .collect();
            // Small multipliers (shift 33 and up, the usual case) on even
            // channels, large ones (shift 32 and below, the other branch
            // of the requantization) on odd ones.
            let scales: Vec<u8> = (0..cout)
                .flat_map(|c| {
                    let s = if c % 2 == 0 { 0.0002 } else { 0.4 };
                    (s + 0.0003f32 * c as f32).to_le_bytes()
                })
                .collect();
            let s = WeightScale::Channel(Scales::from_le_bytes(&scales));
            // Every layout the kernels choose from: the plan's scratch (the
            // portable plane or `kg / 4` pairs), one patch as bytes, two,
            // two widened, and a row of one-channel patches.
            let quads = kg.div_ceil(4);
            let pairs = (kernel[0] as usize * kernel[1] as usize).div_ceil(2);
            // The pairs kernel's full plan (`scratch_bytes_int8`: two
            // widened patches and 10 words per channel pair), one word
            // short of it, and more.
            let full = kg + 10 * (cout / groups).div_ceil(2);
            let layouts = [
                (p.oh * p.ow).max(kg / 4 * 2),
                quads,
                2 * quads,
                4 * quads,
                full,
                full - 1,
                full + 7,
                (p.ow * pairs).max(quads),
            ];
            // Zero points at both ends of the range and in between.
            for (zx, zy) in [(-128, 127), (127, -128), (5, -9)] {
                let q = (
                    QParams {
                        scale: 0.05,
                        zero_point: zx,
                    },
                    QParams {
                        scale: 0.07,
                        zero_point: zy,
                    },
                );
                for b in [None, Some(&bias[..])] {
                    let mut want = vec![0i8; cout * p.oh * p.ow];
                    let mut scratch = vec![0u32; layouts[0]];
                    conv2d::forward_i8(&p, q, &x, wt, s, b, &mut scratch, &mut want);
                    for words in layouts {
                        let mut got = vec![0i8; want.len()];
                        // Garbage in the scratch must not matter.
                        let mut scratch = vec![0xa5a5_a5a5u32; words];
                        forward_i8(&p, q, &x, wt, s, b, &mut scratch, &mut got);
                        assert_eq!(
                            got,
                            want,
                            "case {n}, scratch {words} words, zero points {zx} {zy}, bias {}",
                            b.is_some()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn dsp_lane_functions_follow_the_arm_definitions() {
        use super::lanes::*;
        // SXTAB16 adds the sign-extended bytes 0 and 2 to the 16-bit lanes.
        assert_eq!(sxtab16(neg_pair(5), 0x80_7f_01_ff), 0x007a_fffa);
        assert_eq!(sxtab16_ror8(0, 0x80_7f_01_ff), 0xff80_0001);
        assert_eq!(sxtb16(0x00_80_00_7f), 0xff80_007f);
        // SMLAD wraps like wrapping_add.
        assert_eq!(
            smlad(0x7fff_7fff, 0x7fff_7fff, i32::MAX),
            i32::MAX.wrapping_add(2 * 0x7fff * 0x7fff)
        );
        assert_eq!(smlad(0xffff_0002, 0x0003_0004, 10), 10 + 8 - 3);
    }
}
