//! `lasagna train` as one call: [`train`] resolves the run (a checkpoint to
//! resume, or a preset / TOML model description overridden by options),
//! loads and subsets MNIST, builds the model, fits it, tests it and writes
//! the model file, checkpoints and metrics. A [`TrainObserver`] hears each
//! stage as it happens, so a front end can print between them.

use super::options::{TrainOptions, DEFAULT_MODEL, DEFAULT_VAL};
use super::resume::resume_recipe;
use crate::backend::Backend;
use crate::backend::Location;
use crate::checkpoint::{data_crc32, Checkpoint, Recipe};
use crate::config::{
    label_smoothing, named, non_negative, optimizer_kind, origin_name, parse_schedule, ModelSpec,
    PRESETS,
};
use crate::data::mnist::MNIST_CLASSES;
use crate::data::{load_mnist, resolve_data_dir, split_validation, Normalization};
use crate::diagnose::{diagnose, Diagnosis};
use crate::error::{Error, Result};
use crate::export::{export_f32, ExportInfo};
use crate::footprint;
use crate::model::Model;
use crate::optim::Optimizer;
use crate::train::{evaluate, fit, DeviceData, Progress, RunState, TrainConfig};
use serde_json::json;
use std::path::Path;

/// The run as it is about to start: what a front end shows before the
/// first epoch.
#[derive(Debug)]
pub struct Ready<'a> {
    /// [`TrainOptions::model`].
    pub model: &'a str,
    /// The backend's name (`cpu`, `cuda:0`).
    pub backend: &'a str,
    /// Training images after the subset and the validation split.
    pub train_images: usize,
    /// Validation images.
    pub val_images: usize,
    /// Test images.
    pub test_images: usize,
    /// [`Model::summary`]: one line per layer.
    pub summary: String,
    /// The resolved configuration.
    pub config: &'a TrainConfig,
    /// Where the run stands: epoch 0 for a new run, later when resumed.
    pub state: &'a RunState,
}

/// The trained model on the test set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tested {
    /// Fraction of test images classified correctly.
    pub accuracy: f32,
    /// Mean test loss.
    pub loss: f32,
    /// Test images.
    pub images: usize,
    /// Trainable parameters of the model.
    pub parameters: usize,
    /// Seconds since [`TrainOptions::started`].
    pub seconds_total: f64,
}

/// Everything a run produced besides its files.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// The resolved configuration.
    pub config: TrainConfig,
    /// The final state: epochs done, steps, per-epoch metrics, AMP scaler.
    pub state: RunState,
    /// The diagnosis of the training curves.
    pub diagnosis: Diagnosis,
    /// The test result.
    pub test: Tested,
    /// Bytes of the model file, when [`TrainOptions::out`] was given.
    pub model_file_bytes: Option<usize>,
}

