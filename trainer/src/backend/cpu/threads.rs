//! A second core on call, for splitting one large op in two halves.
//!
//! rayon hands work to sleeping threads; on this project's 2-vCPU virtual
//! machines waking one costs more than half of a 64x784x256 GEMM, so splitting
//! through rayon made an MLP epoch 25% slower. Here one helper thread spins
//! for a couple of milliseconds after each job before it parks, so the
//! back-to-back GEMMs of a training step reach it in about a microsecond.
//! If the helper has not started its half by the time the caller finishes
//! its own (the hypervisor may have descheduled that vCPU), the caller takes
//! the half back and runs it itself, so a split op is never slower than an
//! unsplit one by more than the hand-off.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

const IDLE: u8 = 0;
const READY: u8 = 1;
const RUNNING: u8 = 2;
const DONE: u8 = 3;
/// How long the helper spins for the next job before it parks.
const SPIN: Duration = Duration::from_millis(3);

type Job = *mut (dyn FnMut() + Send);

struct Helper {
    state: AtomicU8,
    panicked: AtomicBool,
    job: UnsafeCell<Option<Job>>,
    thread: Thread,
    /// One caller at a time (the training loop is single-threaded anyway).
    caller: Mutex<()>,
}

// SAFETY: `job` is written by the caller only while state is IDLE and read by
// the helper only while state is READY; the atomics order those accesses.
unsafe impl Sync for Helper {}
unsafe impl Send for Helper {}

static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();

fn helper() -> Option<&'static Helper> {
    *HELPER.get_or_init(|| {
        if thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            < 2
        {
            return None;
        }
        let (tx, rx) = std::sync::mpsc::channel::<&'static Helper>();
        let spawned = thread::Builder::new()
            .name("lasagna-helper".into())
            .spawn(move || {
                let Ok(h) = rx.recv() else { return };
                work(h);
            });
        let handle = spawned.ok()?;
        let h: &'static Helper = Box::leak(Box::new(Helper {
            state: AtomicU8::new(IDLE),
            panicked: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            thread: handle.thread().clone(),
            caller: Mutex::new(()),
        }));
        tx.send(h).ok()?;
        Some(h)
    })
}

fn work(h: &'static Helper) {
    loop {
        let since = Instant::now();
        loop {
            if h.state.load(Ordering::Acquire) == READY
                && h.state
                    .compare_exchange(READY, RUNNING, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                break;
            }
            if since.elapsed() > SPIN {
                thread::park_timeout(Duration::from_millis(50));
            } else {
                std::hint::spin_loop();
            }
        }
        // SAFETY: RUNNING was claimed from READY: the caller stored a live job
        // and now waits for DONE.
        let job = unsafe { (*h.job.get()).take() };
        if let Some(job) = job {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*job)() }))
                .is_ok();
            h.panicked.store(!ok, Ordering::Relaxed);
        }
        h.state.store(DONE, Ordering::Release);
    }
}

/// Makes sure the helper's half has run before the frame that owns the job
/// goes away, even if the caller's half panics: either the caller takes the
/// job back (the helper had not claimed it) or waits for the helper.
struct Finish(&'static Helper);

impl Drop for Finish {
    fn drop(&mut self) {
        let h = self.0;
        if h.state
            .compare_exchange(READY, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // SAFETY: the helper never claimed the job, so it is ours again.
            if let Some(job) = unsafe { (*h.job.get()).take() } {
                unsafe { (*job)() };
            }
            return;
        }
        while h.state.load(Ordering::Acquire) != DONE {
            std::hint::spin_loop();
        }
        h.state.store(IDLE, Ordering::Release);
    }
}

/// Runs `a` here and `b` on the helper core, and returns when both are done.
/// Without a second core (or while another caller uses it) both run here.
pub fn join(a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    let Some(h) = helper() else {
        a();
        b();
        return;
    };
    let Ok(_guard) = h.caller.try_lock() else {
        a();
        b();
        return;
    };
    let mut b = Some(b);
    let mut call_b = move || {
        if let Some(b) = b.take() {
            b();
        }
    };
    let job: &mut (dyn FnMut() + Send) = &mut call_b;
    // SAFETY: the lifetime is erased only while `Finish` keeps this frame
    // alive until the helper has finished with the job.
    let job: Job = unsafe { std::mem::transmute::<&mut (dyn FnMut() + Send), Job>(job) };
    unsafe { *h.job.get() = Some(job) };
    h.state.store(READY, Ordering::Release);
    h.thread.unpark();
    let finish = Finish(h);
    a();
    drop(finish);
    if h.panicked.swap(false, Ordering::Relaxed) {
        panic!("the helper core's half of a split op panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_see_their_borrowed_data() {
        for round in 0..1000 {
            let mut left = vec![0u32; 100];
            let mut right = vec![0u32; 100];
            join(
                || left.iter_mut().for_each(|v| *v = round),
                || right.iter_mut().for_each(|v| *v = round + 1),
            );
            assert!(left.iter().all(|&v| v == round) && right.iter().all(|&v| v == round + 1));
        }
    }
}
