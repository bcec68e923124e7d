//! The backend interface: buffers that live on a device and the ops that run
//! on them. Layers, losses and optimizers are written against these traits,
//! so a whole training step stays on the device; the host only reads back
//! small statistics (loss sums, correct counts) when it chooses to.
//!
//! Ops act on the first `n` (or `rows * cols`) elements of their buffers, so
//! buffers are allocated once for the largest batch and reused by every step.
//! Ops that produce gradients for parameters *accumulate* into them (the model
//! zeroes gradients before each step); ops that produce activations or input
//! gradients *overwrite*.
//!
//! The traits are split by op family so each family's CPU implementation
//! lives in its own file under `cpu/`. [`Backend`] is all of them together.

use crate::error::Result;

pub mod cpu;
pub mod gpu;

mod amp;
mod conv;
mod pool;
mod rnn;

pub use amp::*;
pub use conv::*;
pub use pool::*;
pub use rnn::*;

/// Allocation, transfers and simple fills.
pub trait Memory: Send + Sync + 'static {
    /// An `f32` buffer on the device.
    type Buf: Send + Sync;
    /// A `u32` buffer on the device (labels, token ids, index lists).
    type Idx: Send + Sync;
    /// Short name for messages and metrics (`cpu`, `cuda:0 (H200)`).
    fn name(&self) -> String;
    /// A zero-filled buffer of `len` elements.
    fn zeros(&self, len: usize) -> Result<Self::Buf>;
    /// A buffer holding a copy of `host`.
    fn upload(&self, host: &[f32]) -> Result<Self::Buf>;
    /// An index buffer holding a copy of `host`.
    fn upload_idx(&self, host: &[u32]) -> Result<Self::Idx>;
    /// Copies `host` into the start of `dst`.
    fn write(&self, dst: &mut Self::Buf, host: &[f32]) -> Result<()>;
    /// Copies `host` into the start of `dst`.
    fn write_idx(&self, dst: &mut Self::Idx, host: &[u32]) -> Result<()>;
    /// Copies the start of `src` into `host` (waits for pending work).
    fn read(&self, src: &Self::Buf, host: &mut [f32]) -> Result<()>;
    /// Number of elements.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// `dst[..n] = src[..n]`.
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf, n: usize) -> Result<()>;
    /// `dst[..n] = value`.
    fn fill(&self, dst: &mut Self::Buf, value: f32, n: usize) -> Result<()>;
    /// Waits for all queued work.
    fn sync(&self) -> Result<()>;

    /// Reads a whole buffer into a new vector.
    fn to_vec(&self, src: &Self::Buf) -> Result<Vec<f32>> {
        let mut v = vec![0.0; self.len(src)];
        self.read(src, &mut v)?;
        Ok(v)
    }
}

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

/// Batches from a device-resident dataset.
pub trait DataOps: Memory {
    /// `dst[r, :] = src[idx[r], :]` for `r < rows`, rows of `cols` elements.
    fn gather_rows(
        &self,
        src: &Self::Buf,
        idx: &Self::Idx,
        rows: usize,
        cols: usize,
        dst: &mut Self::Buf,
    ) -> Result<()>;
    /// `dst[r] = src[idx[r]]` for `r < rows`.
    fn gather_idx(
        &self,
        src: &Self::Idx,
        idx: &Self::Idx,
        rows: usize,
        dst: &mut Self::Idx,
    ) -> Result<()>;
    /// `dst[..n] = x[..n] as u32`; fails unless every value is a non-negative
    /// integer below 2^24 (token ids carried in an `f32` activation buffer).
    fn to_index(&self, x: &Self::Buf, dst: &mut Self::Idx, n: usize) -> Result<()>;
}

/// Element-wise activations (PyTorch's definitions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `max(x, 0)`; the gradient at 0 is 0, as in PyTorch.
    Relu,
    /// `x > 0 ? x : alpha * x`.
    LeakyRelu(f32),
    /// `x * Phi(x)` with the exact erf.
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    GeluTanh,
    /// `x * sigmoid(x)`.
    Silu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

