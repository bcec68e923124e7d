//! `lasagna eval` and `lasagna inspect` as library calls. [`EvalSet::load`]
//! reads and checks the model file and loads the MNIST test set normalized
//! as the model was trained; the set then runs through the trainer's layers
//! on a backend ([`EvalSet::run_on`]) or through the no_std engine
//! ([`EvalSet::run_nostd`]). The split lets a front end pick the backend
//! only once the file and the data are known to be good.

use crate::backend::Backend;
use crate::data::mnist::MNIST_CLASSES;
use crate::data::{load_mnist, resolve_data_dir, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::export::load_model;
use crate::loss::Loss;
use crate::run::predictions::{EvalOutputs, Predictions};
use crate::train::{evaluate_into, DeviceData};
use lasagna_protocol::argmax::{argmax, ordered};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Samples per evaluation batch, and the model's largest batch: the test
/// set in ten batches, as `lasagna train` evaluates it.
const EVAL_BATCH: usize = 1000;

/// Which model file to evaluate, on which data.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// The model file (`lasagna train --out`, or a deployment file).
    pub model_file: PathBuf,
    /// Folder with the MNIST IDX files (see [`resolve_data_dir`]).
    pub data: Option<PathBuf>,
}

/// A checked model file and the MNIST test set, ready to evaluate.
#[derive(Debug)]
pub struct EvalSet {
    path: PathBuf,
    bytes: Vec<u8>,
    test: Dataset,
}

/// The trainer's forward pass on the test set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalReport {
    /// Fraction of test images classified correctly.
    pub accuracy: f32,
    /// Mean cross-entropy.
    pub loss: f32,
    /// Test images.
    pub images: usize,
}

/// The no_std engine on the test set, one image at a time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NostdReport {
    /// Fraction of test images classified correctly.
    pub accuracy: f64,
    /// Mean cross-entropy of the (dequantized) logits.
    pub loss: f64,
    /// Test images.
    pub images: usize,
    /// Whether the model is int8 (else f32 or f16 weights, f32 compute).
    pub int8: bool,
    /// Wall-clock microseconds per image, quantization included.
    pub us_per_image: f64,
    /// The activation arena the engine needs.
    pub arena_bytes: usize,
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<lasagna_format::Model<'a>> {
    lasagna_format::Model::parse(bytes).map_err(|e| Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!(
            "{e}. HINT: re-export it with `lasagna train --out`, or check the copy is complete"
        ),
    })
}

/// `lasagna inspect`: the listing of the model file at `path`
/// ([`crate::inspect::render`]).
pub fn inspect(path: &Path) -> Result<String> {
    let bytes = crate::read::model_file(path)?;
    let m = parse(path, &bytes)?;
    Ok(crate::inspect::render(&m))
}

impl EvalSet {
    /// Reads and parses the model file, then loads MNIST with the model's
    /// normalization. The file is refused before the data is read.
    pub fn load(o: &EvalOptions) -> Result<EvalSet> {
        let bytes = crate::read::model_file(&o.model_file)?;
        let m = parse(&o.model_file, &bytes)?;
        // One output per digit, or the accuracy means nothing (and fewer
        // than 10 fail at the first batch): refused before MNIST loads.
        let outputs: u64 = m
            .output_shape()
            .dims()
            .iter()
            .map(|&d| u64::from(d))
            .product();
        if outputs != MNIST_CLASSES as u64 {
            return Err(Error::config(
                "model output",
                format!(
                    "{} gives {outputs} outputs but MNIST has {MNIST_CLASSES} classes. \
                     HINT: evaluate a model trained on MNIST (`lasagna train --out`)",
                    o.model_file.display()
                ),
            ));
        }
        let (mean, std) = m.normalization();
        let dir = resolve_data_dir(o.data.as_deref());
        let data = load_mnist(&dir, Normalization { mean, std })?;
        Ok(EvalSet {
            path: o.model_file.clone(),
            bytes,
            test: data.test,
        })
    }

    /// True for an int8 file (i8 activations): the trainer's layers compute
    /// in f32 and do not run its integer arithmetic, only
    /// [`EvalSet::run_nostd`] does.
    pub fn is_int8(&self) -> bool {
        lasagna_format::Model::parse(&self.bytes)
            .map(|m| m.ops().any(|e| e.output.dtype == lasagna_format::DType::I8))
            .unwrap_or(false)
    }

    /// The test set through the trainer's forward pass on backend `b`.
    pub fn run_on<B: Backend>(&self, b: &B) -> Result<EvalReport> {
        self.run_on_into(b, None)
    }

    /// [`EvalSet::run_on`], with every image's logits (`--predictions`).
    pub fn run_on_with_predictions<B: Backend>(&self, b: &B) -> Result<(EvalReport, Predictions)> {
        let mut logits = Vec::new();
        let r = self.run_on_into(b, Some(&mut logits))?;
        let per_image = logits.len().checked_div(self.test.len()).unwrap_or(0);
        let p = Predictions {
            labels: self.test.y.clone(),
            per_image,
            outputs: EvalOutputs::Logits(logits),
        };
        Ok((r, p))
    }

