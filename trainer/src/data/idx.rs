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
//!
//! A file is read header first, and the header decides how much more is
//! read: the data section it declares (`prod(dims)`, checked arithmetic)
//! MUST be at most [`MAX_DATA_BYTES`], and a raw file's length MUST be the
//! header plus that, from its metadata, before the data is read. A gzip
//! stream is decompressed as it is read: the header comes from its first
//! bytes, then exactly the declared data, then one more byte, which if it
//! exists stops the read with an error. Memory is the declared size plus a
//! few KB, whatever the file or the stream holds: a 5 GB file or a gzip bomb
//! is refused after reading its header (and, for the bomb, one byte more).

use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// Magic of an IDX file of `u8` with 3 dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an IDX file of `u8` with 1 dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The largest data section a header may declare, which bounds what a read
/// allocates; MNIST's largest file is 47 MB.
pub const MAX_DATA_BYTES: usize = 1 << 31;

/// Bytes read before the header is parsed: the header (at most 16 bytes
/// here) and enough of the rest for [`describe`] to recognize a Git LFS
/// pointer or an HTML page.
const SNIFF: usize = 64;

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

/// A checked IDX header.
struct Header {
    dims: Vec<usize>,
    /// Header bytes (4 + 4 per dimension).
    len: usize,
    /// Data bytes the dimensions declare.
    data: usize,
    /// `dims` as `60000 x 28 x 28`, for messages.
    shape: String,
}

