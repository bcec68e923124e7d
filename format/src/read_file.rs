//! [`read_file`]: a model file from disk into memory, its length checked
//! against the header's `file_size` before the body is read (`docs/FORMAT.md`
//! §11). `std::fs::read` would first read all of whatever it is given: a
//! 5 GB file named `model.lsn` costs 5 GB and seconds before [`Model::parse`]
//! can say it is not a model.
//!
//! [`Model::parse`]: crate::Model::parse

use crate::layout::{CRC_START, H_FILE_SIZE, MAGIC};
use core::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::vec::Vec;

/// What is read before anything else: magic, version, reserved, `file_size`
/// and `crc32`, the fields that come before the CRC-covered bytes.
const PREFIX: usize = CRC_START;

/// Why [`read_file`] refused a file. It does not name the file: the caller
/// adds the path.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadFileError {
    /// The OS could not open, stat or read the file.
    Io(io::Error),
    /// The file ends before the 16 bytes that hold the magic and `file_size`.
    TooShort {
        /// Bytes the file has.
        len: u64,
    },
    /// The file does not start with `LSNA`.
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// The header's `file_size` is not the file's length. For a regular
    /// file this is found from its metadata, before the body is read; for a
    /// stream (a pipe), once it ends early.
    FileSize {
        /// What `file_size` says.
        header: u32,
        /// What the file has.
        actual: u64,
    },
    /// A stream (not a regular file) goes on past the header's `file_size`.
    TrailingBytes {
        /// What `file_size` says.
        header: u32,
    },
    /// The file shrank while it was read: its metadata said `file_size`
    /// bytes, but fewer could be read.
    Shrank {
        /// What `file_size` (and the metadata) said.
        header: u32,
        /// Bytes read before the end.
        read: u64,
    },
    /// No memory for a buffer of `file_size` bytes.
    OutOfMemory {
        /// What `file_size` says.
        header: u32,
    },
}

impl From<io::Error> for ReadFileError {
    fn from(e: io::Error) -> ReadFileError {
        ReadFileError::Io(e)
    }
}

const HINT: &str =
    "HINT: re-run `lasagna export` (or `lasagna train --out`), or check the copy is complete";

impl fmt::Display for ReadFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ReadFileError::*;
        match self {
            Io(e) => write!(f, "{e}"),
            TooShort { len } => write!(
                f,
                "the file has {len} bytes, too few for the {PREFIX}-byte start of a header: not a Lasagna model, or damaged. {HINT}"
            ),
            BadMagic { found } => write!(
                f,
                "not a Lasagna model: magic {found:02x?}, expected \"LSNA\". {HINT}"
            ),
            FileSize { header, actual } => write!(
                f,
                "file_size in the header says {header} bytes but the file has {actual}: not a Lasagna model, or damaged. {HINT}"
            ),
            TrailingBytes { header } => write!(
                f,
                "file_size in the header says {header} bytes but the stream goes on past them: not a Lasagna model, or damaged. {HINT}"
            ),
            Shrank { header, read } => write!(
                f,
                "the file shrank while it was read: {header} bytes when opened, {read} when read. HINT: wait until whatever writes it is done"
            ),
            OutOfMemory { header } => write!(
                f,
                "cannot allocate {header} bytes for the model (file_size in its header)"
            ),
        }
    }
}

impl std::error::Error for ReadFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadFileError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads the model file at `path`: the first 16 bytes, then, if they start
/// with `LSNA` and their `file_size` is the file's length, exactly
/// `file_size` bytes into a buffer reserved up front. A wrong file is
/// refused after reading 16 bytes, whatever its size, and a file growing
/// meanwhile cannot make it read more. The bytes are not validated beyond
/// that: pass them to [`Model::parse`](crate::Model::parse).
pub fn read_file(path: &Path) -> Result<Vec<u8>, ReadFileError> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    // A pipe or a device has no length to check up front; its stream is
    // checked as it is read instead.
    read_from(file, meta.is_file().then_some(meta.len()))
}

/// [`read_file`] on a reader; `on_disk` is the file's length when known.
fn read_from<R: Read>(mut src: R, on_disk: Option<u64>) -> Result<Vec<u8>, ReadFileError> {
    let mut head = [0u8; PREFIX];
    let got = read_up_to(&mut src, &mut head)?;
    if let Some(magic) = head.first_chunk::<4>().filter(|_| got >= 4) {
        if *magic != MAGIC {
            return Err(ReadFileError::BadMagic { found: *magic });
        }
    }
    if got < PREFIX {
        return Err(ReadFileError::TooShort { len: got as u64 });
    }
    let mut field = [0u8; 4];
    field.copy_from_slice(&head[H_FILE_SIZE..H_FILE_SIZE + 4]);
    let header = u32::from_le_bytes(field);
    if let Some(len) = on_disk.filter(|&len| len != u64::from(header)) {
        return Err(ReadFileError::FileSize {
            header,
            actual: len,
        });
    }
    let size = header as usize;
    let Some(body) = size.checked_sub(PREFIX) else {
        // Only a stream gets here: a regular file's length is at least PREFIX.
        return Err(ReadFileError::TrailingBytes { header });
    };
    let mut buf = Vec::new();
    buf.try_reserve_exact(size)
        .map_err(|_| ReadFileError::OutOfMemory { header })?;
    buf.extend_from_slice(&head);
    src.by_ref().take(body as u64).read_to_end(&mut buf)?;
    let read = buf.len() as u64;
    if buf.len() < size {
        return Err(match on_disk {
            Some(_) => ReadFileError::Shrank { header, read },
            None => ReadFileError::FileSize {
                header,
                actual: read,
            },
        });
    }
    if on_disk.is_none() && read_up_to(&mut src, &mut [0u8; 1])? > 0 {
        return Err(ReadFileError::TrailingBytes { header });
    }
    Ok(buf)
}