    fn run_on_into<B: Backend>(&self, b: &B, logits: Option<&mut Vec<f32>>) -> Result<EvalReport> {
        let m = parse(&self.path, &self.bytes)?;
        let mut model = load_model(b, &m, EVAL_BATCH)?;
        let want: usize = model.input_shape().iter().product();
        let have: usize = self.test.sample_shape.iter().product();
        if want != have {
            return Err(Error::config(
                "model input",
                format!(
                    "{} expects {:?} ({want} values) but MNIST samples have {have}",
                    self.path.display(),
                    model.input_shape()
                ),
            ));
        }
        let test = DeviceData::upload(b, &self.test)?;
        let e = evaluate_into(
            b,
            &mut model,
            &test,
            &Loss::CrossEntropy {
                label_smoothing: 0.0,
            },
            EVAL_BATCH,
            logits,
        )?;
        Ok(EvalReport {
            accuracy: e.accuracy,
            loss: e.loss,
            images: self.test.len(),
        })
    }

    /// Runs the test set through `lasagna-infer`, one image at a time, as a
    /// microcontroller would.
    pub fn run_nostd(&self) -> Result<NostdReport> {
        Ok(self.run_nostd_with_predictions()?.0)
    }

    /// [`EvalSet::run_nostd`], with every image's outputs as the engine
    /// gave them: int8 levels for an int8 model, else f32 logits
    /// (`--predictions`).
    pub fn run_nostd_with_predictions(&self) -> Result<(NostdReport, Predictions)> {
        let (path, test) = (&self.path, &self.test);
        // The engine borrows weights in place, which needs an aligned buffer.
        let aligned = lasagna_format::AlignedModel::new(&self.bytes);
        let engine_err = |e: lasagna_infer::Error| Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!("the no_std engine cannot run it: {e}"),
        };
        let engine = lasagna_infer::Engine::new(&aligned).map_err(engine_err)?;
        // u32 words, so the arena is 4-byte aligned for the engine's f32 and i32 views.
        let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
        let sample = test.sample_len();
        if engine.input_len() != sample {
            return Err(Error::config(
                "model input",
                format!(
                    "{} expects {} values per image, MNIST has {sample}",
                    path.display(),
                    engine.input_len()
                ),
            ));
        }
        let (mut correct, mut loss) = (0usize, 0.0f64);
        // An int8 model takes levels and gives levels: quantize each image with
        // the model's input quantization, dequantize the logits for the loss.
        let mut levels = vec![0i8; sample];
        let mut logits = vec![0.0f32; engine.output_len()];
        let total = test.len() * engine.output_len();
        let (mut all_levels, mut all_logits) = match engine.output_quant() {
            Some(_) => (Vec::with_capacity(total), Vec::new()),
            None => (Vec::new(), Vec::with_capacity(total)),
        };
        let t0 = Instant::now();
        for (i, &label) in test.y.iter().enumerate() {
            let x = test.sample(i).unwrap_or(&[]);
            let (out, best): (&[f32], usize) = match engine.output_quant() {
                Some((scale, zp)) => {
                    engine.quantize_input(x, &mut levels).map_err(engine_err)?;
                    let q = engine.run_i8(arena, &levels).map_err(engine_err)?;
                    all_levels.extend_from_slice(q);
                    for (o, &v) in logits.iter_mut().zip(q) {
                        *o = scale * (i32::from(v) - zp) as f32;
                    }
                    (&logits, argmax(q.iter().map(|&v| i32::from(v))))
                }
                None => {
                    let y = engine.run(arena, x).map_err(engine_err)?;
                    all_logits.extend_from_slice(y);
                    (y, argmax(y.iter().map(|&v| ordered(v))))
                }
            };
            // `best` is the first largest output, as on the device and in
            // `lasagna deploy` (`lasagna_protocol::argmax`).
            correct += (best == label as usize) as usize;
            // Cross-entropy through a max-shifted log-sum-exp, in f64 so
            // 10,000 images sum without losing the small ones.
            let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + out
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            loss += lse - out.get(label as usize).copied().unwrap_or(0.0) as f64;
        }
        let n = test.len().max(1);
        let report = NostdReport {
            accuracy: correct as f64 / n as f64,
            loss: loss / n as f64,
            images: test.len(),
            int8: engine.is_int8(),
            us_per_image: t0.elapsed().as_secs_f64() * 1e6 / n as f64,
            arena_bytes: engine.arena_bytes(),
        };
        let outputs = match engine.output_quant() {
            Some((scale, zero_point)) => EvalOutputs::Levels {
                levels: all_levels,
                scale,
                zero_point,
            },
            None => EvalOutputs::Logits(all_logits),
        };
        let p = Predictions {
            labels: test.y.clone(),
            per_image: engine.output_len(),
            outputs,
        };
        Ok((report, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("lasagna-run-eval-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).ok();
        p
    }

    #[test]
    fn a_truncated_file_is_refused_with_a_hint() {
        let p = temp_file("truncated.lsn", b"garbage\n");
        let e = inspect(&p).err().map(|e| e.to_string()).unwrap_or_default();
        std::fs::remove_file(&p).ok();
        assert!(e.contains("truncated") && e.contains("HINT"), "{e}");
    }

    #[test]
    fn the_model_file_is_refused_before_the_data_is_read() {
        let p = temp_file("bad.lsn", b"garbage\n");
        let r = EvalSet::load(&EvalOptions {
            model_file: p.clone(),
            data: Some(PathBuf::from("/nonexistent/mnist")),
        });
        std::fs::remove_file(&p).ok();
        assert!(matches!(r, Err(Error::ModelFile { .. })), "{r:?}");
    }

    #[test]
    fn a_missing_model_file_names_its_path() {
        let e = inspect(Path::new("/nonexistent/model.lsn"));
        assert!(
            matches!(&e, Err(Error::Io { path, .. }) if path == Path::new("/nonexistent/model.lsn")),
            "{e:?}"
        );
    }
}
