//! The CPU backend: the numerical reference every other backend is tested
//! against. Buffers are `Vec<f32>`.
//!
//! Two kinds of file, as `backend/mod.rs` describes: one per op family
//! (`memory.rs`, `blas.rs`, `norm.rs`, ..., named as in `backend/` and
//! `backend/gpu/`) holds the trait impl, which checks buffer lengths and
//! slices the buffers; one per op (`gemm.rs`, `batchnorm.rs`, `lstm.rs`, ...,
//! named as the op's PTX kernel and no_std op) holds the arithmetic as
//! functions over slices. `activation.rs` and `amp.rs` are both.

// Op families: the trait impls.
mod blas;
mod conv;
mod data;
mod loss;
mod memory;
mod norm;
mod optim;
mod pool;
mod rnn;

// Ops: the arithmetic.
pub mod activation;
pub mod adam;
pub mod amp;
pub mod avgpool2d;
pub mod batchnorm;
pub mod bce;
pub mod clip;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod embedding;
pub mod gemm;
pub mod layernorm;
pub mod lstm;
pub mod maxpool2d;
pub mod mse;
pub mod sgd;
pub mod softmax;
pub mod threads;

use crate::error::Error;

/// The CPU backend. GEMMs use both cores (rayon) when they are large enough
/// to pay for the threads.
#[derive(Clone, Debug, Default)]
pub struct Cpu;

/// An index (token id, class label) outside `0..limit`.
fn bad_index(op: &str, i: u32, limit: usize) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        reason: format!("{op}: index {i} out of range 0..{limit}"),
    }
}
