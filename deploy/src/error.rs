//! The deploy tool's errors: typed, with what went wrong, where, and what
//! to do next.

use std::path::PathBuf;

/// Result with the deploy tool's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything deploying a model can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be written, or was refused before any work
    /// (`cannot write PATH: ...`, locked by another process).
    #[error(transparent)]
    Files(#[from] lasagna_files::Error),
    /// A file is not what it claims to be (the firmware's ELF).
    #[error("{path}: {reason}")]
    BadData {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A setting is invalid.
    #[error("invalid {what}: {reason}")]
    Config {
        /// The setting.
        what: String,
        /// Why.
        reason: String,
    },
    /// The model file does not load in the engine.
    #[error("model file {path}: {reason}")]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A model does not fit a board's flash or RAM .
    #[error("{}: does not fit {board}'s {memory}: {what}, {} B more than its {budget_kib} KiB. HINT: {hint}", .model.display(), crate::thousands(*.over))]
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
