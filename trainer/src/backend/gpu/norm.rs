//! BatchNorm, LayerNorm and Embedding on the GPU (`batchnorm.ptx`,
//! `layernorm.ptx`, `embedding.ptx`).

use lasagna_kernels::batchnorm::{self as kb, channel_launch, eval_launch};
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::embedding::{self as ke, embedding_launch};
use lasagna_kernels::layernorm::{self as kl, layernorm_launch, layernorm_params_launch};
use lasagna_kernels::Kernel;

use super::{u32_arg, u64_arg, Gpu, GpuBuf, GpuIdx, A};
use crate::backend::{need, NormDims, NormOps};
use crate::error::Result;

impl<D: Device + Send + 'static> Gpu<D> {
    fn dims(&self, d: NormDims) -> Result<[A<D>; 3]> {
        Ok([u32_arg("n", d.n)?, u32_arg("c", d.c)?, u32_arg("s", d.s)?])
    }
}

impl<D: Device + Send + 'static> NormOps for Gpu<D> {
    fn batchnorm_forward_train(
        &self,
        d: NormDims,
        eps: f32,
        momentum: f32,
        relu: bool,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &mut Self::Buf,
        running_var: &mut Self::Buf,
        save_mean: &mut Self::Buf,
        save_invstd: &mut Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()> {
        let len = d.n * d.c * d.s;
        need(self, "batchnorm_forward_train", len, &[x.len, y.len])?;
        let stats = [
            gamma,
            beta,
            running_mean,
            running_var,
            save_mean,
            save_invstd,
        ];
        need(
            self,
            "batchnorm_forward_train channels",
            d.c,
            &stats.map(|b| b.len),
        )?;
        let mut args = vec![
            x.arg(),
            gamma.arg(),
            beta.arg(),
            running_mean.arg(),
            running_var.arg(),
            save_mean.arg(),
            save_invstd.arg(),
            y.arg(),
        ];
        args.extend(self.dims(d)?);
        args.extend([Arg::F32(eps), Arg::F32(momentum), Arg::U32(relu.into())]);
        self.launch(
            &kb::BATCHNORM_FORWARD_TRAIN,
            channel_launch(d.n, d.c, d.s),
            &args,
        )
    }
    fn batchnorm_forward_eval(
        &self,
        d: NormDims,
        eps: f32,
        relu: bool,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &Self::Buf,
        running_var: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()> {
        let len = d.n * d.c * d.s;
        need(self, "batchnorm_forward_eval", len, &[x.len, y.len])?;
        let stats = [gamma, beta, running_mean, running_var];
        need(
            self,
            "batchnorm_forward_eval channels",
            d.c,
            &stats.map(|b| b.len),
        )?;
        let mut args = vec![
            x.arg(),
            gamma.arg(),
            beta.arg(),
            running_mean.arg(),
            running_var.arg(),
            y.arg(),
        ];
        args.extend(self.dims(d)?);
        args.extend([Arg::F32(eps), Arg::U32(relu.into())]);
        self.launch(
            &kb::BATCHNORM_FORWARD_EVAL,
            eval_launch(d.n, d.c, d.s),
            &args,
        )
    }
    fn batchnorm_backward(
        &self,
        d: NormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        save_mean: &Self::Buf,
        save_invstd: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    ) -> Result<()> {
        let len = d.n * d.c * d.s;
        need(self, "batchnorm_backward", len, &[x.len, dy.len, dx.len])?;
        let per_channel = [
            gamma.len,
            save_mean.len,
            save_invstd.len,
            dgamma.len,
            dbeta.len,
        ];
        need(self, "batchnorm_backward channels", d.c, &per_channel)?;
        let mut args = vec![
            x.arg(),
            gamma.arg(),
            save_mean.arg(),
            save_invstd.arg(),
            dy.arg(),
            dx.arg(),
            dgamma.arg(),
            dbeta.arg(),
        ];
        args.extend(self.dims(d)?);
        self.launch(
            &kb::BATCHNORM_BACKWARD,
            channel_launch(d.n, d.c, d.s),
            &args,
        )
    }
    fn layernorm_forward(
        &self,
        rows: usize,
        cols: usize,
        eps: f32,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        save_mean: &mut Self::Buf,
        save_rstd: &mut Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "layernorm_forward", rows * cols, &[x.len, y.len])?;
        need(
            self,
            "layernorm_forward params",
            cols,
            &[gamma.len, beta.len],
        )?;
        need(
            self,
            "layernorm_forward stats",
            rows,
            &[save_mean.len, save_rstd.len],
        )?;
        let args = [
            x.arg(),
            gamma.arg(),
            beta.arg(),
            save_mean.arg(),
            save_rstd.arg(),
            y.arg(),
            u32_arg("rows", rows)?,
            u32_arg("cols", cols)?,
            Arg::F32(eps),
        ];
        self.launch(&kl::LAYERNORM_FORWARD, layernorm_launch(rows, cols), &args)
    }
    fn layernorm_backward(
        &self,
        rows: usize,
        cols: usize,
        x: &Self::Buf,
        gamma: &Self::Buf,
        save_mean: &Self::Buf,
        save_rstd: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    ) -> Result<()> {
        need(
            self,
            "layernorm_backward",
            rows * cols,
            &[x.len, dy.len, dx.len],
        )?;
        need(
            self,
            "layernorm_backward params",
            cols,
            &[gamma.len, dgamma.len, dbeta.len],
        )?;
        need(
            self,
            "layernorm_backward stats",
            rows,
            &[save_mean.len, save_rstd.len],
        )?;
        let (r, c) = (u32_arg("rows", rows)?, u32_arg("cols", cols)?);
        let args = [
            x.arg(),
            gamma.arg(),
            save_mean.arg(),
            save_rstd.arg(),
            dy.arg(),
            dx.arg(),
            r,
            c,
        ];
        self.launch(
            &kl::LAYERNORM_BACKWARD_INPUT,
            layernorm_launch(rows, cols),
            &args,
        )?;
        let args = [
            x.arg(),
            save_mean.arg(),
            save_rstd.arg(),
            dy.arg(),
            dgamma.arg(),
            dbeta.arg(),
            r,
            c,
        ];
        self.launch(
            &kl::LAYERNORM_BACKWARD_PARAMS,
            layernorm_params_launch(rows, cols),
            &args,
        )
    }
    fn embedding_forward(
        &self,
        idx: &Self::Idx,
        table: &Self::Buf,
        y: &mut Self::Buf,
        count: usize,
        dim: usize,
    ) -> Result<()> {
        need(self, "embedding_forward y", count * dim, &[y.len])?;
        self.embedding(&ke::EMBEDDING_FORWARD, idx, table, y, table.len, count, dim)
    }
    fn embedding_backward(
        &self,
        idx: &Self::Idx,
        dy: &Self::Buf,
        dtable: &mut Self::Buf,
        count: usize,
        dim: usize,
    ) -> Result<()> {
        need(self, "embedding_backward dy", count * dim, &[dy.len])?;
        self.embedding(
            &ke::EMBEDDING_BACKWARD,
            idx,
            dy,
            dtable,
            dtable.len,
            count,
            dim,
        )
    }
}

impl<D: Device + Send + 'static> Gpu<D> {
    /// Both embedding entries take `(idx, src, dst, count * dim, dim, rows)`,
    /// `rows` being the table's.
    fn embedding(
        &self,
        k: &Kernel,
        idx: &GpuIdx<D::Buf>,
        src: &GpuBuf<D::Buf>,
        dst: &GpuBuf<D::Buf>,
        table_len: usize,
        count: usize,
        dim: usize,
    ) -> Result<()> {
        need(self, k.name, count, &[idx.len])?;
        let rows = table_len / dim.max(1);
        let args = [
            idx.arg(),
            src.arg(),
            dst.arg(),
            u64_arg(count * dim),
            u32_arg("dim", dim)?,
            u32_arg("rows", rows)?,
        ];
        self.launch(k, embedding_launch(count, dim, rows), &args)
    }
}
