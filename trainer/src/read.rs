//! Reading the files a user names, with a cap on what is read: a model file
//! is checked against its header first ([`model_file`]), and a text file
//! (a TOML model, a sweep grid, metrics JSON or CSV) against a size limit
//! ([`text_file`]). A wrong path to a multi-gigabyte file then costs a few
//! bytes of reading and a clear message, not its size in memory.
//! The IDX reader has its own checks ([`crate::data::idx`]).

use crate::error::{Error, Result};
use lasagna_format::ReadFileError;
use std::io::Read;
use std::path::Path;

/// The largest text input read: generous for a hand-written TOML model or
/// sweep grid, or the metrics of a long run (a few hundred KB), and small
/// enough that reading a wrong file by mistake costs nothing.
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// Reads the model file (`.lsn`) at `path` with [`lasagna_format::read_file`]:
/// a wrong magic, or a `file_size` in the header that is not the file's
/// length, is refused after reading 16 bytes.
pub fn model_file(path: &Path) -> Result<Vec<u8>> {
    lasagna_format::read_file(path).map_err(|e| match e {
        ReadFileError::Io(source) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        e => Error::ModelFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// Reads the UTF-8 text file at `path`, refusing one over `cap` bytes
/// before reading it (from its metadata), or once `cap + 1` bytes are read
/// (a pipe, or a file growing meanwhile).
pub fn text_file(path: &Path, cap: u64) -> Result<String> {
    let bytes = capped_file(
        path,
        cap,
        "a text input may have",
        "check the path names the file you meant",
    )?;
    String::from_utf8(bytes).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Reads the file at `path` whole, refusing one over `cap` bytes before
/// reading it (from its metadata), or once `cap + 1` bytes are read. The
/// refusal says "N bytes, more than the CAP bytes {what}. HINT: {hint}".
pub fn capped_file(path: &Path, cap: u64, what: &str, hint: &str) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_big = |len: String| Error::BadData {
        path: path.to_path_buf(),
        reason: format!("{len} bytes, more than the {cap} bytes {what}. HINT: {hint}"),
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > cap {
        return Err(too_big(len.to_string()));
    }
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(too_big(format!("at least {}", bytes.len())));
    }
    Ok(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::data::idx::tests::TempDir;

    #[test]
    fn text_over_the_cap_is_refused_from_its_length_alone() {
        let dir = TempDir::new("read-text");
        let p = dir.0.join("grid.toml");
        std::fs::write(&p, "layers = [1, 2]\n").unwrap();
        assert_eq!(text_file(&p, 16).unwrap(), "layers = [1, 2]\n");
        // One byte over: refused before reading.
        let e = text_file(&p, 15).unwrap_err();
        assert!(
            matches!(&e, Error::BadData { reason, .. } if reason.contains("16 bytes, more than the 15")),
            "{e}"
        );
        // A sparse 5 GB "grid": refused at once, nothing read.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(5_000_000_000)
            .unwrap();
        let e = text_file(&p, MAX_TEXT_BYTES).unwrap_err();
        assert!(e.to_string().contains("5000000000 bytes"), "{e}");
        assert!(e.to_string().contains("grid.toml"), "{e}");
    }

    #[test]
    fn a_missing_model_file_is_an_io_error_and_a_wrong_one_a_model_file_error() {
        let dir = TempDir::new("read-model");
        let e = model_file(&dir.0.join("missing.lsn")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        let p = dir.0.join("notes.lsn");
        std::fs::write(&p, "these are my notes, not a model").unwrap();
        let e = model_file(&p).unwrap_err();
        assert!(matches!(e, Error::ModelFile { .. }), "{e:?}");
        assert!(
            e.to_string().contains("notes.lsn") && e.to_string().contains("LSNA"),
            "{e}"
        );
    }
}
