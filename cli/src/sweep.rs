//! `lasagna sweep`: a grid of MLPs trained one after another through the same
//! code path as `lasagna train`, one metrics JSON per run, and a summary table.

use crate::device::Device;
use clap::{Args, Parser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lasagna_files::Lock;
use lasagna_trainer::diagnose;
use lasagna_trainer::error::{Error, Result};
use lasagna_trainer::sweep::{
    csv, in_shard, markdown, parse_shard, read_json, result_files, sort_rows, Grid, Row, RunConfig,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Train a grid of MLPs on MNIST and rank them.
///
/// The default grid is the chapter's challenge: layers 3, 4, 5 × hidden 128,
/// 256, 512 × dropout 0, 0.3, 0.5, 0.7 × activation relu, gelu, leaky_relu
/// (108 runs of 5 epochs). `--grid FILE` reads another (format in
/// docs/experiments.md); the axis and training flags override either.
///
/// Each run writes OUT/NAME.json (the `lasagna train --metrics` file plus the
/// grid point); runs whose file exists are skipped, so an interrupted sweep
/// resumes where it stopped. Sweeps started together in one OUT share the
/// runs (each is locked while trained). At the end OUT/summary.md and OUT/summary.csv
/// rank the runs by validation accuracy.
#[derive(Args)]
pub struct SweepArgs {
    /// A grid TOML file [default: the chapter's grid].
    #[arg(long, value_name = "FILE")]
    pub grid: Option<PathBuf>,
    /// Output folder [default: sweep; with --collect, the first DIR].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Linear layers per network (output included), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub layers: Option<Vec<usize>>,
    /// Hidden widths, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub hidden: Option<Vec<usize>>,
    /// Dropout probabilities, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "P,...")]
    pub dropout: Option<Vec<f32>>,
    /// Activations (relu, gelu, leaky_relu, tanh, silu, sigmoid), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub activation: Option<Vec<String>>,
    /// Epochs per run.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Optimizer: sgd, adam or adamw.
    #[arg(long)]
    pub optimizer: Option<String>,
    /// Train on only the first N training images.
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Training images held out for validation.
    #[arg(long, value_name = "N")]
    pub val: Option<usize>,
    /// Seed of every run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Only the first N grid points (before sharding; at least 1).
    #[arg(long, value_name = "N", value_parser = crate::args::at_least_one)]
    pub limit: Option<usize>,
    /// Run only shard K of N: the grid points whose index % N == K - 1.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Merge the results in these folders (shards' outputs) into one table; trains nothing.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with = "shard")]
    pub collect: Option<Vec<PathBuf>>,
    /// List the runs this invocation would do, and stop.
    #[arg(long)]
    pub list: bool,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Folder with the MNIST IDX files.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// No progress bar or per-run lines (the table is still printed).
    #[arg(long)]
    pub quiet: bool,
}

fn grid(a: &SweepArgs) -> Result<Grid> {
    let mut g = match &a.grid {
        Some(p) => {
            let text = lasagna_trainer::read::text_file(p, lasagna_trainer::read::MAX_TEXT_BYTES)?;
            Grid::parse(&text, p)?
        }
        None => Grid::chapter(),
    };
    g.layers = a.layers.clone().unwrap_or(g.layers);
    g.hidden = a.hidden.clone().unwrap_or(g.hidden);
    g.dropout = a.dropout.clone().unwrap_or(g.dropout);
    g.activation = a.activation.clone().unwrap_or(g.activation);
    let b = &mut g.base;
    b.epochs = a.epochs.unwrap_or(b.epochs);
    b.batch_size = a.batch_size.unwrap_or(b.batch_size);
    b.lr = a.lr.unwrap_or(b.lr);
    b.optimizer = a.optimizer.clone().unwrap_or(b.optimizer.clone());
    b.train_subset = a.train_subset.or(b.train_subset);
    b.val = a.val.unwrap_or(b.val);
    b.seed = a.seed.unwrap_or(b.seed);
    g.validate()?;
    Ok(g)
}

/// Every file a sweep writes goes through here: whole or not at all, so a
/// concurrent sweep (or a crash) never sees half of one.
fn write(path: &Path, text: &str) -> Result<()> {
    Ok(lasagna_files::write_atomic(path, text.as_bytes())?)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| {
        Error::from(lasagna_files::Error::Write {
            path: dir.to_path_buf(),
            source,
        })
    })
}

/// The `lasagna train` command line of one run (also stored in its JSON, to reproduce it).
fn train_argv(a: &SweepArgs, g: &Grid, model: &Path, metrics: &Path) -> Vec<String> {
    let b = &g.base;
    // argv[0] is the program name for clap; `lasagna train` when printed.
    let mut v: Vec<String> = vec![
        "train".into(),
        "--model".into(),
        model.display().to_string(),
        "--epochs".into(),
        b.epochs.to_string(),
        "--batch-size".into(),
        b.batch_size.to_string(),
        "--lr".into(),
        b.lr.to_string(),
        "--optimizer".into(),
        b.optimizer.clone(),
        "--val".into(),
        b.val.to_string(),
        "--seed".into(),
        b.seed.to_string(),
        "--metrics".into(),
        metrics.display().to_string(),
        "--quiet".into(),
    ];
    if let Some(n) = b.train_subset {
        v.extend(["--train-subset".into(), n.to_string()]);
    }
    if let Some(d) = &a.data {
        v.extend(["--data".into(), d.display().to_string()]);
    }
    let device = match a.device {
        Device::Cpu => "cpu",
        Device::Cuda => "cuda",
        Device::Auto => "auto",
    };
    v.extend(["--device".into(), device.into()]);
    v
}

/// `lasagna train`'s arguments, parsed exactly as the command line would be.
#[derive(Parser)]
#[command(name = "lasagna")]
struct TrainCommand {
    #[command(flatten)]
    args: super::train::TrainArgs,
}

/// Trains one grid point and writes OUT/NAME.json; a NaN loss is a result
/// (diagnosed), not a failure of the sweep. The caller holds the run's lock
/// (see [`run`]), so no other sweep trains it meanwhile. `lasagna train`
/// writes its metrics straight to OUT/NAME.json (atomically, under the same
/// lock); the run counts as done only once the `sweep` object is added.
fn run_one(a: &SweepArgs, g: &Grid, out: &Path, r: &RunConfig) -> Result<Value> {
    let name = r.name();
    let models = out.join("models");
    create_dir(&models)?;
    let model = models.join(format!("{name}.toml"));
    write(&model, &r.model_toml())?;
    let path = out.join(format!("{name}.json"));
    let argv = train_argv(a, g, &model, &path);
    let parsed = TrainCommand::try_parse_from(argv.clone())
        .map_err(|e| Error::config("sweep run", e.to_string()))?;
    let t0 = Instant::now();
    let mut v = match super::train::run(parsed.args) {
        Ok(()) => read_json(&path)?,
        Err(Error::NonFiniteLoss {
            epoch, step, lr, ..
        }) => json!({
            "model": model.display().to_string(),
            "epochs": [],
            "test_accuracy": null,
            "parameters": r.parameter_count(),
            "seconds_total": t0.elapsed().as_secs_f64(),
            "failed": format!("non-finite loss at epoch {epoch}, step {step}"),
            "diagnosis": diagnose::non_finite(epoch, step, lr),
        }),
        Err(e) => return Err(e),
    };
    v["sweep"] = json!({
        "name": name,
        "index": r.index,
        "layers": r.layers,
        "hidden": r.hidden,
        "dropout": r.dropout,
        "activation": r.activation,
        "base": g.base,
        "command": format!("lasagna {}", argv.join(" ")),
    });
    let text =
        serde_json::to_string_pretty(&v).map_err(|e| Error::config("metrics", e.to_string()))?;
    write(&path, &text)?;
    Ok(v)
}

/// A finished run's file, refusing one trained with other shared settings.
/// A file without the `sweep` object is a run that stopped (or is still
/// being trained by another sweep) between `lasagna train` writing its
/// metrics and the sweep completing them: not finished.
fn finished(path: &Path, g: &Grid) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let v = read_json(path)?;
    if v.get("sweep").is_none() {
        return Ok(None);
    }
    let base = v.pointer("/sweep/base").cloned().unwrap_or(Value::Null);
    let want = serde_json::to_value(&g.base).unwrap_or(Value::Null);
    if base != want {
        return Err(Error::BadData {
            path: path.to_path_buf(),
            reason: format!(
                "this run was trained with other settings ({base}) than this sweep's ({want}). \
                 HINT: use another --out folder, or delete the file to retrain it"
            ),
        });
    }
    Ok(Some(v))
}