/// Fills `buf` or stops at the end of `src`; returns the bytes read.
fn read_up_to<R: Read>(src: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::{ModelBuilder, Op, TensorData};
    use std::format;
    use std::path::PathBuf;
    use std::string::ToString;
    use std::vec;

    fn model() -> Vec<u8> {
        let mut b = ModelBuilder::new(&[4]);
        b.op(
            Op::Linear {
                in_features: 4,
                out_features: 2,
                bias: false,
                layout: crate::WeightLayout::RowMajor,
            },
            vec![TensorData::f32(&[2, 4], &[0.5; 8])],
        );
        b.build().unwrap()
    }

    /// A file under the temp dir, removed on drop.
    struct Tmp(PathBuf);

    impl Tmp {
        fn new(tag: &str, bytes: &[u8]) -> Tmp {
            let p = std::env::temp_dir()
                .join(format!("lasagna-format-{tag}-{}.lsn", std::process::id()));
            std::fs::write(&p, bytes).unwrap();
            Tmp(p)
        }
    }

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Bytes this thread has read through `read(2)` and friends, where Linux
    /// says (`rchar` in /proc/thread-self/io): each test runs on its own
    /// thread, so other tests' reads do not count.
    fn thread_rchar() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/thread-self/io").ok()?;
        s.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .and_then(|v| v.trim().parse().ok())
    }

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let bytes = model();
        let f = Tmp::new("ok", &bytes);
        assert_eq!(read_file(&f.0).unwrap(), bytes);
    }

    #[test]
    fn a_5_gb_sparse_file_is_refused_after_reading_16_bytes() {
        let bytes = model();
        let f = Tmp::new("sparse", &bytes);
        // Sparse: no disk used, but metadata and read(2) see 5 GB.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f.0)
            .unwrap()
            .set_len(5_000_000_000)
            .unwrap();
        let before = thread_rchar();
        let e = read_file(&f.0).unwrap_err();
        let after = thread_rchar();
        assert!(
            matches!(e, ReadFileError::FileSize { header, actual: 5_000_000_000 } if header as usize == bytes.len()),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("says {} bytes", bytes.len()))
                && msg.contains("has 5000000000")
                && msg.contains("HINT"),
            "{msg}"
        );
        match (before, after) {
            // The 16-byte prefix; a little slack for the OS.
            (Some(b), Some(a)) => assert!(a - b < 4096, "read {} bytes", a - b),
            _ => crate::skip::skipped("the bytes-read check: no /proc/thread-self/io here"),
        }
    }

    #[test]
    fn wrong_magic_short_and_truncated_files_are_named_as_such() {
        let bytes = model();
        let f = Tmp::new("magic", b"PK\x03\x04 a zip file, not a model");
        let e = read_file(&f.0).unwrap_err();
        assert!(
            matches!(e, ReadFileError::BadMagic { found } if &found == b"PK\x03\x04"),
            "{e:?}"
        );
        let f = Tmp::new("short", &bytes[..10]);
        let e = read_file(&f.0).unwrap_err();
        assert!(matches!(e, ReadFileError::TooShort { len: 10 }), "{e:?}");
        let f = Tmp::new("cut", &bytes[..bytes.len() - 1]);
        let e = read_file(&f.0).unwrap_err();
        assert!(
            matches!(e, ReadFileError::FileSize { actual, .. } if actual as usize == bytes.len() - 1),
            "{e:?}"
        );
        let e = read_file(Path::new("/surely/missing/model.lsn")).unwrap_err();
        assert!(matches!(e, ReadFileError::Io(_)), "{e:?}");
    }

    /// Counts the bytes pulled through it.
    struct Counting<R> {
        inner: R,
        pulled: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.pulled += n;
            Ok(n)
        }
    }

    #[test]
    fn a_file_growing_while_read_yields_only_file_size_bytes() {
        let bytes = model();
        let mut grown = bytes.clone();
        grown.extend(core::iter::repeat_n(7u8, 1 << 20));
        // The metadata said `bytes.len()`; a megabyte arrived since.
        let mut src = Counting {
            inner: grown.as_slice(),
            pulled: 0,
        };
        let got = read_from(&mut src, Some(bytes.len() as u64)).unwrap();
        assert_eq!(got, bytes);
        assert_eq!(src.pulled, bytes.len());
    }

    #[test]
    fn a_stream_is_checked_as_it_is_read_and_read_no_further_than_one_byte_past_file_size() {
        let bytes = model();
        let mut long = bytes.clone();
        long.extend(core::iter::repeat_n(7u8, 1 << 20));
        let mut src = Counting {
            inner: long.as_slice(),
            pulled: 0,
        };
        let e = read_from(&mut src, None).unwrap_err();
        assert!(matches!(e, ReadFileError::TrailingBytes { .. }), "{e:?}");
        assert_eq!(src.pulled, bytes.len() + 1);
        let e = read_from(&bytes[..bytes.len() - 3], None).unwrap_err();
        assert!(
            matches!(e, ReadFileError::FileSize { actual, .. } if actual as usize == bytes.len() - 3),
            "{e:?}"
        );
        assert_eq!(read_from(bytes.as_slice(), None).unwrap(), bytes);
    }
}
