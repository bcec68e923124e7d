//! Warp-wide memory and exchange instructions: loads/stores (with bank-conflict
//! counting), atomics and `shfl.sync`. Split from `exec.rs` to keep files small.

use super::{Block, Lanes, MemOp};
use crate::alu;
use crate::error::{Error, Result};
use crate::inst::{Addr, AtomOp, BinOp, Inst, MemSpace, Operand, ShflMode, Ty};
use crate::memory::{read_le, write_le};
use crate::stats::{bank_conflicts, phase, PHASE_SHIFT};

impl Block<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mem(
        &mut self,
        inst: &Inst,
        lo: usize,
        act: u32,
        space: MemSpace,
        ty: Ty,
        n: u8,
        addr: Addr,
        op: MemOp,
    ) -> Result<()> {
        let es = ty.size();
        let size = es * u32::from(n);
        self.words.clear();
        for l in Lanes(act) {
            let t = lo + l;
            let a = addr
                .base
                .map_or(0, |r| self.reg(t, r))
                .wrapping_add(addr.off as u64);
            let off = self.locate(t, inst, space, a, size)?;
            let write = matches!(op, MemOp::St(_));
            self.check_access(t, space, off, size, write)?;
            if space == MemSpace::Shared {
                let tag = phase(l, size) << PHASE_SHIFT;
                self.words
                    .extend(((a / 4)..=((a + u64::from(size) - 1) / 4)).map(|w| tag | w));
            }
            match op {
                MemOp::Ld(dst) => {
                    for (k, &d) in dst.iter().enumerate().take(n as usize) {
                        let mem: &[u8] = if space == MemSpace::Global {
                            self.heap.raw_mut()
                        } else {
                            &self.shared
                        };
                        let raw = read_le(mem, off + k * es as usize, es).unwrap_or(0);
                        // Signed sub-word loads sign-extend into the destination register.
                        let v = if ty.is_signed() && es < 8 {
                            (((raw << (64 - 8 * es)) as i64) >> (64 - 8 * es)) as u64
                        } else {
                            raw
                        };
                        self.set(t, d, v);
                    }
                }
                MemOp::St(src) => {
                    for (k, &s) in src.iter().enumerate().take(n as usize) {
                        let v = self.val(t, s);
                        let mem: &mut [u8] = if space == MemSpace::Global {
                            self.heap.raw_mut()
                        } else {
                            &mut self.shared
                        };
                        write_le(mem, off + k * es as usize, es, v);
                    }
                    if space == MemSpace::Shared {
                        self.mark_shared(off, size);
                    }
                }
            }
        }
        let bytes = u64::from(size) * u64::from(act.count_ones());
        match (space, op) {
            (MemSpace::Global, MemOp::Ld(_)) => self.stats.global_bytes_read += bytes,
            (MemSpace::Global, MemOp::St(_)) => self.stats.global_bytes_written += bytes,
            (MemSpace::Shared, _) => self.stats.bank_conflicts += bank_conflicts(&mut self.words),
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn atom(
        &mut self,
        inst: &Inst,
        lo: usize,
        act: u32,
        op: AtomOp,
        space: MemSpace,
        ty: Ty,
        dst: Option<u32>,
        addr: Addr,
        src: Operand,
    ) -> Result<()> {
        let es = ty.size();
        self.words.clear();
        // Lanes apply their update in lane order: one valid serialisation of the hardware's.
        for l in Lanes(act) {
            let t = lo + l;
            let a = addr
                .base
                .map_or(0, |r| self.reg(t, r))
                .wrapping_add(addr.off as u64);
            let off = self.locate(t, inst, space, a, es)?;
            // Atomics never race with each other, so only the initialised check applies.
            if space == MemSpace::Shared {
                self.check_shared_init(t, off, es)?;
                self.mark_shared(off, es);
            }
            let s = self.val(t, src);
            let mem: &mut [u8] = if space == MemSpace::Global {
                self.heap.raw_mut()
            } else {
                &mut self.shared
            };
            let old = read_le(mem, off, es).unwrap_or(0);
            let new = match op {
                AtomOp::Add => alu::bin(BinOp::Add, ty, false, old, s),
                AtomOp::Min => alu::bin(BinOp::Min, ty, false, old, s),
                AtomOp::Max => alu::bin(BinOp::Max, ty, false, old, s),
                AtomOp::Exch => s,
            };
            write_le(mem, off, es, new);
            if let Some(d) = dst {
                self.set(t, d, old);
            }
            if space == MemSpace::Shared {
                self.words.push((phase(l, es) << PHASE_SHIFT) | (a / 4));
            }
        }
        if space == MemSpace::Global {
            let bytes = u64::from(es) * u64::from(act.count_ones());
            self.stats.global_bytes_read += bytes;
            self.stats.global_bytes_written += bytes;
        } else {
            self.stats.bank_conflicts += bank_conflicts(&mut self.words);
        }
        Ok(())
    }

    /// `shfl.sync` (PTX ISA 9.7.8.6): every lane named in the member mask must be
    /// executing this instruction together with the caller.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn shfl(
        &mut self,
        inst: &Inst,
        lo: usize,
        act: u32,
        mode: ShflMode,
        dst: u32,
        pdst: Option<u32>,
        ops: [Operand; 4],
    ) -> Result<()> {
        let [a, b, c, m] = ops;
        let present = if self.n - lo >= 32 {
            u32::MAX
        } else {
            (1u32 << (self.n - lo)) - 1
        };
        // Snapshot every lane's source first (the destination may alias it); only the
        // lanes actually read count as reads for the uninitialised-register check.
        let mut src = [0u64; 32];
        for (l, v) in src.iter_mut().enumerate().take(self.n - lo) {
            *v = match a {
                Operand::Reg(r) => self.regs[(lo + l) * self.nr + r as usize],
                o => self.val(lo + l, o),
            };
        }
        for l in Lanes(act) {
            let t = lo + l;
            let mask = self.val(t, m) as u32;
            if mask & present & !act != 0 || mask & (1 << l) == 0 {
                return Err(Error::ShuffleDivergence {
                    kernel: self.k.name.clone(),
                    at: self.pos(t, inst.line),
                    mask,
                    active: act,
                });
            }
            let bv = (self.val(t, b) as u32 & 0x1f) as i32;
            let cv = self.val(t, c) as u32;
            let seg = ((cv >> 8) & 0x1f) as i32;
            let clamp = (cv & 0x1f) as i32;
            let lane = l as i32;
            let max_lane = (lane & seg) | (clamp & !seg);
            let min_lane = lane & seg;
            let (j, ok) = match mode {
                ShflMode::Up => (lane - bv, lane - bv >= max_lane),
                ShflMode::Down => (lane + bv, lane + bv <= max_lane),
                ShflMode::Bfly => (lane ^ bv, (lane ^ bv) <= max_lane),
                ShflMode::Idx => (min_lane | (bv & !seg), (min_lane | (bv & !seg)) <= max_lane),
            };
            let j = if ok { j as usize } else { l };
            if let (Operand::Reg(r), true) = (a, j < self.n - lo) {
                self.reg(lo + j, r);
            }
            // A source lane past the end of a partial warp reads as 0 (undefined on hardware).
            self.set(t, dst, src.get(j).copied().unwrap_or(0));
            if let Some(p) = pdst {
                self.set(t, p, u64::from(ok));
            }
        }
        Ok(())
    }
}
