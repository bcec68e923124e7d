#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[cfg(test)]
extern crate std;

mod engine;
mod error;
mod exec;
pub mod math;
pub mod ops;
mod plan;
pub mod quant;

pub use engine::{Engine, EngineWith};
pub use error::Error;
pub use lasagna_format as format;
pub use plan::{scratch_bytes, MAX_OPS, MAX_TENSORS};
