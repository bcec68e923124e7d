//! Tensor-core subset: `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32`,
//! `ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16` and `cp.async`.
//!
//! Fragment layouts follow the PTX ISA, section 9.7.14.5.8 "Matrix Fragments
//! for mma.m16n8k16 with floating point type" and 9.7.14.5.15 "ldmatrix"
//! (see the README for the formulas).

use super::{Block, Lanes};
use crate::error::{Error, Result, Space};
use crate::inst::{Addr, Inst, MemSpace, Operand};
use crate::memory::{read_le, write_le};
use crate::stats::{bank_conflicts, phase, PHASE_SHIFT};

fn f16(bits: u64) -> f32 {
    half::f16::from_bits(bits as u16).to_f32()
}

impl Block<'_> {
    /// `.sync.aligned` warp collectives need all 32 lanes of a full warp, converged;
    /// `Ok(false)` when a uniform guard turned the instruction off for the whole warp.
    fn full_warp(&self, inst: &Inst, lo: usize, act: u32) -> Result<bool> {
        if act == 0 {
            return Ok(false);
        }
        if act == u32::MAX && self.n - lo >= 32 {
            return Ok(true);
        }
        let first = act.trailing_zeros().min(31) as usize;
        Err(Error::WarpCollective {
            kernel: self.k.name.clone(),
            at: self.pos((lo + first).min(self.n - 1), inst.line),
            active: act,
        })
    }

    fn addr_of(&self, t: usize, a: Addr) -> u64 {
        a.base
            .map_or(0, |r| self.reg(t, r))
            .wrapping_add(a.off as u64)
    }

    /// D = A B + C for one 16 x 8 x 16 tile. groupID = lane >> 2,
    /// threadID_in_group = lane % 4 (PTX ISA 9.7.14.5.8):
    /// A (16 x 16): a_i at row g (i in 0,1,4,5) or g + 8, col 2 tig + (i & 1) (+ 8 for i >= 4);
    /// B (16 x 8):  b_i at row 2 tig + (i & 1) (+ 8 for i >= 2), col g;
    /// C, D (16 x 8): c_i at row g (+ 8 for i >= 2), col 2 tig + (i & 1).
    /// Element i of a fragment is the low (even i) or high half of register i / 2.
    /// Each f16 product is exact in f32; the 16 products are added to C in k order
    /// 0..15 with f32 round-to-nearest adds (the hardware's order and internal
    /// precision are unspecified, so compare with a k-proportional tolerance).
    pub(super) fn mma(
        &mut self,
        inst: &Inst,
        lo: usize,
        act: u32,
        regs: ([u32; 4], [u32; 4], [u32; 2], [u32; 4]),
    ) -> Result<()> {
        if !self.full_warp(inst, lo, act)? {
            return Ok(());
        }
        let (d, a, b, c) = regs;
        let mut am = [[0f32; 16]; 16];
        let mut bm = [[0f32; 8]; 16];
        let mut cm = [[0f32; 8]; 16];
        for l in 0..32 {
            let t = lo + l;
            let (g, tig) = (l >> 2, l & 3);
            let r = |x: u32| self.reg(t, x);
            for i in 0..8 {
                let row = if i < 2 || (4..6).contains(&i) {
                    g
                } else {
                    g + 8
                };
                let col = 2 * tig + (i & 1) + if i >= 4 { 8 } else { 0 };
                am[row][col] = f16(r(a[i / 2]) >> (16 * (i & 1)));
            }
            for i in 0..4 {
                let row = 2 * tig + (i & 1) + if i >= 2 { 8 } else { 0 };
                bm[row][g] = f16(r(b[i / 2]) >> (16 * (i & 1)));
            }
            for (i, &ci) in c.iter().enumerate() {
                let row = g + if i >= 2 { 8 } else { 0 };
                cm[row][2 * tig + (i & 1)] = f32::from_bits(r(ci) as u32);
            }
        }
        for l in 0..32 {
            let (g, tig) = (l >> 2, l & 3);
            for (i, &di) in d.iter().enumerate() {
                let row = g + if i >= 2 { 8 } else { 0 };
                let col = 2 * tig + (i & 1);
                let mut acc = cm[row][col];
                for (kk, arow) in am[row].iter().enumerate() {
                    acc += arow * bm[kk][col];
                }
                self.set(lo + l, di, u64::from(acc.to_bits()));
            }
        }
        Ok(())
    }

    /// Lane 8 j + r supplies the address of row r of matrix j (16 contiguous bytes);
    /// lane l receives in register j the elements (row l / 4, cols 2 (l % 4) + {0, 1})
    /// of matrix j, or with `.trans` (rows 2 (l % 4) + {0, 1}, col l / 4), low half
    /// first. Bank conflicts are counted per matrix (8 rows of 16 bytes = one phase).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ldmatrix(
        &mut self,
        inst: &Inst,
        lo: usize,
        act: u32,
        num: u8,
        trans: bool,
        dst: [u32; 4],
        addr: Addr,
    ) -> Result<()> {
        if !self.full_warp(inst, lo, act)? {
            return Ok(());
        }
        let nrows = 8 * num as usize;
        let mut rows = [[0u16; 8]; 32];
        self.words.clear();
        for (l, row) in rows.iter_mut().enumerate().take(nrows) {
            let t = lo + l;
            let a = self.addr_of(t, addr);
            let off = self.locate(t, inst, MemSpace::Shared, a, 16)?;
            self.check_access(t, MemSpace::Shared, off, 16, false)?;
            for (e, x) in row.iter_mut().enumerate() {
                *x = read_le(&self.shared, off + 2 * e, 2).unwrap_or(0) as u16;
            }
            let tag = ((l / 8) as u64) << PHASE_SHIFT;
            self.words.extend((a / 4..a / 4 + 4).map(|w| tag | w));
        }
        self.stats.bank_conflicts += bank_conflicts(&mut self.words);
        for l in 0..32 {
            for (j, &dj) in dst.iter().enumerate().take(num as usize) {
                let (lo16, hi16) = if trans {
                    let r = 8 * j + 2 * (l % 4);
                    (rows[r][l / 4], rows[r + 1][l / 4])
                } else {
                    let r = &rows[8 * j + l / 4];
                    (r[2 * (l % 4)], r[2 * (l % 4) + 1])
                };
                self.set(lo + l, dj, u64::from(lo16) | (u64::from(hi16) << 16));
            }
        }
        Ok(())
    }

    /// `cp.async`: reads `src_size` bytes (clamped to `size`) at issue and zero-fills
    /// the rest of `size`. By default the bytes land in shared memory at issue (a
    /// valid serialisation: the data may land any time before the matching
    /// `wait_group`); with `deferred_cp_async` they land at that wait (`cpasync.rs`).
    /// For the race detector the shared write happens at issue and again on landing,
    /// since the hardware may write at any moment in between.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn cp_async(
        &mut self,
        inst: &Inst,
        lo: usize,
        act: u32,
        size: u32,
        dst: Addr,
        src: Addr,
        src_size: Option<Operand>,
    ) -> Result<()> {
        self.words.clear();
        let mut read = 0u64;
        for l in Lanes(act) {
            let t = lo + l;
            let da = self.addr_of(t, dst);
            let sa = self.addr_of(t, src);
            let ss = src_size.map_or(size, |o| (self.val(t, o) as u32).min(size));
            let doff = self.locate(t, inst, MemSpace::Shared, da, size)?;
            let mut buf = [0u8; 16];
            if ss > 0 {
                if !sa.is_multiple_of(u64::from(size)) {
                    return Err(Error::Misaligned {
                        kernel: self.k.name.clone(),
                        space: Space::Global,
                        at: self.pos(t, inst.line),
                        addr: sa,
                        align: size,
                    });
                }
                let Some(soff) = self.heap.check(sa, ss) else {
                    return Err(Error::OutOfBounds {
                        kernel: self.k.name.clone(),
                        space: Space::Global,
                        at: self.pos(t, inst.line),
                        addr: sa,
                        size: ss,
                    });
                };
                self.check_access(t, MemSpace::Global, soff, ss, false)?;
                let raw = self.heap.raw_mut();
                for (e, x) in buf.iter_mut().enumerate().take(ss as usize) {
                    *x = read_le(raw, soff + e, 1).unwrap_or(0) as u8;
                }
            }
            self.check_access(t, MemSpace::Shared, doff, size, true)?;
            if self.opts.deferred_cp_async {
                self.defer(t, doff, size, buf);
            } else {
                for (e, &x) in buf.iter().enumerate().take(size as usize) {
                    write_le(&mut self.shared, doff + e, 1, u64::from(x));
                }
                self.mark_shared(doff, size);
            }
            read += u64::from(ss);
            let tag = phase(l, size) << PHASE_SHIFT;
            self.words
                .extend((da / 4..(da + u64::from(size)) / 4).map(|w| tag | w));
        }
        self.stats.global_bytes_read += read;
        self.stats.shared_store += u64::from(act.count_ones());
        self.stats.bank_conflicts += bank_conflicts(&mut self.words);
        Ok(())
    }
}
