//! Exact, cheap race detection by per-word epoch tracking.
//!
//! Every 4-byte word of a memory has a slot with the last writer and up to two
//! readers of the current epoch. An access conflicts with a recorded one when
//! their byte masks overlap, at least one is a write, and they come from
//! different *groups*: warps for shared memory (a slot's `who` is the thread
//! index, the group is `who >> 5`), blocks for global memory (`who` is the
//! linear block index). Epochs make resets free: a `bar.sync` (shared) or a new
//! launch (global) bumps the epoch and every older slot reads as empty.
//!
//! Two distinct reader groups are enough to stay exact: a write by group `g`
//! conflicts with the reader set iff the set holds a group other than `g`, and
//! two distinct stored groups always include one. The only loss is on
//! sub-word accesses: a write to disjoint bytes of a word by another group
//! replaces the record (a missed report, never a false one).

const NONE: u32 = u32::MAX;
/// The pc lives in the low 28 bits of `Rec::pc_mask`, the byte mask in the top 4.
const PC_BITS: u32 = 28;

#[derive(Clone, Copy)]
struct Rec {
    who: u32,
    pc_mask: u32,
}

impl Rec {
    const EMPTY: Rec = Rec {
        who: NONE,
        pc_mask: 0,
    };
    fn mask(self) -> u32 {
        self.pc_mask >> PC_BITS
    }
    fn pc(self) -> u32 {
        self.pc_mask & ((1 << PC_BITS) - 1)
    }
}

#[derive(Clone, Copy)]
struct Slot {
    epoch: u32,
    w: Rec,
    r: [Rec; 2],
}

const EMPTY: Slot = Slot {
    epoch: 0,
    w: Rec::EMPTY,
    r: [Rec::EMPTY; 2],
};

/// The recorded access an access conflicted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// Thread index (shared) or linear block index (global) of the earlier access.
    pub who: u32,
    /// Its pc.
    pub pc: u32,
    /// Whether it was a write.
    pub write: bool,
    /// Byte offset of the conflicting word.
    pub off: usize,
}

/// Shadow state of one memory.
#[derive(Default)]
pub(crate) struct Shadow {
    slots: Vec<Slot>,
    epoch: u32,
    shift: u32,
}

// By hand: a derived `Debug` would print every slot of a megabyte-sized heap.
impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadow")
            .field("words", &self.slots.len())
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Shadow {
    /// A shadow grouping `who` by `who >> shift` (5: warps of threads; 0: blocks).
    pub(crate) fn new(shift: u32) -> Self {
        Shadow {
            slots: Vec::new(),
            epoch: 0,
            shift,
        }
    }

    /// Covers `bytes` bytes and starts a fresh epoch (everything recorded so far is forgotten).
    pub(crate) fn reset(&mut self, bytes: usize) {
        let words = bytes.div_ceil(4);
        if self.slots.len() < words {
            self.slots.resize(words, EMPTY);
        }
        self.next_epoch();
    }

    /// Forgets every recorded access (a barrier for shared memory).
    pub(crate) fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: old slots could alias the new epoch, so clear them for real.
            self.slots.fill(EMPTY);
            self.epoch = 1;
        }
    }

    /// Records an access of `size` bytes at byte offset `off` by `who` at `pc`
    /// and returns the first conflict with an access of the same epoch.
    pub(crate) fn access(
        &mut self,
        off: usize,
        size: u32,
        who: u32,
        pc: u32,
        write: bool,
    ) -> Option<Conflict> {
        let end = off + size as usize;
        let group = who >> self.shift;
        let shift = self.shift;
        let other = |r: Rec| r.who != NONE && (r.who >> shift) != group;
        let mut first = None;
        let mut w = off / 4;
        while w * 4 < end {
            let lo = (w * 4).max(off) - w * 4;
            let hi = (w * 4 + 4).min(end) - w * 4;
            let m = ((1u32 << hi) - 1) & !((1u32 << lo) - 1);
            let rec = Rec {
                who,
                pc_mask: (m << PC_BITS) | (pc & ((1 << PC_BITS) - 1)),
            };
            let Some(s) = self.slots.get_mut(w) else {
                break;
            };
            if s.epoch != self.epoch {
                *s = Slot {
                    epoch: self.epoch,
                    ..EMPTY
                };
            }
            let hit = |r: Rec, write: bool| {
                (other(r) && r.mask() & m != 0).then_some(Conflict {
                    who: r.who,
                    pc: r.pc(),
                    write,
                    off: w * 4,
                })
            };
            let found = if write {
                hit(s.w, true)
                    .or_else(|| hit(s.r[0], false))
                    .or_else(|| hit(s.r[1], false))
            } else {
                hit(s.w, true)
            };
            if first.is_none() {
                first = found;
            }
            let merge = |old: Rec| {
                if old.who != NONE && old.who >> shift == group {
                    Rec {
                        pc_mask: rec.pc_mask | (old.pc_mask & !((1 << PC_BITS) - 1)),
                        ..rec
                    }
                } else {
                    rec
                }
            };
            if write {
                s.w = merge(s.w);
            } else if s.r[0].who == NONE || s.r[0].who >> shift == group {
                s.r[0] = merge(s.r[0]);
            } else {
                s.r[1] = merge(s.r[1]);
            }
            w += 1;
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_group_never_conflicts_and_other_groups_do() {
        let mut s = Shadow::new(5);
        s.reset(64);
        assert_eq!(s.access(0, 4, 0, 1, true), None);
        assert_eq!(s.access(0, 4, 31, 2, false), None, "same warp");
        let c = s.access(0, 4, 32, 3, false).map(|c| (c.who, c.pc, c.write));
        assert_eq!(c, Some((0, 1, true)), "read after another warp's write");
    }

    #[test]
    fn a_new_epoch_forgets_and_disjoint_bytes_do_not_conflict() {
        let mut s = Shadow::new(0);
        s.reset(64);
        assert_eq!(s.access(8, 2, 1, 1, true), None);
        assert_eq!(s.access(10, 2, 2, 1, true), None, "other half of the word");
        s.next_epoch();
        assert_eq!(s.access(8, 4, 3, 1, true), None);
    }

    #[test]
    fn a_write_finds_any_other_reader_among_many() {
        let mut s = Shadow::new(0);
        s.reset(16);
        for b in [1, 2, 3] {
            assert_eq!(s.access(0, 4, b, 7, false), None);
        }
        assert!(s.access(0, 4, 1, 8, true).is_some());
    }
}
