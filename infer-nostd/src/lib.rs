#![doc = include_str!("../README.md")]
#![no_std]
// One module may use `unsafe`: ops/dsp.rs, register-only `asm!` for the
// Cortex-M4 DSP instructions behind the `arm-dsp` feature.
#![deny(unsafe_code)]
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
pub use plan::{scratch_bytes, scratch_bytes_int8, scratch_min_bytes_int8, MAX_OPS, MAX_TENSORS};
pub use quant::{int8_refusal, int8_supported, Int8Refusal};
