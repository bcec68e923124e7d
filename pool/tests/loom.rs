//! The pool's hand-written synchronisation under loom, which runs each
//! model under every interleaving (and memory-order outcome) it can reach.
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p lasagna-pool --release --test loom`
//! (scripts/test.sh does, in its own target folder). Without `--cfg loom`
//! this file is empty and says so.
#![cfg(loom)]

use lasagna_pool::Pool;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;

/// Each part runs exactly once and the caller sees its writes, whether the
/// worker claims the part, or the caller takes it back unclaimed.
#[test]
fn each_part_runs_once_and_its_effects_are_visible_when_run_returns() {
    loom::model(|| {
        let pool = Pool::new(1);
        let hits = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        pool.run(2, |i| {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits[0].load(Ordering::Relaxed), 1);
        assert_eq!(hits[1].load(Ordering::Relaxed), 1);
    });
}

/// Two runs back to back reuse the slot: a worker still finishing the first
/// can never run the second run's part with the first run's closure.
#[test]
fn back_to_back_runs_reuse_the_slot_safely() {
    loom::model(|| {
        let pool = Pool::new(1);
        for round in 1..=2usize {
            let seen = AtomicUsize::new(0);
            pool.run(2, |i| {
                if i == 1 {
                    seen.store(round, Ordering::Relaxed);
                }
            });
            assert_eq!(seen.load(Ordering::Relaxed), round);
        }
    });
}

/// Plain data written by a worker's part (through loom's checked cell) is
/// ordered before `run` returns: loom reports a data race otherwise.
#[test]
fn a_parts_plain_writes_happen_before_run_returns() {
    loom::model(|| {
        let pool = Pool::new(1);
        let cell = loom::cell::UnsafeCell::new(0u32);
        struct Shared<'a>(&'a loom::cell::UnsafeCell<u32>);
        // SAFETY: only part 1 writes, and only the caller reads, after run.
        unsafe impl Sync for Shared<'_> {}
        impl Shared<'_> {
            fn set(&self, v: u32) {
                self.0.with_mut(|p| unsafe { *p = v });
            }
        }
        let shared = Shared(&cell);
        pool.run(2, |i| {
            if i == 1 {
                shared.set(7);
            }
        });
        assert_eq!(cell.with(|p| unsafe { *p }), 7);
    });
}
