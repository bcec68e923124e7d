//! The synchronisation the pool is built from: std's, or loom's when the
//! crate is compiled with `--cfg loom` so `tests/loom.rs` can explore every
//! interleaving of the same code.

#[cfg(loom)]
pub(crate) use loom::{
    cell::UnsafeCell,
    sync::atomic::{AtomicBool, AtomicU8, Ordering},
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
};
#[cfg(not(loom))]
pub(crate) use std::{
    sync::atomic::{AtomicBool, AtomicU8, Ordering},
    sync::{Arc, Mutex},
    thread::{self, JoinHandle},
};

/// std's `UnsafeCell` behind loom's interface (`with_mut`), so the pool's
/// accesses read the same under both.
#[cfg(not(loom))]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// One round of waiting for another thread. Under loom a yield, which tells
/// the model checker this thread cannot progress until another one does.
pub(crate) fn spin() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Starts a worker thread.
pub(crate) fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Option<JoinHandle<()>> {
    #[cfg(loom)]
    {
        let _ = name;
        Some(loom::thread::spawn(f))
    }
    #[cfg(not(loom))]
    {
        std::thread::Builder::new().name(name).spawn(f).ok()
    }
}

/// How long an idle worker keeps spinning for its next part before it
/// parks: long enough to span the serial gaps between the ops of a training
/// step (optimizer, loss), short enough not to burn a core between epochs.
pub(crate) struct Patience {
    #[cfg(not(loom))]
    since: std::time::Instant,
    #[cfg(loom)]
    left: u32,
}

impl Patience {
    #[cfg(not(loom))]
    const SPIN: std::time::Duration = std::time::Duration::from_millis(3);

    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            since: std::time::Instant::now(),
            // Loom explores one spin and then the park path; more would only
            // multiply the interleavings without reaching new states.
            #[cfg(loom)]
            left: 1,
        }
    }

    /// Whether the worker should park now rather than spin once more.
    pub(crate) fn exhausted(&mut self) -> bool {
        #[cfg(not(loom))]
        {
            self.since.elapsed() > Self::SPIN
        }
        #[cfg(loom)]
        {
            if self.left == 0 {
                return true;
            }
            self.left -= 1;
            false
        }
    }
}