fn rows_of(files: &[(PathBuf, Value)]) -> Result<Vec<Row>> {
    let mut rows = files
        .iter()
        .map(|(p, v)| Row::from_json(p, v))
        .collect::<Result<Vec<_>>>()?;
    sort_rows(&mut rows);
    Ok(rows)
}

fn write_tables(dir: &Path, stem: &str, rows: &[Row]) -> Result<String> {
    let md = markdown(rows);
    write(&dir.join(format!("{stem}.md")), &md)?;
    write(&dir.join(format!("{stem}.csv")), &csv(rows))?;
    Ok(md)
}

fn collect(dirs: &[PathBuf], out: Option<&Path>) -> Result<()> {
    let mut files: Vec<(PathBuf, Value)> = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            return Err(Error::config(
                "--collect",
                format!(
                    "{} is not a folder. HINT: pass the --out folders of the shards",
                    d.display()
                ),
            ));
        }
        for p in result_files(d)? {
            let v = read_json(&p)?;
            let Some(name) = v.pointer("/sweep/name").and_then(Value::as_str) else {
                continue; // another JSON file, not a sweep run
            };
            if files
                .iter()
                .any(|(_, w)| w.pointer("/sweep/name").and_then(Value::as_str) == Some(name))
            {
                eprintln!(
                    "warning: {} repeats run {name}; keeping the first",
                    p.display()
                );
                continue;
            }
            files.push((p, v));
        }
    }
    if files.is_empty() {
        return Err(Error::config(
            "--collect",
            "no sweep results (*.json with a `sweep` object) in the given folders",
        ));
    }
    let out = out.unwrap_or(&dirs[0]);
    create_dir(out)?;
    let md = write_tables(out, "summary", &rows_of(&files)?)?;
    print!("{md}");
    println!(
        "{} runs from {} folder(s); wrote {}/summary.md and summary.csv",
        files.len(),
        dirs.len(),
        out.display()
    );
    Ok(())
}