/// Hears each stage of [`train`] as it happens. The [`Progress`] methods
/// report the epochs; every method defaults to doing nothing.
pub trait TrainObserver: Progress {
    /// The model is built (and restored, when resuming); fitting starts next.
    fn ready(&mut self, _run: &Ready<'_>) {}
    /// Fitting is over; this is the diagnosis of its curves.
    fn trained(&mut self, _diagnosis: &Diagnosis) {}
    /// The test set is evaluated; the files are written next.
    fn tested(&mut self, _test: &Tested) {}
    /// The model file `path` is written (`bytes` long).
    fn wrote_model(&mut self, _path: &Path, _bytes: usize) {}
}

/// Checks the outputs before any work, and locks them until the run ends
/// (see [`lasagna_files::claim`]): an hour of training must not end in
/// `cannot write`, nor two runs write one file. `--resume` may name the
/// checkpoint (that is how a run continues) but not the model or metrics.
fn claim_outputs(o: &TrainOptions) -> Result<Vec<lasagna_files::Lock>> {
    let outputs: Vec<(&str, &Path)> = [
        ("--out", &o.out),
        ("--metrics", &o.metrics),
        ("--checkpoint", &o.checkpoint),
    ]
    .into_iter()
    .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
    .collect();
    if let Some(r) = &o.resume {
        for &(flag, p) in outputs.iter().filter(|(f, _)| *f != "--checkpoint") {
            lasagna_files::check_distinct(&[("--resume", r), (flag, p)])?;
        }
    }
    Ok(lasagna_files::claim(&outputs)?)
}

/// The text of a preset, or of the TOML file `model` names.
fn model_toml(model: &str) -> Result<String> {
    if let Some((_, text)) = PRESETS.iter().find(|(n, _)| *n == model) {
        return Ok(text.to_string());
    }
    let path = Path::new(model);
    // A name that is no file and has no .toml extension is most likely a
    // mistyped preset: list the presets rather than report a missing file.
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
    crate::read::text_file(path, crate::read::MAX_TEXT_BYTES)
}

/// A new run's recipe: the model description, overridden by options, and
/// the defaults of the options not given.
fn new_recipe(o: &TrainOptions) -> Result<Recipe> {
    let model = o.model.as_deref().unwrap_or(DEFAULT_MODEL);
    let model_toml = model_toml(model)?;
    let mut spec = ModelSpec::parse(&model_toml, model)?;
    let train = config(o, &mut spec)?;
    let d = Normalization::default();
    Ok(Recipe {
        model: model.to_string(),
        model_toml,
        normalization: Normalization {
            mean: o.norm_mean.unwrap_or(d.mean),
            std: o.norm_std.unwrap_or(d.std),
        },
        train,
        val: o.val.unwrap_or(DEFAULT_VAL),
        subset: o.train_subset,
        // Known once the data is loaded.
        train_crc32: 0,
    })
}

/// Forgets a file value that a flag overrides.
fn clear<T>(v: &mut Option<T>, overridden: bool) {
    if overridden {
        *v = None;
    }
}

/// Checks every setting where it comes from, so an error names the TOML key
/// and file (`invalid [optimizer] lr in model.toml`) or the flag (`--lr`).
fn check_sources(o: &TrainOptions, spec: &ModelSpec) -> Result<()> {
    // A file value a flag overrides is never used, so it is not checked.
    let mut file = spec.clone();
    let (opt, tr) = (&mut file.optimizer, &mut file.training);
    if o.optimizer.is_some() {
        opt.kind = None;
    }
    clear(&mut opt.lr, o.lr.is_some());
    clear(&mut opt.weight_decay, o.weight_decay.is_some());
    clear(&mut opt.momentum, o.momentum.is_some());
    clear(&mut opt.schedule, o.schedule.is_some());
    clear(&mut tr.epochs, o.epochs.is_some());
    clear(&mut tr.batch_size, o.batch_size.is_some());
    clear(&mut tr.clip_grad_norm, o.clip_grad_norm.is_some());
    clear(&mut tr.label_smoothing, o.label_smoothing.is_some());
    clear(&mut tr.early_stopping, o.early_stopping.is_some());
    file.check_hyperparameters(&origin_name(o.model.as_deref().unwrap_or(DEFAULT_MODEL)))?;
    if let Some(name) = &o.optimizer {
        optimizer_kind(name).map_err(named("--optimizer"))?;
    }
    for (flag, v) in [
        ("--weight-decay", o.weight_decay),
        ("--momentum", o.momentum),
    ] {
        v.map_or(Ok(()), |v| non_negative(flag, v))?;
    }
    if let Some(v) = o.label_smoothing {
        label_smoothing("--label-smoothing", v)?;
    }
    Ok(())
}

/// The run's configuration: the model description's defaults, overridden by options.
fn config(o: &TrainOptions, spec: &mut ModelSpec) -> Result<TrainConfig> {
    check_sources(o, spec)?;
    if let Some(name) = &o.optimizer {
        spec.optimizer.kind = Some(name.clone());
    }
    spec.optimizer.weight_decay = o.weight_decay.or(spec.optimizer.weight_decay);
    spec.optimizer.momentum = o.momentum.or(spec.optimizer.momentum);
    spec.training.label_smoothing = o.label_smoothing.or(spec.training.label_smoothing);
    let d = TrainConfig::mnist_default();
    let epochs = o.epochs.or(spec.training.epochs).unwrap_or(d.epochs);
    let schedule = match &o.schedule {
        Some(s) => parse_schedule(s, epochs).map_err(named("--schedule"))?,
        None => spec.schedule(epochs)?,
    };
    let cfg = TrainConfig {
        epochs,
        batch_size: o
            .batch_size
            .or(spec.training.batch_size)
            .unwrap_or(d.batch_size),
        lr: o.lr.or(spec.optimizer.lr).unwrap_or(d.lr),
        seed: o.seed.unwrap_or(d.seed),
        // Every value it reads was checked above, by name; what is left is
        // the one combination rule, Nesterov without momentum.
        optimizer: spec.optimizer().map_err(named(&format!(
            "[optimizer] nesterov in {}",
            origin_name(o.model.as_deref().unwrap_or(DEFAULT_MODEL))
        )))?,
        schedule,
        loss: spec.loss()?,
        clip_grad_norm: o.clip_grad_norm.or(spec.training.clip_grad_norm),
        early_stopping: o.early_stopping.or(spec.training.early_stopping),
        eval_batch: d.eval_batch,
        amp: o.amp.unwrap_or(d.amp),
        graphs: d.graphs,
    };
    cfg.validate()?;
    Ok(cfg)
}

/// `lasagna train` on backend `b` (the CPU, or a GPU through `Gpu`).
///
/// Everything that can be refused (the outputs, the checkpoint, the model
/// description, the configuration, the normalization, the data, the subset,
/// the input shape) is refused before the first epoch. The model file and
/// the metrics are written after the test, in that order; checkpoints after
/// every epoch; all atomically, and locked against another process for the
/// whole run.
pub fn train<B: Backend>(
    b: &B,
    o: &TrainOptions,
    observer: &mut dyn TrainObserver,
) -> Result<TrainReport> {
    let _locks = claim_outputs(o)?;
    let resumed = match &o.resume {
        Some(p) => {
            let c = Checkpoint::load(p)?;
            Some((p, resume_recipe(o, p, &c)?, c))
        }
        None => None,
    };
    let mut recipe = match &resumed {
        Some((_, r, _)) => r.clone(),
        None => new_recipe(o)?,
    };
    let spec = ModelSpec::parse(&recipe.model_toml, &recipe.model)?;
    let (val, subset, seed) = (recipe.val, recipe.subset, recipe.train.seed);
    // Before the data loads: a model that cannot classify MNIST, or one
    // that needs more memory than the run may use, is refused now.
    let layers = spec.build_layers()?;
    let max_batch = recipe.train.batch_size.max(recipe.train.eval_batch);
    let need = footprint::estimate(
        &layers,
        &spec.input,
        max_batch,
        recipe.train.optimizer.slots(),
    )?;
    footprint::check(
        &need,
        footprint::limit(o.max_memory, b.location() == Location::Host),
    )?;
    spec.check_outputs(&layers, MNIST_CLASSES, &origin_name(&recipe.model))?;

    let norm = recipe.normalization;
    norm.validate()?;
    let dir = resolve_data_dir(o.data.as_deref());
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
    let (mut train, mut valset) = split_validation(&train, val, seed)?;
    // A resumed run keeps the checkpoint's, which `check_data` compares below.
    if resumed.is_none() {
        recipe.train_crc32 = data_crc32(&train);
    }
    let recipe = recipe;
    let cfg = &recipe.train;
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

    let mut model = Model::build(b, layers, &spec.input, max_batch, cfg.seed)?;
    let mut opt = Optimizer::new(b, cfg.optimizer, &model.param_sizes())?;
    let mut state = RunState::new();
    if let Some((path, _, c)) = &resumed {
        c.check_data(path, &train, model.has_batchnorm())?;
        c.restore_into(b, &mut model, &mut opt)?;
        state = c.state.clone();
    }
    observer.ready(&Ready {
        model: &recipe.model,
        backend: &b.name(),
        train_images: train.len(),
        val_images: valset.len(),
        test_images: test.len(),
        summary: model.summary(),
        config: cfg,
        state: &state,
    });

    let train_dev = DeviceData::upload(b, &train)?;
    let val_dev = DeviceData::upload(b, &valset)?;
    let mut hook = |m: &mut Model<_>, opt: &Optimizer<_>, s: &RunState| -> Result<bool> {
        if let Some(p) = &o.checkpoint {
            Checkpoint::capture(b, m, opt, &recipe, s)?.save(p)?;
        }
        Ok(true)
    };
    fit(
        b,
        &mut model,
        &mut opt,
        &train_dev,
        Some(&val_dev),
        cfg,
        &mut state,
        &mut *observer,
        &mut hook,
    )?;

    let diagnosis = diagnose(&state.history);
    observer.trained(&diagnosis);
    let test_dev = DeviceData::upload(b, &test)?;
    let result = evaluate(b, &mut model, &test_dev, &cfg.loss, cfg.eval_batch)?;
    let tested = Tested {
        accuracy: result.accuracy,
        loss: result.loss,
        images: test.len(),
        parameters: model.parameter_count(),
        seconds_total: o.started.elapsed().as_secs_f64(),
    };
    observer.tested(&tested);

    let mut model_file_bytes = None;
    if let Some(out) = &o.out {
        let info = ExportInfo {
            normalization: (norm.mean, norm.std),
            labels: (0..10).map(|d| d.to_string()).collect(),
            meta: vec![
                // The workspace shares one version, so the trainer's is the CLI's.
                (
                    "lasagna.tool.version".into(),
                    env!("CARGO_PKG_VERSION").into(),
                ),
                ("lasagna.train.model".into(), recipe.model.clone()),
                (
                    "lasagna.train.test_accuracy".into(),
                    format!("{:.4}", tested.accuracy),
                ),
                ("lasagna.train.epochs".into(), state.epochs_done.to_string()),
                ("lasagna.train.seed".into(), cfg.seed.to_string()),
            ],
        };
        let bytes = export_f32(b, &model, &info)?;
        lasagna_files::write_atomic(out, &bytes)?;
        observer.wrote_model(out, bytes.len());
        model_file_bytes = Some(bytes.len());
    }
    if let Some(path) = &o.metrics {
        let m = json!({
            "model": recipe.model,
            "epochs": state.history,
            "test_accuracy": tested.accuracy,
            "test_loss": tested.loss,
            "parameters": tested.parameters,
            "device": b.name(),
            "seconds_total": tested.seconds_total,
            "train_images": train.len(),
            "val_images": valset.len(),
            "config": cfg,
            "amp_skipped_steps": state.scaler.skipped_steps,
            "diagnosis": diagnosis,
        });
        let text = serde_json::to_string_pretty(&m)
            .map_err(|e| Error::config("metrics", e.to_string()))?;
        lasagna_files::write_atomic(path, text.as_bytes())?;
    }
    Ok(TrainReport {
        config: cfg.clone(),
        state,
        diagnosis,
        test: tested,
        model_file_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn presets_resolve_to_their_text() {
        for (name, text) in PRESETS {
            assert_eq!(model_toml(name).ok().as_deref(), Some(*text));
        }
    }

    #[test]
    fn a_name_that_is_no_preset_nor_toml_lists_the_presets() {
        let e = model_toml("nosuch").err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.contains("--model") && e.contains("mlp"), "{e}");
    }

    #[test]
    fn a_missing_toml_file_is_an_io_error() {
        let r = model_toml("/nonexistent/model.toml");
        assert!(matches!(r, Err(Error::Io { .. })), "{r:?}");
    }

    #[test]
    fn options_override_the_model_description() {
        let text = model_toml("mlp").unwrap_or_default();
        let mut spec = match ModelSpec::parse(&text, "mlp") {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let o = TrainOptions {
            model: Some("mlp".into()),
            epochs: Some(2),
            batch_size: Some(16),
            lr: Some(0.5),
            optimizer: Some("sgd".into()),
            weight_decay: None,
            momentum: Some(0.9),
            schedule: Some("step:1:0.5".into()),
            clip_grad_norm: Some(1.0),
            label_smoothing: None,
            early_stopping: None,
            amp: Some(true),
            seed: Some(7),
            data: None,
            norm_mean: None,
            norm_std: None,
            val: Some(0),
            train_subset: None,
            out: None,
            metrics: None,
            checkpoint: None,
            resume: None,
            started: Instant::now(),
            max_memory: None,
        };
        let cfg = match config(&o, &mut spec) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            (cfg.epochs, cfg.batch_size, cfg.lr, cfg.seed, cfg.amp),
            (2, 16, 0.5, 7, true)
        );
        assert_eq!(cfg.clip_grad_norm, Some(1.0));
        assert!(
            format!("{:?}", cfg.optimizer).starts_with("Sgd"),
            "{:?}",
            cfg.optimizer
        );
    }
}
