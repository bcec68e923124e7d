//! `lasagna-kernels`: hand-written PTX kernels and their launch rules.
//!
//! Each op family is one PTX module (`ptx/<op>.ptx`, named like the CPU
//! reference `trainer/src/backend/cpu/<op>.rs`) and one Rust file here describing its
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
pub mod amp;
pub mod avgpool2d;
pub mod batchnorm;
pub mod bce;
pub mod blas;
pub mod clip;
pub mod conv2d;
pub mod convert;
pub mod cross_entropy;
pub mod device;
pub mod dropout;
pub mod embedding;
pub mod gather;
pub mod gemm;
pub mod gemm_f16;
mod kernel;
pub mod layernorm;
pub mod lstm;
pub mod maxpool2d;
pub mod mse;
pub mod optim;
pub mod reduce;
pub mod softmax;

pub use kernel::{Dim3, Kernel, Launch, LaunchError, Module, Param, ParamKind};

/// ptxas's resource report for every kernel (`kernel arch regs smem spS spL`
/// rows), written by `scripts/ptxas.sh --bless` and checked by it in CI. The
/// simulator reads it to refuse launches a GPU would refuse.
pub const PTXAS_SNAPSHOT: &str = include_str!("../ptxas-snapshot.txt");

/// Every module this crate ships, for loading them all at start-up.
pub const MODULES: &[&Module] = &[
    &activation::MODULE,
    &gemm::MODULE,
    &gemm_f16::MODULE,
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
    &softmax::MODULE,
    &mse::MODULE,
    &bce::MODULE,
    &blas::MODULE,
    &clip::MODULE,
    &amp::MODULE,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::testing::{assert_all_described, assert_declared};

    /// Every module's kernels, with the module they live in.
    const KERNELS: [(&Module, &[&Kernel]); 22] = [
        (&activation::MODULE, activation::ALL),
        (&amp::MODULE, amp::ALL),
        (&avgpool2d::MODULE, avgpool2d::ALL),
        (&batchnorm::MODULE, batchnorm::ALL),
        (&bce::MODULE, bce::ALL),
        (&blas::MODULE, blas::ALL),
        (&clip::MODULE, clip::ALL),
        (&conv2d::MODULE, conv2d::ALL),
        (&convert::MODULE, convert::ALL),
        (&cross_entropy::MODULE, cross_entropy::ALL),
        (&dropout::MODULE, dropout::ALL),
        (&embedding::MODULE, embedding::ALL),
        (&gather::MODULE, gather::ALL),
        (&gemm::MODULE, gemm::ALL),
        (&gemm_f16::MODULE, gemm_f16::ALL),
        (&layernorm::MODULE, layernorm::ALL),
        (&lstm::MODULE, lstm::ALL),
        (&maxpool2d::MODULE, maxpool2d::ALL),
        (&mse::MODULE, mse::ALL),
        (&optim::MODULE, optim::ALL),
        (&reduce::MODULE, reduce::ALL),
        (&softmax::MODULE, softmax::ALL),
    ];

    #[test]
    fn every_kernel_is_declared_with_its_params_in_its_module() {
        for (module, all) in KERNELS {
            for k in all {
                assert!(
                    core::ptr::eq(k.module, module),
                    "{} is in {}",
                    k.name,
                    module.name
                );
                assert_declared(k);
            }
            assert_all_described(module.ptx, all);
        }
    }

    #[test]
    fn modules_lists_every_module_once() {
        assert_eq!(MODULES.len(), KERNELS.len());
        for (module, _) in KERNELS {
            assert_eq!(
                MODULES
                    .iter()
                    .filter(|m| core::ptr::eq(**m, module))
                    .count(),
                1,
                "{}",
                module.name
            );
        }
    }
}
