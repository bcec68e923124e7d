//! MNIST from its four IDX files, normalized as torchvision's
//! `Compose([ToTensor(), Normalize((mean,), (std,))])` does.

use super::idx::{read_images, read_labels, IdxImages};
use super::Dataset;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Mean and standard deviation of MNIST's training pixels scaled to [0, 1]:
/// the values of PyTorch's MNIST example (`examples/mnist/main.py`).
pub const MNIST_MEAN: f32 = 0.1307;
/// See [`MNIST_MEAN`].
pub const MNIST_STD: f32 = 0.3081;

/// Digits 0-9.
pub const MNIST_CLASSES: usize = 10;

/// The file stems, each looked for as `<stem>.gz`, then `<stem>`.
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Pixel normalization: `x = (pixel / 255 - mean) / std`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Subtracted after scaling to [0, 1].
    pub mean: f32,
    /// Divided by afterwards; must be positive.
    pub std: f32,
}

impl Default for Normalization {
    fn default() -> Normalization {
        Normalization {
            mean: MNIST_MEAN,
            std: MNIST_STD,
        }
    }
}

impl Normalization {
    /// Leaves pixels in [0, 1].
    pub const NONE: Normalization = Normalization {
        mean: 0.0,
        std: 1.0,
    };

    /// Checks that the mean is finite and the standard deviation positive.
    pub fn validate(&self) -> Result<()> {
        if !self.mean.is_finite() {
            return Err(Error::config(
                "normalization mean",
                format!("{} is not finite", self.mean),
            ));
        }
        if !(self.std > 0.0 && self.std.is_finite()) {
            return Err(Error::config(
                "normalization std",
                format!(
                    "{} must be positive and finite (MNIST's is {MNIST_STD})",
                    self.std
                ),
            ));
        }
        Ok(())
    }

    /// The value of every grey level, computed as torchvision does in `f32`
    /// (divide, subtract, divide) so inputs match a PyTorch run bit for bit.
    pub fn table(&self) -> [f32; 256] {
        let mut t = [0.0f32; 256];
        for (p, v) in t.iter_mut().enumerate() {
            *v = (p as f32 / 255.0 - self.mean) / self.std;
        }
        t
    }
}

/// MNIST's training and test sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Mnist {
    /// 60,000 images.
    pub train: Dataset,
    /// 10,000 images.
    pub test: Dataset,
}

fn hint(dir: &Path) -> String {
    format!(
        "HINT: MNIST is looked for in --data DIR, then the LASAGNA_DATA environment variable, \
         then data/mnist in the repository; this run looked in {}, which needs \
         {TRAIN_IMAGES}, {TRAIN_LABELS}, {TEST_IMAGES} and {TEST_LABELS} (each raw or .gz)",
        dir.display()
    )
}

/// `<dir>/<stem>.gz` if present, else `<dir>/<stem>` if present, else a
/// not-found error with the hint.
fn locate(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    let raw = dir.join(stem);
    if gz.is_file() {
        return Ok(gz);
    }
    if raw.is_file() {
        return Ok(raw);
    }
    Err(Error::Io {
        path: gz,
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no such file (nor {}). {}", raw.display(), hint(dir)),
        ),
    })
}

/// Loads one half (train or test): images and labels, checked against each other.
fn load_split(dir: &Path, images: &str, labels: &str, norm: &Normalization) -> Result<Dataset> {
    let (ipath, lpath) = (locate(dir, images)?, locate(dir, labels)?);
    // The image file dominates load time (47 MB to inflate); the labels come
    // in parallel with it.
    let (img, lab) = rayon::join(|| read_images(&ipath), || read_labels(&lpath));
    let (img, lab) = (img?, lab?);
    check_labels(&img, &lab, &ipath, &lpath)?;
    let table = norm.table();
    Ok(Dataset {
        x: img.pixels.iter().map(|&p| table[p as usize]).collect(),
        y: lab.into_iter().map(u32::from).collect(),
        sample_shape: vec![1, img.rows, img.cols],
        classes: MNIST_CLASSES,
    })
}

