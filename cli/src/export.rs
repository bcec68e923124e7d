//! `lasagna export`: a trained model file to a deployment file.

use clap::Args;
use lasagna_trainer::error::{Error, Result};
use lasagna_trainer::export::{deploy, WeightType};
use lasagna_trainer::quantize::{export_int8, DEFAULT_CALIBRATION};
use std::path::PathBuf;

/// Fold BatchNorm into the layer before it, drop training-only ops, plan the
/// activation arena, and store the model as f32, f16 or int8.
#[derive(Args)]
pub struct ExportArgs {
    /// The trained model file (`lasagna train --out`).
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// How the deployment file stores the model.
    ///
    /// int8 is post-training quantization: weights and activations become
    /// 8-bit integers, about a quarter of the f32 bytes, with integer arithmetic on
    /// the device. Weights are quantized per channel: each output channel (a
    /// row of a Linear, a filter of a Conv2d) gets its own scale, so a filter
    /// with small weights keeps its precision next to one with large weights.
    /// Activations are quantized per tensor: one scale and zero point for the
    /// whole tensor, chosen by calibration, which runs the first
    /// --calibration training images through the BatchNorm-folded f32 model
    /// and records the range of every activation. LSTM and Embedding models
    /// cannot be int8; use f16 for them.
    #[arg(long, value_enum, default_value_t = Quantize::F32)]
    pub quantize: Quantize,
    /// int8 only: calibrate activation ranges on the first N MNIST training
    /// images (in file order, so the export is reproducible). More images
    /// give ranges closer to what the model will see; outliers widen them
    /// [default: 1000].
    #[arg(long, value_name = "N")]
    pub calibration: Option<usize>,
    /// int8 only: folder with the MNIST IDX files used for calibration
    /// [default: $LASAGNA_DATA, else data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Where to write the deployment file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `--quantize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Quantize {
    /// 32-bit float weights and activations: exact.
    F32,
    /// 16-bit float weights (half the bytes); the engine computes in f32.
    F16,
    /// 8-bit integer weights (per output channel) and activations
    /// (per tensor, calibrated): a quarter of the bytes, integer arithmetic.
    Int8,
}

pub fn run(a: ExportArgs) -> Result<()> {
    // Refused before any work: writing over the input, an unwritable
    // --out, or one another process is writing.
    lasagna_files::check_distinct(&[("--model-file", &a.model_file), ("--out", &a.out)])?;
    let _locks = lasagna_files::claim(&[("--out", &a.out)])?;
    let bytes = lasagna_trainer::read::model_file(&a.model_file)?;
    let (out, report, calibrated) = match a.quantize {
        Quantize::F32 | Quantize::F16 => {
            for (given, flag) in [
                (a.calibration.is_some(), "--calibration"),
                (a.data.is_some(), "--data"),
            ] {
                if given {
                    return Err(Error::config(
                        flag,
                        "only int8 exports are calibrated. HINT: add --quantize int8, or drop it",
                    ));
                }
            }
            let w = if a.quantize == Quantize::F32 {
                WeightType::F32
            } else {
                WeightType::F16
            };
            let (out, report) = deploy(&bytes, w)?;
            (out, report, None)
        }
        Quantize::Int8 => {
            let n = a.calibration.unwrap_or(DEFAULT_CALIBRATION);
            let (out, report) = export_int8(&a.model_file, &bytes, n, a.data.as_deref())?;
            (out, report, Some(n))
        }
    };
    lasagna_files::write_atomic(&a.out, &out)?;
    let m = lasagna_format::Model::parse(&out).map_err(|e| Error::ModelFile {
        path: a.out.clone(),
        reason: e.to_string(),
    })?;
    let weights = match a.quantize {
        Quantize::F32 => "f32",
        Quantize::F16 => "f16",
        Quantize::Int8 => "int8",
    };
    let calibrated = calibrated
        .map(|n| format!(", calibrated on {n} images"))
        .unwrap_or_default();
    println!(
        "wrote {} ({} bytes, {weights} weights): {} ops ({} BatchNorm folded), arena {} bytes{calibrated}",
        a.out.display(),
        out.len(),
        report.ops.1,
        report.folded,
        m.arena_bytes()
    );
    Ok(())
}
