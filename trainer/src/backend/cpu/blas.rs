//! `Blas` for the CPU: GEMM goes to `gemm.rs`; the vector helpers are
//! short enough to live here.

use super::{gemm, Cpu};
use crate::backend::{need, Blas, Gemm};
use crate::error::Result;

impl Blas for Cpu {
    fn gemm(&self, g: &Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<()> {
        need(self, "gemm A", g.m * g.k, &[a.len()])?;
        need(self, "gemm B", g.k * g.n, &[b.len()])?;
        need(self, "gemm C", g.m * g.n, &[c.len()])?;
        gemm::gemm(g, a, b, c);
        Ok(())
    }
    fn gemm_epilogue(
        &self,
        g: &Gemm,
        a: &Vec<f32>,
        b: &Vec<f32>,
        bias: Option<&Vec<f32>>,
        relu: bool,
        c: &mut Vec<f32>,
    ) -> Result<()> {
        self.gemm(g, a, b, c)?;
        if let Some(bias) = bias {
            self.add_bias(c, bias, g.m, g.n)?;
        }
        if relu {
            // The ReLU layer's own loop (cpu/activation.rs), in place.
            c[..g.m * g.n].iter_mut().for_each(|v| *v = v.max(0.0));
        }
        Ok(())
    }
    fn gemm_masked(
        &self,
        g: &Gemm,
        a: &Vec<f32>,
        b: &Vec<f32>,
        mask: &Vec<f32>,
        scale: f32,
        c: &mut Vec<f32>,
    ) -> Result<()> {
        need(self, "gemm mask", g.m * g.n, &[mask.len()])?;
        self.gemm(g, a, b, c)?;
        // The dropout backward's `dy * scale` where kept, then the ReLU's
        // `x > 0 ? dy : 0`, in one pass (the mask is positive exactly where both pass).
        for (v, &x) in c[..g.m * g.n].iter_mut().zip(mask) {
            *v = if x > 0.0 { *v * scale } else { 0.0 };
        }
        Ok(())
    }
    fn gemm_row_sums(
        &self,
        g: &Gemm,
        a: &Vec<f32>,
        b: &Vec<f32>,
        c: &mut Vec<f32>,
        sums: &mut Vec<f32>,
    ) -> Result<()> {
        need(self, "gemm sums", g.m, &[sums.len()])?;
        need(self, "gemm A", g.m * g.k, &[a.len()])?;
        self.gemm(g, a, b, c)?;
        // Row r of op(A) summed in k order (for a Linear's dW = dy^T x that is
        // column r of dy, summed over the batch as `sum_rows` does).
        let mut acc = vec![0.0f32; g.m];
        for kk in 0..g.k {
            for (r, s) in acc.iter_mut().enumerate() {
                *s += if g.trans_a {
                    a[kk * g.m + r]
                } else {
                    a[r * g.k + kk]
                };
            }
        }
        for (s, v) in sums[..g.m].iter_mut().zip(acc) {
            let v = g.alpha * v;
            *s = if g.beta == 0.0 { v } else { g.beta * *s + v };
        }
        Ok(())
    }
    fn add_bias(&self, y: &mut Vec<f32>, bias: &Vec<f32>, rows: usize, cols: usize) -> Result<()> {
        need(self, "add_bias", rows * cols, &[y.len()])?;
        need(self, "add_bias bias", cols, &[bias.len()])?;
        for row in y[..rows * cols].chunks_exact_mut(cols) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
        Ok(())
    }
    fn sum_rows(
        &self,
        x: &Vec<f32>,
        rows: usize,
        cols: usize,
        out: &mut Vec<f32>,
        accumulate: bool,
    ) -> Result<()> {
        need(self, "sum_rows", rows * cols, &[x.len()])?;
        need(self, "sum_rows out", cols, &[out.len()])?;
        if !accumulate {
            out[..cols].fill(0.0);
        }
        for row in x[..rows * cols].chunks_exact(cols) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += v;
            }
        }
        Ok(())
    }
    fn axpy(&self, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>, n: usize) -> Result<()> {
        need(self, "axpy", n, &[x.len(), y.len()])?;
        for (y, x) in y[..n].iter_mut().zip(&x[..n]) {
            *y += alpha * x;
        }
        Ok(())
    }
    fn scale(&self, x: &mut Vec<f32>, s: f32, n: usize) -> Result<()> {
        need(self, "scale", n, &[x.len()])?;
        x[..n].iter_mut().for_each(|v| *v *= s);
        Ok(())
    }
}