/// MNIST's 10,000 test images as raw grey levels (`u8`, 0–255) with their
/// labels, for code that normalizes pixels itself, as firmware does
/// (`lasagna deploy`). Reads only the two test files.
pub fn load_mnist_test_pixels(dir: &Path) -> Result<(IdxImages, Vec<u8>)> {
    let (ipath, lpath) = (locate(dir, TEST_IMAGES)?, locate(dir, TEST_LABELS)?);
    let (img, lab) = rayon::join(|| read_images(&ipath), || read_labels(&lpath));
    let (img, lab) = (img?, lab?);
    check_labels(&img, &lab, &ipath, &lpath)?;
    Ok((img, lab))
}

/// Labels agree with the images in number and are digits.
fn check_labels(img: &IdxImages, lab: &[u8], ipath: &Path, lpath: &Path) -> Result<()> {
    if img.count != lab.len() {
        return Err(Error::BadData {
            path: lpath.to_path_buf(),
            reason: format!(
                "has {} labels but {} has {} images; both files must come from the same set",
                lab.len(),
                ipath.display(),
                img.count
            ),
        });
    }
    if let Some((i, &v)) = lab
        .iter()
        .enumerate()
        .find(|(_, &v)| v as usize >= MNIST_CLASSES)
    {
        return Err(Error::BadData {
            path: lpath.to_path_buf(),
            reason: format!("label {v} at index {i} is not a digit 0-9"),
        });
    }
    Ok(())
}

