#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod pool;
mod sync;

pub use pool::Pool;

#[cfg(not(loom))]
mod global;
#[cfg(not(loom))]
pub use global::{join, run, run_pieces, set_threads, threads, threads_from_env, ThreadsError};
