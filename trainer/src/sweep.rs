//! Grids of MLP experiments (`lasagna sweep`): the grid and its TOML form,
//! one model description per point, shards, and the summary table built from
//! the runs' metrics files. Running the runs is the CLI's job; everything
//! here is pure or reads files.
//!
//! A grid file lists values per axis plus the training settings every run
//! shares (all keys optional; omitted ones take the chapter's values):
//!
//! ```toml
//! layers = [3, 4]                 # Linear layers, the output layer included
//! hidden = [128, 256]             # width of every hidden layer
//! dropout = [0.0, 0.5]            # after every hidden activation (0 = none)
//! activation = ["relu", "gelu"]   # relu | gelu | leaky_relu | tanh | silu | sigmoid
//!
//! [training]
//! epochs = 1
//! batch_size = 64
//! lr = 1e-3
//! optimizer = "adam"              # sgd | adam | adamw
//! train_subset = 10000            # first N training images (omit: all 60,000)
//! val = 1000                      # of those, held out for validation
//! seed = 0
//! ```

use crate::backend::cpu::Cpu;
use crate::config::{at_least_one, named, optimizer_kind, positive, ModelSpec};
use crate::error::{Error, Result};
use crate::footprint;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Settings every run of a grid shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Base {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per step.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f32,
    /// `sgd`, `adam` or `adamw`.
    pub optimizer: String,
    /// Train on only the first N training images.
    pub train_subset: Option<usize>,
    /// Training images held out for validation.
    pub val: usize,
    /// Seed of every run.
    pub seed: u64,
}

impl Default for Base {
    /// The chapter's recipe: Adam 1e-3, batch 64, 5 epochs, 5,000 validation images.
    fn default() -> Self {
        Base {
            epochs: 5,
            batch_size: 64,
            lr: 1e-3,
            optimizer: "adam".into(),
            train_subset: None,
            val: 5000,
            seed: 0,
        }
    }
}

/// `[training]` of a grid file: every key optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseFile {
    epochs: Option<usize>,
    batch_size: Option<usize>,
    lr: Option<f32>,
    optimizer: Option<String>,
    train_subset: Option<usize>,
    val: Option<usize>,
    seed: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridFile {
    layers: Option<Vec<usize>>,
    hidden: Option<Vec<usize>>,
    dropout: Option<Vec<f32>>,
    activation: Option<Vec<String>>,
    #[serde(default)]
    training: BaseFile,
}

/// Images in MNIST's training set (what `train_subset` and `val` divide).
const MNIST_TRAIN: usize = 60_000;

/// Activations a grid may name (TOML layer types of [`crate::config::LayerSpec`]).
pub const ACTIVATIONS: &[&str] = &["relu", "gelu", "leaky_relu", "tanh", "silu", "sigmoid"];

/// The axes of a grid and the settings its runs share.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Linear layers per network, the output layer included (3 = two hidden layers).
    pub layers: Vec<usize>,
    /// Width of every hidden layer.
    pub hidden: Vec<usize>,
    /// Dropout probability after every hidden activation.
    pub dropout: Vec<f32>,
    /// Hidden activation.
    pub activation: Vec<String>,
    /// Shared training settings.
    pub base: Base,
}

impl Grid {
    /// The chapter's challenge: 3 × 3 × 4 × 3 = 108 MLPs.
    pub fn chapter() -> Grid {
        Grid {
            layers: vec![3, 4, 5],
            hidden: vec![128, 256, 512],
            dropout: vec![0.0, 0.3, 0.5, 0.7],
            activation: vec!["relu".into(), "gelu".into(), "leaky_relu".into()],
            base: Base::default(),
        }
    }

    /// A grid file (see the module docs); omitted keys keep the chapter's values.
    pub fn parse(text: &str, origin: &Path) -> Result<Grid> {
        let f: GridFile = toml::from_str(text).map_err(|e| Error::BadData {
            path: origin.to_path_buf(),
            reason: format!("not a sweep grid: {e}"),
        })?;
        let mut g = Grid::chapter();
        g.layers = f.layers.unwrap_or(g.layers);
        g.hidden = f.hidden.unwrap_or(g.hidden);
        g.dropout = f.dropout.unwrap_or(g.dropout);
        g.activation = f.activation.unwrap_or(g.activation);
        let t = f.training;
        let b = &mut g.base;
        b.epochs = t.epochs.unwrap_or(b.epochs);
        b.batch_size = t.batch_size.unwrap_or(b.batch_size);
        b.lr = t.lr.unwrap_or(b.lr);
        b.optimizer = t.optimizer.unwrap_or(b.optimizer.clone());
        b.train_subset = t.train_subset.or(b.train_subset);
        b.val = t.val.unwrap_or(b.val);
        b.seed = t.seed.unwrap_or(b.seed);
        Ok(g)
    }

