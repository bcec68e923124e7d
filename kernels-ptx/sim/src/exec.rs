//! The interpreter: one block at a time, warps of 32 lanes, per-lane program
//! counters with min-pc scheduling (see README "Warp execution").

use crate::alu;
use crate::error::{Error, Result, Space, ThreadPos};
use crate::inst::{Inst, MemSpace, Op, Operand, Sreg};
use crate::memory::{read_le, Heap};
use crate::parse::Kernel;
use crate::stats::LaunchStats;

mod memops;
mod tensor;

const RUN: u8 = 0;
const BAR: u8 = 1;
const EXIT: u8 = 2;

/// One launch's configuration.
pub struct Launch<'a> {
    /// The kernel.
    pub kernel: &'a Kernel,
    /// Blocks per grid.
    pub grid: [u32; 3],
    /// Threads per block.
    pub block: [u32; 3],
    /// Dynamic shared memory bytes.
    pub shared_bytes: u32,
    /// The parameter block (laid out per `Kernel::params`).
    pub params: &'a [u8],
    /// Upper bound on warp steps per block before `Error::StepLimit`.
    pub max_steps: u64,
}

struct Block<'a> {
    k: &'a Kernel,
    heap: &'a mut Heap,
    params: &'a [u8],
    shared: Vec<u8>,
    nr: usize,
    n: usize,
    regs: Vec<u64>,
    pc: Vec<u32>,
    state: Vec<u8>,
    tids: Vec<[u32; 3]>,
    ctaid: [u32; 3],
    grid: [u32; 3],
    dim: [u32; 3],
    stats: LaunchStats,
    words: Vec<u64>,
    steps: u64,
    max_steps: u64,
}

/// Runs a whole grid, block by block, and returns its counters.
pub fn run(heap: &mut Heap, l: &Launch<'_>) -> Result<LaunchStats> {
    let k = l.kernel;
    let n = l.block.iter().map(|&d| d as u64).product::<u64>();
    let blocks = l.grid.iter().map(|&d| d as u64).product::<u64>();
    // Limits of sm_80 (CUDA C Programming Guide, "Compute Capabilities").
    if n == 0
        || n > 1024
        || blocks == 0
        || l.block[2] > 64
        || l.grid[1] > 65535
        || l.grid[2] > 65535
    {
        return Err(Error::BadLaunch {
            kernel: k.name.clone(),
            msg: format!(
                "grid {:?} block {:?} is empty or over the sm_80 limits",
                l.grid, l.block
            ),
        });
    }
    if k.dyn_shared_offset.is_none() && l.shared_bytes > 0 {
        return Err(Error::BadLaunch {
            kernel: k.name.clone(),
            msg: format!(
                "{} bytes of dynamic shared memory but no `.extern .shared` declaration",
                l.shared_bytes
            ),
        });
    }
    let shared_len = k.static_shared as usize + l.shared_bytes as usize;
    let n = n as usize;
    let tids = (0..n as u32)
        .map(|t| {
            [
                t % l.block[0],
                (t / l.block[0]) % l.block[1],
                t / (l.block[0] * l.block[1]),
            ]
        })
        .collect();
    let mut b = Block {
        k,
        heap,
        params: l.params,
        shared: vec![0; shared_len],
        nr: k.nregs as usize,
        n,
        regs: vec![0; n * k.nregs as usize],
        pc: vec![0; n],
        state: vec![RUN; n],
        tids,
        ctaid: [0; 3],
        grid: l.grid,
        dim: l.block,
        stats: LaunchStats::default(),
        words: Vec::with_capacity(128),
        steps: 0,
        max_steps: l.max_steps,
    };
    for z in 0..l.grid[2] {
        for y in 0..l.grid[1] {
            for x in 0..l.grid[0] {
                b.ctaid = [x, y, z];
                b.reset();
                b.run_block()?;
            }
        }
    }
    Ok(b.stats)
}

