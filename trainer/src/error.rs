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
    /// The run needs more memory than it may use, found from the model's
    /// sizes before anything is allocated.
    #[error("{what} needs {} ({detail}), more than the {limit} bytes ({}) that {limit_name} allows. HINT: {hint}", needed.map_or("more than 2^64 bytes".to_string(), |n| format!("{n} bytes = {}", crate::footprint::human(n))), crate::footprint::human(*limit))]
    TooLarge {
        /// What needs the memory (`the model`).
        what: String,
        /// Bytes needed; `None` when the count overflows `u64`.
        needed: Option<u64>,
        /// Where they go (parameters, gradients, optimizer state, activations).
        detail: String,
        /// Bytes it may use.
        limit: u64,
        /// Where the limit comes from (`--max-memory`, `MemAvailable in /proc/meminfo`).
        limit_name: String,
        /// What to change.
        hint: String,
    },
    /// An allocation whose size came from input failed; returned instead of
    /// aborting the process.
    #[error("{backend} backend: cannot allocate {what} of {} ({elements} elements). HINT: make the model or --batch-size smaller, or free memory", crate::footprint::human(*bytes))]
    Alloc {
        /// Backend name.
        backend: String,
        /// What was being allocated (`a buffer`, `initial weights`).
        what: String,
        /// Elements asked for.
        elements: usize,
        /// Bytes asked for (saturating).
        bytes: u64,
    },
    /// The backend failed (device errors on CUDA).
    #[error("{backend} backend: {reason}")]
    Backend {
        /// Backend name.
        backend: String,
        /// What failed.
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
