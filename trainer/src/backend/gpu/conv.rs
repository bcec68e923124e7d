//! Conv2d on the GPU as the CPU runs it, per sample: `im2col`, one GEMM per
//! group, the bias added once over the batch (`conv2d.ptx`, `gemm.ptx`,
//! `blas.ptx`). Backward accumulates `dW_g += dy_g col_g^T` per sample
//! straight into `dweight` (an NT GEMM, beta 1), then `dcol_g = W_g^T dy_g`
//! and `col2im`. Groups and samples are pointer offsets, never copies.
//!
//! Scratch: one sample's column matrix, `c_in/groups * kh * kw * groups` rows
//! of `oh * ow`.

use lasagna_kernels::conv2d::{col2im_launch, im2col_launch, COL2IM, IM2COL};
use lasagna_kernels::device::Device;
use lasagna_kernels::Kernel;

use super::{u32_arg, Gpu, GpuBuf, A};
use crate::backend::{need, Conv2dDims, ConvOps, Gemm};
use crate::error::Result;

/// Per-sample and per-group sizes.
struct Sizes {
    xs: usize,
    ys: usize,
    p: usize,
    cog: usize,
    kg: usize,
    col: usize,
}

fn sizes(d: &Conv2dDims) -> Sizes {
    let g = d.groups.max(1);
    let p = d.oh * d.ow;
    Sizes {
        xs: d.c_in * d.h * d.w,
        ys: d.c_out * p,
        p,
        cog: d.c_out / g,
        kg: d.c_in / g * d.kh * d.kw,
        col: d.col_rows() * p,
    }
}

impl<D: Device + Send + 'static> Gpu<D> {
    /// `im2col` (x -> col) or `col2im` (col -> dx) of one sample.
    fn cols(&self, k: &Kernel, d: &Conv2dDims, src: A<D>, dst: A<D>) -> Result<()> {
        let s = sizes(d);
        let launch = if k.name == IM2COL.name {
            im2col_launch(s.col, s.xs)
        } else {
            col2im_launch(s.col, s.xs)
        };
        let mut args = vec![src, dst];
        for (what, v) in [
            ("n", 1),
            ("c_in", d.c_in),
            ("h", d.h),
            ("w", d.w),
            ("oh", d.oh),
            ("ow", d.ow),
            ("kh", d.kh),
            ("kw", d.kw),
            ("sh", d.stride[0]),
            ("sw", d.stride[1]),
            ("ph", d.padding[0]),
            ("pw", d.padding[1]),
            ("dh", d.dilation[0]),
            ("dw", d.dilation[1]),
        ] {
            args.push(u32_arg(what, v)?);
        }
        self.launch(k, launch, &args)
    }

    fn check_conv(
        &self,
        op: &str,
        d: &Conv2dDims,
        x: usize,
        w: usize,
        y: usize,
        scratch: usize,
    ) -> Result<()> {
        d.check()?;
        let s = sizes(d);
        need(self, &format!("{op} x"), d.n * s.xs, &[x])?;
        need(self, &format!("{op} weight"), s.cog * s.kg * d.groups, &[w])?;
        need(self, &format!("{op} y"), d.n * s.ys, &[y])?;
        need(self, &format!("{op} scratch"), s.col, &[scratch])
    }
}

impl<D: Device + Send + 'static> ConvOps for Gpu<D> {
    fn conv2d_scratch_len(&self, d: &Conv2dDims) -> usize {
        sizes(d).col
    }

    fn conv2d_forward(
        &self,
        d: &Conv2dDims,
        x: &Self::Buf,
        weight: &Self::Buf,
        bias: Option<&Self::Buf>,
        y: &mut Self::Buf,
        scratch: &mut Self::Buf,
    ) -> Result<()> {
        self.check_conv("conv2d_forward", d, x.len, weight.len, y.len, scratch.len)?;
        let s = sizes(d);
        for n in 0..d.n {
            self.cols(&IM2COL, d, x.at(n * s.xs), scratch.arg())?;
            for g in 0..d.groups {
                // y_g [cog, p] = W_g [cog, kg] col_g [kg, p].
                let shape = gemm(s.cog, s.p, s.kg, false, false, 0.0);
                let abc = [
                    weight.at(g * s.cog * s.kg),
                    scratch.at(g * s.kg * s.p),
                    y.at(n * s.ys + g * s.cog * s.p),
                ];
                self.gemm_args(&shape, abc)?;
            }
        }
        if let Some(b) = bias {
            need(self, "conv2d_forward bias", d.c_out, &[b.len])?;
            super::blas::add_bias(self, y, b, d.n, d.c_out, s.p)?;
        }
        Ok(())
    }

    fn conv2d_backward(
        &self,
        d: &Conv2dDims,
        x: &Self::Buf,
        weight: &Self::Buf,
        dy: &Self::Buf,
        dx: Option<&mut Self::Buf>,
        dweight: &mut Self::Buf,
        dbias: Option<&mut Self::Buf>,
        scratch: &mut Self::Buf,
    ) -> Result<()> {
        self.check_conv("conv2d_backward", d, x.len, weight.len, dy.len, scratch.len)?;
        let s = sizes(d);
        need(self, "conv2d_backward dweight", weight.len, &[dweight.len])?;
        if let Some(dx) = &dx {
            need(self, "conv2d_backward dx", d.n * s.xs, &[dx.len])?;
        }
        let dx: Option<&GpuBuf<D::Buf>> = dx.map(|b| &*b);
        for n in 0..d.n {
            self.cols(&IM2COL, d, x.at(n * s.xs), scratch.arg())?;
            for g in 0..d.groups {
                // dW_g [cog, kg] += dy_g [cog, p] col_g^T (col_g is [kg, p]).
                let shape = gemm(s.cog, s.kg, s.p, false, true, 1.0);
                let abc = [
                    dy.at(n * s.ys + g * s.cog * s.p),
                    scratch.at(g * s.kg * s.p),
                    dweight.at(g * s.cog * s.kg),
                ];
                self.gemm_args(&shape, abc)?;
            }
            let Some(dx) = dx else { continue };
            for g in 0..d.groups {
                // dcol_g [kg, p] = W_g^T dy_g, over col_g (no longer needed).
                let shape = gemm(s.kg, s.p, s.cog, true, false, 0.0);
                let abc = [
                    weight.at(g * s.cog * s.kg),
                    dy.at(n * s.ys + g * s.cog * s.p),
                    scratch.at(g * s.kg * s.p),
                ];
                self.gemm_args(&shape, abc)?;
            }
            self.cols(&COL2IM, d, scratch.arg(), dx.at(n * s.xs))?;
        }
        if let Some(db) = dbias {
            need(self, "conv2d_backward dbias", d.c_out, &[db.len])?;
            super::blas::sum_rows(self, dy, d.n, d.c_out, s.p, db, true)?;
        }
        Ok(())
    }
}

fn gemm(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool, beta: f32) -> Gemm {
    Gemm {
        m,
        n,
        k,
        trans_a,
        trans_b,
        alpha: 1.0,
        beta,
    }
}
