//! `NormOps` for the CPU: length checks, then the slices go to
//! `batchnorm.rs`, `layernorm.rs` and `embedding.rs`.

use super::{bad_index, batchnorm, embedding, layernorm, Cpu};
use crate::backend::{need, NormDims, NormOps};
use crate::error::Result;

impl NormOps for Cpu {
    fn batchnorm_forward_train(
        &self,
        d: NormDims,
        eps: f32,
        momentum: f32,
        relu: bool,
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
        need(self, "batchnorm", n, &[x.len(), y.len()])?;
        need(
            self,
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
            self,
            "batchnorm saved",
            d.c,
            &[save_mean.len(), save_invstd.len()],
        )?;
        batchnorm::forward_train(
            d,
            eps,
            momentum,
            relu,
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
        relu: bool,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        running_mean: &Vec<f32>,
        running_var: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        let n = d.n * d.c * d.s;
        need(self, "batchnorm", n, &[x.len(), y.len()])?;
        need(
            self,
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
            relu,
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
        need(
            self,
            "batchnorm_backward",
            n,
            &[x.len(), dy.len(), dx.len()],
        )?;
        need(
            self,
            "batchnorm_backward channels",
            d.c,
            &[gamma.len(), save_mean.len(), save_invstd.len()],
        )?;
        need(
            self,
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
        need(self, "layernorm", n, &[x.len(), y.len()])?;
        need(self, "layernorm params", cols, &[gamma.len(), beta.len()])?;
        need(
            self,
            "layernorm saved",
            rows,
            &[save_mean.len(), save_rstd.len()],
        )?;
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
        need(
            self,
            "layernorm_backward",
            n,
            &[x.len(), dy.len(), dx.len()],
        )?;
        need(
            self,
            "layernorm_backward params",
            cols,
            &[gamma.len(), dgamma.len(), dbeta.len()],
        )?;
        need(
            self,
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
        need(self, "embedding idx", count, &[idx.len()])?;
        need(self, "embedding out", count * dim, &[y.len()])?;
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
        need(self, "embedding_backward idx", count, &[idx.len()])?;
        need(self, "embedding_backward dy", count * dim, &[dy.len()])?;
        let rows = dtable.len() / dim.max(1);
        if let Some(&bad) = idx[..count].iter().find(|&&i| i as usize >= rows) {
            return Err(bad_index("embedding_backward", bad, rows));
        }
        embedding::backward(&idx[..count], &dy[..count * dim], dtable, dim);
        Ok(())
    }
}
