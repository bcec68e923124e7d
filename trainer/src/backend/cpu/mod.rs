//! The CPU backend: the numerical reference every other backend is tested
//! against. Buffers are `Vec<f32>`; each op family's arithmetic lives in its
//! own file as functions over slices, and the trait impls here only slice the
//! buffers and check their lengths.

pub mod activation;
pub mod adam;
pub mod amp;
pub mod avgpool2d;
pub mod batchnorm;
pub mod bce;
pub mod clip;
pub mod conv2d;
pub mod cross_entropy;
pub mod dropout;
pub mod embedding;
pub mod gemm;
pub mod layernorm;
pub mod lstm;
pub mod maxpool2d;
pub mod mse;
pub mod pool;
pub mod sgd;
pub mod softmax;
pub mod threads;

use crate::backend::*;
use crate::error::{Error, Result};

/// The CPU backend. GEMMs use both cores (rayon) when they are large enough
/// to pay for the threads.
#[derive(Clone, Debug, Default)]
pub struct Cpu;

/// Fails unless every buffer has at least `n` elements (a shape bug in the caller).
pub(crate) fn need(op: &str, n: usize, lens: &[usize]) -> Result<()> {
    match lens.iter().find(|&&l| l < n) {
        Some(l) => Err(Error::Backend {
            backend: "cpu".into(),
            reason: format!("{op}: buffer of {l} elements, {n} needed"),
        }),
        None => Ok(()),
    }
}

impl Memory for Cpu {
    type Buf = Vec<f32>;
    type Idx = Vec<u32>;

    fn name(&self) -> String {
        "cpu".into()
    }
    fn zeros(&self, len: usize) -> Result<Vec<f32>> {
        Ok(vec![0.0; len])
    }
    fn upload(&self, host: &[f32]) -> Result<Vec<f32>> {
        Ok(host.to_vec())
    }
    fn upload_idx(&self, host: &[u32]) -> Result<Vec<u32>> {
        Ok(host.to_vec())
    }
    fn write(&self, dst: &mut Vec<f32>, host: &[f32]) -> Result<()> {
        need("write", host.len(), &[dst.len()])?;
        dst[..host.len()].copy_from_slice(host);
        Ok(())
    }
    fn write_idx(&self, dst: &mut Vec<u32>, host: &[u32]) -> Result<()> {
        need("write_idx", host.len(), &[dst.len()])?;
        dst[..host.len()].copy_from_slice(host);
        Ok(())
    }
    fn read(&self, src: &Vec<f32>, host: &mut [f32]) -> Result<()> {
        need("read", host.len(), &[src.len()])?;
        host.copy_from_slice(&src[..host.len()]);
        Ok(())
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }
    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>, n: usize) -> Result<()> {
        need("copy", n, &[src.len(), dst.len()])?;
        dst[..n].copy_from_slice(&src[..n]);
        Ok(())
    }
    fn fill(&self, dst: &mut Vec<f32>, value: f32, n: usize) -> Result<()> {
        need("fill", n, &[dst.len()])?;
        dst[..n].fill(value);
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}

