//! Normalization ops: BatchNorm ([`NormDims`]) and LayerNorm, and
//! Embedding's gather and scatter-add (see the layout note in `backend/mod.rs`
//! for why Embedding is in this family).

use super::Memory;
use crate::error::Result;

/// Geometry of a normalization: `n` samples, `c` channels, `s` positions per
/// channel (1 for BatchNorm1d on `[N, C]`, `H*W` for BatchNorm2d).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormDims {
    /// Samples.
    pub n: usize,
    /// Channels (BatchNorm) or normalized size (LayerNorm rows are `n`, `c` is the row length).
    pub c: usize,
    /// Positions per channel.
    pub s: usize,
}

/// BatchNorm, LayerNorm and Embedding.
pub trait NormOps: Memory {
    /// BatchNorm in train mode: batch statistics per channel over `n` and `s`
    /// (biased variance for normalizing, unbiased for the running update, as
    /// PyTorch does); saves mean and `1/sqrt(var + eps)` for backward; updates
    /// `running = (1 - momentum) * running + momentum * batch`. With `relu`,
    /// `y = max(y, 0)`: the ReLU layer after it fused in, bit for bit what
    /// that layer's forward would write.
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
    ) -> Result<()>;
    /// BatchNorm in eval mode, with the running statistics; `relu` as in
    /// [`NormOps::batchnorm_forward_train`].
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
    ) -> Result<()>;
    /// BatchNorm backward (train mode): overwrites `dx`, `dgamma` and `dbeta`
    /// (the layer's parameters get gradient from here alone, so the model
    /// need not zero them first). Reads `x`, never the forward's output, so
    /// a fused ReLU leaves it unchanged.
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
    ) -> Result<()>;
    /// LayerNorm over rows of `cols`: saves mean and `1/sqrt(var + eps)` per row.
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
    ) -> Result<()>;
    /// LayerNorm backward; accumulates `dgamma`, `dbeta`.
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
    ) -> Result<()>;
    /// `y[i, :] = table[idx[i], :]` for `i < count`; indices must be `< rows of table`.
    fn embedding_forward(
        &self,
        idx: &Self::Idx,
        table: &Self::Buf,
        y: &mut Self::Buf,
        count: usize,
        dim: usize,
    ) -> Result<()>;
    /// `dtable[idx[i], :] += dy[i, :]` (scatter-add).
    fn embedding_backward(
        &self,
        idx: &Self::Idx,
        dy: &Self::Buf,
        dtable: &mut Self::Buf,
        count: usize,
        dim: usize,
    ) -> Result<()>;
}
