//! Optimizer steps ([`SgdStep`], [`AdamStep`]) and the reductions that
//! gradient clipping by global norm needs, so the norm never leaves the device.

use super::Memory;
use crate::error::Result;

/// Hyper-parameters of one SGD step (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 disables the buffer).
    pub momentum: f32,
    /// Dampening for momentum.
    pub dampening: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// First step: the momentum buffer is set to the gradient (no dampening).
    pub first: bool,
}

/// Hyper-parameters of one Adam/AdamW step (`torch.optim.Adam`, `AdamW`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay: L2 on the gradient (Adam) or decoupled (AdamW).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    /// Step number, starting at 1 (bias correction).
    pub step: u64,
}

/// One tensor of a multi-tensor Adam step ([`OptimOps::adam_step_many`]).
pub struct AdamTensor<'a, B> {
    /// Values, updated in place.
    pub param: &'a mut B,
    /// Gradient.
    pub grad: &'a B,
    /// First moment.
    pub m: &'a mut B,
    /// Second moment.
    pub v: &'a mut B,
    /// Elements.
    pub n: usize,
}

/// Optimizer updates and the reductions gradient clipping needs.
pub trait OptimOps: Memory {
    /// One SGD update of `param[..n]` from `grad[..n]` with momentum buffer `mom`.
    fn sgd_step(
        &self,
        h: &SgdStep,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        mom: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// One Adam/AdamW update with moment buffers `m`, `v`.
    fn adam_step(
        &self,
        h: &AdamStep,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// [`OptimOps::adam_step`] on every tensor, with the same results; a
    /// backend that can (the GPU) updates several tensors per launch.
    fn adam_step_many(
        &self,
        h: &AdamStep,
        tensors: &mut [AdamTensor<'_, Self::Buf>],
    ) -> Result<()> {
        for t in tensors.iter_mut() {
            self.adam_step(h, t.param, t.grad, t.m, t.v, t.n)?;
        }
        Ok(())
    }
    /// `out[0] += sum(x[..n]^2)`.
    fn sum_squares(&self, x: &Self::Buf, n: usize, out: &mut Self::Buf) -> Result<()>;
    /// `x[..n] *= min(1, max_norm / (sqrt(sumsq[0]) + 1e-6))` (PyTorch's clip_grad_norm_).
    fn clip_by_norm(
        &self,
        x: &mut Self::Buf,
        n: usize,
        sumsq: &Self::Buf,
        max_norm: f32,
    ) -> Result<()>;
}
