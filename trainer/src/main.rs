//! The `lasagna` command line.
mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Lasagna: train small networks, export them to a compact format, run them on microcontrollers.
///
/// Start with `lasagna train --model mlp` (MNIST, about a minute on two cores),
/// then `lasagna eval --model-file model.lsn` and `lasagna inspect model.lsn`;
/// `lasagna deploy --model-file model-int8.lsn --board qemu-m4` runs it on an
/// emulated microcontroller.
#[derive(Parser)]
#[command(name = "lasagna", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on MNIST and export it.
    Train(Box<cli::train::TrainArgs>),
    /// Turn a trained model into a deployment file (BatchNorm folded; f32, f16 or int8).
    Export(cli::export::ExportArgs),
    /// Evaluate a model file on the MNIST test set.
    Eval(cli::eval::EvalArgs),
    /// Print a model file's ops, shapes, dtypes, sizes, memory plan and metadata.
    Inspect(cli::eval::InspectArgs),
    // The help text is DeployArgs' doc comment (long: what is measured and how).
    Deploy(Box<cli::deploy::DeployArgs>),
    /// Train a grid of MLPs (the chapter's challenge) and rank them; resumable, shardable.
    Sweep(Box<cli::sweep::SweepArgs>),
    /// Plot training curves (PNG/SVG) of metrics files, or a sweep's bar chart.
    Plot(cli::plot::PlotArgs),
    /// Show the build, the CPU and the CUDA device (or why none is usable).
    Info,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Train(a) => cli::train::run(*a),
        Command::Export(a) => cli::export::run(a),
        Command::Eval(a) => cli::eval::run(a),
        Command::Inspect(a) => cli::eval::inspect(a),
        Command::Deploy(a) => cli::deploy::run(*a),
        Command::Sweep(a) => cli::sweep::run(*a),
        Command::Plot(a) => cli::plot::run(a),
        Command::Info => cli::info::run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
