//! Strict-mode scheduling: blocks of a grid in a shuffled order, and the warps
//! of a block interleaved one instruction at a time in a seeded random order.
//! Hardware gives no ordering between blocks nor between warps between two
//! barriers, so a kernel that is correct must be correct under any of these.

use super::Block;
use crate::error::Result;
use crate::options::{Rng, SimOptions};

/// Above this many blocks the grid runs in order (the permutation would cost
/// 4 bytes per block); no test grid comes near it.
const MAX_SHUFFLED_BLOCKS: u64 = 1 << 24;

/// A seeded Fisher-Yates permutation of the linear block indices with
/// `interleave`, or `None` for the in-order default.
pub(super) fn block_order(blocks: u64, opts: &SimOptions, rng: &mut Rng) -> Option<Vec<u32>> {
    if !opts.interleave || blocks > MAX_SHUFFLED_BLOCKS {
        return None;
    }
    let mut order: Vec<u32> = (0..blocks as u32).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    Some(order)
}

impl Block<'_> {
    /// Runs warps until every one is parked at a barrier or exited, each step
    /// picking a random warp that can still run.
    pub(super) fn run_interleaved(&mut self, nwarps: usize) -> Result<()> {
        let mut live: Vec<usize> = (0..nwarps).collect();
        while !live.is_empty() {
            let k = self.rng.below(live.len());
            let w = live.get(k).copied().unwrap_or(0);
            if !self.warp_step(w * 32)? {
                live.swap_remove(k);
            }
        }
        Ok(())
    }
}
