//! The `lasagna` command line: argument parsing, progress bars, charts and
//! messages. The work itself is in the libraries (`lasagna-trainer`,
//! `lasagna-deploy`, `lasagna-onnx`).
mod args;
mod deploy;
mod device;
mod error;
mod eval;
mod export;
mod import;
mod info;
mod plot;
mod progress;
mod sweep;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Lasagna: train small networks, export them to a compact format, run them on microcontrollers.
///
/// Start with `lasagna train --model mlp` (MNIST, about a minute on two cores),
/// then `lasagna eval --model-file model.lsn` and `lasagna inspect model.lsn`;
/// `lasagna deploy --model-file model-int8.lsn --board qemu-m4` runs it on an
/// emulated microcontroller. `lasagna import model.onnx --out model.lsn`
/// brings in a network trained in PyTorch.
#[derive(Parser)]
#[command(name = "lasagna", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads for training and evaluation, the calling one included
    /// [default: $LASAGNA_NUM_THREADS, else $RAYON_NUM_THREADS, else every core].
    /// The same count gives the same bits on every run; another count may
    /// change the last bits of GEMM sums (as in PyTorch or JAX on the CPU).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

/// Sizes the CPU thread pool from `--threads` or the environment, before
/// any work starts, so a bad value is reported rather than ignored.
fn size_thread_pool(threads: Option<u16>) -> Result<(), error::CliError> {
    use lasagna_trainer::backend::cpu::threads;
    let n = match threads {
        Some(n) => Some(usize::from(n)),
        None => threads::threads_from_env()?,
    };
    if let Some(n) = n {
        threads::set_threads(n)?;
    }
    Ok(())
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on MNIST and export it.
    Train(Box<train::TrainArgs>),
    /// Turn a trained model into a deployment file (BatchNorm folded; f32, f16 or int8), or ONNX.
    Export(export::ExportArgs),
    // The help text is ImportArgs' doc comment (the ops it reads, what comes next).
    Import(import::ImportArgs),
    /// Evaluate a model file on the MNIST test set.
    Eval(eval::EvalArgs),
    /// Print a model file's ops, shapes, dtypes, sizes, memory plan and metadata.
    Inspect(eval::InspectArgs),
    // The help text is DeployArgs' doc comment (long: what is measured and how).
    Deploy(Box<deploy::DeployArgs>),
    /// Train a grid of MLPs (the chapter's challenge) and rank them; resumable, shardable.
    Sweep(Box<sweep::SweepArgs>),
    /// Plot training curves (PNG/SVG) of metrics files, or a sweep's bar chart.
    Plot(plot::PlotArgs),
    /// Show the build, the CPU and the CUDA device (or why none is usable).
    Info,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), error::CliError> = match size_thread_pool(cli.threads) {
        Err(e) => Err(e),
        Ok(()) => run(cli.command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), error::CliError> {
    match command {
        Command::Train(a) => train::run(*a).map_err(Into::into),
        Command::Export(a) => export::run(a),
        Command::Import(a) => import::run(a),
        Command::Eval(a) => eval::run(a).map_err(Into::into),
        Command::Inspect(a) => eval::inspect(a).map_err(Into::into),
        Command::Deploy(a) => deploy::run(*a),
        Command::Sweep(a) => sweep::run(*a).map_err(Into::into),
        Command::Plot(a) => plot::run(a).map_err(Into::into),
        Command::Info => info::run().map_err(Into::into),
    }
}
