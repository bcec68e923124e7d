//! What writing, checking and locking can fail with.

use std::path::PathBuf;

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything this crate can fail with; each names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Writing, syncing or renaming failed; the old file, if any, is intact.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that was being written.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Refused before any work by [`crate::check_writable`].
    #[error("cannot write {path}: {reason}. HINT: {hint}")]
    NotWritable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be written.
        reason: String,
        /// What to do instead.
        hint: String,
    },
    /// Two outputs name one file ([`crate::check_distinct`]).
    #[error("{first} and {second} both name {path}. HINT: give each its own file")]
    SameFile {
        /// The first option (`--out`).
        first: String,
        /// The second option (`--metrics`).
        second: String,
        /// The file they share.
        path: PathBuf,
    },
    /// Another process holds the lock on this file ([`crate::Lock`]).
    #[error("{path} is in use by another lasagna process{}. HINT: wait for it, or pick another path", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The file that is locked.
        path: PathBuf,
        /// The holder's pid, when it had written it yet.
        pid: Option<u32>,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
