//! Mixed precision on the GPU (`amp.ptx`): the fused unscale-and-check pass
//! and `gemm_f16`.
//!
//! `gemm_f16` is, for now, `round_f16` of A and B into cached workspaces
//! followed by the f32 `gemm` kernel: the same numbers a tensor core computes
//! (fp16 products are exact in f32) without its speed. [`Gpu::gemm_f16_rounded`]
//! is the one place to swap for the tensor-core kernel.

use lasagna_kernels::amp::{amp_launch, AMP_UNSCALE_CHECK, ROUND_F16};
use lasagna_kernels::device::{Arg, Device};

use super::{need, u64_arg, Gpu, GpuBuf, A};
use crate::backend::{AmpOps, Gemm};
use crate::error::Result;

impl<D: Device + Send + 'static> Gpu<D> {
    /// `y[..n] = f32(f16(x[..n]))` on pointer arguments.
    fn round_f16_args(&self, x: A<D>, y: A<D>, n: usize) -> Result<()> {
        self.launch(&ROUND_F16, amp_launch(n), &[x, y, u64_arg(n)])
    }

    /// The fp16-input GEMM: A and B rounded into the two AMP workspaces
    /// (allocated on first use, reallocated only when a larger product
    /// comes), then the f32 `gemm` kernel on the rounded copies.
    fn gemm_f16_rounded(
        &self,
        g: &Gemm,
        a: &GpuBuf<D::Buf>,
        b: &GpuBuf<D::Buf>,
        c: &GpuBuf<D::Buf>,
    ) -> Result<()> {
        let (la, lb) = (g.m * g.k, g.k * g.n);
        let [wa, wb] = self.amp_workspaces(la, lb)?;
        self.round_f16_args(a.arg(), Arg::Ptr(wa), la)?;
        self.round_f16_args(b.arg(), Arg::Ptr(wb), lb)?;
        self.gemm_args(g, [Arg::Ptr(wa), Arg::Ptr(wb), c.arg()])
    }
}

impl<D: Device + Send + 'static> AmpOps for Gpu<D> {
    fn round_f16(&self, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()> {
        need(&self.name, "round_f16", n, &[x.len, y.len])?;
        self.round_f16_args(x.arg(), y.arg(), n)
    }

    fn gemm_f16(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) -> Result<()> {
        need(&self.name, "gemm_f16 A", g.m * g.k, &[a.len])?;
        need(&self.name, "gemm_f16 B", g.k * g.n, &[b.len])?;
        need(&self.name, "gemm_f16 C", g.m * g.n, &[c.len])?;
        self.gemm_f16_rounded(g, a, b, c)
    }

    fn unscale_check(
        &self,
        grads: &mut Self::Buf,
        n: usize,
        inv_scale: f32,
        found_inf: &mut Self::Buf,
    ) -> Result<()> {
        need(&self.name, "unscale_check", n, &[grads.len])?;
        need(&self.name, "unscale_check found_inf", 1, &[found_inf.len])?;
        let args = [
            grads.arg(),
            found_inf.arg(),
            u64_arg(n),
            Arg::F32(inv_scale),
        ];
        self.launch(&AMP_UNSCALE_CHECK, amp_launch(n), &args)
    }
}
