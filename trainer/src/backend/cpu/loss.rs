//! `LossOps` for the CPU: length and target checks, then the slices go to
//! `cross_entropy.rs`, `mse.rs` and `bce.rs`; the `f64` sums they return are
//! added to the `f32` statistics here.

use super::{bad_index, bce, cross_entropy, mse, Cpu};
use crate::backend::{need, LossOps};
use crate::error::Result;

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
        need(self, "cross_entropy", n, &[logits.len(), grad.len()])?;
        need(self, "cross_entropy targets", rows, &[targets.len()])?;
        need(self, "cross_entropy stats", 2, &[stats.len()])?;
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
        need(self, "mse", n, &[pred.len(), target.len(), grad.len()])?;
        need(self, "mse stats", 2, &[stats.len()])?;
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
            self,
            "bce_with_logits",
            n,
            &[logits.len(), target.len(), grad.len()],
        )?;
        need(self, "bce_with_logits stats", 2, &[stats.len()])?;
        let (loss, correct) = bce::forward_backward(&logits[..n], &target[..n], &mut grad[..n]);
        stats[0] += loss as f32;
        stats[1] += correct as f32;
        Ok(())
    }
}
