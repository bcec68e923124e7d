//! `lasagna-kernels`: hand-written PTX kernels and their launch rules.
//!
//! Each op family is one PTX module (`ptx/<op>.ptx`, named like the CPU
//! reference `trainer/src/cpu/<op>.rs`) and one Rust file here describing its
//! entries: name, parameters in order, and a function that computes the
//! launch shape from the problem size. A CUDA backend loads [`Module::ptx`],
//! looks entries up by [`Kernel::name`] and launches with the [`Launch`] the
//! rules return, so it never hard-codes names or block sizes. This crate
//! knows nothing about any CUDA binding.
//!
//! Resource usage per kernel (from ptxas) is in `docs/kernels.md` and is
//! checked by `scripts/ptxas.sh`.
#![deny(missing_docs)]

pub mod activation;
pub mod avgpool2d;
pub mod batchnorm;
pub mod conv2d;
pub mod convert;
pub mod cross_entropy;
pub mod dropout;
pub mod embedding;
pub mod gather;
pub mod gemm;
mod kernel;
pub mod layernorm;
pub mod lstm;
pub mod maxpool2d;
pub mod optim;
pub mod reduce;

pub use kernel::{Dim3, Kernel, Launch, LaunchError, Module, Param, ParamKind};

/// Every module this crate ships, for loading them all at start-up.
pub const MODULES: [&Module; 15] = [
    &activation::MODULE,
    &gemm::MODULE,
    &cross_entropy::MODULE,
    &dropout::MODULE,
    &optim::MODULE,
    &reduce::MODULE,
    &convert::MODULE,
    &layernorm::MODULE,
    &embedding::MODULE,
    &maxpool2d::MODULE,
    &avgpool2d::MODULE,
    &batchnorm::MODULE,
    &gather::MODULE,
    &lstm::MODULE,
    &conv2d::MODULE,
];
