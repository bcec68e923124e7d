//! The interpreter: blocks of warps of 32 lanes, per-lane program counters
//! with min-pc scheduling (see README "Warp execution"). The strict-mode
//! scheduling lives in `sched.rs`, the checker hooks in `checks.rs`, the
//! deferred `cp.async` groups in `cpasync.rs` and the float options in `fp.rs`.

use std::cell::Cell;
use std::collections::VecDeque;

use crate::alu;
use crate::check::poison::InitMap;
use crate::check::race::Shadow;
use crate::error::{Error, Result, Space, ThreadPos};
use crate::inst::{Inst, MemSpace, Op, Operand, Sreg};
use crate::memory::{read_le, Heap};
use crate::meta::KernelMeta;
use crate::options::{Rng, SimOptions};
use crate::parse::Kernel;
use crate::stats::LaunchStats;

mod checks;
mod cpasync;
mod fp;
mod memops;
mod sched;
mod tensor;

const RUN: u8 = 0;
const BAR: u8 = 1;
const EXIT: u8 = 2;
/// `Block::bad_reg` when no uninitialised register was read.
const NO_BAD: usize = usize::MAX;

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
    /// Strict-mode switches.
    pub opts: SimOptions,
    /// Side information of the kernel's instructions.
    pub meta: &'a KernelMeta,
    /// Seed of this launch's random choices (the options' seed mixed with a launch counter).
    pub seed: u64,
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
    opts: SimOptions,
    meta: &'a KernelMeta,
    /// Per pc: the instruction takes the strict float path (`fp.rs`).
    special: Vec<bool>,
    /// Initialised registers (flat `t * nr + r`) and shared bytes, with `opts.poison`.
    reg_init: InitMap,
    shared_init: InitMap,
    /// First uninitialised register read of the current step (flat index), or `NO_BAD`.
    bad_reg: Cell<usize>,
    /// Race shadows: shared (per block, epoch per barrier) and global (per launch).
    shadow: Shadow,
    gshadow: &'a mut Shadow,
    /// Linear index of the running block (x fastest).
    block_lin: u32,
    /// pc of the instruction being executed.
    pc_now: u32,
    /// Per thread: `cp.async` copies not landed yet, and groups committed so far.
    pend: Vec<VecDeque<cpasync::Pending>>,
    groups: Vec<u32>,
    rng: Rng,
}

/// Runs a whole grid, block by block, and returns its counters. `gshadow` is
/// the global-memory race shadow, kept by the caller so it is allocated once.
pub fn run(heap: &mut Heap, gshadow: &mut Shadow, l: &Launch<'_>) -> Result<LaunchStats> {
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
    if l.opts.race_detection {
        gshadow.reset(heap.raw_mut().len());
    }
    let mut shadow = Shadow::new(5);
    if l.opts.race_detection {
        shadow.reset(shared_len);
    }
    let special = fp::special(k, l.meta, &l.opts);
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
        opts: l.opts,
        meta: l.meta,
        special,
        reg_init: InitMap::default(),
        shared_init: InitMap::default(),
        bad_reg: Cell::new(NO_BAD),
        shadow,
        gshadow,
        block_lin: 0,
        pc_now: 0,
        pend: (0..n).map(|_| VecDeque::new()).collect(),
        groups: vec![0; n],
        rng: Rng::new(l.seed),
    };
    let order = sched::block_order(blocks, &l.opts, &mut b.rng);
    for i in 0..blocks {
        let lin = order
            .as_ref()
            .map_or(Some(i), |o| o.get(i as usize).map(|&x| u64::from(x)));
        let Some(lin) = lin else { break };
        let (gx, gy) = (u64::from(l.grid[0]), u64::from(l.grid[1]));
        b.ctaid = [
            (lin % gx) as u32,
            ((lin / gx) % gy) as u32,
            (lin / (gx * gy)) as u32,
        ];
        b.block_lin = lin as u32;
        b.reset();
        b.run_block()?;
    }
    Ok(b.stats)
}