impl Blas for Cpu {
    fn gemm(&self, g: &Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<()> {
        need("gemm A", g.m * g.k, &[a.len()])?;
        need("gemm B", g.k * g.n, &[b.len()])?;
        need("gemm C", g.m * g.n, &[c.len()])?;
        gemm::gemm(g, a, b, c);
        Ok(())
    }
    fn add_bias(&self, y: &mut Vec<f32>, bias: &Vec<f32>, rows: usize, cols: usize) -> Result<()> {
        need("add_bias", rows * cols, &[y.len()])?;
        need("add_bias bias", cols, &[bias.len()])?;
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
        need("sum_rows", rows * cols, &[x.len()])?;
        need("sum_rows out", cols, &[out.len()])?;
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
        need("axpy", n, &[x.len(), y.len()])?;
        for (y, x) in y[..n].iter_mut().zip(&x[..n]) {
            *y += alpha * x;
        }
        Ok(())
    }
    fn scale(&self, x: &mut Vec<f32>, s: f32, n: usize) -> Result<()> {
        need("scale", n, &[x.len()])?;
        x[..n].iter_mut().for_each(|v| *v *= s);
        Ok(())
    }
}

impl DataOps for Cpu {
    fn gather_rows(
        &self,
        src: &Vec<f32>,
        idx: &Vec<u32>,
        rows: usize,
        cols: usize,
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        need("gather_rows idx", rows, &[idx.len()])?;
        need("gather_rows dst", rows * cols, &[dst.len()])?;
        let src_rows = src.len() / cols.max(1);
        for (r, out) in dst[..rows * cols].chunks_exact_mut(cols).enumerate() {
            let i = idx[r] as usize;
            if i >= src_rows {
                return Err(Error::Backend {
                    backend: "cpu".into(),
                    reason: format!("gather_rows: index {i} past {src_rows} rows"),
                });
            }
            out.copy_from_slice(&src[i * cols..(i + 1) * cols]);
        }
        Ok(())
    }
    fn gather_idx(
        &self,
        src: &Vec<u32>,
        idx: &Vec<u32>,
        rows: usize,
        dst: &mut Vec<u32>,
    ) -> Result<()> {
        need("gather_idx", rows, &[idx.len(), dst.len()])?;
        for r in 0..rows {
            let i = idx[r] as usize;
            dst[r] = *src.get(i).ok_or_else(|| Error::Backend {
                backend: "cpu".into(),
                reason: format!("gather_idx: index {i} past {} entries", src.len()),
            })?;
        }
        Ok(())
    }
    fn to_index(&self, x: &Vec<f32>, dst: &mut Vec<u32>, n: usize) -> Result<()> {
        need("to_index", n, &[x.len(), dst.len()])?;
        for (d, &v) in dst[..n].iter_mut().zip(&x[..n]) {
            if !((0.0..16_777_216.0).contains(&v) && v.fract() == 0.0) {
                return Err(Error::Backend {
                    backend: "cpu".into(),
                    reason: format!(
                        "to_index: {v} is not a token id (a non-negative integer below 2^24)"
                    ),
                });
            }
            *d = v as u32;
        }
        Ok(())
    }
}

impl ActivationOps for Cpu {
    fn act_forward(&self, act: Act, x: &Vec<f32>, y: &mut Vec<f32>, n: usize) -> Result<()> {
        need("act_forward", n, &[x.len(), y.len()])?;
        activation::forward(act, &x[..n], &mut y[..n]);
        Ok(())
    }
    fn act_backward(
        &self,
        act: Act,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need("act_backward", n, &[x.len(), dy.len(), dx.len()])?;
        activation::backward(act, &x[..n], &dy[..n], &mut dx[..n]);
        Ok(())
    }
    fn softmax_forward(
        &self,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need("softmax_forward", rows * cols, &[x.len(), y.len()])?;
        softmax::forward(&x[..rows * cols], &mut y[..rows * cols], cols);
        Ok(())
    }
    fn softmax_backward(
        &self,
        y: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let n = rows * cols;
        need("softmax_backward", n, &[y.len(), dy.len(), dx.len()])?;
        softmax::backward(&y[..n], &dy[..n], &mut dx[..n], cols);
        Ok(())
    }
    fn dropout_forward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need("dropout_forward", n, &[x.len(), y.len()])?;
        dropout::apply(p, seed, offset, group, &x[..n], &mut y[..n]);
        Ok(())
    }
    fn dropout_backward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need("dropout_backward", n, &[dy.len(), dx.len()])?;
        // The mask is regenerated from (seed, offset): the same function as forward.
        dropout::apply(p, seed, offset, group, &dy[..n], &mut dx[..n]);
        Ok(())
    }
}

fn bad_index(op: &str, i: u32, limit: usize) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        reason: format!("{op}: index {i} out of range 0..{limit}"),
    }
}