/// Loads MNIST from `dir` (see [`super::resolve_data_dir`]), normalizing pixels with `norm`.
pub fn load_mnist(dir: &Path, norm: Normalization) -> Result<Mnist> {
    norm.validate()?;
    let (train, test) = rayon::join(
        || load_split(dir, TRAIN_IMAGES, TRAIN_LABELS, &norm),
        || load_split(dir, TEST_IMAGES, TEST_LABELS, &norm),
    );
    let (train, test) = (train?, test?);
    if train.sample_shape != test.sample_shape {
        return Err(Error::BadData {
            path: dir.join(TEST_IMAGES),
            reason: format!(
                "test images are {:?} but training images are {:?}",
                test.sample_shape, train.sample_shape
            ),
        });
    }
    Ok(Mnist { train, test })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::super::idx::tests::{images_file, labels_file, TempDir};
    use super::*;

    fn repo_mnist() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist"))
    }

    #[test]
    fn full_mnist_loads_with_the_right_sizes_labels_and_statistics() {
        let t = std::time::Instant::now();
        let m = load_mnist(&repo_mnist(), Normalization::default()).unwrap();
        eprintln!("MNIST loaded in {:.2?}", t.elapsed());
        assert_eq!((m.train.len(), m.test.len()), (60_000, 10_000));
        assert_eq!(m.train.sample_shape, vec![1, 28, 28]);
        assert_eq!(m.train.x.len(), 60_000 * 784);
        assert_eq!(m.test.x.len(), 10_000 * 784);
        assert_eq!(m.train.classes, 10);
        assert_eq!(m.train.y[0], 5);
        assert_eq!(m.test.y[0], 7);
        let n = m.train.x.len() as f64;
        let mean = m.train.x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = m
            .train
            .x
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 1.0).abs() < 0.05, "std {}", var.sqrt());
        // Background pixels take torchvision's value exactly.
        assert_eq!(m.train.x[0], (0.0 - 0.1307f32) / 0.3081);
    }

    fn write_set(dir: &TempDir, n_img: u32, labels: &[u8]) {
        for (stem, n) in [(TRAIN_IMAGES, n_img), (TEST_IMAGES, 2)] {
            dir.write(
                &format!("{stem}.gz"),
                &images_file(n, 28, 28, |i| i as u8),
                true,
            );
        }
        dir.write(TRAIN_LABELS, &labels_file(labels), false);
        dir.write(&format!("{TEST_LABELS}.gz"), &labels_file(&[1, 2]), true);
    }

    #[test]
    fn small_set_loads_from_mixed_raw_and_gzip_files() {
        let dir = TempDir::new("mnist-ok");
        write_set(&dir, 3, &[0, 9, 4]);
        let m = load_mnist(&dir.0, Normalization::NONE).unwrap();
        assert_eq!(m.train.y, vec![0, 9, 4]);
        assert_eq!(m.train.x[255], 1.0);
        assert_eq!(m.test.len(), 2);
    }

    /// docs/FORMAT.md §3 "What `x` is": the engine's input is
    /// `(pixel / 255 − input_mean) / input_std`, three f32 steps in that
    /// order, with the mean and std the model file stores.
    #[test]
    fn spec_3_loaded_pixels_are_pixel_over_255_normalized_in_f32() {
        let dir = TempDir::new("mnist-spec3");
        write_set(&dir, 3, &[0, 9, 4]);
        let norm = Normalization::default();
        let m = load_mnist(&dir.0, norm).unwrap();
        // Image i's pixel k is (i * 784 + k) as u8 (write_set's pattern).
        for (k, &x) in m.train.x.iter().enumerate() {
            let p = k as u8;
            let (p255, mean, std) = (f32::from(p) / 255.0, 0.1307f32, 0.3081f32);
            assert_eq!(x.to_bits(), ((p255 - mean) / std).to_bits(), "pixel {p}");
        }
        assert_eq!((norm.mean, norm.std), (0.1307, 0.3081));
    }

    #[test]
    fn test_pixels_are_the_raw_grey_levels_of_the_test_files_only() {
        let dir = TempDir::new("mnist-raw");
        write_set(&dir, 3, &[0, 9, 4]);
        let (img, labels) = load_mnist_test_pixels(&dir.0).unwrap();
        assert_eq!((img.count, img.rows, img.cols), (2, 28, 28));
        assert_eq!(labels, vec![1, 2]);
        assert_eq!(img.pixels[255], 255);
        std::fs::remove_file(dir.0.join(format!("{TRAIN_IMAGES}.gz"))).unwrap();
        assert!(load_mnist_test_pixels(&dir.0).is_ok());
    }

    #[test]
    fn image_label_count_mismatch_names_both_files() {
        let dir = TempDir::new("mnist-count");
        write_set(&dir, 3, &[0, 9]);
        let e = load_mnist(&dir.0, Normalization::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(TRAIN_LABELS) && e.contains(TRAIN_IMAGES), "{e}");
        assert!(
            e.contains("has 2 labels") && e.contains("has 3 images"),
            "{e}"
        );
    }

    #[test]
    fn labels_above_nine_are_bad_data() {
        let dir = TempDir::new("mnist-label");
        write_set(&dir, 3, &[0, 10, 4]);
        let e = load_mnist(&dir.0, Normalization::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(TRAIN_LABELS) && e.contains("label 10 at index 1"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_directory_gives_an_io_error_with_a_hint() {
        let dir = std::env::temp_dir().join("lasagna-no-such-mnist-dir");
        let e = load_mnist(&dir, Normalization::default()).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("HINT") && e.contains("--data") && e.contains("LASAGNA_DATA"),
            "{e}"
        );
        assert!(e.contains("lasagna-no-such-mnist-dir"), "{e}");
    }

    #[test]
    fn normalization_rejects_a_non_positive_std() {
        for std in [0.0, -1.0, f32::NAN] {
            let e = Normalization { mean: 0.1, std }
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.contains("std"), "{e}");
        }
        assert!(Normalization {
            mean: f32::NAN,
            std: 1.0
        }
        .validate()
        .is_err());
        let e = load_mnist(
            &repo_mnist(),
            Normalization {
                mean: 0.0,
                std: 0.0,
            },
        )
        .unwrap_err();
        assert!(matches!(e, Error::Config { .. }));
    }
}
