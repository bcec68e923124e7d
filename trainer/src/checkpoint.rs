//! Checkpoints: everything a run needs to resume exactly — what it was
//! started with (the [`Recipe`]), weights, optimizer state, schedule
//! position, epoch and step. All randomness is counter-based (shuffling keyed
//! by (seed, epoch), dropout by (seed, step)), so the seed and the step
//! counter are the whole RNG state.
//!
//! # Layout (version 2)
//!
//! ```text
//! LASAGNA-CKPT 2 crc32=XXXXXXXX len=N\n   header: ASCII, one line
//! { ... N bytes of JSON ... }              payload: a serialized Checkpoint
//! ```
//!
//! - The header MUST be the magic `LASAGNA-CKPT`, the version in decimal,
//!   `crc32=` with 8 lowercase hex digits (CRC-32/IEEE, zlib's, of the
//!   payload) and `len=` with the payload's length in bytes, separated by
//!   single spaces and ended by `\n`.
//! - The payload MUST be exactly `len` bytes: the file ends with it.
//! - The version changes when the payload's structure changes. Version 1
//!   (bare JSON, no checksum, no normalization or model name) is refused.
//! - A reader MUST check, besides the checksum, that every weight and
//!   optimizer value is finite and that the run's counters agree with each
//!   other ([`Checkpoint::load`]) and with the data ([`Checkpoint::check_data`]).
//!
//! The payload stays JSON rather than `.lsn` tensors plus a state file: a
//! checkpoint is written once per epoch and read once per resume, JSON keeps
//! it one self-describing file that a person can read, and the checksum and
//! value checks are what make it safe, whatever the encoding.

use crate::backend::Backend;
use crate::data::{batch_ranges, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::{OptimState, Optimizer};
use crate::train::{RunState, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

mod header;

/// Bumped when the checkpoint layout changes (2: header with CRC-32 and
/// length; the [`Recipe`] with the model name and the normalization).
pub const CHECKPOINT_VERSION: u32 = 2;

/// The first word of every checkpoint.
pub const CHECKPOINT_MAGIC: &str = "LASAGNA-CKPT";

/// What a run was started with: everything besides where it stands that a
/// resumed run takes from its checkpoint to continue the same run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// `--model` as given when the run began (a preset name or a TOML
    /// path): the name written into the model file and the metrics.
    pub model: String,
    /// The model description (TOML) the run was built from.
    pub model_toml: String,
    /// Input normalization, also written into the model file.
    pub normalization: Normalization,
    /// The resolved training configuration.
    pub train: TrainConfig,
    /// Validation split size (the split is keyed by the seed).
    pub val: usize,
    /// Training subset size, if one was used.
    pub subset: Option<usize>,
    /// [`data_crc32`] of the training split (after the subset and the
    /// validation split): `--data` may move, but must hold the same images.
    pub train_crc32: u32,
}

/// CRC-32 of a dataset's values (f32 bytes, so after normalization) and
/// labels (u32 bytes). A resumed run compares it with the checkpoint's: the
/// step counter alone would accept other images of the same count, and
/// Fashion-MNIST ships under MNIST's file names and sizes. About 190 MB for
/// the full training set, hashed at several GB/s.
pub fn data_crc32(ds: &Dataset) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytemuck::cast_slice(&ds.x));
    h.update(bytemuck::cast_slice(&ds.y));
    h.finalize()
}

/// A saved run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// What the run was started with.
    pub recipe: Recipe,
    /// Where the run stands.
    pub state: RunState,
    /// Parameters and buffers (`Model::snapshot`).
    pub weights: Vec<Vec<f32>>,
    /// Optimizer state.
    pub optimizer: OptimState,
}

/// A refused field before the file's path and a hint are attached.
struct Bad {
    field: String,
    value: String,
    reason: String,
}

