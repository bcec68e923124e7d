#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod alu;
mod decode;
mod device;
mod error;
mod exec;
pub mod inst;
mod lex;
mod memory;
mod parse;
mod stats;

pub use device::{Arg, BufId, Device, Simulator};
pub use error::{Error, Result, Space, ThreadPos};
pub use memory::GLOBAL_BASE;
pub use parse::{parse_module, Kernel, Module, Param};
pub use stats::LaunchStats;
