#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alu;
mod check;
pub mod cost;
mod decode;
mod device;
mod error;
mod exec;
pub mod inst;
mod lex;
mod memory;
mod meta;
mod options;
mod parse;
mod recording;
mod resources;
mod stats;

pub use device::{Arg, BufId, Device, GraphId, GraphOp, Simulator};
pub use error::{Access, Error, Result, Space, ThreadPos, Uninit};
pub use memory::GLOBAL_BASE;
pub use options::{ApproxError, SimOptions, ENV_SEED, ENV_STRICT};
pub use parse::{parse_module, Kernel, Module, Param};
pub use recording::{LaunchRecord, Recording, Transfers};
pub use resources::{parse_ptxas_report, ResourceUsage, MAX_REGS_PER_BLOCK, MAX_SHARED_NO_OPT_IN};
pub use stats::LaunchStats;
