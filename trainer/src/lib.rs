//! `lasagna-trainer`: layers, losses, optimizers, data, training, export
//! and quantization, as a library (the `lasagna` CLI is `lasagna-cli`).
//!
//! The CPU backend ([`backend::cpu::Cpu`]) is the numerical reference.
//! Layers, losses and optimizers are written against the [`backend`] traits
//! so that other backends run the same training step without host round
//! trips.
#![deny(clippy::unwrap_used, clippy::expect_used)]
// Op signatures mirror kernel parameter lists (buffers, then dimensions).
#![allow(clippy::too_many_arguments)]

pub mod alloc;
pub mod amp;
pub mod backend;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod diagnose;
pub mod error;
pub mod export;
pub mod fold;
pub mod footprint;
pub mod human_bytes;
pub mod init;
pub mod inspect;
pub mod layers;
pub mod loss;
pub mod model;
pub mod optim;
pub mod philox;
pub mod quantize;
pub mod read;
pub mod run;
pub mod sweep;
pub mod train;

/// How a unit test says it skips, so that CI's log lists it (one file for
/// every crate's tests).
#[cfg(test)]
#[path = "../../tests/src/skip.rs"]
mod skip;

pub use error::{Error, Result};
