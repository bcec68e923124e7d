//! `lasagna-infer`: the `no_std`, no-heap inference engine.
//!
//! Not implemented yet: the engine arrives with the "no_std inference engine"
//! issue. Today this crate only proves that the format reader it will build on
//! compiles for the microcontroller targets; it exposes no API.
#![no_std]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub use lasagna_format as format;
