//! `lasagna train`.

use crate::device::{pick, Device, Picked};
use crate::progress::Bars;
use clap::Args;
use lasagna_trainer::diagnose::Diagnosis;
use lasagna_trainer::error::Result;
use lasagna_trainer::run::{train, Ready, Tested, TrainObserver, TrainOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Train a model on MNIST.
///
/// Defaults follow the chapter: `--model mlp` is 784-256-64-10 with
/// Dropout(0.5), trained with Adam (lr 1e-3), batch 64, 5 epochs. 5,000
/// training images are held out for validation (`--val 0` trains on all
/// 60,000); the test set is only used for the final accuracy.
///
/// `--resume FILE` continues the run saved by `--checkpoint FILE`: the model,
/// normalization and every training setting come from the checkpoint. An
/// option given with the checkpoint's value is fine; one that contradicts it
/// is refused. Only `--epochs` (a larger total continues the run), `--data`
/// (where the same MNIST files are), `--device` and the output paths may
/// change.
#[derive(Args)]
pub struct TrainArgs {
    /// A preset (`mlp`) or a TOML model description (see trainer/presets/mlp.toml)
    /// [default: mlp].
    #[arg(long, value_name = "NAME|FILE")]
    pub model: Option<String>,
    /// Passes over the training set [default: the model's, 5 for mlp]. With
    /// --resume, the run's total: more than the checkpoint's continues it.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per step [default: the model's, 64 for mlp].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: the model's, 1e-3 for mlp].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Optimizer: sgd, adam or adamw [default: the model's].
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Weight decay (L2 for sgd/adam, decoupled for adamw).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// SGD momentum.
    #[arg(long)]
    pub momentum: Option<f32>,
    /// Learning-rate schedule: constant, step:STEP:GAMMA (e.g. step:2:0.5), cosine (over all
    /// epochs), or cosine:T_MAX[:ETA_MIN].
    #[arg(long)]
    pub schedule: Option<String>,
    /// Clip the global gradient norm to this value.
    #[arg(long)]
    pub clip_grad_norm: Option<f32>,
    /// CrossEntropy label smoothing in [0, 1).
    #[arg(long)]
    pub label_smoothing: Option<f32>,
    /// Stop after this many epochs without a better validation loss; keep the best weights.
    #[arg(long, value_name = "PATIENCE")]
    pub early_stopping: Option<usize>,
    /// Mixed precision: GEMM inputs (Linear, Conv2d, LSTM) rounded to fp16 with fp32
    /// accumulation, as tensor cores compute, plus dynamic loss scaling
    /// (PyTorch's GradScaler: scale 2^16, halved and the step skipped when a
    /// gradient is inf/NaN, doubled after 2000 good steps). Weights, optimizer
    /// state, softmax/loss and normalization statistics stay fp32. On the CPU
    /// this is an emulation for testing: same numbers, not faster.
    #[arg(long)]
    pub amp: bool,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Seed for initialization, shuffling and dropout (same seed, same result)
    /// [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder with the MNIST IDX files [default: $LASAGNA_DATA, else data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Input normalization mean: pixels in [0, 1] become (x - mean) / std
    /// [default: 0.1307].
    #[arg(long)]
    pub norm_mean: Option<f32>,
    /// Input normalization standard deviation [default: 0.3081, MNIST's].
    #[arg(long)]
    pub norm_std: Option<f32>,
    /// Training images held out for validation (early stopping, curves)
    /// [default: 5000].
    #[arg(long)]
    pub val: Option<usize>,
    /// Train on only the first N training images (quick experiments, tests).
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Export the trained model (f32) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write per-epoch metrics and the test result as JSON.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Save a checkpoint after every epoch (model, normalization, settings, weights,
    /// optimizer, step; with a CRC-32), for --resume.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Continue the run saved in this checkpoint: the model, normalization and
    /// settings come from it; an option that contradicts them is refused, only
    /// a larger --epochs, --data, --device and output paths may change.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// No progress bars or epoch lines.
    #[arg(long)]
    pub quiet: bool,
    /// Refuse, before loading data, a model whose parameters, gradients,
    /// optimizer state and activations need more than BYTES (K, M, G, T:
    /// powers of 1024, e.g. 512M or 4G). On the CPU the memory the system
    /// has available is always a limit too.
    #[arg(long, value_name = "BYTES", value_parser = crate::args::bytes)]
    pub max_memory: Option<u64>,
}

impl TrainArgs {
    /// The library's options; `started` is when the command began.
    fn options(&self, started: Instant) -> TrainOptions {
        TrainOptions {
            model: self.model.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer: self.optimizer.clone(),
            weight_decay: self.weight_decay,
            momentum: self.momentum,
            schedule: self.schedule.clone(),
            clip_grad_norm: self.clip_grad_norm,
            label_smoothing: self.label_smoothing,
            early_stopping: self.early_stopping,
            // A flag: absent is "not given", not "off", so a resumed AMP run
            // continues with AMP.
            amp: self.amp.then_some(true),
            seed: self.seed,
            data: self.data.clone(),
            norm_mean: self.norm_mean,
            norm_std: self.norm_std,
            val: self.val,
            train_subset: self.train_subset,
            out: self.out.clone(),
            metrics: self.metrics.clone(),
            checkpoint: self.checkpoint.clone(),
            resume: self.resume.clone(),
            started,
            max_memory: self.max_memory,
        }
    }
}

/// The run's lines around the epoch bars; `--quiet` keeps only the test
/// result and the file written.
impl TrainObserver for Bars {
    fn ready(&mut self, r: &Ready<'_>) {
        self.set_epochs(r.config.epochs);
        if self.quiet() {
            return;
        }
        let cfg = r.config;
        println!(
            "model {} on {}: {} train / {} val / {} test images",
            r.model, r.backend, r.train_images, r.val_images, r.test_images
        );
        print!("{}", r.summary);
        println!(
            "optimizer {:?}, lr {}, batch {}, {} epochs, seed {}{}",
            cfg.optimizer,
            cfg.lr,
            cfg.batch_size,
            cfg.epochs,
            cfg.seed,
            if cfg.amp {
                ", AMP (fp16 GEMM inputs, loss scaling)"
            } else {
                ""
            }
        );
        if r.state.epochs_done > 0 {
            println!(
                "resuming after epoch {} (step {})",
                r.state.epochs_done, r.state.step
            );
        }
    }

    fn trained(&mut self, diagnosis: &Diagnosis) {
        if !self.quiet() {
            println!("diagnosis: {diagnosis}");
        }
    }

    fn tested(&mut self, t: &Tested) {
        println!(
            "test accuracy {:.2}% ({} images), test loss {:.4}, {} parameters, {:.1} s total",
            100.0 * t.accuracy,
            t.images,
            t.loss,
            t.parameters,
            t.seconds_total
        );
    }

    fn wrote_model(&mut self, path: &Path, bytes: usize) {
        println!("wrote {} ({bytes} bytes, f32)", path.display());
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    // Started before the device, so `seconds_total` includes its start-up.
    let options = a.options(Instant::now());
    let mut bars = Bars::new(a.quiet);
    match pick(a.device)? {
        Picked::Cpu(b) => train(&b, &options, &mut bars)?,
        #[cfg(feature = "cuda")]
        Picked::Cuda(b) => train(&*b, &options, &mut bars)?,
    };
    Ok(())
}
