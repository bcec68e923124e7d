//! Subcommands of the `lasagna` binary.
pub mod deploy;
pub mod eval;
pub mod export;
pub mod info;
pub mod progress;
pub mod train;

use lasagna_trainer::cpu::Cpu;
use lasagna_trainer::error::{Error, Result};

/// `--device`: where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The CPU backend (both cores).
    Cpu,
    /// A CUDA GPU.
    Cuda,
    /// CUDA when a GPU is present, otherwise the CPU.
    Auto,
}

/// The backend for `--device`. This build has no CUDA backend yet, so `auto`
/// falls back to the CPU (and says so) and `cuda` is an error.
pub fn backend(device: Device) -> Result<Cpu> {
    match device {
        Device::Cpu => Ok(Cpu),
        Device::Auto => {
            eprintln!("device: cpu (this build has no CUDA backend)");
            Ok(Cpu)
        }
        Device::Cuda => Err(Error::Backend {
            backend: "cuda".into(),
            reason: "this build has no CUDA backend. HINT: use --device cpu".into(),
        }),
    }
}
