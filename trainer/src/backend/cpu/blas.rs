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
