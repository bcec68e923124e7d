//! `lasagna export`: a trained model file to a deployment file.

use clap::Args;
use lasagna_trainer::error::{Error, Result};
use lasagna_trainer::export::{deploy, WeightType};
use std::path::PathBuf;

/// Fold BatchNorm into the layer before it, drop training-only ops, plan the
/// activation arena, and store weights as f32 or f16.
#[derive(Args)]
pub struct ExportArgs {
    /// The trained model file (`lasagna train --out`).
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// Weight storage: f32 (exact) or f16 (half the bytes, computed in f32).
    #[arg(long, value_enum, default_value_t = WeightType::F32)]
    pub quantize: WeightType,
    /// Where to write the deployment file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let bytes = std::fs::read(&a.model_file).map_err(|source| Error::Io {
        path: a.model_file.clone(),
        source,
    })?;
    let (out, report) = deploy(&bytes, a.quantize)?;
    std::fs::write(&a.out, &out).map_err(|source| Error::Io {
        path: a.out.clone(),
        source,
    })?;
    let m = lasagna_format::Model::parse(&out).map_err(|e| Error::ModelFile {
        path: a.out.clone(),
        reason: e.to_string(),
    })?;
    println!(
        "wrote {} ({} bytes, {} weights): {} ops ({} BatchNorm folded), arena {} bytes",
        a.out.display(),
        out.len(),
        a.quantize.name(),
        report.ops.1,
        report.folded,
        m.arena_bytes()
    );
    Ok(())
}