fn bad(field: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> Bad {
    Bad {
        field: field.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// For values a run cannot have produced: the file was edited or damaged
/// in a way the checksum did not catch (or the checksum was recomputed).
const HINT_EDITED: &str = "the checkpoint was edited or written by a faulty tool; \
                           use an earlier copy, or start a new run without --resume";

/// [`HINT_EDITED`], when the data may be what differs.
const HINT_DATA: &str = "--data must hold the MNIST files the run was trained on; otherwise \
                         the checkpoint was edited or written by a faulty tool; \
                         use an earlier copy, or start a new run without --resume";

impl Checkpoint {
    /// Captures a run.
    pub fn capture<B: Backend>(
        b: &B,
        model: &Model<B>,
        opt: &Optimizer<B>,
        recipe: &Recipe,
        state: &RunState,
    ) -> Result<Checkpoint> {
        Ok(Checkpoint {
            recipe: recipe.clone(),
            state: state.clone(),
            weights: model.snapshot(b)?,
            optimizer: opt.state(b)?,
        })
    }

    /// The file's bytes: header line, then the JSON payload. `path` only
    /// names the file in errors.
    pub fn to_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(header::frame(&json))
    }

    /// Writes atomically (temporary file, then rename), so an interrupted
    /// save never destroys the previous checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes(path)?;
        Ok(lasagna_files::write_atomic(path, &bytes)?)
    }

    /// Reads a checkpoint: see [`Checkpoint::from_bytes`].
    ///
    /// The header line is read first: a file whose length is not the one it
    /// declares is refused before its body is read, and no more than the
    /// declared length is ever read, so a wrong multi-gigabyte file costs a
    /// few bytes, not its size in memory.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        use std::io::Read;
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut bytes = Vec::new();
        (&file)
            .take(header::MAX_HEADER as u64)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let limit = match header::declared_total(&bytes) {
            Some(total) if total != file_len => {
                return Err(Error::BadCheckpoint {
                    path: path.to_path_buf(),
                    field: "len".into(),
                    value: total.to_string(),
                    reason: format!(
                        "the header declares a {total}-byte file but it has {file_len} bytes"
                    ),
                    hint: "the file was cut short or appended to; use an earlier copy, \
                           or start a new run without --resume",
                });
            }
            Some(total) => total,
            None => file_len.min(header::HEADERLESS_READ),
        };
        let rest = limit.saturating_sub(bytes.len() as u64);
        let want = usize::try_from(rest).map_err(|_| {
            io(std::io::Error::other(format!(
                "{rest} bytes do not fit this machine's address space"
            )))
        })?;
        bytes.try_reserve_exact(want).map_err(|e| {
            io(std::io::Error::other(format!(
                "cannot allocate {rest} bytes to read it: {e}"
            )))
        })?;
        (&file).take(rest).read_to_end(&mut bytes).map_err(io)?;
        Checkpoint::from_bytes(&bytes, path)
    }

    /// Parses a checkpoint and checks it: the header, the length, the
    /// checksum, then the values (finite weights and optimizer state, run
    /// counters that agree with each other). `path` names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
        let refuse = |b: Bad, hint: &'static str| Error::BadCheckpoint {
            path: path.to_path_buf(),
            field: b.field,
            value: b.value,
            reason: b.reason,
            hint,
        };
        let payload = header::split(bytes).map_err(|(b, hint)| refuse(b, hint))?;
        let c: Checkpoint = serde_json::from_slice(payload).map_err(|e| {
            refuse(
                bad("payload", "JSON", format!("not a Lasagna checkpoint ({e})")),
                "the checksum matches, so the file was written this way; \
                 it does not come from this version of lasagna",
            )
        })?;
        c.validate().map_err(|b| refuse(b, HINT_EDITED))?;
        Ok(c)
    }

    /// Checks what can be checked without the data: the recipe's settings,
    /// finite weights and optimizer state, and counters that agree with each
    /// other (epochs done within the run's epochs and equal to the history's
    /// length, the optimizer's steps plus AMP's skipped ones equal to the run's).
    fn validate(&self) -> std::result::Result<(), Bad> {
        let r = &self.recipe;
        let s = &self.state;
        let as_bad = |field: &str, e: Error| match e {
            Error::Config { what, reason } => bad(field, what, reason),
            other => bad(field, "", other.to_string()),
        };
        r.normalization
            .validate()
            .map_err(|e| as_bad("recipe.normalization", e))?;
        r.train.validate().map_err(|e| as_bad("recipe.train", e))?;
        if r.subset == Some(0) {
            return Err(bad("recipe.subset", 0, "a subset has at least 1 image"));
        }
        if s.epochs_done > r.train.epochs {
            return Err(bad(
                "state.epochs_done",
                s.epochs_done,
                format!("more than the run's {} epochs", r.train.epochs),
            ));
        }
        if s.history.len() != s.epochs_done {
            return Err(bad(
                "state.history",
                format!("{} epochs", s.history.len()),
                format!("state.epochs_done is {}", s.epochs_done),
            ));
        }
        if let Some(i) = s
            .history
            .iter()
            .enumerate()
            .position(|(i, m)| m.epoch != i + 1)
        {
            return Err(bad(
                format!("state.history[{i}].epoch"),
                s.history[i].epoch,
                format!("entry {i} is epoch {}", i + 1),
            ));
        }
        if let Some((loss, epoch)) = s.best {
            if !loss.is_finite() || epoch == 0 || epoch > s.epochs_done {
                return Err(bad(
                    "state.best",
                    format!("({loss}, {epoch})"),
                    format!(
                        "the best validation loss must be finite and its epoch in 1..={}",
                        s.epochs_done
                    ),
                ));
            }
        }
        if !(s.scaler.scale.is_finite() && s.scaler.scale > 0.0) {
            return Err(bad(
                "state.scaler.scale",
                s.scaler.scale,
                "the loss scale must be positive and finite",
            ));
        }
        if self.optimizer.kind != r.train.optimizer.name() {
            return Err(bad(
                "optimizer.kind",
                &self.optimizer.kind,
                format!("the run's optimizer is {}", r.train.optimizer.name()),
            ));
        }
        // Every step runs the optimizer except the ones AMP skips.
        let taken = self.optimizer.step.checked_add(s.scaler.skipped_steps);
        if taken != Some(s.step) {
            return Err(bad(
                "state.step",
                s.step,
                format!(
                    "the optimizer took {} steps and AMP skipped {}",
                    self.optimizer.step, s.scaler.skipped_steps
                ),
            ));
        }
        finite("weights", &self.weights)?;
        finite("optimizer.buffers", &self.optimizer.buffers)
    }

    /// Checks the checkpoint against the training split the run is resumed
    /// on: the same images ([`data_crc32`]), then [`Checkpoint::check_steps`].
    pub fn check_data(&self, path: &Path, train: &Dataset, drop_singleton: bool) -> Result<()> {
        let got = data_crc32(train);
        if got != self.recipe.train_crc32 {
            return Err(Error::BadCheckpoint {
                path: path.to_path_buf(),
                field: "recipe.train_crc32".into(),
                value: format!("{:08x}", self.recipe.train_crc32),
                reason: format!(
                    "the {} training images this command loaded hash to {got:08x}: \
                     they are not the images the run was trained on",
                    train.len()
                ),
                hint: "point --data at the MNIST files the run used (drop --data for the \
                       default location)",
            });
        }
        self.check_steps(path, train.len(), drop_singleton)
    }

    /// Checks the step counter against the data the run is resumed on:
    /// every epoch takes one step per batch, `batch_ranges(train_len,
    /// batch_size, drop_singleton).len()` (a count that depends on neither
    /// the epoch nor the seed; `drop_singleton` is set for models with
    /// BatchNorm, as in [`crate::train::fit`]). Early stopping and AMP's
    /// skipped steps end or skip nothing mid-epoch, so the step counter is
    /// always `epochs_done` times that.
    pub fn check_steps(&self, path: &Path, train_len: usize, drop_singleton: bool) -> Result<()> {
        let batch = self.recipe.train.batch_size;
        let per_epoch = batch_ranges(train_len, batch, drop_singleton).len() as u64;
        let want = (self.state.epochs_done as u64).checked_mul(per_epoch);
        if want == Some(self.state.step) {
            return Ok(());
        }
        Err(Error::BadCheckpoint {
            path: path.to_path_buf(),
            field: "state.step".into(),
            value: self.state.step.to_string(),
            reason: format!(
                "{} epochs of {per_epoch} steps ({train_len} training images, batch {batch}) take {}",
                self.state.epochs_done,
                want.map_or("more than 2^64".into(), |w| w.to_string())
            ),
            hint: HINT_DATA,
        })
    }

    /// Puts the saved weights and optimizer state into a freshly built model and optimizer.
    pub fn restore_into<B: Backend>(
        &self,
        b: &B,
        model: &mut Model<B>,
        opt: &mut Optimizer<B>,
    ) -> Result<()> {
        model.restore(b, &self.weights)?;
        opt.load_state(b, &self.optimizer)
    }
}