    /// Checks every axis value before any run starts.
    pub fn validate(&self) -> Result<()> {
        let empty = |name: &str, n: usize| {
            if n == 0 {
                Err(Error::config(
                    format!("sweep axis `{name}`"),
                    "has no values",
                ))
            } else {
                Ok(())
            }
        };
        empty("layers", self.layers.len())?;
        empty("hidden", self.hidden.len())?;
        empty("dropout", self.dropout.len())?;
        empty("activation", self.activation.len())?;
        if let Some(l) = self.layers.iter().find(|&&l| l < 2) {
            return Err(Error::config(
                "sweep axis `layers`",
                format!("{l}: an MLP needs at least 2 Linear layers (one hidden)"),
            ));
        }
        if self.hidden.contains(&0) {
            return Err(Error::config("sweep axis `hidden`", "0 is not a width"));
        }
        if let Some(p) = self.dropout.iter().find(|p| !(0.0..1.0).contains(*p)) {
            return Err(Error::config(
                "sweep axis `dropout`",
                format!("{p} is not in [0, 1)"),
            ));
        }
        if let Some(a) = self
            .activation
            .iter()
            .find(|a| !ACTIVATIONS.contains(&a.as_str()))
        {
            return Err(Error::config(
                "sweep axis `activation`",
                format!("`{a}` is not one of {}", ACTIVATIONS.join(", ")),
            ));
        }
        // The shared settings, checked here rather than by the first run:
        // a sweep that cannot train fails before it creates anything.
        let b = &self.base;
        let name = |k: &str| format!("sweep --{} ([training] {k})", k.replace('_', "-"));
        at_least_one(&name("epochs"), b.epochs)?;
        at_least_one(&name("batch_size"), b.batch_size)?;
        positive(&name("lr"), b.lr)?;
        optimizer_kind(&b.optimizer).map_err(named(&name("optimizer")))?;
        let images = match b.train_subset {
            Some(n) if n == 0 || n > MNIST_TRAIN => {
                return Err(Error::config(
                    name("train_subset"),
                    format!("{n} is not in 1..={MNIST_TRAIN} (MNIST's training set)"),
                ))
            }
            Some(n) => n,
            None => MNIST_TRAIN,
        };
        if b.val >= images {
            return Err(Error::config(
                name("val"),
                format!(
                    "{} validation images leave none of the {images} training images to train on; \
                     use fewer (e.g. {})",
                    b.val,
                    images / 10
                ),
            ));
        }
        Ok(())
    }

    /// Fails when the largest run's model needs more memory than the
    /// machine has available (`host`: buffers in host memory; see
    /// [`crate::footprint`]), before the first run starts.
    pub fn check_memory(&self, host: bool) -> Result<()> {
        let Some(limit) = footprint::limit(None, host) else {
            return Ok(());
        };
        let slots = optimizer_kind(&self.base.optimizer)?.slots();
        // The eval batch is 1000 (TrainConfig::mnist_default), so the
        // largest batch is at least that.
        let batch = self.base.batch_size.max(1000);
        for r in self.runs() {
            let spec = ModelSpec::parse(&r.model_toml(), &r.name())?;
            let layers = spec.build_layers::<Cpu>()?;
            let need = footprint::estimate(&layers, &spec.input, batch, slots)?;
            footprint::check(&need, Some(limit)).map_err(|e| match e {
                Error::TooLarge {
                    what,
                    needed,
                    detail,
                    limit,
                    limit_name,
                    ..
                } => Error::TooLarge {
                    what: format!("sweep run {}: {what}", r.name()),
                    needed,
                    detail,
                    limit,
                    limit_name,
                    hint: "use a smaller --hidden or fewer --layers",
                },
                other => other,
            })?;
        }
        Ok(())
    }

    /// Every point of the grid, layers outermost and activation innermost.
    pub fn runs(&self) -> Vec<RunConfig> {
        let mut out = Vec::new();
        for &layers in &self.layers {
            for &hidden in &self.hidden {
                for &dropout in &self.dropout {
                    for activation in &self.activation {
                        out.push(RunConfig {
                            index: out.len(),
                            layers,
                            hidden,
                            dropout,
                            activation: activation.clone(),
                        });
                    }
                }
            }
        }
        out
    }
}

