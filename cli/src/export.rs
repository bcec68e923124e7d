//! `lasagna export`: a trained model file to a deployment file, an ONNX
//! file, or both.

use crate::error::CliError;
use clap::Args;
use lasagna_trainer::error::Error;
use lasagna_trainer::export::{deploy, WeightType};
use lasagna_trainer::quantize::{export_int8, DEFAULT_CALIBRATION};
use std::path::PathBuf;

/// Fold BatchNorm into the layer before it, drop training-only ops, plan the
/// activation arena, and store the model as f32, f16 or int8 (--out); or
/// write the model as an ONNX graph (--onnx) for ONNX Runtime, Netron or
/// PyTorch; or both.
#[derive(Args)]
pub struct ExportArgs {
    /// The trained model file (`lasagna train --out`).
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// How the deployment file (--out) stores the model. It does not change
    /// the --onnx file, which is always the trained model in f32: ONNX
    /// Runtime and PyTorch compute in float, and the int8 file's integer
    /// arithmetic is this engine's, not an ONNX graph's; so --quantize
    /// with --onnx alone is refused.
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
    /// Where to write the deployment file (`.lsn`). At least one of --out
    /// and --onnx.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Where to write the trained model as an ONNX graph (opset 17, f32
    /// weights), for ONNX Runtime, Netron or PyTorch. The input
    /// normalization and the labels go into the metadata props
    /// `lasagna.input.mean`, `lasagna.input.std` and `lasagna.labels`;
    /// `lasagna import` reads the file back.
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
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

pub fn run(a: ExportArgs) -> Result<(), CliError> {
    // Refused before any work: no output at all, --quantize with nothing to
    // quantize, writing over the input, two outputs on one file, an
    // unwritable output, or one another process is writing.
    let outputs: Vec<(&str, &std::path::Path)> = [("--out", &a.out), ("--onnx", &a.onnx)]
        .into_iter()
        .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
        .collect();
    if outputs.is_empty() {
        return Err(Error::config(
            "--out/--onnx",
            "neither is given, so there is nothing to write. HINT: add --out FILE.lsn \
             (a deployment file), --onnx FILE.onnx (an ONNX graph), or both",
        )
        .into());
    }
    if a.out.is_none() {
        for (given, flag) in [
            (a.quantize != Quantize::F32, "--quantize"),
            (a.calibration.is_some(), "--calibration"),
            (a.data.is_some(), "--data"),
        ] {
            if given {
                return Err(Error::config(
                    flag,
                    "it shapes the --out file, and there is none: the --onnx file is \
                     always the trained model in f32. HINT: add --out FILE.lsn, or drop it",
                )
                .into());
            }
        }
    }
    let mut named = vec![("--model-file", a.model_file.as_path())];
    named.extend(&outputs);
    lasagna_files::check_distinct(&named)?;
    let _locks = lasagna_files::claim(&outputs)?;
    let bytes = lasagna_trainer::read::model_file(&a.model_file)?;
    // Everything is converted before anything is written: a model the ONNX
    // exporter refuses leaves no half of the outputs behind.
    let onnx = match &a.onnx {
        Some(_) => Some(
            lasagna_onnx::export(&bytes).map_err(|source| CliError::Onnx {
                what: "export as ONNX",
                path: a.model_file.clone(),
                source,
            })?,
        ),
        None => None,
    };
    if let Some(out) = &a.out {
        deployment(&a, &bytes, out)?;
    }
    if let (Some(path), Some(onnx)) = (&a.onnx, onnx) {
        lasagna_files::write_atomic(path, &onnx)?;
        println!(
            "wrote {} ({} bytes, ONNX opset {}, f32)",
            path.display(),
            onnx.len(),
            opset(&onnx)
        );
    }
    Ok(())
}

/// The default-domain opset of ONNX bytes the exporter wrote (17, or 20
/// when a GELU needs its tanh form), read back for the report.
fn opset(onnx: &[u8]) -> String {
    use prost::Message;
    lasagna_onnx::proto::ModelProto::decode(onnx)
        .ok()
        .and_then(|m| {
            m.opset_import
                .iter()
                .find(|o| matches!(o.domain.as_deref(), None | Some("" | "ai.onnx")))
                .and_then(|o| o.version)
        })
        .map_or_else(|| "unknown".to_string(), |v| v.to_string())
}

/// `--out`: the deployment file, f32, f16 or int8.
fn deployment(a: &ExportArgs, bytes: &[u8], out_path: &std::path::Path) -> Result<(), Error> {
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
            let (out, report) = deploy(bytes, w)?;
            (out, report, None)
        }
        Quantize::Int8 => {
            let n = a.calibration.unwrap_or(DEFAULT_CALIBRATION);
            let (out, report) = export_int8(&a.model_file, bytes, n, a.data.as_deref())?;
            (out, report, Some(n))
        }
    };
    lasagna_files::write_atomic(out_path, &out)?;
    let m = lasagna_format::Model::parse(&out).map_err(|e| Error::ModelFile {
        path: out_path.to_path_buf(),
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
        out_path.display(),
        out.len(),
        report.ops.1,
        report.folded,
        m.arena_bytes()
    );
    Ok(())
}
