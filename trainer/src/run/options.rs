//! What `lasagna train` is asked to do: [`TrainOptions`] and the defaults
//! of the options left out. Both a new run ([`super::train()`]) and a
//! resumed one (`run/resume.rs`) read it, so it lives apart from either.

use std::path::PathBuf;
use std::time::Instant;

/// `--model` when none is given.
pub const DEFAULT_MODEL: &str = "mlp";

/// `--val` when none is given: the chapter holds out 5,000 of the 60,000
/// training images.
pub const DEFAULT_VAL: usize = 5000;

/// What to train and where the results go. `None` means the option was not
/// given. The training settings override the model description's
/// `[training]` and `[optimizer]` tables, which override
/// [`crate::train::TrainConfig::mnist_default`]; the others default to [`DEFAULT_MODEL`],
/// seed 0, [`crate::data::Normalization::default`] and [`DEFAULT_VAL`].
///
/// A resumed run takes all of them from its checkpoint instead, and refuses
/// any that contradicts it (see `run/resume.rs`); only `epochs` (a larger
/// total), `data` and the output paths may change.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// A preset name (see [`crate::config::PRESETS`]) or the path of a TOML model
    /// description. Also the name written into the model file and the
    /// metrics, and the origin named in model-description errors.
    pub model: Option<String>,
    /// Passes over the training set (on resume: the run's new total).
    pub epochs: Option<usize>,
    /// Samples per step.
    pub batch_size: Option<usize>,
    /// Base learning rate.
    pub lr: Option<f32>,
    /// Optimizer name: `sgd`, `adam` or `adamw`.
    pub optimizer: Option<String>,
    /// Weight decay (L2 for sgd/adam, decoupled for adamw).
    pub weight_decay: Option<f32>,
    /// SGD momentum.
    pub momentum: Option<f32>,
    /// Learning-rate schedule in [`crate::config::parse_schedule`]'s syntax.
    pub schedule: Option<String>,
    /// Clip the global gradient norm to this value.
    pub clip_grad_norm: Option<f32>,
    /// CrossEntropy label smoothing in [0, 1).
    pub label_smoothing: Option<f32>,
    /// Early-stopping patience in epochs.
    pub early_stopping: Option<usize>,
    /// Mixed precision (see [`crate::train::TrainConfig::amp`]); off by default.
    pub amp: Option<bool>,
    /// Seed of every random choice.
    pub seed: Option<u64>,
    /// Folder with the MNIST IDX files (see [`crate::data::resolve_data_dir`]).
    pub data: Option<PathBuf>,
    /// Input normalization mean, also stored in the model file.
    pub norm_mean: Option<f32>,
    /// Input normalization standard deviation.
    pub norm_std: Option<f32>,
    /// Training images held out for validation.
    pub val: Option<usize>,
    /// Train on only the first N training images.
    pub train_subset: Option<usize>,
    /// Write the trained model (f32) here.
    pub out: Option<PathBuf>,
    /// Write per-epoch metrics and the test result here, as JSON.
    pub metrics: Option<PathBuf>,
    /// Save a checkpoint here after every epoch.
    pub checkpoint: Option<PathBuf>,
    /// Resume from this checkpoint.
    pub resume: Option<PathBuf>,
    /// When the run began. `seconds_total` counts from here, so a front end
    /// that starts a device first can include its start-up time.
    pub started: Instant,
    /// Refuse a model whose parameters, gradients, optimizer state and
    /// activations need more bytes than this (see [`crate::footprint`]). On
    /// the CPU, `MemAvailable` of `/proc/meminfo` is a limit as well.
    pub max_memory: Option<u64>,
}
