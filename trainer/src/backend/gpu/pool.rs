//! Max, average and adaptive average pooling on the GPU (`maxpool2d.ptx`,
//! `avgpool2d.ptx`).

use lasagna_kernels::avgpool2d as kavg;
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::maxpool2d::{self as kmax, pool2d_launch};

use super::{u32_arg, Gpu, GpuBuf, A};
use crate::backend::{need, Pool2dDims, PoolOps, ReluGate};
use crate::error::Result;

impl<D: Device + Send + 'static> Gpu<D> {
    /// The geometry arguments every pooling entry takes after its pointers.
    fn pool_geometry(&self, d: &Pool2dDims) -> Result<Vec<A<D>>> {
        d.check()?;
        [
            ("planes", d.n * d.c),
            ("h", d.h),
            ("w", d.w),
            ("oh", d.oh),
            ("ow", d.ow),
            ("kh", d.kh),
            ("kw", d.kw),
            ("sh", d.sh),
            ("sw", d.sw),
            ("ph", d.ph),
            ("pw", d.pw),
        ]
        .into_iter()
        .map(|(what, v)| u32_arg(what, v))
        .collect()
    }
}

impl<D: Device + Send + 'static> Gpu<D> {
    /// Adaptive average pooling, forward (`src` = x, `dst` = y) or backward
    /// (`src` = dy, `dst` = dx), over `[planes, h, w, oh, ow]`.
    fn adaptive(
        &self,
        forward: bool,
        dims: [usize; 5],
        src: &GpuBuf<D::Buf>,
        dst: &GpuBuf<D::Buf>,
    ) -> Result<()> {
        let [planes, h, w, oh, ow] = dims;
        if h == 0 || w == 0 || oh == 0 || ow == 0 {
            return Err(self.fail(
                "adaptive_avgpool2d",
                format!("input {h}x{w} and output {oh}x{ow} must all be at least 1"),
            ));
        }
        // Forward reads the input planes and writes the output; backward the reverse.
        let (input, output) = (planes * h * w, planes * oh * ow);
        let (src_len, dst_len) = if forward {
            (input, output)
        } else {
            (output, input)
        };
        let what = if forward { "forward" } else { "backward" };
        let op = format!("adaptive_avgpool2d_{what}");
        need(self, &op, src_len, &[src.len])?;
        need(self, &op, dst_len, &[dst.len])?;
        let names = ["planes", "h", "w", "oh", "ow"];
        let mut args = vec![src.arg(), dst.arg()];
        for (what, v) in names.into_iter().zip(dims) {
            args.push(u32_arg(what, v)?);
        }
        let k = if forward {
            &kavg::ADAPTIVE_AVGPOOL2D_FORWARD
        } else {
            &kavg::ADAPTIVE_AVGPOOL2D_BACKWARD
        };
        self.launch(k, kavg::adaptive_pool2d_launch(planes, h, w, oh, ow), &args)
    }
}

impl<D: Device + Send + 'static> PoolOps for Gpu<D> {
    fn maxpool2d_forward(
        &self,
        d: Pool2dDims,
        x: &Self::Buf,
        y: &mut Self::Buf,
        argmax: &mut Self::Idx,
    ) -> Result<()> {
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "maxpool2d_forward x", ni, &[x.len])?;
        need(self, "maxpool2d_forward y", no, &[y.len, argmax.len])?;
        let mut args = vec![x.arg(), y.arg(), argmax.arg()];
        args.extend(self.pool_geometry(&d)?);
        self.launch(&kmax::MAXPOOL2D_FORWARD, pool2d_launch(ni, no), &args)
    }
    fn maxpool2d_backward(
        &self,
        d: Pool2dDims,
        dy: &Self::Buf,
        argmax: &Self::Idx,
        relu: Option<ReluGate<'_, Self::Buf>>,
        dx: &mut Self::Buf,
    ) -> Result<()> {
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "maxpool2d_backward dy", no, &[dy.len, argmax.len])?;
        need(self, "maxpool2d_backward dx", ni, &[dx.len])?;
        // A null `relu_x` turns the absorbed ReLU off (its scale is unused).
        let (x, scale) = match relu {
            Some(g) => {
                need(self, "maxpool2d_backward relu x", ni, &[g.x.len])?;
                (g.x.arg(), g.scale)
            }
            None => (Arg::U64(0), 1.0),
        };
        let mut args = vec![dy.arg(), argmax.arg(), x, Arg::F32(scale), dx.arg()];
        args.extend(self.pool_geometry(&d)?);
        self.launch(&kmax::MAXPOOL2D_BACKWARD, pool2d_launch(ni, no), &args)
    }
    fn avgpool2d_forward(
        &self,
        d: Pool2dDims,
        count_include_pad: bool,
        x: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()> {
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "avgpool2d_forward x", ni, &[x.len])?;
        need(self, "avgpool2d_forward y", no, &[y.len])?;
        let mut args = vec![x.arg(), y.arg()];
        args.extend(self.pool_geometry(&d)?);
        args.push(Arg::U32(count_include_pad.into()));
        self.launch(&kavg::AVGPOOL2D_FORWARD, pool2d_launch(ni, no), &args)
    }
    fn avgpool2d_backward(
        &self,
        d: Pool2dDims,
        count_include_pad: bool,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> Result<()> {
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "avgpool2d_backward dy", no, &[dy.len])?;
        need(self, "avgpool2d_backward dx", ni, &[dx.len])?;
        let mut args = vec![dy.arg(), dx.arg()];
        args.extend(self.pool_geometry(&d)?);
        args.push(Arg::U32(count_include_pad.into()));
        self.launch(&kavg::AVGPOOL2D_BACKWARD, pool2d_launch(ni, no), &args)
    }
    fn adaptive_avgpool2d_forward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()> {
        self.adaptive(true, [n * c, h, w, oh, ow], x, y)
    }
    fn adaptive_avgpool2d_backward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> Result<()> {
        self.adaptive(false, [n * c, h, w, oh, ow], dy, dx)
    }
}