/// The first non-finite value of `tensors`, named `name[i][j]`.
fn finite(name: &str, tensors: &[Vec<f32>]) -> std::result::Result<(), Bad> {
    for (i, t) in tensors.iter().enumerate() {
        if let Some(j) = t.iter().position(|x| !x.is_finite()) {
            return Err(bad(
                format!("{name}[{i}][{j}]"),
                t[j],
                "not a finite f32 (JSON numbers beyond ±3.4e38 read as infinity)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::optim::OptimConfig;
    use crate::train::EpochMetrics;

    /// A consistent checkpoint of one finished epoch of 4 steps.
    fn sample() -> Checkpoint {
        let train = TrainConfig {
            epochs: 2,
            batch_size: 25,
            optimizer: OptimConfig::sgd(),
            ..TrainConfig::mnist_default()
        };
        let mut state = RunState::new();
        state.epochs_done = 1;
        state.step = 4;
        state.history.push(EpochMetrics {
            epoch: 1,
            train_loss: 1.0,
            train_acc: 0.5,
            val_loss: None,
            val_acc: None,
            lr: 1e-3,
            seconds: 0.1,
            skipped_steps: 0,
            loss_scale: None,
        });
        Checkpoint {
            recipe: Recipe {
                model: "mlp".into(),
                model_toml: String::new(),
                normalization: Normalization::default(),
                train,
                val: 0,
                subset: Some(100),
                train_crc32: 0,
            },
            state,
            weights: vec![vec![0.5, -0.25], vec![1.0]],
            optimizer: OptimState {
                kind: "sgd".into(),
                step: 4,
                buffers: Vec::new(),
            },
        }
    }

    fn parse(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
        Checkpoint::from_bytes(bytes, Path::new("c.ckpt")).map_err(|e| e.to_string())
    }

    /// `c` written with a correct header, so only the value checks can refuse it.
    fn rewritten(c: &Checkpoint) -> Vec<u8> {
        c.to_bytes(Path::new("c.ckpt")).unwrap()
    }

    #[test]
    fn a_written_checkpoint_reads_back_equal() {
        let c = sample();
        let back = parse(&rewritten(&c)).unwrap();
        assert_eq!(back.recipe, c.recipe);
        assert_eq!(back.state, c.state);
        assert_eq!(back.weights, c.weights);
        assert_eq!(back.optimizer, c.optimizer);
        back.check_steps(Path::new("c.ckpt"), 100, false).unwrap();
    }

    #[test]
    fn any_changed_byte_of_the_payload_fails_the_checksum() {
        let bytes = rewritten(&sample());
        let at = bytes.windows(3).position(|w| w == b"0.5").unwrap();
        let mut changed = bytes.clone();
        changed[at + 2] = b'6';
        let e = parse(&changed).unwrap_err();
        assert!(
            e.contains("crc32") && e.contains("changed or damaged"),
            "{e}"
        );
        let e = parse(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(e.contains("len =") && e.contains("HINT"), "{e}");
    }

    #[test]
    fn version_1_and_other_versions_are_refused_by_name() {
        let e = parse(br#"{"version":1,"model_toml":""}"#).unwrap_err();
        assert!(
            e.contains("version = 1") && e.contains("reads version 2"),
            "{e}"
        );
        let bytes = rewritten(&sample());
        let v3 = [b"LASAGNA-CKPT 3".as_slice(), &bytes[14..]].concat();
        let e = parse(&v3).unwrap_err();
        assert!(e.contains("version = 3"), "{e}");
        let e = parse(b"hello").unwrap_err();
        assert!(e.contains("not a Lasagna checkpoint"), "{e}");
    }

    #[test]
    fn values_no_run_produces_are_refused_with_field_and_value() {
        type Edit = fn(&mut Checkpoint);
        let cases: Vec<(&str, Edit)> = vec![
            ("weights[1][0] = inf", |c| c.weights[1][0] = f32::INFINITY),
            ("optimizer.buffers[0][0] = NaN", |c| {
                c.optimizer.buffers = vec![vec![f32::NAN]]
            }),
            ("state.epochs_done = 99", |c| c.state.epochs_done = 99),
            ("state.history = 1 epochs", |c| c.state.epochs_done = 2),
            ("state.step = 1000000000000000", |c| {
                c.state.step = 1_000_000_000_000_000
            }),
            ("optimizer.kind = adam", |c| {
                c.optimizer.kind = "adam".into()
            }),
        ];
        for (want, edit) in cases {
            let mut c = sample();
            edit(&mut c);
            // NaN and inf are written as JSON `null`, which reads as no
            // number at all; validate the values directly for those.
            let e = match parse(&rewritten(&c)) {
                Err(e) if !e.contains("null") => e,
                _ => match c.validate() {
                    Err(b) => format!("{} = {}: {}", b.field, b.value, b.reason),
                    Ok(()) => String::from("accepted"),
                },
            };
            assert!(e.contains(want), "want `{want}`, got: {e}");
        }
    }

    #[test]
    fn other_training_images_are_refused_by_their_checksum() {
        let ds =
            |first: f32| Dataset::new(vec![first, 0.5, 0.25, 1.0], vec![1, 0], vec![2], 2).unwrap();
        let mut c = sample();
        c.recipe.train_crc32 = data_crc32(&ds(0.0));
        // 2 images in batches of 25 make 1 step per epoch; this run took 4.
        c.state.step = 1;
        c.optimizer.step = 1;
        c.check_data(Path::new("c.ckpt"), &ds(0.0), false).unwrap();
        let e = c
            .check_data(Path::new("c.ckpt"), &ds(0.125), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("recipe.train_crc32") && e.contains("--data"),
            "{e}"
        );
    }

    #[test]
    fn a_step_counter_that_does_not_fit_the_data_is_refused() {
        let c = sample();
        // 100 images in batches of 25: 4 steps per epoch. 101 images with
        // BatchNorm drop the final batch of one, so still 4.
        c.check_steps(Path::new("c.ckpt"), 101, true).unwrap();
        let e = c
            .check_steps(Path::new("c.ckpt"), 101, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("state.step = 4") && e.contains("take 5") && e.contains("--data"),
            "{e}"
        );
    }
}
