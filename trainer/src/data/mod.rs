//! Data: IDX files, MNIST, the validation split, per-epoch shuffling and batches.
//!
//! A [`Dataset`] lives on the host as one contiguous `f32` array so that the
//! trainer can upload it to the device once and gather batches there
//! ([`crate::backend::DataOps`]); batches are index ranges into a per-epoch
//! order, not copies.

pub mod batches;
pub mod idx;
pub mod mnist;
pub mod split;

pub use batches::{batch_ranges, epoch_batches, epoch_order, EPOCH_OFFSET};
pub use mnist::{load_mnist, load_mnist_test_pixels, Mnist, Normalization, MNIST_MEAN, MNIST_STD};
pub use split::{split_validation, SPLIT_OFFSET};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Environment variable naming the MNIST directory when `--data` is not given.
pub const DATA_ENV: &str = "LASAGNA_DATA";

/// Where MNIST is read from: `--data` if given, else `$LASAGNA_DATA` if set
/// and non-empty, else `data/mnist` under the current directory if it exists
/// (running from a clone), else the `data/mnist` of the source tree this
/// binary was built from (running from anywhere else during development).
pub fn resolve_data_dir(cli: Option<&Path>) -> PathBuf {
    resolve(
        cli,
        std::env::var_os(DATA_ENV).map(PathBuf::from),
        Path::new("data/mnist").is_dir(),
    )
}

fn resolve(cli: Option<&Path>, env: Option<PathBuf>, cwd_has_data: bool) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    if let Some(p) = env.filter(|p| !p.as_os_str().is_empty()) {
        return p;
    }
    if cwd_has_data {
        return PathBuf::from("data/mnist");
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../data/mnist"))
}

/// Samples and class labels, sample-major.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// `len() * sample_len()` values.
    pub x: Vec<f32>,
    /// One class per sample.
    pub y: Vec<u32>,
    /// Per-sample shape (`[1, 28, 28]` for MNIST).
    pub sample_shape: Vec<usize>,
    /// Number of classes (labels are below it).
    pub classes: usize,
}

impl Dataset {
    /// A dataset after checking that `x`, `y`, the shape and the classes agree.
    pub fn new(
        x: Vec<f32>,
        y: Vec<u32>,
        sample_shape: Vec<usize>,
        classes: usize,
    ) -> Result<Dataset> {
        let per: usize = sample_shape.iter().product();
        if x.len() != y.len() * per {
            return Err(Error::config(
                "dataset",
                format!(
                    "{} values do not make {} samples of shape {sample_shape:?} ({per} values each)",
                    x.len(),
                    y.len()
                ),
            ));
        }
        if let Some((i, &c)) = y.iter().enumerate().find(|(_, &c)| c as usize >= classes) {
            return Err(Error::config(
                "dataset",
                format!("label {c} of sample {i} is not below {classes} classes"),
            ));
        }
        Ok(Dataset {
            x,
            y,
            sample_shape,
            classes,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Sample `i`'s values, if it exists.
    pub fn sample(&self, i: usize) -> Option<&[f32]> {
        let s = self.sample_len();
        self.x.get(i * s..(i + 1) * s)
    }

    /// An empty dataset of the same shape and classes.
    pub fn empty_like(&self) -> Dataset {
        Dataset {
            x: Vec::new(),
            y: Vec::new(),
            sample_shape: self.sample_shape.clone(),
            classes: self.classes,
        }
    }

    /// The first `n` samples (all of them if there are fewer), e.g. `--limit`.
    pub fn subset(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            x: self.x[..n * self.sample_len()].to_vec(),
            y: self.y[..n].to_vec(),
            ..self.empty_like()
        }
    }

    /// The samples at `idx`, in that order; fails on an index past the end.
    pub fn select(&self, idx: &[u32]) -> Result<Dataset> {
        let s = self.sample_len();
        let mut out = self.empty_like();
        out.x.reserve(idx.len() * s);
        out.y.reserve(idx.len());
        for &i in idx {
            let (Some(x), Some(&y)) = (self.sample(i as usize), self.y.get(i as usize)) else {
                return Err(Error::config(
                    "dataset index",
                    format!("sample {i} is past the end of a dataset of {}", self.len()),
                ));
            };
            out.x.extend_from_slice(x);
            out.y.push(y);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
pub(crate) mod tests {
    use super::*;

    /// `n` samples of shape `[2]` whose values and labels encode their index.
    pub(crate) fn toy(n: usize) -> Dataset {
        let x = (0..n).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let y = (0..n as u32).map(|i| i % 3).collect();
        Dataset::new(x, y, vec![2], 3).unwrap()
    }

    #[test]
    fn data_dir_precedence_is_flag_then_env_then_cwd_then_source_tree() {
        let flag = Path::new("/from/flag");
        let env = || Some(PathBuf::from("/from/env"));
        assert_eq!(resolve(Some(flag), env(), true), flag);
        assert_eq!(resolve(None, env(), true), PathBuf::from("/from/env"));
        assert_eq!(
            resolve(None, Some(PathBuf::new()), true),
            PathBuf::from("data/mnist")
        );
        assert_eq!(resolve(None, None, true), PathBuf::from("data/mnist"));
        let fallback = resolve(None, None, false);
        assert!(
            fallback.ends_with("../data/mnist"),
            "{}",
            fallback.display()
        );
        assert!(
            fallback.join("train-labels-idx1-ubyte.gz").is_file(),
            "{}",
            fallback.display()
        );
    }

    #[test]
    fn subset_and_select_copy_the_right_samples() {
        let d = toy(5);
        let s = d.subset(2);
        assert_eq!((s.x, s.y), (vec![0.0, -0.0, 1.0, -1.0], vec![0, 1]));
        assert_eq!(d.subset(99).len(), 5);
        let s = d.select(&[4, 0, 4]).unwrap();
        assert_eq!(s.x, vec![4.0, -4.0, 0.0, -0.0, 4.0, -4.0]);
        assert_eq!(s.y, vec![1, 0, 1]);
        assert_eq!(s.sample_shape, vec![2]);
        let e = d.select(&[5]).unwrap_err().to_string();
        assert!(e.contains("sample 5") && e.contains("of 5"), "{e}");
    }

    #[test]
    fn new_rejects_inconsistent_parts() {
        assert!(Dataset::new(vec![0.0; 5], vec![0, 1], vec![2], 3).is_err());
        assert!(Dataset::new(vec![0.0; 4], vec![0, 3], vec![2], 3).is_err());
        assert_eq!(
            Dataset::new(vec![], vec![], vec![1, 28, 28], 10)
                .unwrap()
                .len(),
            0
        );
    }
}
