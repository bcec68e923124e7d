//! Per-launch counters. They count thread-instructions (one per active,
//! guard-true lane), so they compare directly with a napkin FLOP count.

use std::ops::AddAssign;

use crate::inst::Class;

/// Counters of one launch (or the sum of several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LaunchStats {
    /// Float ALU instructions other than fused multiply-add (incl. float setp/cvt).
    pub fp: u64,
    /// `fma`/`mad` on floats.
    pub fma: u64,
    /// `mma.sync` thread-instructions (32 per warp-level `mma`). One warp-level
    /// `mma.m16n8k16` does 16 * 8 * 16 = 2048 multiply-adds, so each thread-instruction
    /// here stands for 64 of them: see [`LaunchStats::fma_equivalent`].
    pub mma: u64,
    /// Integer and logic ALU instructions (incl. integer setp/selp/cvt).
    pub int: u64,
    /// `ld.global`, and `cp.async` (global to shared; its shared side is also
    /// counted in `shared_store`).
    pub global_load: u64,
    /// `st.global`.
    pub global_store: u64,
    /// `ld.shared` and `ldmatrix` (one per lane).
    pub shared_load: u64,
    /// `st.shared`, and the shared-memory side of `cp.async` (one per lane).
    pub shared_store: u64,
    /// `bar.sync`.
    pub barrier: u64,
    /// `shfl.sync`.
    pub shuffle: u64,
    /// `atom`/`red`.
    pub atomic: u64,
    /// `bra`, `ret`, `exit`.
    pub control: u64,
    /// `mov`, `cvta`, `ld.param`, `cp.async.commit_group` / `wait_group`.
    pub other: u64,
    /// Instructions skipped because their guard predicate was false.
    pub predicated_off: u64,
    /// Warp-level issue count (one per instruction per converged group of lanes).
    pub warp_instructions: u64,
    /// Bytes read from global memory (loads and atomics).
    pub global_bytes_read: u64,
    /// Bytes written to global memory (stores and atomics).
    pub global_bytes_written: u64,
    /// Shared-memory bank conflicts: the extra shared-memory wavefronts beyond the ideal.
    /// A warp's access is served in phases, as on the hardware: the whole warp for
    /// accesses of up to 32 bits, half-warps for 64-bit and quarter-warps for 128-bit
    /// accesses (each phase moves at most 128 bytes). Per phase, the largest number of
    /// distinct 4-byte words that map to one of the 32 banks, minus one.
    pub bank_conflicts: u64,
}

impl LaunchStats {
    /// Multiply-adds done: `fma` plus 64 per `mma` thread-instruction (2048 per
    /// warp-level `mma.m16n8k16`), comparable with an f32 GEMM's `fma` count.
    pub fn fma_equivalent(&self) -> u64 {
        self.fma + 64 * self.mma
    }

    /// Total thread-instructions executed (guard-false lanes excluded).
    pub fn thread_instructions(&self) -> u64 {
        self.fp
            + self.fma
            + self.mma
            + self.int
            + self.global_load
            + self.global_store
            + self.shared_load
            + self.shared_store
            + self.barrier
            + self.shuffle
            + self.atomic
            + self.control
            + self.other
    }

    /// Adds `n` executed lanes of class `c`.
    #[inline]
    pub fn count(&mut self, c: Class, n: u64) {
        let slot = match c {
            Class::Fp => &mut self.fp,
            Class::Fma => &mut self.fma,
            Class::Mma => &mut self.mma,
            Class::Int => &mut self.int,
            Class::GlobalLoad => &mut self.global_load,
            Class::GlobalStore => &mut self.global_store,
            Class::SharedLoad => &mut self.shared_load,
            Class::SharedStore => &mut self.shared_store,
            Class::Barrier => &mut self.barrier,
            Class::Shuffle => &mut self.shuffle,
            Class::Atomic => &mut self.atomic,
            Class::Control => &mut self.control,
            Class::Other => &mut self.other,
        };
        *slot += n;
    }
}

impl AddAssign for LaunchStats {
    fn add_assign(&mut self, o: Self) {
        self.fp += o.fp;
        self.fma += o.fma;
        self.mma += o.mma;
        self.int += o.int;
        self.global_load += o.global_load;
        self.global_store += o.global_store;
        self.shared_load += o.shared_load;
        self.shared_store += o.shared_store;
        self.barrier += o.barrier;
        self.shuffle += o.shuffle;
        self.atomic += o.atomic;
        self.control += o.control;
        self.other += o.other;
        self.predicated_off += o.predicated_off;
        self.warp_instructions += o.warp_instructions;
        self.global_bytes_read += o.global_bytes_read;
        self.global_bytes_written += o.global_bytes_written;
        self.bank_conflicts += o.bank_conflicts;
    }
}

/// Bits of a `bank_conflicts` entry above the word index that hold its phase.
pub const PHASE_SHIFT: u32 = 56;

/// The phase (see [`LaunchStats::bank_conflicts`]) in which `lane` is served by
/// a shared access of `bytes` per lane.
pub fn phase(lane: usize, bytes: u32) -> u64 {
    let lanes_per_phase = 32 / (bytes / 4).clamp(1, 4) as usize;
    (lane / lanes_per_phase) as u64
}

/// Bank conflicts of one warp-wide shared access: `words` holds every 4-byte
/// word index touched, tagged with its phase (`phase << PHASE_SHIFT | word`).
pub fn bank_conflicts(words: &mut Vec<u64>) -> u64 {
    words.sort_unstable();
    words.dedup();
    let mut total = 0u64;
    // Sorted by tag first, so each phase is one contiguous run.
    for run in words.chunk_by(|a, b| a >> PHASE_SHIFT == b >> PHASE_SHIFT) {
        let mut per_bank = [0u32; 32];
        for w in run {
            per_bank[(w % 32) as usize] += 1;
        }
        let worst = per_bank.iter().copied().max().unwrap_or(0);
        total += u64::from(worst.saturating_sub(1));
    }
    total
}
