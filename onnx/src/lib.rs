//! ONNX both ways.
//!
//! [`import`] reads the graphs that `torch.onnx.export` writes for the
//! chapter's layers (opsets 13 to 21) and turns them into a `.lsn` model
//! file, refusing by name, with the node and a hint, anything the engine
//! cannot run. [`export`] writes any float `.lsn` model as an ONNX graph
//! (opset 17, or 20 when a GELU needs its tanh form) that ONNX Runtime and
//! Netron open. The protobuf types come from ONNX's own `onnx.proto`,
//! compiled at build time by `protox` and `prost` (`build.rs`).

mod attr;
mod error;
mod export;
mod gather;
mod import;
mod layers;
mod lstm;
mod meta;
mod nodes;
mod patterns;
mod tensor;
mod views;
mod walk;

/// ONNX's schema as Rust types (generated from `proto/onnx.proto`).
pub mod proto {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use error::{ErrorKind, OnnxError, Result};
pub use export::export;
pub use import::{import, ImportOptions, Imported};
pub use meta::{KEY_LABELS, KEY_MEAN, KEY_STD};
