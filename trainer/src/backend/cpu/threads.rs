//! The CPU ops' threads: `lasagna-pool`'s process-wide fork-join pool (one
//! spinning worker per extra core; see that crate for why not rayon).

pub use lasagna_pool::{join, run, run_pieces, threads};
pub use lasagna_pool::{set_threads, threads_from_env, ThreadsError};
