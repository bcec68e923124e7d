//! Deferred `cp.async` (PTX ISA 9.7.9.25): with `deferred_cp_async`, each
//! copy waits in its thread's queue and lands in shared memory only when the
//! thread executes the `cp.async.wait_group N` that covers its commit group
//! (or `cp.async.wait_all`). A kernel that reads the destination before that
//! wait (or before the barrier after it, from another thread) then reads the
//! old bytes, or poison, instead of passing by luck.

use super::{Block, Lanes};
use crate::error::Result;
use crate::inst::MemSpace;
use crate::memory::write_le;
use crate::meta::Fence;

/// One copy in flight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    /// Destination offset in shared memory.
    off: usize,
    /// Bytes to write (4, 8 or 16).
    size: u32,
    /// The bytes, read from global memory at issue and zero-filled past `src-size`.
    data: [u8; 16],
    /// Commit group: the thread's commit count when the copy issued.
    group: u32,
    /// pc of the `cp.async`, for race reports on landing.
    pc: u32,
}

impl Block<'_> {
    /// Queues a copy for thread `t`.
    pub(super) fn defer(&mut self, t: usize, off: usize, size: u32, data: [u8; 16]) {
        let group = self.groups.get(t).copied().unwrap_or(0);
        let pc = self.pc_now;
        if let Some(q) = self.pend.get_mut(t) {
            q.push_back(Pending {
                off,
                size,
                data,
                group,
                pc,
            });
        }
    }

    /// `cp.async.commit_group`, `wait_group N`, `wait_all` for the active lanes.
    /// No-ops unless copies are deferred (they have all landed already).
    pub(super) fn fence(&mut self, lo: usize, act: u32) -> Result<()> {
        if !self.opts.deferred_cp_async {
            return Ok(());
        }
        let fence = self
            .meta
            .insts
            .get(self.pc_now as usize)
            .and_then(|m| m.fence);
        for l in Lanes(act) {
            let t = lo + l;
            let Some(g) = self.groups.get_mut(t) else {
                continue;
            };
            // Copies of groups below `done` land: every committed group except the newest N.
            let done = match fence {
                Some(Fence::Commit) | None => {
                    *g += 1;
                    continue;
                }
                Some(Fence::Wait(n)) => g.saturating_sub(n),
                Some(Fence::WaitAll) => {
                    *g += 1;
                    *g
                }
            };
            self.land(t, done)?;
        }
        Ok(())
    }

    /// Lands thread `t`'s queued copies whose group is below `done`.
    fn land(&mut self, t: usize, done: u32) -> Result<()> {
        while let Some(p) = self.pend.get(t).and_then(|q| q.front().copied()) {
            if p.group >= done {
                break;
            }
            if let Some(q) = self.pend.get_mut(t) {
                q.pop_front();
            }
            self.check_access_at(t, p.pc, MemSpace::Shared, p.off, p.size, true)?;
            for (e, &x) in p.data.iter().enumerate().take(p.size as usize) {
                write_le(&mut self.shared, p.off + e, 1, u64::from(x));
            }
            self.mark_shared(p.off, p.size);
        }
        Ok(())
    }
}
