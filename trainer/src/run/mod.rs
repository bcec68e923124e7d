//! The commands of the `lasagna` CLI as library calls: each takes a plain
//! options struct and returns a report, and the CLI only parses arguments
//! into the options and prints what comes back (or what an observer is
//! told while the work goes on).
//!
//! - [`train()`]: `lasagna train` — resolve the model (preset, TOML or
//!   checkpoint), load MNIST, fit, test, write the model, checkpoint and
//!   metrics.
//! - [`EvalSet`]: `lasagna eval` — a model file on the MNIST test set,
//!   through the trainer's layers or the no_std engine.
//! - [`inspect()`]: `lasagna inspect` — a model file's listing.
//!
//! `lasagna export` is [`crate::quantize::export_int8`] and
//! [`crate::export::deploy`].

mod eval;
mod options;
mod predictions;
mod resume;
mod train;

pub use eval::{inspect, EvalOptions, EvalReport, EvalSet, NostdReport};
pub use options::{TrainOptions, DEFAULT_MODEL, DEFAULT_VAL};
pub use predictions::{EvalOutputs, Predictions};
pub use train::{train, Ready, Tested, TrainObserver, TrainReport};
