//! `--device`: which backend runs the work.

use lasagna_trainer::backend::cpu::Cpu;
#[cfg(feature = "cuda")]
use lasagna_trainer::backend::gpu::{driver::CudaDevice, Gpu};
use lasagna_trainer::error::{Error, Result};

/// `--device`: where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The CPU backend (every core, or --threads N).
    Cpu,
    /// A CUDA GPU.
    Cuda,
    /// CUDA when a GPU is present, otherwise the CPU.
    Auto,
}

/// The backend `--device` picked.
pub enum Picked {
    /// The CPU backend.
    Cpu(Cpu),
    /// The CUDA backend on device 0.
    #[cfg(feature = "cuda")]
    Cuda(Box<Gpu<CudaDevice>>),
}

/// The backend for `--device`: `auto` takes CUDA when this build has it and
/// a device answers, otherwise the CPU, and says which on stderr.
pub fn pick(device: Device) -> Result<Picked> {
    match device {
        Device::Cpu => Ok(Picked::Cpu(Cpu)),
        Device::Cuda => cuda().map_err(|reason| Error::Backend {
            backend: "cuda".into(),
            reason: if reason.contains("HINT:") {
                format!("{reason}; or use --device cpu")
            } else {
                format!("{reason}. HINT: use --device cpu, or run `lasagna info`")
            },
        }),
        Device::Auto => match cuda() {
            Ok(p) => {
                eprintln!("device: cuda:0 (auto: a CUDA device answered)");
                Ok(p)
            }
            Err(reason) => {
                eprintln!("device: cpu (auto: {reason})");
                Ok(Picked::Cpu(Cpu))
            }
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda() -> std::result::Result<Picked, String> {
    let dev = CudaDevice::new(0).map_err(|e| e.to_string())?;
    Gpu::new(dev, "cuda:0")
        .map(|g| Picked::Cuda(Box::new(g)))
        .map_err(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> std::result::Result<Picked, String> {
    Err("this build has no CUDA backend (rebuild with --features cuda)".into())
}
