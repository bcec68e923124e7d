//! Dense linear algebra and the small element-wise helpers on the GPU
//! (`gemm.ptx`, `blas.ptx`). The helpers other family files share (`fill`,
//! `add_bias`, `sum_rows`) are free functions here so each has one launch
//! site.

use lasagna_kernels::blas::{self as kb, add_bias_launch, blas_launch, sum_rows_launch};
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::gemm::{gemm_plan, GEMM};

use super::{u32_arg, u64_arg, Gpu, GpuBuf, A};
use crate::backend::{need, Blas, Gemm};
use crate::error::Result;

impl<D: Device + Send + 'static> Gpu<D> {
    /// `C = alpha op(A) op(B) + beta C` on pointer arguments (whole buffers
    /// or offsets into them); the caller has checked the sizes.
    pub(crate) fn gemm_args(&self, g: &Gemm, abc: [A<D>; 3]) -> Result<()> {
        self.gemm_fused(g, abc, Epilogue::default())
    }

    /// [`Gpu::gemm_args`] with the epilogue `e` (pointers, or `Arg::U64(0)`
    /// for none; see `gemm.ptx`), split along K by the launch rule
    /// (`gemm_plan`) when the product alone would not fill the GPU.
    pub(crate) fn gemm_fused(&self, g: &Gemm, [a, b, c]: [A<D>; 3], e: Epilogue<D>) -> Result<()> {
        let row_sums = !matches!(e.sums, Arg::U64(0));
        let plan = gemm_plan(g.m, g.n, g.k, row_sums).map_err(|err| self.fail("gemm", err))?;
        let (ws, sem) = if plan.splits > 1 {
            let [ws, sem] = self.gemm_workspace(plan.workspace, plan.tiles)?;
            (Arg::Ptr(ws), Arg::Ptr(sem))
        } else {
            (Arg::U64(0), Arg::U64(0))
        };
        let args = [
            a,
            b,
            c,
            e.bias,
            u32_arg("m", g.m)?,
            u32_arg("n", g.n)?,
            u32_arg("k", g.k)?,
            Arg::F32(g.alpha),
            Arg::F32(g.beta),
            Arg::U32(g.trans_a.into()),
            Arg::U32(g.trans_b.into()),
            Arg::U32(e.relu.into()),
            e.mask,
            Arg::F32(e.scale),
            e.sums,
            u32_arg("k_split", plan.k_split)?,
            ws,
            sem,
        ];
        self.launch(&GEMM, Ok(plan.launch), &args)
    }
}

/// What `gemm.ptx`'s epilogue does besides `alpha AB + beta C` (see its header).
pub(crate) struct Epilogue<D: Device> {
    /// `+ bias[col]`.
    pub bias: A<D>,
    /// Then `max(., 0)`.
    pub relu: bool,
    /// Then `mask > 0 ? v * scale : 0`.
    pub mask: A<D>,
    /// The mask's scale.
    pub scale: f32,
    /// `sums[r] = alpha * sum_k op(A)[r, k] + beta * sums[r]`.
    pub sums: A<D>,
}

impl<D: Device> Default for Epilogue<D> {
    fn default() -> Self {
        Epilogue {
            bias: Arg::U64(0),
            relu: false,
            mask: Arg::U64(0),
            scale: 1.0,
            sums: Arg::U64(0),
        }
    }
}

