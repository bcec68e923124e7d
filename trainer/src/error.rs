//! The trainer's errors: typed, with the context a user needs to act.

use std::path::PathBuf;

/// Result with the trainer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the trainer can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A data file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A data file is not what it claims to be.
    #[error("{path}: {reason}")]
    BadData {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Layers whose shapes do not fit, found when the model is built.
    #[error("layer {index} ({layer}) cannot take input of shape {input:?}: {reason}")]
    Shape {
        /// Layer position.
        index: usize,
        /// Layer description.
        layer: String,
        /// Per-sample input shape it received.
        input: Vec<usize>,
        /// Why it does not fit.
        reason: String,
    },
    /// A configuration value is invalid.
    #[error("invalid {what}: {reason}")]
    Config {
        /// The setting.
        what: String,
        /// Why.
        reason: String,
    },
    /// The loss became NaN or infinite.
    #[error("loss became {value} at epoch {epoch}, step {step} (learning rate {lr}). HINT: lower the learning rate (e.g. --lr {suggest}) or clip gradients (--clip-grad-norm 1.0)")]
    NonFiniteLoss {
        /// Epoch (1-based).
        epoch: usize,
        /// Global step.
        step: u64,
        /// The loss value.
        value: f32,
        /// Learning rate at the time.
        lr: f32,
        /// A suggested smaller learning rate.
        suggest: f32,
    },
    /// BatchNorm in train mode with a batch of one sample.
    #[error("BatchNorm (layer {index}) in train mode got a batch of 1: batch statistics need at least 2 samples. HINT: use a larger --batch-size, or LayerNorm instead of BatchNorm")]
    BatchNormBatchOne {
        /// Layer position.
        index: usize,
    },
    /// A model or checkpoint file could not be written or read.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The backend failed (device errors on CUDA).
    #[error("{backend} backend: {reason}")]
    Backend {
        /// Backend name.
        backend: String,
        /// What failed.
        reason: String,
    },
    /// A model does not fit a board's flash or RAM (`lasagna deploy`).
    #[error("{}: does not fit {board}'s {memory}: {what}, {} B more than its {budget_kib} KiB. HINT: {hint}", .model.display(), crate::deploy::thousands(*.over))]
    DoesNotFit {
        /// The model file.
        model: PathBuf,
        /// The board's name (`qemu-m4`).
        board: &'static str,
        /// `flash` or `RAM`.
        memory: &'static str,
        /// What was measured and how large it is.
        what: String,
        /// Bytes over the budget.
        over: u64,
        /// The budget, in KiB.
        budget_kib: u32,
        /// What to do about it.
        hint: String,
    },
    /// An external program is missing or failed (`cargo`, `qemu-system-arm`).
    #[error("{tool}: {reason}. HINT: {hint}")]
    Tool {
        /// The program.
        tool: String,
        /// What went wrong.
        reason: String,
        /// How to install or fix it.
        hint: String,
    },
    /// The firmware failed on the (emulated) board, or disagrees with the host.
    #[error("on {board}: {reason}")]
    Device {
        /// The board's name.
        board: String,
        /// What the device said or did.
        reason: String,
    },
}

impl Error {
    /// Shorthand for a configuration error.
    pub fn config(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Config {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