impl Block<'_> {
    fn reset(&mut self) {
        self.regs.fill(0);
        self.pc.fill(0);
        self.state.fill(RUN);
        // Shared memory is uninitialised on the GPU; zero it so results never depend on the
        // previous block.
        self.shared.fill(0);
        self.steps = 0;
    }

    fn run_block(&mut self) -> Result<()> {
        let nwarps = self.n.div_ceil(32);
        loop {
            for w in 0..nwarps {
                self.run_warp(w * 32)?;
            }
            let waiting = self.state.iter().filter(|&&s| s == BAR).count();
            let exited = self.state.iter().filter(|&&s| s == EXIT).count();
            if exited == self.n {
                return Ok(());
            }
            if exited > 0 {
                let t = self.state.iter().position(|&s| s == BAR).unwrap_or(0);
                let line = self.k.insts.get(self.pc[t] as usize).map_or(0, |i| i.line);
                return Err(Error::BarrierDeadlock {
                    kernel: self.k.name.clone(),
                    block: self.ctaid,
                    waiting: waiting as u32,
                    exited: exited as u32,
                    line,
                });
            }
            // Every thread is parked at a barrier: release it.
            for t in 0..self.n {
                self.state[t] = RUN;
                self.pc[t] += 1;
            }
        }
    }

    /// Runs warp `lo..lo+32` until none of its lanes is runnable.
    fn run_warp(&mut self, lo: usize) -> Result<()> {
        let hi = (lo + 32).min(self.n);
        loop {
            let mut pc = u32::MAX;
            let mut mask = 0u32;
            for t in lo..hi {
                if self.state[t] == RUN {
                    let p = self.pc[t];
                    let bit = 1u32 << (t - lo);
                    if p < pc {
                        pc = p;
                        mask = bit;
                    } else if p == pc {
                        mask |= bit;
                    }
                }
            }
            if mask == 0 {
                return Ok(());
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                return Err(Error::StepLimit {
                    kernel: self.k.name.clone(),
                    limit: self.max_steps,
                });
            }
            self.step(pc, lo, mask)?;
        }
    }

    #[inline]
    fn val(&self, t: usize, o: Operand) -> u64 {
        match o {
            Operand::Reg(r) => self.regs[t * self.nr + r as usize],
            Operand::Imm(v) => v,
            Operand::Sreg(s) => u64::from(match s {
                Sreg::Tid(d) => self.tids[t][d as usize],
                Sreg::Ntid(d) => self.dim[d as usize],
                Sreg::Ctaid(d) => self.ctaid[d as usize],
                Sreg::Nctaid(d) => self.grid[d as usize],
                Sreg::Laneid => (t % 32) as u32,
                Sreg::Warpid => (t / 32) as u32,
            }),
        }
    }

    #[inline]
    fn set(&mut self, t: usize, r: u32, v: u64) {
        self.regs[t * self.nr + r as usize] = v;
    }

    fn pos(&self, t: usize, line: u32) -> ThreadPos {
        ThreadPos {
            block: self.ctaid,
            thread: self.tids[t],
            line,
        }
    }

    /// Checks an access and returns the byte offset in its memory.
    fn locate(
        &self,
        t: usize,
        inst: &Inst,
        space: MemSpace,
        addr: u64,
        size: u32,
    ) -> Result<usize> {
        let sp = if space == MemSpace::Global {
            Space::Global
        } else {
            Space::Shared
        };
        if !addr.is_multiple_of(u64::from(size)) {
            return Err(Error::Misaligned {
                kernel: self.k.name.clone(),
                space: sp,
                at: self.pos(t, inst.line),
                addr,
                align: size,
            });
        }
        let off = match space {
            MemSpace::Global => self.heap.check(addr, size),
            MemSpace::Shared => usize::try_from(addr).ok().filter(|&a| {
                a.checked_add(size as usize)
                    .is_some_and(|e| e <= self.shared.len())
            }),
        };
        off.ok_or_else(|| Error::OutOfBounds {
            kernel: self.k.name.clone(),
            space: sp,
            at: self.pos(t, inst.line),
            addr,
            size,
        })
    }

    fn step(&mut self, pc: u32, lo: usize, mask: u32) -> Result<()> {
        let k = self.k;
        let Some(inst) = k.insts.get(pc as usize) else {
            return Err(Error::BadLaunch {
                kernel: k.name.clone(),
                msg: format!("pc {pc} past the end"),
            });
        };
        let mut act = mask;
        if let Some((p, neg)) = inst.guard {
            for l in Lanes(mask) {
                if (self.regs[(lo + l) * self.nr + p as usize] != 0) == neg {
                    act &= !(1 << l);
                }
            }
        }
        let na = u64::from(act.count_ones());
        self.stats.warp_instructions += 1;
        self.stats.count(inst.class, na);
        self.stats.predicated_off += u64::from(mask.count_ones()) - na;

        match &inst.op {
            Op::Bra { target } => {
                for l in Lanes(mask) {
                    self.pc[lo + l] = if act & (1 << l) != 0 { *target } else { pc + 1 };
                }
                return Ok(());
            }
            Op::Exit => {
                for l in Lanes(mask) {
                    if act & (1 << l) != 0 {
                        self.state[lo + l] = EXIT;
                    } else {
                        self.pc[lo + l] = pc + 1;
                    }
                }
                return Ok(());
            }
            Op::Bar => {
                // Parked lanes keep their pc; `run_block` advances it on release.
                for l in Lanes(mask) {
                    if act & (1 << l) != 0 {
                        self.state[lo + l] = BAR;
                    } else {
                        self.pc[lo + l] = pc + 1;
                    }
                }
                return Ok(());
            }
            _ => self.data_op(inst, lo, act)?,
        }
        for l in Lanes(mask) {
            self.pc[lo + l] = pc + 1;
        }
        Ok(())
    }

    fn data_op(&mut self, inst: &Inst, lo: usize, act: u32) -> Result<()> {
        match inst.op {
            Op::Mov { ty, dst, src } => {
                for l in Lanes(act) {
                    let v = alu::canon(ty, self.val(lo + l, src));
                    self.set(lo + l, dst, v);
                }
            }
            Op::Bin {
                op,
                ty,
                sat,
                dst,
                a,
                b,
            } => {
                for l in Lanes(act) {
                    let t = lo + l;
                    let v = alu::bin(op, ty, sat, self.val(t, a), self.val(t, b));
                    self.set(t, dst, v);
                }
            }
            Op::Mad {
                mode,
                ty,
                sat,
                dst,
                a,
                b,
                c,
            } => {
                for l in Lanes(act) {
                    let t = lo + l;
                    let v = alu::mad(
                        mode,
                        ty,
                        sat,
                        self.val(t, a),
                        self.val(t, b),
                        self.val(t, c),
                    );
                    self.set(t, dst, v);
                }
            }
            Op::Un { op, ty, dst, a } => {
                for l in Lanes(act) {
                    let v = alu::un(op, ty, self.val(lo + l, a));
                    self.set(lo + l, dst, v);
                }
            }
            Op::Setp {
                cmp,
                unordered,
                unsigned,
                ty,
                p,
                q,
                a,
                b,
                comb,
            } => {
                for l in Lanes(act) {
                    let t = lo + l;
                    let r = alu::setp(cmp, unordered, unsigned, ty, self.val(t, a), self.val(t, b));
                    let (rp, rq) = match comb {
                        None => (r, !r),
                        Some((bop, c, neg)) => {
                            let c = (self.regs[t * self.nr + c as usize] != 0) != neg;
                            let f = |x: bool| match bop {
                                crate::inst::BoolOp::And => x && c,
                                crate::inst::BoolOp::Or => x || c,
                                crate::inst::BoolOp::Xor => x != c,
                            };
                            (f(r), f(!r))
                        }
                    };
                    self.set(t, p, u64::from(rp));
                    if let Some(q) = q {
                        self.set(t, q, u64::from(rq));
                    }
                }
            }
            Op::Selp { ty, dst, a, b, p } => {
                for l in Lanes(act) {
                    let t = lo + l;
                    let pick = if self.regs[t * self.nr + p as usize] != 0 {
                        a
                    } else {
                        b
                    };
                    let v = alu::canon(ty, self.val(t, pick));
                    self.set(t, dst, v);
                }
            }
            Op::Cvt {
                dty,
                sty,
                rnd,
                sat,
                dst,
                a,
            } => {
                for l in Lanes(act) {
                    let v = alu::cvt(dty, sty, rnd, sat, self.val(lo + l, a));
                    self.set(lo + l, dst, v);
                }
            }
            Op::LdParam { ty, dst, off } => {
                for l in Lanes(act) {
                    let Some(v) = read_le(self.params, off as usize, ty.size()) else {
                        return Err(Error::OutOfBounds {
                            kernel: self.k.name.clone(),
                            space: Space::Param,
                            at: self.pos(lo + l, inst.line),
                            addr: u64::from(off),
                            size: ty.size(),
                        });
                    };
                    self.set(lo + l, dst, v);
                }
            }
            Op::Ld {
                space,
                ty,
                n,
                dst,
                addr,
            } => self.mem(inst, lo, act, space, ty, n, addr, MemOp::Ld(dst))?,
            Op::St {
                space,
                ty,
                n,
                src,
                addr,
            } => self.mem(inst, lo, act, space, ty, n, addr, MemOp::St(src))?,
            Op::Atom {
                op,
                space,
                ty,
                dst,
                addr,
                src,
            } => self.atom(inst, lo, act, op, space, ty, dst, addr, src)?,
            Op::Shfl {
                mode,
                dst,
                pdst,
                a,
                b,
                c,
                mask,
            } => self.shfl(inst, lo, act, mode, dst, pdst, [a, b, c, mask])?,
            Op::Mma { d, a, b, c } => self.mma(inst, lo, act, (d, a, b, c))?,
            Op::LdMatrix {
                num,
                trans,
                dst,
                addr,
            } => self.ldmatrix(inst, lo, act, num, trans, dst, addr)?,
            Op::CpAsync {
                size,
                dst,
                src,
                src_size,
            } => self.cp_async(inst, lo, act, size, dst, src, src_size)?,
            Op::Bra { .. } | Op::Exit | Op::Bar | Op::CpAsyncFence => {}
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
pub(crate) enum MemOp {
    Ld([u32; 4]),
    St([Operand; 4]),
}

/// Iterates the set bits of a lane mask.
pub(crate) struct Lanes(pub(crate) u32);

impl Iterator for Lanes {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let l = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(l)
    }
}