impl<D: Device + Send + 'static> Blas for Gpu<D> {
    fn gemm(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) -> Result<()> {
        need(self, "gemm A", g.m * g.k, &[a.len])?;
        need(self, "gemm B", g.k * g.n, &[b.len])?;
        need(self, "gemm C", g.m * g.n, &[c.len])?;
        self.gemm_args(g, [a.arg(), b.arg(), c.arg()])
    }
    fn gemm_epilogue(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        bias: Option<&Self::Buf>,
        relu: bool,
        c: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "gemm A", g.m * g.k, &[a.len])?;
        need(self, "gemm B", g.k * g.n, &[b.len])?;
        need(self, "gemm C", g.m * g.n, &[c.len])?;
        let bias = match bias {
            Some(bias) => {
                need(self, "gemm bias", g.n, &[bias.len])?;
                bias.arg()
            }
            None => Arg::U64(0),
        };
        let e = Epilogue {
            bias,
            relu,
            ..Epilogue::default()
        };
        self.gemm_fused(g, [a.arg(), b.arg(), c.arg()], e)
    }
    fn gemm_masked(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        mask: &Self::Buf,
        scale: f32,
        c: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "gemm A", g.m * g.k, &[a.len])?;
        need(self, "gemm B", g.k * g.n, &[b.len])?;
        need(self, "gemm C", g.m * g.n, &[c.len, mask.len])?;
        let e = Epilogue {
            mask: mask.arg(),
            scale,
            ..Epilogue::default()
        };
        self.gemm_fused(g, [a.arg(), b.arg(), c.arg()], e)
    }
    fn gemm_row_sums(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        c: &mut Self::Buf,
        sums: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "gemm A", g.m * g.k, &[a.len])?;
        need(self, "gemm B", g.k * g.n, &[b.len])?;
        need(self, "gemm C", g.m * g.n, &[c.len])?;
        need(self, "gemm sums", g.m, &[sums.len])?;
        let e = Epilogue {
            sums: sums.arg(),
            ..Epilogue::default()
        };
        self.gemm_fused(g, [a.arg(), b.arg(), c.arg()], e)
    }
    fn add_bias(
        &self,
        y: &mut Self::Buf,
        bias: &Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need(self, "add_bias", rows * cols, &[y.len])?;
        need(self, "add_bias bias", cols, &[bias.len])?;
        add_bias(self, y, bias, rows, cols, 1)
    }
    fn sum_rows(
        &self,
        x: &Self::Buf,
        rows: usize,
        cols: usize,
        out: &mut Self::Buf,
        accumulate: bool,
    ) -> Result<()> {
        need(self, "sum_rows", rows * cols, &[x.len])?;
        need(self, "sum_rows out", cols, &[out.len])?;
        sum_rows(self, x, rows, cols, 1, out, accumulate)
    }
    fn axpy(&self, alpha: f32, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()> {
        need(self, "axpy", n, &[x.len, y.len])?;
        let args = [x.arg(), y.arg(), Arg::F32(alpha), u64_arg(n)];
        self.launch(&kb::AXPY, blas_launch(n), &args)
    }
    fn scale(&self, x: &mut Self::Buf, s: f32, n: usize) -> Result<()> {
        need(self, "scale", n, &[x.len])?;
        let args = [x.arg(), Arg::F32(s), u64_arg(n)];
        self.launch(&kb::SCALE, blas_launch(n), &args)
    }
}

/// `y[..n] = value`.
pub(crate) fn fill<D: Device + Send + 'static>(
    g: &Gpu<D>,
    y: &GpuBuf<D::Buf>,
    value: f32,
    n: usize,
) -> Result<()> {
    let args = [y.arg(), Arg::F32(value), u64_arg(n)];
    g.launch(&kb::FILL, blas_launch(n), &args)
}

/// `y[r, c, p] += bias[c]` over `[rows, cols, positions]` (positions = 1 for
/// Linear, H*W for Conv2d's NCHW output).
pub(crate) fn add_bias<D: Device + Send + 'static>(
    g: &Gpu<D>,
    y: &GpuBuf<D::Buf>,
    bias: &GpuBuf<D::Buf>,
    rows: usize,
    cols: usize,
    positions: usize,
) -> Result<()> {
    let args = [
        y.arg(),
        bias.arg(),
        u64_arg(rows * cols * positions),
        u32_arg("cols", cols)?,
        u32_arg("positions", positions)?,
    ];
    g.launch(&kb::ADD_BIAS, add_bias_launch(rows, cols, positions), &args)
}

/// `out[c] (+)= sum over r, p of x[r, c, p]`: the bias gradient of Linear
/// (positions = 1) and Conv2d (positions = H*W).
pub(crate) fn sum_rows<D: Device + Send + 'static>(
    g: &Gpu<D>,
    x: &GpuBuf<D::Buf>,
    rows: usize,
    cols: usize,
    positions: usize,
    out: &GpuBuf<D::Buf>,
    accumulate: bool,
) -> Result<()> {
    let args = [
        x.arg(),
        out.arg(),
        u32_arg("rows", rows)?,
        u32_arg("cols", cols)?,
        u32_arg("positions", positions)?,
        Arg::U32(accumulate.into()),
    ];
    g.launch(&kb::SUM_ROWS, sum_rows_launch(rows, cols, positions), &args)
}
