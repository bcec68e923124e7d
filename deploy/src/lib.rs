//! `lasagna-deploy`, the tool behind `lasagna deploy`: build `firmware/`
//! for one model and one board, run it
//! on the (emulated) board over the first N MNIST test images, and check
//! every prediction, and on the int8 path every output bit, against the
//! same engine on the host.
//!
//! One call does it all: [`deploy`] (or [`prepare`], then
//! [`Prepared::run`]). The steps, in order: [`host::check_model`] and
//! [`budget::precheck`] (does it load, does it fit), the tools
//! ([`emulator::check_emulator`] or [`probe::check_probe_rs`],
//! [`rust_target::find_core`]),
//! [`images_bin`] (the images the firmware reads through semihosting),
//! [`firmware::build`], [`elf::FirmwareSizes`] (with `--build-only`,
//! [`build_report::BuildReport`] and stop), [`emulator::run_emulator`] or
//! [`probe::run_probe`],
//! [`protocol::parse_output`], [`host::run_host`], and [`report::Report`].
//!
//! It depends on the format, the engine and `lasagna-protocol` (what the
//! firmware and this crate say to each other), not on the trainer.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod boards;
pub mod budget;
pub mod build_report;
pub mod elf;
pub mod emulator;
pub mod error;
pub mod firmware;
pub mod host;
pub mod predictions;
pub mod probe;
pub mod protocol;
pub mod report;
pub mod run;
pub mod rust_target;

pub use boards::{Board, BOARDS};
pub use build_report::BuildReport;
pub use error::{Error, Result};
pub use predictions::Predictions;
pub use report::Report;
pub use run::{deploy, prepare, Images, Mode, Options, Prepared, Progress, Quiet, Step};

use lasagna_protocol::images::{Header, HEADER_BYTES};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most images one run takes: MNIST's test set.
pub const MAX_IMAGES: usize = 10_000;

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The firmware's `images.bin` (`lasagna_protocol::images`): the header,
/// then per image its label byte and its pixels. Takes the first
/// `labels.len()` images of `pixels`; `outputs` asks the firmware for
/// every output (`LASAGNA-OUT` lines).
pub fn images_bin(
    pixels: &[u8],
    labels: &[u8],
    per_image: usize,
    outputs: bool,
) -> Result<Vec<u8>> {
    let n = labels.len();
    let (Ok(count), Ok(per)) = (u32::try_from(n), u32::try_from(per_image)) else {
        return Err(Error::config("deploy images", "too many images"));
    };
    let header = Header {
        count,
        pixels: per,
        outputs,
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + n * header.record_bytes());
    out.extend(header.to_bytes());
    for (i, &label) in labels.iter().enumerate() {
        let image = pixels
            .get(i * per_image..(i + 1) * per_image)
            .ok_or_else(|| Error::config("deploy images", format!("image {i} has no pixels")))?;
        out.push(label);
        out.extend_from_slice(image);
    }
    Ok(out)
}

/// A fresh directory under the system temp dir, removed (with what is in
/// it) on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `lasagna-<tag>-<pid>-<n>-<nanos>`; fails if it already exists.
    pub fn new(tag: &str) -> Result<TempDir> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("lasagna-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).map_err(|source| lasagna_files::Error::Write {
            path: path.clone(),
            source,
        })?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(221_192), "221,192");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn images_bin_is_header_then_label_and_pixels_per_image() {
        let pixels: Vec<u8> = (0..12).collect();
        let b = images_bin(&pixels, &[7, 2], 4, false).unwrap();
        assert_eq!(&b[..4], b"LSNI");
        assert_eq!(&b[4..16], &[2, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[16..], &[7, 0, 1, 2, 3, 2, 4, 5, 6, 7]);
        assert!(images_bin(&pixels, &[0, 0, 0, 0], 4, false).is_err());
        let asked = images_bin(&pixels, &[7, 2], 4, true).unwrap();
        assert_eq!(&asked[12..16], &[1, 0, 0, 0]);
    }

    #[test]
    fn temp_dirs_are_fresh_and_removed_on_drop() {
        let d = TempDir::new("deploy-test").unwrap();
        let p = d.path().to_path_buf();
        std::fs::write(p.join("images.bin"), b"x").unwrap();
        let other = TempDir::new("deploy-test").unwrap();
        assert_ne!(other.path(), p);
        drop(d);
        assert!(!p.exists());
    }
}