/// Checks the header at the start of `bytes` against `magic`, and its
/// declared data size against [`MAX_DATA_BYTES`]; `bytes` need not hold
/// the data.
fn parse_dims(bytes: &[u8], path: &Path, magic: u32, what: &str) -> Result<Header> {
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
    let len = 4 + 4 * ndims;
    let Some(dim_bytes) = bytes.get(4..len) else {
        return Err(bad(
            path,
            format!(
                "truncated header: {ndims} dimensions need {len} bytes, found {}",
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
    let data = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| bad(path, format!("dimensions {shape} overflow")))?;
    if data > MAX_DATA_BYTES {
        return Err(bad(
            path,
            format!(
                "{shape} {what} declare {data} bytes, more than the {MAX_DATA_BYTES} read here \
                 (MNIST's largest file has 47 MB): not an MNIST file, or damaged"
            ),
        ));
    }
    Ok(Header {
        dims,
        len,
        data,
        shape,
    })
}

/// Checks that `found` bytes follow the header: exactly the declared data.
fn check_data_len(h: &Header, found: u64, path: &Path, what: &str) -> Result<()> {
    let (expected, shape, header) = (h.data as u64, &h.shape, h.len);
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
    Ok(())
}

/// Checks the header against `magic` and the data length against the
/// dimensions; returns the dimensions and the header length.
fn parse_header(bytes: &[u8], path: &Path, magic: u32, what: &str) -> Result<(Vec<usize>, usize)> {
    let h = parse_dims(bytes, path, magic, what)?;
    check_data_len(&h, (bytes.len() - h.len) as u64, path, what)?;
    Ok((h.dims, h.len))
}

/// Reads the IDX file at `path`, raw or gzip-compressed, header first (see
/// the module's documentation); returns the dimensions and the data.
fn read_idx(path: &Path, magic: u32, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let mut src = BufReader::new(file);
    if src.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]) {
        return read_stream(MultiGzDecoder::new(src), None, path, magic, what);
    }
    read_stream(src, meta.is_file().then_some(meta.len()), path, magic, what)
}

/// [`read_idx`] on a stream of IDX bytes; `on_disk` is the length of a raw
/// file, `None` for a gzip stream (whose read errors are then corruption).
fn read_stream<R: Read>(
    mut src: R,
    on_disk: Option<u64>,
    path: &Path,
    magic: u32,
    what: &str,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let read_err = |source: io::Error| match on_disk {
        Some(_) => Error::Io {
            path: path.to_path_buf(),
            source,
        },
        None => bad(path, format!("gzip data is corrupt or truncated: {source}")),
    };
    let mut sniff = [0u8; SNIFF];
    let got = read_up_to(&mut src, &mut sniff).map_err(read_err)?;
    let head = &sniff[..got];
    let h = parse_dims(head, path, magic, what)?;
    let first = &head[h.len..];
    if let Some(len) = on_disk {
        check_data_len(&h, len.saturating_sub(h.len as u64), path, what)?;
    }
    let past_end = || {
        bad(
            path,
            format!(
                "unexpected bytes after the {} bytes of {} {what} (the file must end there)",
                h.data, h.shape
            ),
        )
    };
    if first.len() > h.data {
        return Err(past_end());
    }
    let mut data = Vec::new();
    data.try_reserve_exact(h.data).map_err(|_| {
        bad(
            path,
            format!("cannot allocate {} bytes for {} {what}", h.data, h.shape),
        )
    })?;
    data.extend_from_slice(first);
    let rest = (h.data - data.len()) as u64;
    src.by_ref()
        .take(rest)
        .read_to_end(&mut data)
        .map_err(read_err)?;
    check_data_len(&h, data.len() as u64, path, what)?;
    // One byte more, to stop at the first byte past the data (a gzip bomb,
    // or a raw file that grew since its length was checked).
    if read_up_to(&mut src, &mut [0u8; 1]).map_err(read_err)? > 0 {
        return Err(past_end());
    }
    Ok((h.dims, data))
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

/// Reads an IDX image file, raw or gzip-compressed, header first.
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = read_idx(path, IMAGES_MAGIC, "images")?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads an IDX label file, raw or gzip-compressed, header first.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    Ok(read_idx(path, LABELS_MAGIC, "labels")?.1)
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

    /// An IDX header with `dims` under `magic`, without data.
    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        let mut b = magic.to_be_bytes().to_vec();
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b
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
    fn a_5_gb_sparse_raw_file_is_refused_after_reading_its_header() {
        let dir = TempDir::new("idx-sparse");
        // MNIST's header on a 5 GB file, then a header that declares the
        // 5 GB (6377551 x 28 x 28 = 5e9 - 16 bytes), over the cap.
        for (dims, want) in [
            (
                [60000, 28, 28],
                "4952959984 unexpected bytes after the 47040000 bytes of 60000 x 28 x 28 images",
            ),
            (
                [6377551, 28, 28],
                "declare 4999999984 bytes, more than the 2147483648",
            ),
        ] {
            let p = dir.0.join("train-images-idx3-ubyte");
            std::fs::write(&p, header(IMAGES_MAGIC, &dims)).unwrap();
            // Sparse: no disk used, but metadata and read(2) see 5 GB.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(5_000_000_000)
                .unwrap();
            let before = thread_rchar();
            let r = bad_reason(read_images(&p).unwrap_err(), &p);
            let after = thread_rchar();
            assert!(r.contains(want), "{r}");
            match (before, after) {
                // One 8 KB buffer of the header's BufReader, and some slack.
                (Some(b), Some(a)) => assert!(a - b < 64 << 10, "read {} bytes", a - b),
                _ => crate::skip::skipped("the bytes-read check: no /proc/thread-self/io here"),
            }
        }
    }

    /// A valid header declaring 10 images of 28 x 28 and their 7840 bytes,
    /// then 200 MB of zeros, gzip level 9: about 200 KB.
    fn gzip_bomb() -> &'static [u8] {
        static BOMB: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BOMB.get_or_init(|| {
            let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&images_file(10, 28, 28, |i| i as u8)).unwrap();
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..200 {
                e.write_all(&zeros).unwrap();
            }
            e.finish().unwrap()
        })
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
    fn a_gzip_bomb_is_refused_at_the_first_byte_past_the_declared_data() {
        let want = "unexpected bytes after the 7840 bytes of 10 x 28 x 28 images";
        let mut src = Counting {
            inner: MultiGzDecoder::new(gzip_bomb()),
            pulled: 0,
        };
        let p = Path::new("bomb.gz");
        let r = bad_reason(
            read_stream(&mut src, None, p, IMAGES_MAGIC, "images").unwrap_err(),
            p,
        );
        assert!(r.contains(want), "{r}");
        // The header, the declared data, and the one byte that proves more.
        assert_eq!(src.pulled, 16 + 7840 + 1);
        let dir = TempDir::new("idx-bomb");
        let p = dir.write("bomb.gz", gzip_bomb(), false);
        let r = bad_reason(read_images(&p).unwrap_err(), &p);
        assert!(r.contains(want), "{r}");
    }

    #[test]
    fn reading_a_gzip_bomb_peaks_at_a_few_mb_of_memory() {
        // The child (this test in a process of its own) reads the bomb and
        // writes its /proc/self/status; the parent checks the peak
        // resident size (VmHWM), which the test harness cannot measure in
        // a process shared with other tests.
        const CHILD: &str = "LASAGNA_IDX_BOMB_CHILD";
        if let Some(p) = std::env::var_os(CHILD) {
            let p = PathBuf::from(p);
            assert!(read_images(&p).is_err());
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            std::fs::write(p.with_extension("status"), status).unwrap();
            return;
        }
        if !Path::new("/proc/self/status").exists() {
            crate::skip::skipped("no /proc/self/status to read the peak memory from");
            return;
        }
        let dir = TempDir::new("idx-hwm");
        let p = dir.write("bomb.gz", gzip_bomb(), false);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "data::idx::tests::reading_a_gzip_bomb_peaks_at_a_few_mb_of_memory",
                "--test-threads=1",
            ])
            .env(CHILD, &p)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let status = std::fs::read_to_string(p.with_extension("status")).unwrap();
        let hwm_kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        // The test binary itself takes a few MB; the 200 MB the bomb
        // inflates to must not show.
        assert!(hwm_kb < 48 << 10, "peak resident {hwm_kb} kB");
        println!("peak resident while reading the bomb: {hwm_kb} kB");
    }
}
