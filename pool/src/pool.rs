//! `Pool`: the calling thread plus one worker per extra core, each worker
//! with a one-part mailbox (`Slot`).
//!
//! A slot moves IDLE -> READY (the caller posted a job) -> RUNNING (the
//! worker claimed it) -> DONE (the worker finished) -> IDLE (the caller saw
//! it finish). A READY job the worker has not claimed when the caller is
//! done with its own parts goes back to IDLE and the caller runs it, so a
//! descheduled worker costs the hand-off and no more.

use crate::sync::{
    self, thread, Arc, AtomicBool, AtomicU8, JoinHandle, Mutex, Ordering, UnsafeCell,
};
use std::panic::{catch_unwind, AssertUnwindSafe};

const IDLE: u8 = 0;
const READY: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;

/// A borrowed `Fn(usize) + Sync` with its lifetime erased: a pointer to the
/// closure and the function that knows its type. Valid only while the
/// `run` that made it has not returned, which `Finish` guarantees.
#[derive(Clone, Copy)]
struct JobRef {
    data: *const (),
    call: unsafe fn(*const (), usize),
    /// The parts this job runs: first, first + stride, ... below parts.
    first: usize,
    stride: usize,
    parts: usize,
}

// SAFETY: the closure behind `data` is `Sync`, so calling it from another
// thread through a shared reference is what its type allows.
unsafe impl Send for JobRef {}

impl JobRef {
    /// # Safety
    /// The `run` call that made this job must still be in progress.
    unsafe fn run(self) {
        let mut i = self.first;
        while i < self.parts {
            (self.call)(self.data, i);
            i += self.stride;
        }
    }
}

/// # Safety
/// `data` must point at a live `F`.
unsafe fn call<F: Fn(usize) + Sync>(data: *const (), part: usize) {
    (*(data as *const F))(part)
}

struct Slot {
    state: AtomicU8,
    panicked: AtomicBool,
    job: UnsafeCell<Option<JobRef>>,
}

// SAFETY: `job` is written by the caller only while the slot is IDLE, and
// taken by the worker only after it moved READY -> RUNNING, or by the caller
// after it moved READY -> IDLE; the Release/Acquire pairs on `state` order
// each write before the read that follows it.
unsafe impl Sync for Slot {}

struct Shared {
    slots: Box<[Slot]>,
    stop: AtomicBool,
}

/// A fork-join pool. `run` is called by one thread at a time; a second
/// caller meanwhile (or a nested call from inside a part) runs its parts
/// itself, so the pool never deadlocks and never oversubscribes.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    caller: Mutex<()>,
}

impl Pool {
    /// A pool with up to `workers` threads besides the caller (fewer if the
    /// system refuses to start more).
    pub fn new(workers: usize) -> Pool {
        let slots: Box<[Slot]> = (0..workers)
            .map(|_| Slot {
                state: AtomicU8::new(IDLE),
                panicked: AtomicBool::new(false),
                job: UnsafeCell::new(None),
            })
            .collect();
        let shared = Arc::new(Shared {
            slots,
            stop: AtomicBool::new(false),
        });
        let mut handles = Vec::with_capacity(workers);
        for me in 0..workers {
            let s = shared.clone();
            match sync::spawn(format!("lasagna-pool-{}", me + 1), move || work(&s, me)) {
                Some(h) => handles.push(h),
                None => break,
            }
        }
        Pool {
            shared,
            workers: handles,
            caller: Mutex::new(()),
        }
    }

    /// Threads that run parts: the caller and the workers.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Calls `f(i)` for every `i` in `0..parts`, spread over the caller and
    /// the workers, and returns when all have returned. A panic in any part
    /// is raised here once every part has stopped using `f`.
    pub fn run<F: Fn(usize) + Sync>(&self, parts: usize, f: F) {
        let helpers = self.workers.len().min(parts.saturating_sub(1));
        let serial = || (0..parts).for_each(&f);
        if helpers == 0 {
            return serial();
        }
        let Ok(_caller) = self.caller.try_lock() else {
            return serial();
        };
        let stride = helpers + 1;
        let data = &f as *const F as *const ();
        let slots = &self.shared.slots[..helpers];
        for (w, slot) in slots.iter().enumerate() {
            let job = JobRef {
                data,
                call: call::<F>,
                first: w + 1,
                stride,
                parts,
            };
            // SAFETY: the slot is IDLE (every run leaves its slots IDLE), so
            // its worker does not touch `job`.
            slot.job.with_mut(|p| unsafe { *p = Some(job) });
            slot.state.store(READY, Ordering::Release);
            self.workers[w].thread().unpark();
        }
        let mut finish = Finish {
            slots,
            settled: false,
            worker_panicked: false,
        };
        (0..parts).step_by(stride).for_each(&f);
        finish.settle();
        if finish.worker_panicked {
            panic!("a part run by a lasagna-pool worker panicked");
        }
    }

    /// Calls `f(i, piece)` for each of `pieces` (typically disjoint `&mut`
    /// slices of one buffer), spread as [`Pool::run`] spreads parts: the safe
    /// way to hand each thread its own mutable data.
    pub fn run_pieces<S: Send>(&self, pieces: Vec<S>, f: impl Fn(usize, S) + Sync) {
        let slots: Vec<Mutex<Option<S>>> =
            pieces.into_iter().map(|p| Mutex::new(Some(p))).collect();
        self.run(slots.len(), |i| {
            if let Some(piece) = take(&slots[i]) {
                f(i, piece)
            }
        });
    }

    /// Runs `a` and `b`, on two threads when a worker is free.
    pub fn join(&self, a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
        let (a, b) = (Mutex::new(Some(a)), Mutex::new(Some(b)));
        self.run(2, |i| if i == 0 { call_once(&a) } else { call_once(&b) });
    }
}