/// One point of a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Position in the grid (shards split on it).
    pub index: usize,
    /// Linear layers, the output layer included.
    pub layers: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Dropout after each hidden activation.
    pub dropout: f32,
    /// Hidden activation.
    pub activation: String,
}

/// MNIST: 784 inputs, 10 classes.
const INPUTS: usize = 28 * 28;
const CLASSES: usize = 10;

impl RunConfig {
    /// A file-name-safe name, e.g. `l3-h256-d0.5-relu`.
    pub fn name(&self) -> String {
        format!(
            "l{}-h{}-d{}-{}",
            self.layers, self.hidden, self.dropout, self.activation
        )
    }

    /// Weights and biases of the network: 784 → hidden × (layers − 1) → 10.
    pub fn parameter_count(&self) -> usize {
        let mut dims = vec![INPUTS];
        dims.extend(std::iter::repeat_n(self.hidden, self.layers - 1));
        dims.push(CLASSES);
        dims.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// The model description `lasagna train --model FILE` reads.
    pub fn model_toml(&self) -> String {
        let mut s = format!(
            "# lasagna sweep: {} ({} Linear layers, hidden {}, dropout {}, {})\n\
             input = [1, 28, 28]\n\n[[layers]]\ntype = \"flatten\"\n",
            self.name(),
            self.layers,
            self.hidden,
            self.dropout,
            self.activation
        );
        for _ in 1..self.layers {
            s += &format!(
                "\n[[layers]]\ntype = \"linear\"\nout = {}\n\n[[layers]]\ntype = \"{}\"\n",
                self.hidden, self.activation
            );
            if self.dropout > 0.0 {
                s += &format!("\n[[layers]]\ntype = \"dropout\"\np = {}\n", self.dropout);
            }
        }
        s += &format!("\n[[layers]]\ntype = \"linear\"\nout = {CLASSES}\n");
        s
    }
}

/// `--shard K/N` → `(K, N)`, with 1 ≤ K ≤ N.
pub fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let bad = |why: &str| {
        Error::config(
            "--shard",
            format!("`{s}` {why}. HINT: K/N with 1 <= K <= N, e.g. --shard 2/4 runs the second of four shards"),
        )
    };
    let (k, n) = s.split_once('/').ok_or_else(|| bad("is not K/N"))?;
    let k: usize = k.trim().parse().map_err(|_| bad("has no number K"))?;
    let n: usize = n.trim().parse().map_err(|_| bad("has no number N"))?;
    if n == 0 || k == 0 || k > n {
        return Err(bad("is out of range"));
    }
    Ok((k, n))
}

/// Whether grid point `index` belongs to shard `k` of `n` (round robin, so
/// every shard gets a mix of small and large networks).
pub fn in_shard(index: usize, k: usize, n: usize) -> bool {
    index % n == k - 1
}

/// One line of the summary table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Run name.
    pub name: String,
    /// Trainable parameters.
    pub params: usize,
    /// Validation accuracy after the last epoch.
    pub val_acc: Option<f32>,
    /// Validation loss after the last epoch.
    pub val_loss: Option<f32>,
    /// Test accuracy (none when the run failed).
    pub test_acc: Option<f32>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Diagnosis verdict (`healthy`, `overfitting`, ...).
    pub diagnosis: String,
}

fn f32_at(v: &Value, key: &str) -> Option<f32> {
    v.get(key).and_then(Value::as_f64).map(|x| x as f32)
}

impl Row {
    /// The row of a run's metrics JSON (as `lasagna train --metrics` or a
    /// sweep writes it); the name is the sweep's, else the file's stem.
    pub fn from_json(path: &Path, v: &Value) -> Result<Row> {
        let bad = |reason: &str| {
            Error::BadData {
            path: path.to_path_buf(),
            reason: format!("{reason}. HINT: pass metrics files written by `lasagna train --metrics` or `lasagna sweep`"),
        }
        };
        let epochs = v
            .get("epochs")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `epochs` array"))?;
        let last = epochs.last();
        let name = v
            .pointer("/sweep/name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Ok(Row {
            name,
            params: v
                .get("parameters")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("no `parameters` count"))? as usize,
            val_acc: last.and_then(|e| f32_at(e, "val_acc")),
            val_loss: last.and_then(|e| f32_at(e, "val_loss")),
            test_acc: f32_at(v, "test_accuracy"),
            seconds: v
                .get("seconds_total")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            diagnosis: v
                .pointer("/diagnosis/verdict")
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string(),
        })
    }
}

