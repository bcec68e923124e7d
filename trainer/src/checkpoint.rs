//! Checkpoints: everything a run needs to resume exactly — weights, optimizer
//! state, schedule position, epoch and step. All randomness is counter-based
//! (shuffling keyed by (seed, epoch), dropout by (seed, step)), so the seed
//! and the step counter are the whole RNG state.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::{OptimState, Optimizer};
use crate::train::{RunState, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bumped when the checkpoint layout changes.
const CHECKPOINT_VERSION: u32 = 1;

/// A saved run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Layout version.
    pub version: u32,
    /// The model description (TOML) the run was built from.
    pub model_toml: String,
    /// The training configuration.
    pub train: TrainConfig,
    /// Validation split size (the split is keyed by the seed).
    pub val: usize,
    /// Training subset size, if one was used.
    pub subset: Option<usize>,
    /// Where the run stands.
    pub state: RunState,
    /// Parameters and buffers (`Model::snapshot`).
    pub weights: Vec<Vec<f32>>,
    /// Optimizer state.
    pub optimizer: OptimState,
}

impl Checkpoint {
    /// Captures a run.
    pub fn capture<B: Backend>(
        b: &B,
        model: &Model<B>,
        opt: &Optimizer<B>,
        model_toml: &str,
        train: &TrainConfig,
        val: usize,
        subset: Option<usize>,
        state: &RunState,
    ) -> Result<Checkpoint> {
        Ok(Checkpoint {
            version: CHECKPOINT_VERSION,
            model_toml: model_toml.to_string(),
            train: train.clone(),
            val,
            subset,
            state: state.clone(),
            weights: model.snapshot(b)?,
            optimizer: opt.state(b)?,
        })
    }

    /// Writes atomically (temporary file, then rename), so an interrupted
    /// save never destroys the previous checkpoint.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(lasagna_files::write_atomic(path, &json)?)
    }

    /// Reads a checkpoint.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let c: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!("not a Lasagna checkpoint ({e})"),
        })?;
        if c.version != CHECKPOINT_VERSION {
            return Err(Error::ModelFile {
                path: path.to_path_buf(),
                reason: format!(
                    "checkpoint version {} (this lasagna reads {CHECKPOINT_VERSION})",
                    c.version
                ),
            });
        }
        Ok(c)
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
