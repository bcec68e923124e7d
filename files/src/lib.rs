#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check;
mod claim;
mod error;
mod lock;
mod write;

pub use check::{check_distinct, check_writable};
pub use claim::claim;
pub use error::{Error, Result};
pub use lock::Lock;
pub use write::write_atomic;

/// The folder a path's file lives in: `.` for a bare file name.
pub(crate) fn parent_dir(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    }
}