/// Reads and parses a JSON file, with the path in every error.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = crate::read::text_file(path, crate::read::MAX_TEXT_BYTES)?;
    serde_json::from_str(&text).map_err(|e| Error::BadData {
        path: path.to_path_buf(),
        reason: format!("not valid JSON: {e}"),
    })
}

/// The sweep results (`*.json` with a `sweep` object) in `dir`, by file
/// name; hidden files (temps and locks of concurrent sweeps) are not.
pub fn result_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let p = entry.map_err(io)?.path();
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && p.extension().is_some_and(|e| e == "json") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Sorts best first: validation accuracy descending (runs without one last), then name.
pub fn sort_rows(rows: &mut [Row]) {
    rows.sort_by(|a, b| {
        let key = |r: &Row| r.val_acc.filter(|v| v.is_finite()).unwrap_or(-1.0);
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.name.cmp(&b.name))
    });
}

fn pct(v: Option<f32>) -> String {
    v.map_or("-".into(), |x| format!("{:.2} %", 100.0 * x))
}

fn opt(v: Option<f32>, digits: usize) -> String {
    v.map_or(String::new(), |x| format!("{x:.digits$}"))
}

/// The table as Markdown (rows in the order given).
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| # | run | params | val acc | val loss | test acc | seconds | diagnosis |\n\
         |---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for (i, r) in rows.iter().enumerate() {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} | {} |\n",
            i + 1,
            r.name,
            r.params,
            pct(r.val_acc),
            r.val_loss.map_or("-".into(), |x| format!("{x:.4}")),
            pct(r.test_acc),
            r.seconds,
            r.diagnosis
        );
    }
    s
}

/// The table as CSV: fractions, not percentages; `seconds` is the only column
/// that differs between two runs of the same grid.
pub fn csv(rows: &[Row]) -> String {
    let mut s = String::from("run,params,val_acc,val_loss,test_acc,seconds,diagnosis\n");
    for r in rows {
        s += &format!(
            "{},{},{},{},{},{:.2},{}\n",
            r.name,
            r.params,
            opt(r.val_acc, 4),
            opt(r.val_loss, 4),
            opt(r.test_acc, 4),
            r.seconds,
            r.diagnosis
        );
    }
    s
}

/// A run as [`read_csv`] reads it back: name, validation accuracy, diagnosis.
pub type CsvRun = (String, Option<f32>, String);

