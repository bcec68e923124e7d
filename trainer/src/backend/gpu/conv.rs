//! Conv2d on the GPU over the whole batch at once (`conv2d.ptx`, `gemm.ptx`):
//! one `im2col` into `col [c_in*kh*kw, n*oh*ow]`, one GEMM per group
//! `yt_g [cog, n*oh*ow] = W_g col_g`, then one `swap_nc` that turns `yt [c_out,
//! n, oh*ow]` into NCHW `y` and adds the bias. Backward: `im2col` again (nothing
//! of forward's is kept), `swap_nc` of `dy` into `dyt [c_out, n, oh*ow]`,
//! `dW_g = dyt_g col_g^T` (an NT GEMM with K = n*oh*ow, split along K by the
//! launch rule; the bias gradient, the row sums of `dyt_g`, rides in the same
//! launch), `dcol_g = W_g^T dyt_g` over the columns and one `col2im`.
//! So a conv is 3 launches forward and at most 5 backward with one group,
//! where the per-sample version made `2 + n` and `1 + 3n`.
//!
//! Why batched columns rather than the CPU's per-sample ones: on the GPU a
//! launch costs microseconds and a per-sample GEMM of `[cog, oh*ow]` fills a
//! handful of SMs, while the batch's products are one GEMM with `n` times the
//! columns (the MNIST CNN's first conv: 784 blocks instead of 13 per launch).
//! The price is the layout fix, one read and one write of `y` (or `dy`).
//!
//! Scratch, per chunk of `c = batch_chunk(n, ..)` samples (the whole batch
//! for MNIST shapes, see `lasagna_kernels::conv2d::CHUNK_ELEMENTS`): the
//! columns, `c_in*kh*kw` rows of `c*oh*ow`, then `yt`/`dyt`, `c_out` rows of
//! `c*oh*ow`. For the MNIST CNN at batch 64: 1.25 M, 2.2 M and 1.1 M floats
//! (5.0, 8.8 and 4.4 MB) for its three convs. Groups and samples are pointer
//! offsets, never copies.

use lasagna_kernels::conv2d::{
    chunk_within, col2im_launch, im2col_launch, swap_nc_launch, CHUNK_ELEMENTS, COL2IM, IM2COL,
    SWAP_NC,
};
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::Kernel;

use super::blas::Epilogue;
use super::{u32_arg, Gpu, GpuBuf, A};
use crate::backend::{need, Conv2dDims, ConvOps, Gemm};
use crate::error::Result;

/// Per-sample and per-group sizes, and the chunk the batch runs in.
struct Sizes {
    xs: usize,
    ys: usize,
    p: usize,
    cog: usize,
    kg: usize,
    /// Column rows, `c_in * kh * kw`.
    rows: usize,
    /// Samples per chunk.
    chunk: usize,
}

fn sizes(d: &Conv2dDims) -> Sizes {
    sizes_capped(d, CHUNK_ELEMENTS)
}

/// [`sizes`] with the chunk chosen for a scratch cap of `cap` elements (the
/// tests use a small one to run several chunks).
fn sizes_capped(d: &Conv2dDims, cap: usize) -> Sizes {
    let g = d.groups.max(1);
    let p = d.oh * d.ow;
    let rows = d.col_rows();
    Sizes {
        xs: d.c_in * d.h * d.w,
        ys: d.c_out * p,
        p,
        cog: d.c_out / g,
        kg: d.c_in / g * d.kh * d.kw,
        rows,
        chunk: chunk_within(d.n, (rows + d.c_out) * p, cap),
    }
}

impl Sizes {
    /// Scratch elements: the columns and the swapped product of one chunk.
    fn scratch(&self, c_out: usize) -> usize {
        (self.rows + c_out) * self.chunk * self.p
    }

    /// `(first sample, samples)` of each chunk of `n`.
    fn chunks(&self, n: usize) -> impl Iterator<Item = (usize, usize)> {
        let step = self.chunk;
        (0..n).step_by(step).map(move |s| (s, step.min(n - s)))
    }
}

