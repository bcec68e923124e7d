//! `lasagna train`.

use crate::device::Device;
use crate::progress::Bars;
use clap::Args;
use lasagna_trainer::backend::Backend;
use lasagna_trainer::checkpoint::Checkpoint;
use lasagna_trainer::config::{parse_schedule, ModelSpec, PRESETS};
use lasagna_trainer::data::{load_mnist, resolve_data_dir, split_validation, Normalization};
use lasagna_trainer::error::{Error, Result};
use lasagna_trainer::export::{export_f32, ExportInfo};
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::Optimizer;
use lasagna_trainer::train::{evaluate, fit, DeviceData, RunState, TrainConfig};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Train a model on MNIST.
///
/// Defaults follow the chapter: `--model mlp` is 784-256-64-10 with
/// Dropout(0.5), trained with Adam (lr 1e-3), batch 64, 5 epochs. 5,000
/// training images are held out for validation (`--val 0` trains on all
/// 60,000); the test set is only used for the final accuracy.
#[derive(Args)]
pub struct TrainArgs {
    /// A preset (`mlp`) or a TOML model description (see trainer/presets/mlp.toml).
    #[arg(long, default_value = "mlp", value_name = "NAME|FILE")]
    pub model: String,
    /// Passes over the training set [default: the model's, 5 for mlp].
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
    /// Seed for initialization, shuffling and dropout (same seed, same result).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Folder with the MNIST IDX files [default: $LASAGNA_DATA, else data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Input normalization mean: pixels in [0, 1] become (x - mean) / std.
    #[arg(long, default_value_t = 0.1307)]
    pub norm_mean: f32,
    /// Input normalization standard deviation (MNIST's is 0.3081).
    #[arg(long, default_value_t = 0.3081)]
    pub norm_std: f32,
    /// Training images held out for validation (early stopping, curves).
    #[arg(long, default_value_t = 5000)]
    pub val: usize,
    /// Train on only the first N training images (quick experiments, tests).
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Export the trained model (f32) to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write per-epoch metrics and the test result as JSON.
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Save a checkpoint after every epoch (weights, optimizer, schedule, step).
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Resume from a checkpoint (the model and settings come from it).
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
    /// No progress bars or epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

fn model_toml(model: &str) -> Result<String> {
    if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == model) {
        return Ok(text.to_string());
    }
    let path = std::path::Path::new(model);
    if !path.exists() && path.extension().is_none_or(|e| e != "toml") {
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        return Err(Error::config(
            "--model",
            format!(
                "`{model}` is neither a preset ({}) nor a .toml file",
                names.join(", ")
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The run's configuration: the model description's defaults, overridden by flags.
fn config(a: &TrainArgs, spec: &mut ModelSpec) -> Result<TrainConfig> {
    if let Some(o) = &a.optimizer {
        spec.optimizer.kind = Some(o.clone());
    }
    spec.optimizer.weight_decay = a.weight_decay.or(spec.optimizer.weight_decay);
    spec.optimizer.momentum = a.momentum.or(spec.optimizer.momentum);
    spec.training.label_smoothing = a.label_smoothing.or(spec.training.label_smoothing);
    let d = TrainConfig::mnist_default();
    let epochs = a.epochs.or(spec.training.epochs).unwrap_or(d.epochs);
    let schedule = match &a.schedule {
        Some(s) => parse_schedule(s, epochs)?,
        None => spec.schedule(epochs)?,
    };
    let cfg = TrainConfig {
        epochs,
        batch_size: a
            .batch_size
            .or(spec.training.batch_size)
            .unwrap_or(d.batch_size),
        lr: a.lr.or(spec.optimizer.lr).unwrap_or(d.lr),
        seed: a.seed,
        optimizer: spec.optimizer()?,
        schedule,
        loss: spec.loss()?,
        clip_grad_norm: a.clip_grad_norm.or(spec.training.clip_grad_norm),
        early_stopping: a.early_stopping.or(spec.training.early_stopping),
        eval_batch: d.eval_batch,
        amp: a.amp,
    };
    cfg.validate()?;
    Ok(cfg)
}

pub fn run(a: TrainArgs) -> Result<()> {
    let t_start = Instant::now();
    match crate::device::pick(a.device)? {
        crate::device::Picked::Cpu(b) => run_on(&b, &a, t_start),
        #[cfg(feature = "cuda")]
        crate::device::Picked::Cuda(b) => run_on(&*b, &a, t_start),
    }
}

/// `lasagna train` on backend `b` (the CPU, or a GPU through `Gpu`).
fn run_on<B: Backend>(b: &B, a: &TrainArgs, t_start: Instant) -> Result<()> {
    let resumed = match &a.resume {
        Some(p) => Some(Checkpoint::load(p)?),
        None => None,
    };
    let (toml_text, cfg, val, subset) = match &resumed {
        Some(c) => (c.model_toml.clone(), c.train.clone(), c.val, c.subset),
        None => {
            let text = model_toml(&a.model)?;
            let mut spec = ModelSpec::parse(&text, &a.model)?;
            let cfg = config(a, &mut spec)?;
            (text, cfg, a.val, a.train_subset)
        }
    };
    let spec = ModelSpec::parse(&toml_text, &a.model)?;

    let norm = Normalization {
        mean: a.norm_mean,
        std: a.norm_std,
    };
    norm.validate()?;
    let dir = resolve_data_dir(a.data.as_deref());
    let data = load_mnist(&dir, norm)?;
    let mut train = data.train;
    if let Some(n) = subset {
        if n == 0 || n > train.len() {
            return Err(Error::config(
                "--train-subset",
                format!("{n} is not in 1..={}", train.len()),
            ));
        }
        train = train.subset(n);
    }
    let (mut train, mut valset) = split_validation(&train, val, cfg.seed)?;
    let mut test = data.test;
    let sample: usize = train.sample_shape.iter().product();
    let wanted: usize = spec.input.iter().product();
    if wanted != sample {
        return Err(Error::config(
            "model input",
            format!(
                "the model expects {:?} ({wanted} values) but MNIST samples are {:?} ({sample} values)",
                spec.input, train.sample_shape
            ),
        ));
    }
    // Same values, another view (the row-LSTM reads [1, 28, 28] as [28, 28]).
    for ds in [&mut train, &mut valset, &mut test] {
        ds.sample_shape = spec.input.clone();
    }

    let layers = spec.build_layers()?;
    let mut model = Model::build(
        b,
        layers,
        &spec.input,
        cfg.batch_size.max(cfg.eval_batch),
        cfg.seed,
    )?;
    let mut opt = Optimizer::new(b, cfg.optimizer, &model.param_sizes())?;
    let mut state = RunState::new();
    if let Some(c) = &resumed {
        c.restore_into(b, &mut model, &mut opt)?;
        state = c.state.clone();
    }
    if !a.quiet {
        println!(
            "model {} on {}: {} train / {} val / {} test images",
            a.model,
            b.name(),
            train.len(),
            valset.len(),
            test.len()
        );
        print!("{}", model.summary());
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
        if state.epochs_done > 0 {
            println!(
                "resuming after epoch {} (step {})",
                state.epochs_done, state.step
            );
        }
    }

    let train_dev = DeviceData::upload(b, &train)?;
    let val_dev = DeviceData::upload(b, &valset)?;
    let mut bars = Bars::new(cfg.epochs, a.quiet);
    let ckpt_path = a.checkpoint.clone();
    let mut hook = |m: &mut Model<_>, o: &Optimizer<_>, s: &RunState| -> Result<bool> {
        if let Some(p) = &ckpt_path {
            Checkpoint::capture(b, m, o, &toml_text, &cfg, val, subset, s)?.save(p)?;
        }
        Ok(true)
    };
    fit(
        b,
        &mut model,
        &mut opt,
        &train_dev,
        Some(&val_dev),
        &cfg,
        &mut state,
        &mut bars,
        &mut hook,
    )?;

    let diagnosis = lasagna_trainer::diagnose::diagnose(&state.history);
    if !a.quiet {
        println!("diagnosis: {diagnosis}");
    }
    let test_dev = DeviceData::upload(b, &test)?;
    let result = evaluate(b, &mut model, &test_dev, &cfg.loss, cfg.eval_batch)?;
    let total = t_start.elapsed().as_secs_f64();
    println!(
        "test accuracy {:.2}% ({} images), test loss {:.4}, {} parameters, {:.1} s total",
        100.0 * result.accuracy,
        test.len(),
        result.loss,
        model.parameter_count(),
        total
    );

    if let Some(out) = &a.out {
        let info = ExportInfo {
            normalization: (norm.mean, norm.std),
            labels: (0..10).map(|d| d.to_string()).collect(),
            meta: vec![
                (
                    "lasagna.tool.version".into(),
                    env!("CARGO_PKG_VERSION").into(),
                ),
                ("lasagna.train.model".into(), a.model.clone()),
                (
                    "lasagna.train.test_accuracy".into(),
                    format!("{:.4}", result.accuracy),
                ),
                ("lasagna.train.epochs".into(), state.epochs_done.to_string()),
                ("lasagna.train.seed".into(), cfg.seed.to_string()),
            ],
        };
        let bytes = export_f32(b, &model, &info)?;
        std::fs::write(out, &bytes).map_err(|source| Error::Io {
            path: out.clone(),
            source,
        })?;
        println!("wrote {} ({} bytes, f32)", out.display(), bytes.len());
    }
    if let Some(path) = &a.metrics {
        let m = json!({
            "model": a.model,
            "epochs": state.history,
            "test_accuracy": result.accuracy,
            "test_loss": result.loss,
            "parameters": model.parameter_count(),
            "device": b.name(),
            "seconds_total": total,
            "train_images": train.len(),
            "val_images": valset.len(),
            "config": cfg,
            "amp_skipped_steps": state.scaler.skipped_steps,
            "diagnosis": diagnosis,
        });
        let text = serde_json::to_string_pretty(&m)
            .map_err(|e| Error::config("metrics", e.to_string()))?;
        std::fs::write(path, text).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}
