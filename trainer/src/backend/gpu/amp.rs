//! Mixed precision on the GPU (`amp.ptx`): the fused unscale-and-check pass
//! and `gemm_f16`.
//!
//! `gemm_f16` converts A and B to IEEE fp16 (`convert.ptx`, round to
//! nearest even) into cached workspaces and runs the tensor-core kernel
//! (`gemm_f16.ptx`: `ldmatrix` + `mma.sync.m16n8k16`, f32 accumulation).
//! fp16 products are exact in f32, so this computes what the CPU's emulation
//! computes, up to summation order.

use lasagna_kernels::amp::{amp_launch, AMP_UNSCALE_CHECK, ROUND_F16};
use lasagna_kernels::convert::{convert_launch, F32_TO_F16};
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::gemm_f16::{gemm_f16_launch, GEMM_F16};

use super::{u32_arg, u64_arg, Gpu, GpuBuf, A};
use crate::backend::{need, AmpOps, Gemm};
use crate::error::Result;

impl<D: Device + Send + 'static> Gpu<D> {
    /// `y[..n] = f32(f16(x[..n]))` on pointer arguments.
    fn round_f16_args(&self, x: A<D>, y: A<D>, n: usize) -> Result<()> {
        self.launch(&ROUND_F16, amp_launch(n), &[x, y, u64_arg(n)])
    }

    /// The fp16-input GEMM: A and B converted to fp16 into the two AMP
    /// workspaces (allocated on first use, reallocated only when a larger
    /// product comes), then the tensor-core kernel.
    fn gemm_f16_tensor_cores(
        &self,
        g: &Gemm,
        a: &GpuBuf<D::Buf>,
        b: &GpuBuf<D::Buf>,
        c: &GpuBuf<D::Buf>,
    ) -> Result<()> {
        let (la, lb) = (g.m * g.k, g.k * g.n);
        let [wa, wb] = self.amp_workspaces(la, lb)?;
        for (src, dst, n) in [(a, wa, la), (b, wb, lb)] {
            let args = [src.arg(), Arg::Ptr(dst), u64_arg(n)];
            self.launch(&F32_TO_F16, convert_launch(n), &args)?;
        }
        let args = [
            Arg::Ptr(wa),
            Arg::Ptr(wb),
            c.arg(),
            u32_arg("m", g.m)?,
            u32_arg("n", g.n)?,
            u32_arg("k", g.k)?,
            Arg::F32(g.alpha),
            Arg::F32(g.beta),
            Arg::U32(g.trans_a.into()),
            Arg::U32(g.trans_b.into()),
        ];
        self.launch(&GEMM_F16, gemm_f16_launch(g.m, g.n, g.k), &args)
    }
}

impl<D: Device + Send + 'static> AmpOps for Gpu<D> {
    fn round_f16(&self, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()> {
        need(self, "round_f16", n, &[x.len, y.len])?;
        self.round_f16_args(x.arg(), y.arg(), n)
    }

    fn gemm_f16(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) -> Result<()> {
        need(self, "gemm_f16 A", g.m * g.k, &[a.len])?;
        need(self, "gemm_f16 B", g.k * g.n, &[b.len])?;
        need(self, "gemm_f16 C", g.m * g.n, &[c.len])?;
        self.gemm_f16_tensor_cores(g, a, b, c)
    }

    fn unscale_check(
        &self,
        grads: &mut Self::Buf,
        n: usize,
        inv_scale: f32,
        found_inf: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "unscale_check", n, &[grads.len])?;
        need(self, "unscale_check found_inf", 1, &[found_inf.len])?;
        let args = [
            grads.arg(),
            found_inf.arg(),
            u64_arg(n),
            Arg::F32(inv_scale),
        ];
        self.launch(&AMP_UNSCALE_CHECK, amp_launch(n), &args)
    }
}
