//! `lasagna eval` and `lasagna inspect`.

use crate::device::Device;
use clap::Args;
use lasagna_trainer::backend::Backend;
use lasagna_trainer::data::{load_mnist, resolve_data_dir, Normalization};
use lasagna_trainer::error::{Error, Result};
use lasagna_trainer::export::load_model;
use lasagna_trainer::loss::Loss;
use lasagna_trainer::train::{evaluate, DeviceData};
use std::path::{Path, PathBuf};

/// Evaluate a model file on the MNIST test set.
#[derive(Args)]
pub struct EvalArgs {
    /// The model file written by `lasagna train --out`.
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// Folder with the MNIST IDX files [default: $LASAGNA_DATA, else data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Which implementation runs the model: the trainer's layers, or the
    /// no_std engine that runs on microcontrollers (one image at a time).
    #[arg(long, value_enum, default_value_t = Engine::Trainer)]
    pub engine: Engine,
}

/// `--engine`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// The trainer's layers (batched, both cores).
    Trainer,
    /// `lasagna-infer`, the no_std engine, on the host.
    Nostd,
}

/// Inspect a model file.
#[derive(Args)]
pub struct InspectArgs {
    /// The model file (`.lsn`).
    pub file: PathBuf,
}

fn read_model(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse(path: &Path, bytes: &[u8]) -> Result<()> {
    lasagna_format::Model::parse(bytes)
        .map(|_| ())
        .map_err(|e| Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!(
                "{e}. HINT: re-export it with `lasagna train --out`, or check the copy is complete"
            ),
        })
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let bytes = read_model(&a.file)?;
    parse(&a.file, &bytes)?;
    if let Ok(m) = lasagna_format::Model::parse(&bytes) {
        print!("{}", lasagna_trainer::inspect::render(&m));
    }
    Ok(())
}

pub fn run(a: EvalArgs) -> Result<()> {
    let bytes = read_model(&a.model_file)?;
    parse(&a.model_file, &bytes)?;
    let Ok(m) = lasagna_format::Model::parse(&bytes) else {
        return Ok(());
    };
    let (mean, std) = m.normalization();
    let dir = resolve_data_dir(a.data.as_deref());
    let data = load_mnist(&dir, Normalization { mean, std })?;
    if a.engine == Engine::Nostd {
        return eval_nostd(&a.model_file, &bytes, &data.test);
    }
    match crate::device::pick(a.device)? {
        crate::device::Picked::Cpu(b) => eval_on(&b, &a, &m, &data.test),
        #[cfg(feature = "cuda")]
        crate::device::Picked::Cuda(b) => eval_on(&*b, &a, &m, &data.test),
    }
}

/// The test set through the trainer's forward pass on backend `b`.
fn eval_on<B: Backend>(
    b: &B,
    a: &EvalArgs,
    m: &lasagna_format::Model<'_>,
    test_set: &lasagna_trainer::data::Dataset,
) -> Result<()> {
    let mut model = load_model(b, m, 1000)?;
    let want: usize = model.input_shape().iter().product();
    let have: usize = test_set.sample_shape.iter().product();
    if want != have {
        return Err(Error::config(
            "model input",
            format!(
                "{} expects {:?} ({want} values) but MNIST samples have {have}",
                a.model_file.display(),
                model.input_shape()
            ),
        ));
    }
    let test = DeviceData::upload(b, test_set)?;
    let e = evaluate(
        b,
        &mut model,
        &test,
        &Loss::CrossEntropy {
            label_smoothing: 0.0,
        },
        1000,
    )?;
    println!(
        "{}: test accuracy {:.2}% ({} images), test loss {:.4}",
        a.model_file.display(),
        100.0 * e.accuracy,
        test_set.len(),
        e.loss
    );
    Ok(())
}

/// Runs the test set through `lasagna-infer`, one image at a time, as a
/// microcontroller would.
fn eval_nostd(path: &Path, bytes: &[u8], test: &lasagna_trainer::data::Dataset) -> Result<()> {
    // The engine borrows weights in place, which needs an aligned buffer.
    let aligned = lasagna_format::AlignedModel::new(bytes);
    let engine_err = |e: lasagna_infer::Error| Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!("the no_std engine cannot run it: {e}"),
    };
    let engine = lasagna_infer::Engine::new(&aligned).map_err(engine_err)?;
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
    let t0 = std::time::Instant::now();
    for (i, &label) in test.y.iter().enumerate() {
        let x = test.sample(i).unwrap_or(&[]);
        let out: &[f32] = match engine.output_quant() {
            Some((scale, zp)) => {
                engine.quantize_input(x, &mut levels).map_err(engine_err)?;
                let q = engine.run_i8(arena, &levels).map_err(engine_err)?;
                for (o, &v) in logits.iter_mut().zip(q) {
                    *o = scale * (i32::from(v) - zp) as f32;
                }
                &logits
            }
            None => engine.run(arena, x).map_err(engine_err)?,
        };
        let (best, _) = out
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |(bi, bv), (j, &v)| {
                if v > bv {
                    (j, v)
                } else {
                    (bi, bv)
                }
            });
        correct += (best == label as usize) as usize;
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
    println!(
        "{}: test accuracy {:.2}% ({} images), test loss {:.4} [no_std engine, {}, {:.1} us per image, arena {} bytes]",
        path.display(),
        100.0 * correct as f64 / n as f64,
        test.len(),
        loss / n as f64,
        if engine.is_int8() { "int8" } else { "f32" },
        t0.elapsed().as_secs_f64() * 1e6 / n as f64,
        engine.arena_bytes()
    );
    Ok(())
}
