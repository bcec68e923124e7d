//! Fused losses: each op computes the loss, its gradient and the batch's
//! statistics in one pass, on the device.

use super::Memory;
use crate::error::Result;

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