impl<D: Device + Send + 'static> Gpu<D> {
    /// `im2col` (x -> col) or `col2im` (col -> dx) of `n` samples.
    fn cols(&self, k: &Kernel, d: &Conv2dDims, n: usize, src: A<D>, dst: A<D>) -> Result<()> {
        let s = sizes(d);
        let (col_len, x_len) = (s.rows * n * s.p, n * s.xs);
        let launch = if k.name == IM2COL.name {
            im2col_launch(col_len, x_len)
        } else {
            col2im_launch(col_len, x_len)
        };
        let mut args = vec![src, dst];
        for (what, v) in [
            ("n", n),
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

    /// `y [b, a, p] = x [a, b, p] (+ bias[i])`.
    fn swap_nc(&self, x: A<D>, bias: A<D>, y: A<D>, [a, b, p]: [usize; 3]) -> Result<()> {
        let args = [
            x,
            bias,
            y,
            u32_arg("a", a)?,
            u32_arg("b", b)?,
            u32_arg("p", p)?,
        ];
        self.launch(&SWAP_NC, swap_nc_launch(a * b * p), &args)
    }

    #[allow(clippy::too_many_arguments)]
    fn check_conv(
        &self,
        op: &str,
        d: &Conv2dDims,
        s: &Sizes,
        x: usize,
        w: usize,
        y: usize,
        scratch: usize,
    ) -> Result<()> {
        d.check()?;
        need(self, &format!("{op} x"), d.n * s.xs, &[x])?;
        need(self, &format!("{op} weight"), s.cog * s.kg * d.groups, &[w])?;
        need(self, &format!("{op} y"), d.n * s.ys, &[y])?;
        need(
            self,
            &format!("{op} scratch"),
            s.scratch(d.c_out),
            &[scratch],
        )
    }

    /// [`ConvOps::conv2d_forward`] in chunks of `s.chunk` samples.
    #[allow(clippy::too_many_arguments)]
    fn conv_forward(
        &self,
        d: &Conv2dDims,
        s: &Sizes,
        x: &GpuBuf<D::Buf>,
        weight: &GpuBuf<D::Buf>,
        bias: Option<&GpuBuf<D::Buf>>,
        y: &mut GpuBuf<D::Buf>,
        scratch: &mut GpuBuf<D::Buf>,
    ) -> Result<()> {
        let (xl, wl, yl, sl) = (x.len, weight.len, y.len, scratch.len);
        self.check_conv("conv2d_forward", d, s, xl, wl, yl, sl)?;
        if let Some(b) = bias {
            need(self, "conv2d_forward bias", d.c_out, &[b.len])?;
        }
        let bias = bias.map_or(Arg::U64(0), |b| b.arg());
        for (s0, c) in s.chunks(d.n) {
            let np = c * s.p;
            let yt = s.rows * np;
            self.cols(&IM2COL, d, c, x.at(s0 * s.xs), scratch.arg())?;
            for g in 0..d.groups {
                // yt_g [cog, c*p] = W_g [cog, kg] col_g [kg, c*p].
                let shape = gemm(s.cog, np, s.kg, false, false, 0.0);
                let abc = [
                    weight.at(g * s.cog * s.kg),
                    scratch.at(g * s.kg * np),
                    scratch.at(yt + g * s.cog * np),
                ];
                self.gemm_args(&shape, abc)?;
            }
            // y [c, c_out, p] = yt [c_out, c, p] + bias.
            let shape = [d.c_out, c, s.p];
            self.swap_nc(scratch.at(yt), bias, y.at(s0 * s.ys), shape)?;
        }
        Ok(())
    }

    /// [`ConvOps::conv2d_backward`] in chunks of `s.chunk` samples.
    #[allow(clippy::too_many_arguments)]
    fn conv_backward(
        &self,
        d: &Conv2dDims,
        s: &Sizes,
        x: &GpuBuf<D::Buf>,
        weight: &GpuBuf<D::Buf>,
        dy: &GpuBuf<D::Buf>,
        dx: Option<&mut GpuBuf<D::Buf>>,
        dweight: &mut GpuBuf<D::Buf>,
        dbias: Option<&mut GpuBuf<D::Buf>>,
        scratch: &mut GpuBuf<D::Buf>,
    ) -> Result<()> {
        let (xl, wl, yl, sl) = (x.len, weight.len, dy.len, scratch.len);
        self.check_conv("conv2d_backward", d, s, xl, wl, yl, sl)?;
        need(self, "conv2d_backward dweight", weight.len, &[dweight.len])?;
        if let Some(db) = &dbias {
            need(self, "conv2d_backward dbias", d.c_out, &[db.len])?;
        }
        let dbias: Option<&GpuBuf<D::Buf>> = dbias.map(|b| &*b);
        if let Some(dx) = &dx {
            need(self, "conv2d_backward dx", d.n * s.xs, &[dx.len])?;
        }
        let dx: Option<&GpuBuf<D::Buf>> = dx.map(|b| &*b);
        for (s0, c) in s.chunks(d.n) {
            let np = c * s.p;
            let dyt = s.rows * np;
            self.cols(&IM2COL, d, c, x.at(s0 * s.xs), scratch.arg())?;
            // dyt [c_out, c, p] = dy [c, c_out, p].
            let shape = [c, d.c_out, s.p];
            self.swap_nc(dy.at(s0 * s.ys), Arg::U64(0), scratch.at(dyt), shape)?;
            // The first chunk overwrites the gradients, later ones add to them.
            let beta = if s0 == 0 { 0.0 } else { 1.0 };
            for g in 0..d.groups {
                // dW_g [cog, kg] (+)= dyt_g [cog, c*p] col_g^T (col_g is [kg, c*p]),
                // and db_g (+)= the row sums of dyt_g, in the same launch.
                let shape = gemm(s.cog, s.kg, np, false, true, beta);
                let abc = [
                    scratch.at(dyt + g * s.cog * np),
                    scratch.at(g * s.kg * np),
                    dweight.at(g * s.cog * s.kg),
                ];
                let e = Epilogue {
                    sums: dbias.as_ref().map_or(Arg::U64(0), |db| db.at(g * s.cog)),
                    ..Epilogue::default()
                };
                self.gemm_fused(&shape, abc, e)?;
            }
            let Some(dx) = dx else { continue };
            for g in 0..d.groups {
                // dcol_g [kg, c*p] = W_g^T dyt_g, over col_g (no longer needed).
                let shape = gemm(s.kg, np, s.cog, true, false, 0.0);
                let abc = [
                    weight.at(g * s.cog * s.kg),
                    scratch.at(dyt + g * s.cog * np),
                    scratch.at(g * s.kg * np),
                ];
                self.gemm_args(&shape, abc)?;
            }
            self.cols(&COL2IM, d, c, scratch.arg(), dx.at(s0 * s.xs))?;
        }
        Ok(())
    }
}

impl<D: Device + Send + 'static> ConvOps for Gpu<D> {
    fn conv2d_scratch_len(&self, d: &Conv2dDims) -> usize {
        sizes(d).scratch(d.c_out)
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
        self.conv_forward(d, &sizes(d), x, weight, bias, y, scratch)
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
        let s = sizes(d);
        self.conv_backward(d, &s, x, weight, dy, dx, dweight, dbias, scratch)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Memory;
    use crate::philox::Stream;
    use lasagna_ptx_sim::Simulator;

    /// Chunking is only a loop over samples: a batch split into chunks of 2,
    /// 2 and 1 samples gives bit for bit the y and dx of one chunk, and
    /// dweight and dbias (the row sums in the same GEMM) up to the rounding
    /// of adding them chunk by chunk (beta 1 after the first chunk).
    #[test]
    fn chunked_batch_matches_one_chunk() -> Result<()> {
        let d = Conv2dDims::new(5, [4, 7, 6], 6, [3, 3], [1, 2], [1, 1], [1, 1], 2)?;
        let one = sizes(&d);
        assert_eq!(one.chunk, 5);
        let per_sample = (one.rows + d.c_out) * one.p;
        let three = sizes_capped(&d, 2 * per_sample);
        assert_eq!(
            three.chunks(d.n).collect::<Vec<_>>(),
            [(0, 2), (2, 2), (4, 1)]
        );

        let mut r = Stream::new(11, 0);
        let mut random =
            |len: usize| -> Vec<f32> { (0..len).map(|_| r.uniform_range(-1.0, 1.0)).collect() };
        let (x, w, b) = (random(d.n * one.xs), random(6 * 2 * 9), random(d.c_out));
        let dy = random(d.n * one.ys);
        let g = Gpu::new(Simulator::new(), "sim")?;
        let run = |s: &Sizes| -> Result<[Vec<f32>; 4]> {
            let (xb, wb, bb, dyb) = (g.upload(&x)?, g.upload(&w)?, g.upload(&b)?, g.upload(&dy)?);
            let mut y = g.zeros(dy.len())?;
            let mut scratch = g.zeros(s.scratch(d.c_out))?;
            g.conv_forward(&d, s, &xb, &wb, Some(&bb), &mut y, &mut scratch)?;
            let (mut dx, mut dw, mut db) = (g.zeros(x.len())?, g.zeros(w.len())?, g.zeros(6)?);
            let (dxr, dwr, dbr) = (Some(&mut dx), &mut dw, Some(&mut db));
            g.conv_backward(&d, s, &xb, &wb, &dyb, dxr, dwr, dbr, &mut scratch)?;
            Ok([
                g.to_vec(&y)?,
                g.to_vec(&dx)?,
                g.to_vec(&dw)?,
                g.to_vec(&db)?,
            ])
        };
        let (a, c) = (run(&one)?, run(&three)?);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for (i, what) in [(0, "y"), (1, "dx")] {
            assert_eq!(bits(&a[i]), bits(&c[i]), "{what}");
        }
        for (i, what) in [(2, "dweight"), (3, "dbias")] {
            let scale = a[i].iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (p, q) in a[i].iter().zip(&c[i]) {
                assert!((p - q).abs() <= 1e-5 * scale, "{what} {p} vs {q}");
            }
        }
        Ok(())
    }
}