/// Activations, softmax and dropout.
pub trait ActivationOps: Memory {
    /// `y[..n] = act(x[..n])`.
    fn act_forward(&self, act: Act, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()>;
    /// `dx[..n] = dy[..n] * act'(x[..n])`, with `x` the forward input.
    fn act_backward(
        &self,
        act: Act,
        x: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// Row-wise softmax over `cols`.
    fn softmax_forward(
        &self,
        x: &Self::Buf,
        y: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// `dx = y * (dy - sum(dy * y))` row-wise, with `y` the forward output.
    fn softmax_backward(
        &self,
        y: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Inverted dropout: element `i` is kept iff `to_unit(random_u32(seed, offset, i)) >= p`,
    /// and kept elements are scaled by `1 / (1 - p)`. `group` elements share one draw
    /// (1 for Dropout; H*W for Dropout2d, which drops whole channels).
    fn dropout_forward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        x: &Self::Buf,
        y: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// The backward of `dropout_forward`, regenerating the same mask from `(seed, offset)`.
    fn dropout_backward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
}

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
    /// `running = (1 - momentum) * running + momentum * batch`.
    fn batchnorm_forward_train(
        &self,
        d: NormDims,
        eps: f32,
        momentum: f32,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &mut Self::Buf,
        running_var: &mut Self::Buf,
        save_mean: &mut Self::Buf,
        save_invstd: &mut Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()>;
    /// BatchNorm in eval mode, with the running statistics.
    fn batchnorm_forward_eval(
        &self,
        d: NormDims,
        eps: f32,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        running_mean: &Self::Buf,
        running_var: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()>;
    /// BatchNorm backward (train mode); accumulates `dgamma`, `dbeta`.
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

/// Fused losses. Each writes the gradient of the *mean* loss over the batch
/// into `grad` (overwriting), and adds the batch's summed loss to `stats[0]`
/// and, for classification, the number of correct argmax predictions to `stats[1]`.
pub trait LossOps: Memory {
    /// Log-softmax + negative log-likelihood over `cols` classes, with label
    /// smoothing `eps` (PyTorch: target = (1 - eps) * onehot + eps / cols).
    fn cross_entropy(
        &self,
        logits: &Self::Buf,
        targets: &Self::Idx,
        rows: usize,
        cols: usize,
        smoothing: f32,
        grad: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()>;
    /// Mean squared error over `n` elements.
    fn mse(
        &self,
        pred: &Self::Buf,
        target: &Self::Buf,
        n: usize,
        grad: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()>;
    /// Binary cross-entropy on logits over `n` elements (numerically stable form);
    /// `stats[1]` counts `(logit > 0) == (target > 0.5)`.
    fn bce_with_logits(
        &self,
        logits: &Self::Buf,
        target: &Self::Buf,
        n: usize,
        grad: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()>;
}

/// Hyper-parameters of one SGD step (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor (0 disables the buffer).
    pub momentum: f32,
    /// Dampening for momentum.
    pub dampening: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// First step: the momentum buffer is set to the gradient (no dampening).
    pub first: bool,
}

/// Hyper-parameters of one Adam/AdamW step (`torch.optim.Adam`, `AdamW`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay: L2 on the gradient (Adam) or decoupled (AdamW).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    /// Step number, starting at 1 (bias correction).
    pub step: u64,
}

/// Optimizer updates and the reductions gradient clipping needs.
pub trait OptimOps: Memory {
    /// One SGD update of `param[..n]` from `grad[..n]` with momentum buffer `mom`.
    fn sgd_step(
        &self,
        h: &SgdStep,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        mom: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// One Adam/AdamW update with moment buffers `m`, `v`.
    fn adam_step(
        &self,
        h: &AdamStep,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// `out[0] += sum(x[..n]^2)`.
    fn sum_squares(&self, x: &Self::Buf, n: usize, out: &mut Self::Buf) -> Result<()>;
    /// `x[..n] *= min(1, max_norm / (sqrt(sumsq[0]) + 1e-6))` (PyTorch's clip_grad_norm_).
    fn clip_by_norm(
        &self,
        x: &mut Self::Buf,
        n: usize,
        sumsq: &Self::Buf,
        max_norm: f32,
    ) -> Result<()>;
}

/// Everything a training step needs.
pub trait Backend:
    Memory
    + Blas
    + DataOps
    + ActivationOps
    + NormOps
    + LossOps
    + OptimOps
    + ConvOps
    + PoolOps
    + LstmOps
    + AmpOps
{
}

impl<T> Backend for T where
    T: Memory
        + Blas
        + DataOps
        + ActivationOps
        + NormOps
        + LossOps
        + OptimOps
        + ConvOps
        + PoolOps
        + LstmOps
        + AmpOps
{
}
