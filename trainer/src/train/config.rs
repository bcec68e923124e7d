//! [`TrainConfig`]: what decides how a model is trained, its defaults and
//! the range checks made before any work starts.

use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::optim::{OptimConfig, Schedule};
use serde::{Deserialize, Serialize};

/// Everything that decides how a model is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Base learning rate (before the schedule).
    pub lr: f32,
    /// Seed of every random choice (init, shuffling, dropout).
    pub seed: u64,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimConfig,
    /// Learning-rate schedule, stepped once per epoch.
    pub schedule: Schedule,
    /// Loss function.
    pub loss: Loss,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f32>,
    /// Stop after this many epochs without a better validation loss, and restore the best weights.
    pub early_stopping: Option<usize>,
    /// Samples per evaluation batch.
    pub eval_batch: usize,
    /// Mixed precision: fp16 GEMM inputs with f32 accumulation and dynamic
    /// loss scaling ([`GradScaler`]). Off in files written before it existed.
    #[serde(default)]
    pub amp: bool,
    /// Replay full-batch steps from a captured graph where the device can
    /// (see [`fit`]); `LASAGNA_GRAPHS=0` turns it off too. Written to files
    /// only when off, so files stay as they were.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub graphs: bool,
}

fn on() -> bool {
    true
}

fn is_on(v: &bool) -> bool {
    *v
}

impl TrainConfig {
    /// The chapter's MLP recipe: Adam 1e-3, batch 64, 5 epochs, cross-entropy.
    pub fn mnist_default() -> TrainConfig {
        TrainConfig {
            epochs: 5,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
            optimizer: OptimConfig::adam(),
            schedule: Schedule::Constant,
            loss: Loss::CrossEntropy {
                label_smoothing: 0.0,
            },
            clip_grad_norm: None,
            early_stopping: None,
            eval_batch: 1000,
            amp: false,
            graphs: true,
        }
    }

    /// Checks ranges before any work starts.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config("--epochs", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("--batch-size", "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config(
                "--lr",
                format!("{} is not a positive number", self.lr),
            ));
        }
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::config(
                    "--clip-grad-norm",
                    "must be a positive number",
                ));
            }
        }
        if self.early_stopping == Some(0) {
            return Err(Error::config(
                "--early-stopping",
                "patience must be at least 1 epoch",
            ));
        }
        self.loss.validate()
    }
}
