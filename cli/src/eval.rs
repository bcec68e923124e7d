//! `lasagna eval` and `lasagna inspect`.

use crate::device::{pick, Device, Picked};
use clap::Args;
use lasagna_trainer::error::Result;
use lasagna_trainer::run::{EvalOptions, EvalSet};
use std::path::PathBuf;

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

pub fn inspect(a: InspectArgs) -> Result<()> {
    print!("{}", lasagna_trainer::run::inspect(&a.file)?);
    Ok(())
}

pub fn run(a: EvalArgs) -> Result<()> {
    let set = EvalSet::load(&EvalOptions {
        model_file: a.model_file.clone(),
        data: a.data.clone(),
    })?;
    let path = a.model_file.display();
    if a.engine == Engine::Nostd {
        let r = set.run_nostd()?;
        println!(
            "{path}: test accuracy {:.2}% ({} images), test loss {:.4} [no_std engine, {}, {:.1} us per image, arena {} bytes]",
            100.0 * r.accuracy,
            r.images,
            r.loss,
            if r.int8 { "int8" } else { "f32" },
            r.us_per_image,
            r.arena_bytes
        );
        return Ok(());
    }
    // The device is picked only once the file and the data are known to be good.
    let r = match pick(a.device)? {
        Picked::Cpu(b) => set.run_on(&b)?,
        #[cfg(feature = "cuda")]
        Picked::Cuda(b) => set.run_on(&*b)?,
    };
    println!(
        "{path}: test accuracy {:.2}% ({} images), test loss {:.4}",
        100.0 * r.accuracy,
        r.images,
        r.loss
    );
    Ok(())
}
