#![doc = include_str!("../README.md")]
#![no_std]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(target_endian = "big")]
compile_error!(
    "lasagna-format borrows little-endian data in place; big-endian targets are not supported"
);

#[cfg(feature = "std")]
extern crate std;

/// How a unit test says it skips, so that CI's log lists it (one file for
/// every crate's tests).
#[cfg(all(test, feature = "std"))]
#[allow(clippy::panic)] // Tests fail loudly by design.
#[path = "../../tests/src/skip.rs"]
mod skip;

#[cfg(feature = "std")]
mod aligned;
mod crc;
mod dtype;
mod error;
pub mod layout;
mod op;
mod op_rules;
#[cfg(feature = "std")]
mod read_file;
mod reader;
mod records;
mod shape;
mod strings;
mod tensor;
mod weight_layout;
#[cfg(feature = "std")]
mod writer;

#[cfg(feature = "std")]
pub use aligned::AlignedModel;
pub use dtype::{DType, QuantKind};
pub use error::{Error, Section};
pub use op::{
    Op, OpKind, TensorRole, Window, FLAG_BIAS, FLAG_COUNT_INCLUDE_PAD, FLAG_GELU_TANH,
    FLAG_RETURN_SEQUENCES, FLAG_WEIGHTS_INTERLEAVED,
};
#[cfg(feature = "std")]
pub use read_file::{read_file, ReadFileError};
pub use reader::{Model, OpEntry, Ops, ValueInfo};
pub use shape::{Shape, MAX_RANK};
pub use strings::{check_key, Labels, Meta};
pub use tensor::{Quant, Scales, TensorRef};
pub use weight_layout::{WeightLayout, INTERLEAVE_ROWS};
#[cfg(feature = "std")]
pub use writer::{ModelBuilder, OpSpec, Plan, QuantData, TensorData, ValueType, WriteError};

/// A byte array with 16-byte alignment, so that a model embedded with
/// `include_bytes!` can be borrowed as `&[f32]` in place. Use [`include_model!`].
#[repr(C, align(16))]
pub struct Aligned16<T: ?Sized>(pub T);

/// Embeds a model file with the alignment the zero-copy reader needs:
/// `static MODEL: &[u8] = lasagna_format::include_model!("model.lsn");`
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        static ALIGNED: &$crate::Aligned16<[u8]> = &$crate::Aligned16(*include_bytes!($path));
        &ALIGNED.0
    }};
}
