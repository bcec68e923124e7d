//! The backend interface: buffers that live on a device and the ops that run
//! on them. Layers, losses and optimizers are written against these traits,
//! so a whole training step stays on the device; the host only reads back
//! small statistics (loss sums, correct counts) when it chooses to.
//!
//! Ops act on the first `n` (or `rows * cols`) elements of their buffers, so
//! buffers are allocated once for the largest batch and reused by every step.
//! Ops that produce gradients for parameters *accumulate* into them (the model
//! zeroes gradients before each step); ops that produce activations or input
//! gradients *overwrite*.
//!
//! # Layout: one name per op family
//!
//! The ops are split into families, one trait each, and a family has one
//! file name in three places: `backend/<family>.rs` declares the trait,
//! `backend/cpu/<family>.rs` implements it for [`cpu::Cpu`] (the reference)
//! and `backend/gpu/<family>.rs` for [`gpu::Gpu`]. A reader who knows the
//! family finds all three without a map.
//!
//! | family       | trait             | ops                                      |
//! |--------------|-------------------|------------------------------------------|
//! | `memory`     | [`Memory`]        | buffers, transfers, fills                |
//! | `blas`       | [`Blas`]          | GEMM, bias, row sums, axpy, scale        |
//! | `data`       | [`DataOps`]       | gathers from a device dataset, token ids |
//! | `activation` | [`ActivationOps`] | activations, softmax, dropout            |
//! | `norm`       | [`NormOps`]       | BatchNorm, LayerNorm, Embedding          |
//! | `loss`       | [`LossOps`]       | cross-entropy, MSE, BCE                  |
//! | `optim`      | [`OptimOps`]      | SGD, Adam, clipping reductions           |
//! | `amp`        | [`AmpOps`]        | fp16 rounding, fp16 GEMM, unscale        |
//! | `conv`       | [`ConvOps`]       | Conv2d                                   |
//! | `pool`       | [`PoolOps`]       | max, average, adaptive average pooling   |
//! | `rnn`        | [`RnnOps`]        | the LSTM cell                            |
//!
//! A family's trait is `<Family>Ops`, except `Memory` and `Blas`, whose
//! names already say what they are.
//!
//! Kernels are named by op, not by family, as everywhere else in the project
//! (`cpu/conv2d.rs`, `cpu/lstm.rs`, `cpu/maxpool2d.rs`, `ptx/conv2d.ptx`): a
//! family file checks lengths and hands slices or launches to the op files.
//! Where the family and the op share a name (`activation`, `amp`), one file
//! holds both. Both backends check lengths with the one `need()` in
//! `memory.rs`, so a short buffer gives the same message on either.
//!
//! `norm` also carries Embedding, and `activation` carries softmax and
//! dropout. They stay in one trait, and so in one file per place, because a
//! family is the set of ops one trait declares: splitting `NormOps` would
//! add a trait and three files for two ops and change an interface callers
//! import, while the compiler would check nothing it does not check now.
//! Each trait's doc says what it holds.
//!
//! [`Backend`] is all the families together.

pub mod cpu;
pub mod gpu;

mod activation;
mod amp;
mod blas;
mod conv;
mod data;
mod loss;
mod memory;
mod norm;
mod optim;
mod pool;
mod rnn;

pub use activation::*;
pub use amp::*;
pub use blas::*;
pub use conv::*;
pub use data::*;
pub use loss::*;
pub use memory::*;
pub use norm::*;
pub use optim::*;
pub use pool::*;
pub use rnn::*;

pub(crate) use memory::need;

/// Everything a training step needs.
pub trait Backend:
    Memory
    + Blas
    + DataOps
    + ActivationOps
    + NormOps
    + LossOps
    + OptimOps
    + ConvOps
    + PoolOps
    + RnnOps
    + AmpOps
{
}

impl<T> Backend for T where
    T: Memory
        + Blas
        + DataOps
        + ActivationOps
        + NormOps
        + LossOps
        + OptimOps
        + ConvOps
        + PoolOps
        + RnnOps
        + AmpOps
{
}
