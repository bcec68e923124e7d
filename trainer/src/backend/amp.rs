//! Mixed-precision ops: fp16 GEMM inputs with fp32 accumulation (what tensor
//! cores compute) and the fused unscale-and-check pass of dynamic loss
//! scaling (`GradScaler` in `crate::amp`).

use super::{Blas, Gemm};
use crate::error::Result;

/// Ops automatic mixed precision needs on top of [`Blas`].
pub trait AmpOps: Blas {
    /// `y[..n] = f32(f16(x[..n]))`: IEEE binary16 round to nearest even,
    /// overflow to ±inf, subnormals kept (PTX `cvt.rn.f16.f32`, then back).
    fn round_f16(&self, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()>;

    /// Like [`Blas::gemm`], but A and B are first rounded to fp16 (as
    /// [`AmpOps::round_f16`]) and the product is accumulated in f32. A
    /// product of two fp16 values is exact in f32, so this matches a tensor
    /// core's result up to summation order. `a` and `b` are not modified.
    fn gemm_f16(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) -> Result<()>;

    /// In one pass: `grads[..n] *= inv_scale`, and `found_inf[0] = 1.0` if
    /// any element was inf/NaN before or after the scaling. `found_inf` is
    /// never cleared here: the caller zeroes it once per step, so every
    /// gradient buffer of the model shares one flag.
    fn unscale_check(
        &self,
        grads: &mut Self::Buf,
        n: usize,
        inv_scale: f32,
        found_inf: &mut Self::Buf,
    ) -> Result<()>;
}
