//! The interpreter's side of the strict-mode checkers: it reports accesses to
//! the race shadows and the initialised-state bitmaps (`crate::check`) and
//! turns their findings into errors naming both instructions.

use super::Block;
use crate::check::race::Conflict;
use crate::error::{Access, Error, Result, Space, ThreadPos, Uninit};
use crate::inst::MemSpace;

impl Block<'_> {
    /// Records an access of `size` bytes at `off` (shared offset or heap offset) by
    /// thread `t` at the current pc: a race check with `race_detection`, and an
    /// initialised check of shared reads with `poison`.
    pub(super) fn check_access(
        &mut self,
        t: usize,
        space: MemSpace,
        off: usize,
        size: u32,
        write: bool,
    ) -> Result<()> {
        let pc = self.pc_now;
        self.check_access_at(t, pc, space, off, size, write)
    }

    /// `check_access` on behalf of the instruction at `pc` (a `cp.async` landing at a wait).
    pub(super) fn check_access_at(
        &mut self,
        t: usize,
        pc: u32,
        space: MemSpace,
        off: usize,
        size: u32,
        write: bool,
    ) -> Result<()> {
        if space == MemSpace::Shared && !write {
            self.check_shared_init(t, off, size)?;
        }
        let strong = self.meta.insts.get(pc as usize).is_some_and(|m| m.strong);
        if !self.opts.race_detection || strong {
            return Ok(());
        }
        let found = match space {
            MemSpace::Shared => self.shadow.access(off, size, t as u32, pc, write),
            MemSpace::Global => self.gshadow.access(off, size, self.block_lin, pc, write),
        };
        match found {
            None => Ok(()),
            Some(c) => Err(self.race_error(t, pc, space, write, c)),
        }
    }

    /// With `poison`: an error unless every byte of `off..off+size` was written.
    pub(super) fn check_shared_init(&self, t: usize, off: usize, size: u32) -> Result<()> {
        if !self.opts.poison || self.shared_init.all(off, size as usize) {
            return Ok(());
        }
        Err(Error::Uninitialized {
            kernel: self.k.name.clone(),
            at: self.pos(t, self.line_of(self.pc_now)),
            text: self.text_of(self.pc_now),
            what: Uninit::Shared {
                addr: off as u64,
                size,
            },
        })
    }

    /// With `poison`: marks shared bytes as written.
    pub(super) fn mark_shared(&mut self, off: usize, size: u32) {
        if self.opts.poison {
            self.shared_init.set_range(off, size as usize);
        }
    }

    /// The error for the uninitialised register read noted by `reg` during this step.
    pub(super) fn uninit_reg_error(&self, pc: u32) -> Error {
        let i = self.bad_reg.get();
        let (t, r) = (i / self.nr.max(1), i % self.nr.max(1));
        let name = self
            .meta
            .reg_names
            .get(r)
            .cloned()
            .unwrap_or_else(|| format!("register #{r}"));
        Error::Uninitialized {
            kernel: self.k.name.clone(),
            at: self.pos(t.min(self.n.saturating_sub(1)), self.line_of(pc)),
            text: self.text_of(pc),
            what: Uninit::Register { name },
        }
    }

    fn line_of(&self, pc: u32) -> u32 {
        self.k.insts.get(pc as usize).map_or(0, |i| i.line)
    }

    fn text_of(&self, pc: u32) -> String {
        self.meta
            .insts
            .get(pc as usize)
            .map_or_else(String::new, |m| m.text.clone())
    }

    fn race_error(&self, t: usize, pc: u32, space: MemSpace, write: bool, c: Conflict) -> Error {
        let (first_block, first_thread, sp, addr) = match space {
            MemSpace::Shared => (
                self.ctaid,
                self.tids.get(c.who as usize).copied(),
                Space::Shared,
                c.off as u64,
            ),
            MemSpace::Global => {
                let (gx, gy) = (self.grid[0].max(1), self.grid[1].max(1));
                let b = [c.who % gx, (c.who / gx) % gy, c.who / (gx * gy)];
                (
                    b,
                    None,
                    Space::Global,
                    crate::memory::GLOBAL_BASE + c.off as u64,
                )
            }
        };
        let first = Access {
            block: first_block,
            thread: first_thread,
            pc: c.pc,
            line: self.line_of(c.pc),
            text: self.text_of(c.pc),
            write: c.write,
        };
        let ThreadPos { block, thread, .. } = self.pos(t, 0);
        let second = Access {
            block,
            thread: Some(thread),
            pc,
            line: self.line_of(pc),
            text: self.text_of(pc),
            write,
        };
        Error::Race {
            kernel: self.k.name.clone(),
            space: sp,
            addr,
            accesses: Box::new([first, second]),
        }
    }
}
