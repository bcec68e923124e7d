//! IDX files, the format of LeCun's MNIST distribution, raw or gzip-compressed.
//!
//! ```text
//! struct Idx {
//!     u8  zero[2];          // MUST be 0
//!     u8  dtype;            // 0x08 = u8 (the only one read here)
//!     u8  ndims;            // 3 for images, 1 for labels
//!     u32 dims[ndims];      // big-endian
//!     u8  data[prod(dims)]; // row-major; the file MUST end here
//! }
//! ```
//!
//! Images are magic `0x00000803` (count x rows x cols), labels `0x00000801`
//! (count). A gzip stream is recognized by its magic bytes `1f 8b` rather than
//! by the `.gz` name, because renamed and hand-decompressed copies are common.

use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::Path;

/// Magic of an IDX file of `u8` with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX file of `u8` with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Caps decompression so a corrupt or hostile `.gz` cannot exhaust memory;
/// MNIST's largest file is 47 MB.
const MAX_DECOMPRESSED: u64 = 1 << 31;

/// An IDX image file: `count` images of `rows x cols` bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` grey levels, image-major.
    pub pixels: Vec<u8>,
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadData {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a file, decompressing it when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    // The trailer's ISIZE is the uncompressed size mod 2^32: a good capacity
    // hint that saves the doubling copies of a 47 MB buffer.
    let hint = raw
        .len()
        .checked_sub(4)
        .and_then(|i| raw.get(i..))
        .and_then(|t| <[u8; 4]>::try_from(t).ok())
        .map_or(0, |t| u32::from_le_bytes(t) as usize)
        .min(MAX_DECOMPRESSED as usize);
    let mut out = Vec::with_capacity(hint);
    MultiGzDecoder::new(raw.as_slice())
        .take(MAX_DECOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(path, format!("gzip data is corrupt or truncated: {e}")))?;
    if out.len() as u64 > MAX_DECOMPRESSED {
        return Err(bad(
            path,
            format!("decompresses to more than {MAX_DECOMPRESSED} bytes"),
        ));
    }
    Ok(out)
}

/// What a wrong magic number suggests the file is, for the error message.
fn describe(bytes: &[u8]) -> String {
    if bytes.starts_with(b"version https://git-lfs") {
        return "a Git LFS pointer, not the data; HINT: run `git lfs pull`".into();
    }
    if bytes.first() == Some(&b'<') {
        return "text that looks like HTML, perhaps an error page saved by a failed download"
            .into();
    }
    match bytes {
        [0, 0, dtype, ndims, ..] => {
            let ty = match dtype {
                0x08 => "u8",
                0x09 => "i8",
                0x0b => "i16",
                0x0c => "i32",
                0x0d => "f32",
                0x0e => "f64",
                _ => return "not an IDX file: unknown element type".into(),
            };
            let kind = match (dtype, ndims) {
                (0x08, 1) => " (a label file)",
                (0x08, 3) => " (an image file)",
                _ => "",
            };
            let s = if *ndims == 1 { "" } else { "s" };
            format!("an IDX file of {ty} with {ndims} dimension{s}{kind}")
        }
        _ => "not an IDX file".into(),
    }
}

/// Checks the header against `magic` and the data length against the
/// dimensions; returns the dimensions and the header length.
fn parse_header(bytes: &[u8], path: &Path, magic: u32, what: &str) -> Result<(Vec<usize>, usize)> {
    let Some(head) = bytes.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()) else {
        return Err(bad(
            path,
            format!(
                "truncated: {} bytes, too short for the 4-byte IDX magic",
                bytes.len()
            ),
        ));
    };
    let found = u32::from_be_bytes(head);
    if found != magic {
        return Err(bad(
            path,
            format!(
                "wrong magic 0x{found:08x}, expected 0x{magic:08x} (IDX {what}); this is {}",
                describe(bytes)
            ),
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    let Some(dim_bytes) = bytes.get(4..header) else {
        return Err(bad(
            path,
            format!(
                "truncated header: {ndims} dimensions need {header} bytes, found {}",
                bytes.len()
            ),
        ));
    };
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let shape = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(" x ");
    let expected = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(path, format!("dimensions {shape} overflow")))?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(bad(
            path,
            format!(
                "truncated: {shape} {what} need {expected} bytes after the {header}-byte header, found {found}"
            ),
        ));
    }
    if found > expected {
        return Err(bad(
            path,
            format!(
                "{} unexpected bytes after the {expected} bytes of {shape} {what}",
                found - expected
            ),
        ));
    }
    Ok((dims, header))
}

/// Parses an image file already in memory; `path` is for messages.
pub fn parse_images(mut bytes: Vec<u8>, path: &Path) -> Result<IdxImages> {
    let (dims, header) = parse_header(&bytes, path, IMAGES_MAGIC, "images")?;
    bytes.drain(..header);
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels: bytes,
    })
}

/// Parses a label file already in memory; `path` is for messages.
pub fn parse_labels(mut bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    let (_, header) = parse_header(&bytes, path, LABELS_MAGIC, "labels")?;
    bytes.drain(..header);
    Ok(bytes)
}