fn call_once<F: FnOnce()>(f: &Mutex<Option<F>>) {
    if let Some(f) = take(f) {
        f()
    }
}

/// The value in `slot`, once; each slot is locked once, uncontended, and a
/// lock poisoned by a panicking part still yields its value.
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    match slot.lock() {
        Ok(mut g) => g.take(),
        Err(poisoned) => poisoned.into_inner().take(),
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            // A worker only ends by returning; a panic was caught per part.
            let _ = w.join();
        }
    }
}

/// Brings every slot a `run` used back to IDLE before the closure it lent
/// goes away, also when the caller's own part panics: a job no worker has
/// claimed is taken back, a claimed one is waited for.
struct Finish<'a> {
    slots: &'a [Slot],
    settled: bool,
    worker_panicked: bool,
}

impl Finish<'_> {
    fn settle(&mut self) {
        if self.settled {
            return;
        }
        self.settled = true;
        let mut taken_back = Vec::new();
        for slot in self.slots {
            if slot
                .state
                .compare_exchange(READY, IDLE, Ordering::Acquire, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: the worker never claimed the job, so it is ours.
                if let Some(job) = slot.job.with_mut(|p| unsafe { (*p).take() }) {
                    taken_back.push(job);
                }
                continue;
            }
            while slot.state.load(Ordering::Acquire) != DONE {
                sync::spin();
            }
            self.worker_panicked |= slot.panicked.swap(false, Ordering::Relaxed);
            slot.state.store(IDLE, Ordering::Release);
        }
        // No worker uses the closure any more. While unwinding from the
        // caller's own panic the taken-back parts are dropped, not run: a
        // second panic would abort.
        if !std::thread::panicking() {
            for job in taken_back {
                // SAFETY: `run` has not returned; this is its guard.
                unsafe { job.run() };
            }
        }
    }
}

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        self.settle();
    }
}

fn work(shared: &Shared, me: usize) {
    let slot = &shared.slots[me];
    loop {
        let mut patience = sync::Patience::new();
        loop {
            if slot.state.load(Ordering::Acquire) == READY
                && slot
                    .state
                    .compare_exchange(READY, RUNNING, Ordering::Acquire, Ordering::Acquire)
                    .is_ok()
            {
                break;
            }
            if shared.stop.load(Ordering::Acquire) {
                return;
            }
            if patience.exhausted() {
                // The caller unparks after posting, and an unpark before
                // the park makes it return at once: no wake-up is lost.
                thread::park();
            } else {
                sync::spin();
            }
        }
        // SAFETY: this worker moved the slot READY -> RUNNING; the caller
        // posted a job for a `run` that waits for DONE.
        let job = slot.job.with_mut(|p| unsafe { (*p).take() });
        let ok = match job {
            Some(job) => catch_unwind(AssertUnwindSafe(|| unsafe { job.run() })).is_ok(),
            None => true,
        };
        slot.panicked.store(!ok, Ordering::Relaxed);
        slot.state.store(DONE, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_part_runs_exactly_once_for_any_part_count_and_pool_size() {
        for workers in [0, 1, 3] {
            let pool = Pool::new(workers);
            for parts in [0, 1, 2, 3, 4, 7, 16] {
                for _ in 0..200 {
                    let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
                    pool.run(parts, |i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    let counts: Vec<usize> =
                        hits.iter().map(|h| h.load(Ordering::Relaxed)).collect();
                    assert!(
                        counts.iter().all(|&c| c == 1),
                        "workers {workers}, parts {parts}: {counts:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn run_pieces_hands_each_part_its_own_mutable_slice() {
        let pool = Pool::new(2);
        let mut data = vec![0usize; 1000];
        let pieces: Vec<&mut [usize]> = data.chunks_mut(300).collect();
        pool.run_pieces(pieces, |i, piece| piece.iter_mut().for_each(|v| *v = i + 1));
        for (j, v) in data.iter().enumerate() {
            assert_eq!(*v, j / 300 + 1, "element {j}");
        }
    }

    #[test]
    fn join_runs_both_halves_on_borrowed_data() {
        let pool = Pool::new(1);
        for round in 0..1000u32 {
            let (mut left, mut right) = (vec![0u32; 100], vec![0u32; 100]);
            pool.join(
                || left.iter_mut().for_each(|v| *v = round),
                || right.iter_mut().for_each(|v| *v = round + 1),
            );
            assert!(left.iter().all(|&v| v == round) && right.iter().all(|&v| v == round + 1));
        }
    }

    #[test]
    fn a_panicking_part_reaches_the_caller_after_every_part_stopped() {
        let pool = Pool::new(2);
        for bad in 0..3 {
            let running = AtomicUsize::new(0);
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                pool.run(3, |i| {
                    if i == bad {
                        panic!("part {i} fails on purpose");
                    }
                    running.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            }));
            assert!(r.is_err(), "the panic of part {bad} was lost");
            // Whichever part panicked, no part is still using the closure
            // once `run` has unwound.
            assert_eq!(running.load(Ordering::SeqCst), 0, "part {bad}");
            // The pool is usable afterwards.
            let hits = AtomicUsize::new(0);
            pool.run(3, |_| {
                hits.fetch_add(1, Ordering::SeqCst);
            });
            assert_eq!(hits.load(Ordering::SeqCst), 3);
        }
    }

    #[test]
    fn a_nested_run_inside_a_part_runs_serially_instead_of_deadlocking() {
        let pool = Pool::new(1);
        let total = AtomicUsize::new(0);
        pool.run(2, |_| {
            pool.run(3, |_| {
                total.fetch_add(1, Ordering::SeqCst);
            })
        });
        assert_eq!(total.load(Ordering::SeqCst), 6);
    }
}
