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
    /// A checkpoint that cannot be resumed: damaged, from another version,
    /// or holding values no run produces.
    #[error("checkpoint {path}: {field} = {value}: {reason}. HINT: {hint}")]
    BadCheckpoint {
        /// The file.
        path: PathBuf,
        /// The field or header entry at fault (`crc32`, `state.step`, `weights[0][3]`).
        field: String,
        /// Its value in the file.
        value: String,
        /// What is wrong with it.
        reason: String,
        /// What to do next.
        hint: &'static str,
    },
    /// An option of a resumed run that contradicts the run in its checkpoint.
    #[error("--resume {path} was trained with {option} {checkpoint}; this command says {given}. HINT: drop {option} to continue the run, or start a new run without --resume")]
    ResumeConflict {
        /// The checkpoint.
        path: PathBuf,
        /// The option, as the CLI spells it (`--norm-mean`).
        option: String,
        /// The run's value, from the checkpoint.
        checkpoint: String,
        /// The value this command gave.
        given: String,
    },
    /// An output could not be written, or was refused before any work
    /// (missing folder, two outputs naming one file, locked by another
    /// process): `cannot write PATH: ...` and the like.
    #[error(transparent)]
    Files(#[from] lasagna_files::Error),
    /// The run needs more memory than it may use, found from the model's
    /// sizes before anything is allocated.
    #[error("{what} needs {} ({detail}), more than the {limit} bytes ({}) that {limit_name} allows. HINT: {hint}", needed.map_or("more than 2^64 bytes".to_string(), |n| format!("{n} bytes = {}", crate::human_bytes::human(n))), crate::human_bytes::human(*limit))]
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
        limit_name: &'static str,
        /// What to change.
        hint: &'static str,
    },
    /// An allocation whose size came from input failed; returned instead of
    /// aborting the process.
    #[error("{backend} backend: cannot allocate {what} of {} ({elements} elements). HINT: make the model or --batch-size smaller, or free memory", crate::human_bytes::human(*bytes))]
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
