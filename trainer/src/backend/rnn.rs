//! Recurrent ops: the element-wise part of an LSTM cell (PyTorch's `nn.LSTM`
//! gate order i, f, g, o). The matrix products stay in [`super::Blas::gemm`]:
//! the input projection of a whole sequence is one GEMM before the time loop,
//! the recurrent product one GEMM per step. These ops fuse everything between
//! them, so a step costs one GEMM and one kernel launch on a GPU.
//!
//! Sequences are batch-major, as the layer's input and output are: element
//! `(s, t, j)` of a `[n, steps, width]` buffer is at `(s * steps + t) * width + j`.
//! An op addresses step `t` of such a buffer itself (buffers cannot be
//! sliced), while the per-step buffers that feed a GEMM are `[n, width]`.

use super::Memory;
use crate::error::Result;

/// Which step of which sequences an LSTM cell op works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LstmStep {
    /// Samples (rows of the per-step buffers).
    pub n: usize,
    /// Hidden units `H`; gate rows are `4H` wide.
    pub hidden: usize,
    /// Steps `T` of the sequence buffers.
    pub steps: usize,
    /// The step, `0 <= t < steps`.
    pub t: usize,
}

/// Recurrent cells; today the LSTM cell (the GEMMs around it are [`super::Blas`]).
pub trait RnnOps: Memory {
    /// One forward step for every sample `s < n`, with `a` the gate
    /// pre-activations `gates[s, t, :] + rec[s, :]`:
    /// `i, f, o = sigmoid(a_i, a_f, a_o)`, `g = tanh(a_g)`,
    /// `c_t = f * c_{t-1} + i * g` (`c_{-1} = 0`), `h_t = o * tanh(c_t)`.
    ///
    /// - `gates [n, steps, 4H]`: step `t` holds `x_t W_ih^T + b_ih + b_hh` and
    ///   is overwritten with the activations `i, f, g, o`, which backward needs.
    /// - `rec [n, 4H]`: `h_{t-1} W_hh^T`; `None` at `t = 0`, where `h_{-1} = 0`.
    /// - `c [n, steps, H]`: reads `c_{t-1}` at step `t - 1`, writes `c_t` at `t`.
    /// - `h_seq [n, steps, H]`: receives `h_t` at step `t` when given (the
    ///   layer's output sequence; `None` when only the last step is wanted).
    /// - `h [n, H]`: receives `h_t`, the next step's GEMM input.
    fn lstm_cell_forward(
        &self,
        d: LstmStep,
        rec: Option<&Self::Buf>,
        gates: &mut Self::Buf,
        c: &mut Self::Buf,
        h_seq: Option<&mut Self::Buf>,
        h: &mut Self::Buf,
    ) -> Result<()>;

    /// One backward step for every sample `s < n`, given what forward saved.
    /// The gradient reaching `h_t` is the sum of `dh_seq[s, t, :]` (from the
    /// layer above, or the loss) and `dh[s, :]` (from step `t + 1` through
    /// `W_hh`, or the loss when only the last step is output); `None` is zero.
    ///
    /// - `gates [n, steps, 4H]`, `c [n, steps, H]`: as forward left them.
    /// - `dc [n, H]`: `dL/dc_t` from step `t + 1` in (zero at the last step),
    ///   overwritten with `dL/dc_{t-1}`.
    /// - `dgates [n, steps, 4H]`: step `t` is overwritten with `dL/da`, the
    ///   gradient of the pre-activations (for the batched `W_ih` and bias
    ///   gradients and the input gradient after the loop).
    /// - `dgates_step [n, 4H]`: the same values, for this step's `W_hh` GEMMs.
    fn lstm_cell_backward(
        &self,
        d: LstmStep,
        gates: &Self::Buf,
        c: &Self::Buf,
        dh_seq: Option<&Self::Buf>,
        dh: Option<&Self::Buf>,
        dc: &mut Self::Buf,
        dgates: &mut Self::Buf,
        dgates_step: &mut Self::Buf,
    ) -> Result<()>;
}
