//! `lasagna eval` and `lasagna inspect`.

use crate::device::{pick, Device, Picked};
use clap::Args;
use lasagna_trainer::error::Result;
use lasagna_trainer::run::{EvalOptions, EvalSet, Predictions};
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
    /// Also write one CSV row per test image, after a header row naming
    /// the columns: `index,label,prediction`, then the outputs: `out0..out9`
    /// (f32 logits), or for an int8 model on `--engine nostd` `scale`,
    /// `zero_point` and `q0..q9` (the int8 output levels; a logit is
    /// `scale * (q - zero_point)`). The trainer's layers compute in f32
    /// whatever the file stores, so they always write logits. f32 values
    /// are the shortest decimals that read back to the same bits.
    /// `prediction` is the argmax of the outputs; a tie goes to the first
    /// (lowest) index, as on the device. A path that cannot be written is
    /// refused before any work.
    #[arg(long, value_name = "FILE")]
    pub predictions: Option<PathBuf>,
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
    // The CSV is refused (or locked) before the model and the data load.
    let _locks = match &a.predictions {
        Some(p) => {
            lasagna_files::check_distinct(&[
                ("--model-file", &a.model_file),
                ("--predictions", p),
            ])?;
            lasagna_files::claim(&[("--predictions", p)])?
        }
        None => Vec::new(),
    };
    let set = EvalSet::load(&EvalOptions {
        model_file: a.model_file.clone(),
        data: a.data.clone(),
    })?;
    let path = a.model_file.display();
    let write = |p: Option<Predictions>| match (&a.predictions, p) {
        (Some(file), Some(p)) => lasagna_files::write_atomic(file, p.to_csv().as_bytes()),
        _ => Ok(()),
    };
    // An int8 file's numbers are its integer arithmetic, which only the
    // no_std engine runs (the trainer's layers would read its levels as
    // f32 weights and score at chance).
    let engine = if a.engine == Engine::Trainer && set.is_int8() {
        println!(
            "{}: an int8 model: evaluated on the no_std engine, the integer arithmetic the device runs",
            a.model_file.display()
        );
        Engine::Nostd
    } else {
        a.engine
    };
    if engine == Engine::Nostd {
        let (r, p) = match a.predictions {
            Some(_) => {
                let (r, p) = set.run_nostd_with_predictions()?;
                (r, Some(p))
            }
            None => (set.run_nostd()?, None),
        };
        println!(
            "{path}: test accuracy {:.2}% ({} images), test loss {:.4} [no_std engine, {}, {:.1} us per image, arena {} bytes]",
            100.0 * r.accuracy,
            r.images,
            r.loss,
            if r.int8 { "int8" } else { "f32" },
            r.us_per_image,
            r.arena_bytes
        );
        write(p)?;
        return Ok(());
    }
    // The device is picked only once the file and the data are known to be good.
    let with = a.predictions.is_some();
    let (r, p) = match pick(a.device)? {
        Picked::Cpu(b) if with => set.run_on_with_predictions(&b).map(|(r, p)| (r, Some(p)))?,
        Picked::Cpu(b) => (set.run_on(&b)?, None),
        #[cfg(feature = "cuda")]
        Picked::Cuda(b) if with => set
            .run_on_with_predictions(&*b)
            .map(|(r, p)| (r, Some(p)))?,
        #[cfg(feature = "cuda")]
        Picked::Cuda(b) => (set.run_on(&*b)?, None),
    };
    println!(
        "{path}: test accuracy {:.2}% ({} images), test loss {:.4}",
        100.0 * r.accuracy,
        r.images,
        r.loss
    );
    write(p)?;
    Ok(())
}