pub fn run(a: SweepArgs) -> Result<()> {
    if let Some(dirs) = &a.collect {
        return collect(dirs, a.out.as_deref());
    }
    let g = grid(&a)?;
    let shard = a.shard.as_deref().map(parse_shard).transpose()?;
    let mut runs = g.runs();
    if let Some(n) = a.limit {
        runs.truncate(n);
    }
    let total_grid = runs.len();
    if let Some((k, n)) = shard {
        runs.retain(|r| in_shard(r.index, k, n));
    }
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("sweep"));
    if a.list {
        for r in &runs {
            println!(
                "{:>4}  {}  {} parameters",
                r.index,
                r.name(),
                r.parameter_count()
            );
        }
        return Ok(());
    }
    // Every run's model, checked before the first one trains (on a GPU the
    // host's MemAvailable says nothing; `lasagna train` checks each run too).
    g.check_memory(!matches!(a.device, Device::Cuda))?;
    create_dir(&out)?;

    let mut done: Vec<(PathBuf, Value)> = Vec::new();
    let mut todo = Vec::new();
    for r in &runs {
        let path = out.join(format!("{}.json", r.name()));
        match finished(&path, &g)? {
            Some(v) => done.push((path, v)),
            None => todo.push(r.clone()),
        }
    }
    if !a.quiet {
        let b = &g.base;
        println!(
            "sweep: {} of {} grid points{}, {} already done, {} to train ({} epoch(s), {} images{}, batch {}, {} lr {}) into {}",
            runs.len(),
            total_grid,
            shard.map_or(String::new(), |(k, n)| format!(" (shard {k}/{n})")),
            done.len(),
            todo.len(),
            b.epochs,
            b.train_subset.map_or("all".into(), |n| n.to_string()),
            format_args!(", {} held out", b.val),
            b.batch_size,
            b.optimizer,
            b.lr,
            out.display()
        );
    }

    let bar = if a.quiet || todo.is_empty() {
        ProgressBar::hidden()
    } else {
        let bar =
            ProgressBar::with_draw_target(Some(todo.len() as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "sweep [{bar:30}] {pos}/{len} runs  {msg}  elapsed {elapsed}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    };
    // Each run is claimed by a lock on OUT/NAME.json, so sweeps started
    // together in one folder share the work: each trains the runs nobody
    // holds, then waits for the ones another sweep holds and reads their
    // results, so every summary is complete. A run whose file is complete
    // once its lock is ours was finished by another sweep.
    let t0 = Instant::now();
    let mut trained = 0usize;
    let mut settle = |r: &RunConfig, path: &Path| -> Result<Value> {
        if let Some(v) = finished(path, &g)? {
            bar.inc(1);
            return Ok(v);
        }
        bar.set_message(r.name());
        let v = run_one(&a, &g, &out, r)?;
        let row = Row::from_json(path, &v)?;
        trained += 1;
        bar.inc(1);
        if !a.quiet {
            let i = bar.position() as usize;
            let per_run = t0.elapsed().as_secs_f64() / trained as f64;
            let left = per_run * todo.len().saturating_sub(i) as f64;
            bar.suspend(|| {
                println!(
                    "[{}/{}] {:<22} val acc {:>7}  {:>8} params  {:6.1} s  {}   (about {:.0} s left)",
                    i,
                    todo.len(),
                    row.name,
                    row.val_acc.map_or("-".into(), |x| format!("{:.2}%", 100.0 * x)),
                    row.params,
                    row.seconds,
                    row.diagnosis,
                    left
                )
            });
        }
        Ok(v)
    };
    let mut elsewhere = Vec::new();
    for r in &todo {
        let path = out.join(format!("{}.json", r.name()));
        let _lock = match Lock::try_exclusive(&path) {
            Ok(l) => l,
            Err(lasagna_files::Error::Locked { .. }) => {
                elsewhere.push(r);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let v = settle(r, &path)?;
        done.push((path, v));
    }
    for r in elsewhere {
        let path = out.join(format!("{}.json", r.name()));
        if !a.quiet {
            bar.suspend(|| {
                println!(
                    "{}: another process is training it; waiting for its result",
                    r.name()
                )
            });
        }
        // Ours once the other sweep is done (or died: then we train it).
        let _lock = Lock::exclusive(&path)?;
        let v = settle(r, &path)?;
        done.push((path, v));
    }
    bar.finish_and_clear();

    let stem = match shard {
        Some((k, n)) => format!("summary-shard-{k}-of-{n}"),
        None => "summary".into(),
    };
    let md = write_tables(&out, &stem, &rows_of(&done)?)?;
    print!("{md}");
    println!(
        "{} runs ({} trained now in {:.1} s); wrote {}/{stem}.md and {stem}.csv{}",
        done.len(),
        trained,
        t0.elapsed().as_secs_f64(),
        out.display(),
        if shard.is_some() {
            ". HINT: merge the shards with `lasagna sweep --collect DIR...`"
        } else {
            ""
        }
    );
    Ok(())
}