impl Block<'_> {
    fn reset(&mut self) {
        self.pc.fill(0);
        self.state.fill(RUN);
        self.steps = 0;
        // Shared memory is uninitialised on the GPU. By default we zero it (and the
        // registers) so results never depend on the previous block; with `poison` both
        // hold a signalling-NaN pattern and a shadow bitmap says what was written.
        if self.opts.poison {
            self.regs.fill(crate::check::poison::REG_POISON);
            let pat = crate::check::poison::SHARED_POISON;
            for (i, x) in self.shared.iter_mut().enumerate() {
                *x = pat[i % 4];
            }
            self.reg_init.clear(self.regs.len());
            self.shared_init.clear(self.shared.len());
        } else {
            self.regs.fill(0);
            self.shared.fill(0);
        }
        if self.opts.race_detection {
            self.shadow.next_epoch();
        }
        for p in &mut self.pend {
            p.clear();
        }
        self.groups.fill(0);
    }

    fn run_block(&mut self) -> Result<()> {
        let nwarps = self.n.div_ceil(32);
        loop {
            if self.opts.interleave {
                self.run_interleaved(nwarps)?;
            } else {
                for w in 0..nwarps {
                    self.run_warp(w * 32)?;
                }
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
            // Every thread is parked at a barrier: release it. Accesses before it are
            // ordered with those after it, so the shared race shadow starts afresh.
            for t in 0..self.n {
                self.state[t] = RUN;
                self.pc[t] += 1;
            }
            if self.opts.race_detection {
                self.shadow.next_epoch();
            }
        }
    }

    /// Runs warp `lo..lo+32` until none of its lanes is runnable.
    fn run_warp(&mut self, lo: usize) -> Result<()> {
        while self.warp_step(lo)? {}
        Ok(())
    }

    /// Executes one instruction of warp `lo..lo+32` (its min-pc lanes); false
    /// when none of its lanes is runnable.
    fn warp_step(&mut self, lo: usize) -> Result<bool> {
        let hi = (lo + 32).min(self.n);
        {
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
                return Ok(false);
            }
            self.steps += 1;
            if self.steps > self.max_steps {
                return Err(Error::StepLimit {
                    kernel: self.k.name.clone(),
                    limit: self.max_steps,
                });
            }
            self.pc_now = pc;
            self.step(pc, lo, mask)?;
            if self.bad_reg.get() != NO_BAD {
                return Err(self.uninit_reg_error(pc));
            }
            Ok(true)
        }
    }

    #[inline]
    fn val(&self, t: usize, o: Operand) -> u64 {
        match o {
            Operand::Reg(r) => self.reg(t, r),
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

    /// Register `r` of thread `t`; with `poison`, notes a read of one never written.
    #[inline]
    fn reg(&self, t: usize, r: u32) -> u64 {
        let i = t * self.nr + r as usize;
        if self.opts.poison && !self.reg_init.get(i) && self.bad_reg.get() == NO_BAD {
            self.bad_reg.set(i);
        }
        self.regs[i]
    }

    #[inline]
    fn set(&mut self, t: usize, r: u32, v: u64) {
        let i = t * self.nr + r as usize;
        self.regs[i] = v;
        if self.opts.poison {
            self.reg_init.set(i);
        }
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
                if (self.reg(lo + l, p) != 0) == neg {
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
            _ if self.special.get(pc as usize).copied().unwrap_or(false)
                && self.fp_op(inst, lo, act) => {}
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
                            let c = (self.reg(t, c) != 0) != neg;
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
                    let pick = if self.reg(t, p) != 0 { a } else { b };
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
            Op::CpAsyncFence => self.fence(lo, act)?,
            Op::Bra { .. } | Op::Exit | Op::Bar | Op::Fence => {}
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
