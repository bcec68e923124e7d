//! `lasagna eval` and `lasagna inspect`.

use super::Device;
use clap::Args;
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
    let b = super::backend(a.device)?;
    let bytes = read_model(&a.model_file)?;
    parse(&a.model_file, &bytes)?;
    let Ok(m) = lasagna_format::Model::parse(&bytes) else {
        return Ok(());
    };
    let (mean, std) = m.normalization();
    let dir = resolve_data_dir(a.data.as_deref());
    let data = load_mnist(&dir, Normalization { mean, std })?;
    let mut model = load_model(&b, &m, 1000)?;
    let want: usize = model.input_shape().iter().product();
    let have: usize = data.test.sample_shape.iter().product();
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
    let test = DeviceData::upload(&b, &data.test)?;
    let e = evaluate(
        &b,
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
        data.test.len(),
        e.loss
    );
    Ok(())
}