/// Reads an IDX image file, raw or gzip-compressed.
pub fn read_images(path: &Path) -> Result<IdxImages> {
    parse_images(read_maybe_gz(path)?, path)
}

/// Reads an IDX label file, raw or gzip-compressed.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    parse_labels(read_maybe_gz(path)?, path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
pub(crate) mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("lasagna-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub(crate) fn write(&self, name: &str, bytes: &[u8], gz: bool) -> PathBuf {
            let path = self.0.join(name);
            let bytes = if gz {
                let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(bytes).unwrap();
                e.finish().unwrap()
            } else {
                bytes.to_vec()
            };
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    pub(crate) fn images_file(
        count: u32,
        rows: u32,
        cols: u32,
        fill: impl Fn(usize) -> u8,
    ) -> Vec<u8> {
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [count, rows, cols] {
            b.extend(d.to_be_bytes());
        }
        b.extend((0..(count * rows * cols) as usize).map(fill));
        b
    }

    pub(crate) fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut b = LABELS_MAGIC.to_be_bytes().to_vec();
        b.extend((labels.len() as u32).to_be_bytes());
        b.extend(labels);
        b
    }

    fn bad_reason(e: Error, file: &Path) -> String {
        match &e {
            Error::BadData { path, reason } => {
                assert_eq!(path, file);
                assert!(e.to_string().contains(&*file.to_string_lossy()), "{e}");
                reason.clone()
            }
            other => panic!("expected BadData, got {other:?}"),
        }
    }

    #[test]
    fn reads_raw_and_gzip_files_alike_whatever_their_names() {
        let dir = TempDir::new("idx-ok");
        let img = images_file(3, 2, 4, |i| i as u8);
        for (name, gz) in [
            ("a-images", false),
            ("b-images.gz", true),
            ("c-images-no-ext", true),
            ("d.gz", false),
        ] {
            let p = dir.write(name, &img, gz);
            let got = read_images(&p).unwrap();
            assert_eq!((got.count, got.rows, got.cols), (3, 2, 4), "{name}");
            assert_eq!(got.pixels, (0..24).collect::<Vec<u8>>(), "{name}");
        }
        let p = dir.write("labels.gz", &labels_file(&[5, 0, 4]), true);
        assert_eq!(read_labels(&p).unwrap(), vec![5, 0, 4]);
    }

    #[test]
    fn wrong_magic_says_what_was_found_and_expected() {
        let dir = TempDir::new("idx-magic");
        let p = dir.write("labels", &labels_file(&[1, 2]), true);
        let r = bad_reason(read_images(&p).unwrap_err(), &p);
        assert!(
            r.contains("wrong magic 0x00000801, expected 0x00000803"),
            "{r}"
        );
        assert!(r.contains("label file"), "{r}");
        let p = dir.write("page.html", b"<!DOCTYPE html><html>404</html>", false);
        let r = bad_reason(read_labels(&p).unwrap_err(), &p);
        assert!(
            r.contains("expected 0x00000801") && r.contains("HTML"),
            "{r}"
        );
        let p = dir.write(
            "lfs",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:00",
            false,
        );
        let r = bad_reason(read_labels(&p).unwrap_err(), &p);
        assert!(r.contains("git lfs pull"), "{r}");
    }

    #[test]
    fn truncated_files_report_expected_and_found_bytes() {
        let dir = TempDir::new("idx-trunc");
        let img = images_file(2, 3, 3, |_| 7);
        let p = dir.write("short.gz", &img[..img.len() - 5], true);
        let r = bad_reason(read_images(&p).unwrap_err(), &p);
        assert!(
            r.contains("truncated") && r.contains("need 18 bytes") && r.contains("found 13"),
            "{r}"
        );
        let p = dir.write("header", &img[..10], false);
        let r = bad_reason(read_images(&p).unwrap_err(), &p);
        assert!(
            r.contains("truncated header") && r.contains("16 bytes"),
            "{r}"
        );
        let p = dir.write("tiny", &[0, 0], false);
        let r = bad_reason(read_images(&p).unwrap_err(), &p);
        assert!(r.contains("truncated"), "{r}");
        let mut long = labels_file(&[1, 2, 3]);
        long.push(9);
        let p = dir.write("long", &long, false);
        let r = bad_reason(read_labels(&p).unwrap_err(), &p);
        assert!(r.contains("1 unexpected bytes"), "{r}");
    }

    #[test]
    fn a_cut_gzip_stream_is_bad_data() {
        let dir = TempDir::new("idx-gz");
        let p = dir.write("full.gz", &images_file(4, 8, 8, |i| (i * 31) as u8), true);
        let gz = std::fs::read(&p).unwrap();
        let p = dir.write("cut.gz", &gz[..gz.len() / 2], false);
        let r = bad_reason(read_images(&p).unwrap_err(), &p);
        assert!(r.contains("gzip"), "{r}");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let p = std::env::temp_dir().join("lasagna-surely-missing-idx-file");
        let e = read_images(&p).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert!(
            e.to_string().contains("lasagna-surely-missing-idx-file"),
            "{e}"
        );
    }
}