impl NormOps for Cpu {
    fn batchnorm_forward_train(
        &self,
        d: NormDims,
        eps: f32,
        momentum: f32,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &mut Vec<f32>,
        running_var: &mut Vec<f32>,
        save_mean: &mut Vec<f32>,
        save_invstd: &mut Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        let n = d.n * d.c * d.s;
        need("batchnorm", n, &[x.len(), y.len()])?;
        need(
            "batchnorm channels",
            d.c,
            &[
                gamma.len(),
                beta.len(),
                running_mean.len(),
                running_var.len(),
            ],
        )?;
        need(
            "batchnorm saved",
            d.c,
            &[save_mean.len(), save_invstd.len()],
        )?;
        batchnorm::forward_train(
            d,
            eps,
            momentum,
            &x[..n],
            &gamma[..d.c],
            &beta[..d.c],
            &mut running_mean[..d.c],
            &mut running_var[..d.c],
            &mut save_mean[..d.c],
            &mut save_invstd[..d.c],
            &mut y[..n],
        );
        Ok(())
    }
    fn batchnorm_forward_eval(
        &self,
        d: NormDims,
        eps: f32,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &Vec<f32>,
        running_var: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        let n = d.n * d.c * d.s;
        need("batchnorm", n, &[x.len(), y.len()])?;
        need(
            "batchnorm channels",
            d.c,
            &[
                gamma.len(),
                beta.len(),
                running_mean.len(),
                running_var.len(),
            ],
        )?;
        batchnorm::forward_eval(
            d,
            eps,
            &x[..n],
            &gamma[..d.c],
            &beta[..d.c],
            &running_mean[..d.c],
            &running_var[..d.c],
            &mut y[..n],
        );
        Ok(())
    }
    fn batchnorm_backward(
        &self,
        d: NormDims,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        save_mean: &Vec<f32>,
        save_invstd: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        dgamma: &mut Vec<f32>,
        dbeta: &mut Vec<f32>,
    ) -> Result<()> {
        let n = d.n * d.c * d.s;
        need("batchnorm_backward", n, &[x.len(), dy.len(), dx.len()])?;
        need(
            "batchnorm_backward channels",
            d.c,
            &[gamma.len(), save_mean.len(), save_invstd.len()],
        )?;
        need(
            "batchnorm_backward grads",
            d.c,
            &[dgamma.len(), dbeta.len()],
        )?;
        batchnorm::backward(
            d,
            &x[..n],
            &gamma[..d.c],
            &save_mean[..d.c],
            &save_invstd[..d.c],
            &dy[..n],
            &mut dx[..n],
            &mut dgamma[..d.c],
            &mut dbeta[..d.c],
        );
        Ok(())
    }
    fn layernorm_forward(
        &self,
        rows: usize,
        cols: usize,
        eps: f32,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        save_mean: &mut Vec<f32>,
        save_rstd: &mut Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        let n = rows * cols;
        need("layernorm", n, &[x.len(), y.len()])?;
        need("layernorm params", cols, &[gamma.len(), beta.len()])?;
        need("layernorm saved", rows, &[save_mean.len(), save_rstd.len()])?;
        layernorm::forward(
            cols,
            eps,
            &x[..n],
            &gamma[..cols],
            &beta[..cols],
            &mut save_mean[..rows],
            &mut save_rstd[..rows],
            &mut y[..n],
        );
        Ok(())
    }
    fn layernorm_backward(
        &self,
        rows: usize,
        cols: usize,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        save_mean: &Vec<f32>,
        save_rstd: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        dgamma: &mut Vec<f32>,
        dbeta: &mut Vec<f32>,
    ) -> Result<()> {
        let n = rows * cols;
        need("layernorm_backward", n, &[x.len(), dy.len(), dx.len()])?;
        need(
            "layernorm_backward params",
            cols,
            &[gamma.len(), dgamma.len(), dbeta.len()],
        )?;
        need(
            "layernorm_backward saved",
            rows,
            &[save_mean.len(), save_rstd.len()],
        )?;
        layernorm::backward(
            cols,
            &x[..n],
            &gamma[..cols],
            &save_mean[..rows],
            &save_rstd[..rows],
            &dy[..n],
            &mut dx[..n],
            &mut dgamma[..cols],
            &mut dbeta[..cols],
        );
        Ok(())
    }
    fn embedding_forward(
        &self,
        idx: &Vec<u32>,
        table: &Vec<f32>,
        y: &mut Vec<f32>,
        count: usize,
        dim: usize,
    ) -> Result<()> {
        need("embedding idx", count, &[idx.len()])?;
        need("embedding out", count * dim, &[y.len()])?;
        let rows = table.len() / dim.max(1);
        if let Some(&bad) = idx[..count].iter().find(|&&i| i as usize >= rows) {
            return Err(bad_index("embedding", bad, rows));
        }
        embedding::forward(&idx[..count], table, &mut y[..count * dim], dim);
        Ok(())
    }
    fn embedding_backward(
        &self,
        idx: &Vec<u32>,
        dy: &Vec<f32>,
        dtable: &mut Vec<f32>,
        count: usize,
        dim: usize,
    ) -> Result<()> {
        need("embedding_backward idx", count, &[idx.len()])?;
        need("embedding_backward dy", count * dim, &[dy.len()])?;
        let rows = dtable.len() / dim.max(1);
        if let Some(&bad) = idx[..count].iter().find(|&&i| i as usize >= rows) {
            return Err(bad_index("embedding_backward", bad, rows));
        }
        embedding::backward(&idx[..count], &dy[..count * dim], dtable, dim);
        Ok(())
    }
}

