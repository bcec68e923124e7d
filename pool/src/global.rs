//! The process-wide pool the CPU backend uses, sized once.

use crate::Pool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static REQUESTED: AtomicUsize = AtomicUsize::new(0);
static POOL: OnceLock<Pool> = OnceLock::new();

/// Why a thread count was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ThreadsError {
    /// Zero threads were asked for; at least the caller's own is needed.
    Zero,
    /// An environment variable holds something other than a positive integer.
    NotACount {
        /// The variable.
        var: &'static str,
        /// What it holds.
        value: String,
    },
    /// The pool already runs with another count (it is sized once).
    AlreadyStarted {
        /// The count it runs with.
        running: usize,
    },
}

impl std::fmt::Display for ThreadsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThreadsError::Zero => write!(f, "the thread count must be at least 1"),
            ThreadsError::NotACount { var, value } => write!(
                f,
                "{var}={value:?} is not a thread count: set it to a positive integer, or unset it to use every core"
            ),
            ThreadsError::AlreadyStarted { running } => write!(
                f,
                "the CPU thread pool already runs with {running} threads; set the count before the first training step"
            ),
        }
    }
}

impl std::error::Error for ThreadsError {}

/// The count from `LASAGNA_NUM_THREADS`, else `RAYON_NUM_THREADS` (the
/// ecosystem's convention; 0 or empty there means "every core", as rayon
/// reads it), else `None`.
pub fn threads_from_env() -> Result<Option<usize>, ThreadsError> {
    for var in ["LASAGNA_NUM_THREADS", "RAYON_NUM_THREADS"] {
        let Some(value) = std::env::var_os(var) else {
            continue;
        };
        let text = value.to_string_lossy().trim().to_string();
        if text.is_empty() || text == "0" {
            continue;
        }
        return match text.parse::<usize>() {
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(ThreadsError::NotACount { var, value: text }),
        };
    }
    Ok(None)
}

/// Sizes the pool to `n` threads (the caller included). Call it before the
/// first `run`; once the pool has started, only its own count is accepted.
pub fn set_threads(n: usize) -> Result<(), ThreadsError> {
    if n == 0 {
        return Err(ThreadsError::Zero);
    }
    if let Some(p) = POOL.get() {
        return if p.threads() == n {
            Ok(())
        } else {
            Err(ThreadsError::AlreadyStarted {
                running: p.threads(),
            })
        };
    }
    REQUESTED.store(n, Ordering::Relaxed);
    Ok(())
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let n = match REQUESTED.load(Ordering::Relaxed) {
            0 => threads_from_env().ok().flatten().unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            }),
            n => n,
        };
        Pool::new(n.saturating_sub(1))
    })
}

/// Threads the pool runs parts on (starting it if needed): split work into
/// this many parts to use every one.
pub fn threads() -> usize {
    pool().threads()
}

/// [`Pool::run`] on the process-wide pool.
pub fn run<F: Fn(usize) + Sync>(parts: usize, f: F) {
    pool().run(parts, f)
}

/// [`Pool::run_pieces`] on the process-wide pool.
pub fn run_pieces<S: Send>(pieces: Vec<S>, f: impl Fn(usize, S) + Sync) {
    pool().run_pieces(pieces, f)
}

/// [`Pool::join`] on the process-wide pool.
pub fn join(a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    pool().join(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_refused_and_a_started_pool_keeps_its_count() {
        assert_eq!(set_threads(0), Err(ThreadsError::Zero));
        let n = threads();
        assert_eq!(set_threads(n), Ok(()));
        assert_eq!(
            set_threads(n + 1),
            Err(ThreadsError::AlreadyStarted { running: n })
        );
    }
}
