//! The validation split: a seeded random subset held out of training.

use super::Dataset;
use crate::error::{Error, Result};
use crate::philox::permutation;

/// Philox offset of the split's permutation (ASCII "SPLT" in the high word).
/// Seeded draws share the run's seed, so each use gets its own offset; this
/// one sits far from dropout's per-step offsets, the weight-initialization
/// streams and the epoch shuffles ([`super::EPOCH_OFFSET`]` + epoch`), so the
/// held-out set is not correlated with anything else the seed decides.
pub const SPLIT_OFFSET: u64 = 0x5350_4C54_0000_0000;

/// Splits `ds` into (train, validation) with `val` samples drawn at random by
/// `seed`; each part keeps the original sample order. `val == 0` gives
/// `(ds, empty)`; `val >= ds.len()` is an error, since nothing would be left to train on.
pub fn split_validation(ds: &Dataset, val: usize, seed: u64) -> Result<(Dataset, Dataset)> {
    if val == 0 {
        return Ok((ds.clone(), ds.empty_like()));
    }
    if val >= ds.len() {
        return Err(Error::config(
            "validation split",
            format!(
                "{val} validation samples leave none of the {} training samples to train on; \
                 use fewer (e.g. {})",
                ds.len(),
                ds.len() / 10
            ),
        ));
    }
    let mut perm = permutation(ds.len(), seed, SPLIT_OFFSET);
    let (held, kept) = perm.split_at_mut(val);
    held.sort_unstable();
    kept.sort_unstable();
    Ok((ds.select(kept)?, ds.select(held)?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::super::tests::toy;
    use super::*;

    #[test]
    fn split_is_disjoint_covers_everything_and_is_deterministic_by_seed() {
        let d = toy(100);
        let (tr, va) = split_validation(&d, 20, 7).unwrap();
        assert_eq!((tr.len(), va.len()), (80, 20));
        // toy's first value is the sample's index.
        let ids = |s: &Dataset| {
            (0..s.len())
                .map(|i| s.sample(i).unwrap()[0] as u32)
                .collect::<Vec<_>>()
        };
        let mut all = [ids(&tr), ids(&va)].concat();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<u32>>());
        assert!(ids(&va).windows(2).all(|w| w[0] < w[1]));
        assert_eq!(split_validation(&d, 20, 7).unwrap(), (tr, va.clone()));
        assert_ne!(split_validation(&d, 20, 8).unwrap().1, va);
        assert_eq!(va.y, ids(&va).iter().map(|i| i % 3).collect::<Vec<_>>());
    }

    #[test]
    fn zero_keeps_everything_and_too_many_is_an_error() {
        let d = toy(10);
        let (tr, va) = split_validation(&d, 0, 1).unwrap();
        assert_eq!(tr, d);
        assert!(va.is_empty());
        assert_eq!(va.sample_shape, d.sample_shape);
        let e = split_validation(&d, 10, 1).unwrap_err().to_string();
        assert!(e.contains("validation split") && e.contains("10"), "{e}");
        assert!(split_validation(&d, 9, 1).is_ok());
    }
}
