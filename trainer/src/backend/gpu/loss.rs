//! Fused losses on the GPU (`cross_entropy.ptx`, `mse.ptx`, `bce.ptx`): each
//! writes the gradient of the mean loss and adds the batch's loss sum (and
//! correct count) into a device-side `stats` buffer, read once per epoch.

use lasagna_kernels::bce::{bce_launch, BCE_WITH_LOGITS};
use lasagna_kernels::cross_entropy::{self as kc, cross_entropy_launch};
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::mse::{mse_launch, MSE};

use super::{u32_arg, u64_arg, Gpu};
use crate::backend::{need, LossOps};
use crate::error::Result;

impl<D: Device + Send + 'static> LossOps for Gpu<D> {
    fn cross_entropy(
        &self,
        logits: &Self::Buf,
        targets: &Self::Idx,
        rows: usize,
        cols: usize,
        smoothing: f32,
        grad: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "cross_entropy", rows * cols, &[logits.len, grad.len])?;
        need(self, "cross_entropy targets", rows, &[targets.len])?;
        need(self, "cross_entropy stats", 2, &[stats.len])?;
        let args = [
            logits.arg(),
            targets.arg(),
            grad.arg(),
            stats.arg(),
            u32_arg("rows", rows)?,
            u32_arg("cols", cols)?,
            Arg::F32(smoothing),
        ];
        self.launch(&kc::CROSS_ENTROPY, cross_entropy_launch(rows, cols), &args)
    }
    fn mse(
        &self,
        pred: &Self::Buf,
        target: &Self::Buf,
        n: usize,
        grad: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "mse", n, &[pred.len, target.len, grad.len])?;
        need(self, "mse stats", 2, &[stats.len])?;
        let args = [
            pred.arg(),
            target.arg(),
            grad.arg(),
            stats.arg(),
            u64_arg(n),
        ];
        self.launch(&MSE, mse_launch(n), &args)
    }
    fn bce_with_logits(
        &self,
        logits: &Self::Buf,
        target: &Self::Buf,
        n: usize,
        grad: &mut Self::Buf,
        stats: &mut Self::Buf,
    ) -> Result<()> {
        need(
            self,
            "bce_with_logits",
            n,
            &[logits.len, target.len, grad.len],
        )?;
        need(self, "bce_with_logits stats", 2, &[stats.len])?;
        let args = [
            logits.arg(),
            target.arg(),
            grad.arg(),
            stats.arg(),
            u64_arg(n),
        ];
        self.launch(&BCE_WITH_LOGITS, bce_launch(n), &args)
    }
}
