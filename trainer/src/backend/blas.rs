//! Dense linear algebra: GEMM ([`Gemm`] describes one product) and the
//! vector helpers around it (bias, row sums, axpy, scale).

use super::Memory;
use crate::error::Result;

/// Shape of one matrix product `C = alpha * op(A) * op(B) + beta * C`, all
/// row-major and contiguous. `op(A)` is `m x k` (A is `k x m` when `trans_a`),
/// `op(B)` is `k x n` (B is `n x k` when `trans_b`), C is `m x n`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// A is stored transposed.
    pub trans_a: bool,
    /// B is stored transposed.
    pub trans_b: bool,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the existing C (0 overwrites, 1 accumulates).
    pub beta: f32,
}

/// Dense linear algebra.
pub trait Blas: Memory {
    /// `C = alpha * op(A) op(B) + beta * C` (see [`Gemm`]).
    fn gemm(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf) -> Result<()>;
    /// `C = alpha * op(A) op(B) + beta * C`, then `C[r, c] += bias[c]` when
    /// `bias` is given, then `C = max(C, 0)` when `relu`: the GEMM,
    /// [`Blas::add_bias`] and ReLU in that order, so the result equals the
    /// separate ops. The GPU does all three in one launch (`gemm.ptx`'s
    /// epilogue); Linear uses it, with the ReLU of a following ReLU layer
    /// folded in by the model (`Layer::fuse_relu`).
    fn gemm_epilogue(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        bias: Option<&Self::Buf>,
        relu: bool,
        c: &mut Self::Buf,
    ) -> Result<()>;
    /// `C = alpha * op(A) op(B) + beta * C`, then `C = mask > 0 ? C * scale
    /// : 0` with `mask` shaped like C: a layer's input gradient with the
    /// backward of the ReLU (scale 1) or ReLU and Dropout (scale `1 / (1 -
    /// p)`) before it folded in (`Layer::absorb_backward`), equal to the
    /// GEMM followed by those layers' own backward.
    #[allow(clippy::too_many_arguments)]
    fn gemm_masked(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        mask: &Self::Buf,
        scale: f32,
        c: &mut Self::Buf,
    ) -> Result<()>;
    /// `C = alpha * op(A) op(B) + beta * C` and `sums[r] = alpha * sum_k
    /// op(A)[r, k] + beta * sums[r]` for `r < m`: a layer's weight and bias
    /// gradients from one product (the GPU computes the sums as a column of
    /// ones appended to op(B), in the same launch).
    fn gemm_row_sums(
        &self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        c: &mut Self::Buf,
        sums: &mut Self::Buf,
    ) -> Result<()>;
    /// `y[r, c] += bias[c]` for `r < rows`.
    fn add_bias(&self, y: &mut Self::Buf, bias: &Self::Buf, rows: usize, cols: usize)
        -> Result<()>;
    /// `out[c] (+)= sum_r x[r, c]` (accumulates when `accumulate`), for bias gradients.
    fn sum_rows(
        &self,
        x: &Self::Buf,
        rows: usize,
        cols: usize,
        out: &mut Self::Buf,
        accumulate: bool,
    ) -> Result<()>;
    /// `y[..n] += alpha * x[..n]`.
    fn axpy(&self, alpha: f32, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()>;
    /// `x[..n] *= s`.
    fn scale(&self, x: &mut Self::Buf, s: f32, n: usize) -> Result<()>;
}