impl LossOps for Cpu {
    fn cross_entropy(
        &self,
        logits: &Vec<f32>,
        targets: &Vec<u32>,
        rows: usize,
        cols: usize,
        smoothing: f32,
        grad: &mut Vec<f32>,
        stats: &mut Vec<f32>,
    ) -> Result<()> {
        let n = rows * cols;
        need("cross_entropy", n, &[logits.len(), grad.len()])?;
        need("cross_entropy targets", rows, &[targets.len()])?;
        need("cross_entropy stats", 2, &[stats.len()])?;
        if let Some(&bad) = targets[..rows].iter().find(|&&t| t as usize >= cols) {
            return Err(bad_index("cross_entropy target", bad, cols));
        }
        let (loss, correct) = cross_entropy::forward_backward(
            &logits[..n],
            &targets[..rows],
            cols,
            smoothing,
            &mut grad[..n],
        );
        stats[0] += loss as f32;
        stats[1] += correct as f32;
        Ok(())
    }
    fn mse(
        &self,
        pred: &Vec<f32>,
        target: &Vec<f32>,
        n: usize,
        grad: &mut Vec<f32>,
        stats: &mut Vec<f32>,
    ) -> Result<()> {
        need("mse", n, &[pred.len(), target.len(), grad.len()])?;
        need("mse stats", 2, &[stats.len()])?;
        stats[0] += mse::forward_backward(&pred[..n], &target[..n], &mut grad[..n]) as f32;
        Ok(())
    }
    fn bce_with_logits(
        &self,
        logits: &Vec<f32>,
        target: &Vec<f32>,
        n: usize,
        grad: &mut Vec<f32>,
        stats: &mut Vec<f32>,
    ) -> Result<()> {
        need(
            "bce_with_logits",
            n,
            &[logits.len(), target.len(), grad.len()],
        )?;
        need("bce_with_logits stats", 2, &[stats.len()])?;
        let (loss, correct) = bce::forward_backward(&logits[..n], &target[..n], &mut grad[..n]);
        stats[0] += loss as f32;
        stats[1] += correct as f32;
        Ok(())
    }
}

impl OptimOps for Cpu {
    fn sgd_step(
        &self,
        h: &SgdStep,
        param: &mut Vec<f32>,
        grad: &Vec<f32>,
        mom: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need("sgd_step", n, &[param.len(), grad.len()])?;
        if h.momentum != 0.0 {
            need("sgd_step momentum", n, &[mom.len()])?;
        }
        let mom_slice: &mut [f32] = if h.momentum != 0.0 {
            &mut mom[..n]
        } else {
            &mut []
        };
        sgd::step(h, &mut param[..n], &grad[..n], mom_slice);
        Ok(())
    }
    fn adam_step(
        &self,
        h: &AdamStep,
        param: &mut Vec<f32>,
        grad: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need("adam_step", n, &[param.len(), grad.len(), m.len(), v.len()])?;
        adam::step(h, &mut param[..n], &grad[..n], &mut m[..n], &mut v[..n]);
        Ok(())
    }
    fn sum_squares(&self, x: &Vec<f32>, n: usize, out: &mut Vec<f32>) -> Result<()> {
        need("sum_squares", n, &[x.len()])?;
        need("sum_squares out", 1, &[out.len()])?;
        out[0] += clip::sum_squares(&x[..n]) as f32;
        Ok(())
    }
    fn clip_by_norm(
        &self,
        x: &mut Vec<f32>,
        n: usize,
        sumsq: &Vec<f32>,
        max_norm: f32,
    ) -> Result<()> {
        need("clip_by_norm", n, &[x.len()])?;
        need("clip_by_norm sumsq", 1, &[sumsq.len()])?;
        clip::scale_to_norm(&mut x[..n], sumsq[0], max_norm);
        Ok(())
    }
}