/// Reads back the `run`, `val_acc` and (if present) `diagnosis` columns of [`csv`]'s output.
pub fn read_csv(path: &Path, text: &str) -> Result<Vec<CsvRun>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| Error::BadData {
                path: path.to_path_buf(),
                reason: format!(
                    "no `{name}` column in the header (a `lasagna sweep` summary.csv has one)"
                ),
            })
    };
    let (run, acc) = (col("run")?, col("val_acc")?);
    let diag = col("diagnosis").ok();
    let mut out = Vec::new();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(name), Some(v)) = (f.get(run), f.get(acc)) else {
            return Err(Error::BadData {
                path: path.to_path_buf(),
                reason: format!("line {} has {} fields", i + 2, f.len()),
            });
        };
        let v = v.trim();
        let val = if v.is_empty() {
            None
        } else {
            Some(v.parse().map_err(|_| Error::BadData {
                path: path.to_path_buf(),
                reason: format!("line {}: val_acc `{v}` is not a number", i + 2),
            })?)
        };
        let d = diag.and_then(|i| f.get(i)).unwrap_or(&"-");
        out.push((name.to_string(), val, d.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chapter_grid_has_108_runs_with_unique_names() {
        let g = Grid::chapter();
        g.validate().expect("valid");
        let runs = g.runs();
        assert_eq!(runs.len(), 108);
        let mut names: Vec<String> = runs.iter().map(RunConfig::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 108);
        assert!(runs.iter().enumerate().all(|(i, r)| r.index == i));
    }

    #[test]
    fn a_run_model_builds_with_the_counted_parameters() {
        let r = RunConfig {
            index: 0,
            layers: 3,
            hidden: 128,
            dropout: 0.3,
            activation: "gelu".into(),
        };
        let spec = crate::config::ModelSpec::parse(&r.model_toml(), "sweep").expect("parses");
        let layers = spec
            .build_layers::<crate::backend::cpu::Cpu>()
            .expect("builds");
        // flatten + 2 × (linear, gelu, dropout) + linear
        assert_eq!(layers.len(), 8);
        assert_eq!(
            r.parameter_count(),
            784 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10
        );
        assert_eq!(r.name(), "l3-h128-d0.3-gelu");
    }

    #[test]
    fn shards_partition_the_grid() {
        let n = 4;
        for i in 0..20 {
            assert_eq!((1..=n).filter(|&k| in_shard(i, k, n)).count(), 1);
        }
        assert_eq!(parse_shard("2/4").expect("ok"), (2, 4));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", ""] {
            let e = parse_shard(bad).expect_err(bad).to_string();
            assert!(e.contains("--shard") && e.contains("HINT"), "{e}");
        }
    }

    #[test]
    fn a_grid_file_overrides_only_what_it_names() {
        let g = Grid::parse(
            "hidden = [32]\nactivation = [\"tanh\"]\n[training]\nepochs = 1\ntrain_subset = 2000\n",
            Path::new("g.toml"),
        )
        .expect("parses");
        assert_eq!(g.hidden, vec![32]);
        assert_eq!(g.layers, vec![3, 4, 5]);
        assert_eq!(g.base.epochs, 1);
        assert_eq!(g.base.train_subset, Some(2000));
        assert_eq!(g.base.lr, 1e-3);
        assert_eq!(g.runs().len(), 3 * 4);
        let e = Grid::parse("hiden = [1]", Path::new("g.toml")).expect_err("typo");
        assert!(e.to_string().contains("g.toml"), "{e}");
        let mut bad = Grid::chapter();
        bad.activation = vec!["swish".into()];
        assert!(bad.validate().is_err());
        bad = Grid::chapter();
        bad.dropout = vec![1.0];
        assert!(bad.validate().is_err());
    }

    #[test]
    fn shared_settings_that_cannot_train_are_refused_before_any_run() {
        let refused = |edit: &dyn Fn(&mut Base), needle: &str| {
            let mut g = Grid::chapter();
            edit(&mut g.base);
            let e = g.validate().expect_err(needle).to_string();
            assert!(e.contains(needle), "{e}");
        };
        refused(&|b| b.epochs = 0, "--epochs");
        refused(&|b| b.batch_size = 0, "--batch-size");
        refused(&|b| b.lr = -1.0, "--lr");
        refused(&|b| b.optimizer = "adagrad".into(), "--optimizer");
        refused(&|b| b.train_subset = Some(0), "--train-subset");
        refused(&|b| b.val = 60_000, "--val");
        refused(
            &|b| {
                b.train_subset = Some(500);
                b.val = 500;
            },
            "--val",
        );
        let mut g = Grid::chapter();
        g.hidden = vec![100_000];
        let e = g
            .check_memory(true)
            .map_or_else(|e| e.to_string(), |_| String::new());
        // Three layers of width 10^5: 10^10 parameters, about 190 GiB with Adam.
        if crate::footprint::mem_available().is_some_and(|m| m < 100 << 30) {
            assert!(e.contains("bytes") && e.contains("h100000"), "{e}");
        } else {
            crate::skip::skipped("the memory part: no MemAvailable, or over 100 GiB of it");
        }
    }

    #[test]
    fn rows_sort_by_validation_accuracy_and_round_trip_through_csv() {
        let row = |name: &str, acc: Option<f32>| Row {
            name: name.into(),
            params: 10,
            val_acc: acc,
            val_loss: Some(0.1),
            test_acc: acc,
            seconds: 1.0,
            diagnosis: "healthy".into(),
        };
        let mut rows = vec![row("a", Some(0.9)), row("b", None), row("c", Some(0.95))];
        sort_rows(&mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
        let back = read_csv(Path::new("s.csv"), &csv(&rows)).expect("reads");
        assert_eq!(
            back[0],
            ("c".to_string(), Some(0.95), "healthy".to_string())
        );
        assert_eq!(back[2].1, None);
        assert!(markdown(&rows).contains("| 1 | c | 10 | 95.00 % |"));
    }

    #[test]
    fn result_files_leave_out_temporary_and_lock_files() {
        let d = std::env::temp_dir().join(format!("lasagna-results-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for f in [
            "a.json",
            ".a.json.lock",
            ".b.json.1.0.lasagna-tmp",
            ".c.json",
        ] {
            std::fs::write(d.join(f), b"{}").unwrap();
        }
        let files = result_files(&d).unwrap();
        std::fs::remove_dir_all(&d).ok();
        assert_eq!(files, [d.join("a.json")]);
    }
}
