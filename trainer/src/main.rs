//! The `lasagna` command line.
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Lasagna: train small networks, export them to a compact format, run them on microcontrollers.
#[derive(Parser)]
#[command(name = "lasagna", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a model file's ops, shapes, dtypes, sizes, memory plan and metadata.
    Inspect {
        /// The model file (`.lsn`).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Inspect { file } => {
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            };
            match lasagna_format::Model::parse(&bytes) {
                Ok(m) => {
                    print!("{}", lasagna_trainer::inspect::render(&m));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {} is not a valid model: {e}", file.display());
                    eprintln!("HINT: re-export it with `lasagna export`, or check that the copy is complete.");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
