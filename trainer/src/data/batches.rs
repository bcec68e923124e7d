//! The order samples are visited in each epoch, and its cut into batches.

use std::ops::Range;

/// Philox offset of epoch 0's shuffle (ASCII "EPOC" in the high word); epoch
/// `e` uses `EPOCH_OFFSET + e`. Offsets separate the streams that share the
/// run's seed, and this range sits far from dropout's per-step offsets, the
/// weight-initialization streams and [`super::SPLIT_OFFSET`].
pub const EPOCH_OFFSET: u64 = 0x4550_4F43_0000_0000;

/// The sample order of `epoch`: a permutation drawn from `(seed, epoch)` when
/// shuffling (the same on every backend and on a resumed run), `0..n` otherwise.
pub fn epoch_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<u32> {
    if shuffle {
        crate::philox::permutation(n, seed, EPOCH_OFFSET.wrapping_add(epoch))
    } else {
        (0..n as u32).collect()
    }
}

/// Consecutive batches of `batch_size` over `n` positions; the last partial
/// batch is kept (PyTorch's `drop_last=False`), except a partial batch of
/// exactly one sample when `drop_singleton` is set.
///
/// That exception is for models with BatchNorm: train-mode batch statistics
/// of one sample are degenerate (zero variance; PyTorch raises "Expected more
/// than 1 value per channel when training"), and PyTorch users reach for
/// `drop_last=True`. Dropping only a final batch of one loses at most one
/// sample per epoch, a different one each epoch when shuffling. Full batches
/// of one (`batch_size == 1`) are kept, so BatchNorm still reports its error.
/// `batch_size == 0` gives no batches; configurations reject it earlier.
pub fn batch_ranges(n: usize, batch_size: usize, drop_singleton: bool) -> Vec<Range<usize>> {
    if batch_size == 0 {
        return Vec::new();
    }
    let mut out: Vec<Range<usize>> = (0..n)
        .step_by(batch_size)
        .map(|s| s..(s + batch_size).min(n))
        .collect();
    if drop_singleton && batch_size > 1 && out.last().is_some_and(|r| r.len() == 1) {
        out.pop();
    }
    out
}

/// The batches of `epoch`: ranges of positions into
/// `epoch_order(n, seed, epoch, shuffle)` (see [`batch_ranges`] for the
/// rules). The cut does not depend on the order; the order's parameters are
/// taken so one call names the whole epoch.
pub fn epoch_batches(
    n: usize,
    batch_size: usize,
    seed: u64,
    epoch: u64,
    shuffle: bool,
    drop_singleton: bool,
) -> Vec<Range<usize>> {
    let _ = (seed, epoch, shuffle);
    batch_ranges(n, batch_size, drop_singleton)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn epoch_order_is_a_permutation_that_changes_with_the_epoch() {
        let a = epoch_order(1000, 3, 0, true);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, (0..1000).collect::<Vec<u32>>());
        assert_ne!(a, epoch_order(1000, 3, 1, true));
        assert_ne!(a, epoch_order(1000, 4, 0, true));
        assert_eq!(a, epoch_order(1000, 3, 0, true));
        assert_eq!(epoch_order(5, 3, 9, false), vec![0, 1, 2, 3, 4]);
        assert!(epoch_order(0, 3, 0, true).is_empty());
    }

    #[test]
    fn batches_cover_every_position_once_and_keep_the_partial_tail() {
        let b = epoch_batches(10, 4, 1, 0, true, false);
        assert_eq!(b, vec![0..4, 4..8, 8..10]);
        assert_eq!(epoch_batches(8, 4, 1, 0, true, true), vec![0..4, 4..8]);
        assert_eq!(epoch_batches(3, 64, 1, 0, true, true), vec![0..3]);
        assert!(epoch_batches(0, 4, 1, 0, true, false).is_empty());
        assert!(epoch_batches(10, 0, 1, 0, true, false).is_empty());
    }

    #[test]
    fn a_final_batch_of_one_is_dropped_only_when_asked() {
        assert_eq!(batch_ranges(9, 4, false), vec![0..4, 4..8, 8..9]);
        assert_eq!(batch_ranges(9, 4, true), vec![0..4, 4..8]);
        // 10 = 3 * 3 + 1.
        assert_eq!(batch_ranges(10, 3, true), vec![0..3, 3..6, 6..9]);
        assert_eq!(batch_ranges(10, 3, false).len(), 4);
        // Batch size 1 has no partial batch; BatchNorm reports that case itself.
        assert_eq!(batch_ranges(3, 1, true).len(), 3);
        assert!(batch_ranges(1, 4, true).is_empty());
    }
}
