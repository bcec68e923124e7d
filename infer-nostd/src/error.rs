//! The engine's typed errors: what is wrong, where (op, tensor, byte count),
//! and, where there is one, the fix.

use core::fmt;
use lasagna_format::DType;

/// Everything [`Engine::new`](crate::Engine::new), [`Engine::run`](crate::Engine::run)
/// and [`Engine::run_tokens`](crate::Engine::run_tokens) can reject.
#[derive(Clone, Copy, PartialEq, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The file failed validation in the `lasagna-format` reader.
    Format(lasagna_format::Error),
    /// The model uses an op or a dtype this engine does not run (an int8
    /// LSTM or Embedding, a model mixing f32 and int8 activations).
    Unsupported {
        /// Op index.
        op: u16,
        /// What is not supported.
        what: &'static str,
    },
    /// The model has more ops than the engine's fixed-capacity plan holds
    /// ([`MAX_OPS`](crate::MAX_OPS)).
    TooManyOps {
        /// Ops in the model.
        ops: usize,
        /// The capacity.
        max: usize,
    },
    /// The model has more tensors than the engine's fixed-capacity table
    /// holds ([`MAX_TENSORS`](crate::MAX_TENSORS)).
    TooManyTensors {
        /// Tensors in the model.
        tensors: usize,
        /// The capacity.
        max: usize,
    },
    /// A tensor cannot be borrowed in place because the model buffer is not
    /// aligned in memory. Embed the file with `lasagna_format::include_model!`
    /// (or copy it into a 16-byte aligned buffer).
    Misaligned {
        /// Op index.
        op: u16,
        /// Tensor index in the file's tensor table.
        tensor: u16,
        /// File offset of the tensor's data.
        offset: usize,
        /// Alignment the element type needs.
        align: usize,
    },
    /// The file's memory plan gives an op less scratch than this engine needs
    /// (the exporter must ask [`scratch_bytes`](crate::scratch_bytes)).
    ScratchTooSmall {
        /// Op index.
        op: u16,
        /// Bytes this engine needs.
        needed: usize,
        /// Bytes the plan gives.
        planned: usize,
    },
    /// The arena passed to `run` is smaller than the memory plan.
    ArenaTooSmall {
        /// Bytes needed ([`Engine::arena_bytes`](crate::Engine::arena_bytes)).
        needed: usize,
        /// Bytes passed.
        got: usize,
    },
    /// The arena does not start at a 4-byte boundary (activations are read
    /// in place as `f32`). A `#[repr(align(4))]` wrapper or
    /// `lasagna_format::Aligned16` fixes it.
    ArenaMisaligned {
        /// Bytes needed ([`Engine::arena_bytes`](crate::Engine::arena_bytes)).
        needed: usize,
        /// Alignment required.
        align: usize,
    },
    /// The input has the wrong number of elements.
    InputLength {
        /// Elements the model takes ([`Engine::input_len`](crate::Engine::input_len)).
        expected: usize,
        /// Elements passed.
        got: usize,
    },
    /// The wrong `run` for the model's input: `run` takes `f32` values,
    /// `run_i8` int8 levels, `run_tokens` token ids.
    InputKind {
        /// The model's input dtype.
        model: DType,
        /// The dtype the call passes.
        called: DType,
    },
    /// A token id is outside the first op's embedding table.
    TokenOutOfRange {
        /// Position in the input.
        position: usize,
        /// The id.
        id: i32,
        /// Rows in the table (valid ids are `0..num`).
        num: usize,
    },
    /// The plan does not fit itself (overlapping regions, a missing tensor).
    /// A file that `Model::parse` accepted cannot cause this; it means a bug
    /// in the engine.
    Inconsistent {
        /// Op index.
        op: u16,
        /// What does not fit.
        what: &'static str,
    },
}

impl From<lasagna_format::Error> for Error {
    fn from(e: lasagna_format::Error) -> Self {
        Error::Format(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Format(e) => write!(f, "invalid model file: {e}"),
            Error::Unsupported { op, what } => {
                write!(f, "op {op}: {what} is not supported by this engine")
            }
            Error::TooManyOps { ops, max } => write!(
                f,
                "the model has {ops} ops but the engine's plan holds {max} (raise lasagna_infer::MAX_OPS)"
            ),
            Error::TooManyTensors { tensors, max } => write!(
                f,
                "the model has {tensors} tensors but the engine holds {max} (raise lasagna_infer::MAX_TENSORS)"
            ),
            Error::Misaligned {
                op,
                tensor,
                offset,
                align,
            } => write!(
                f,
                "op {op}: tensor {tensor} (file offset {offset}) is not {align}-byte aligned in memory; \
                 embed the model with `lasagna_format::include_model!` or copy it into a 16-byte aligned buffer"
            ),
            Error::ScratchTooSmall { op, needed, planned } => write!(
                f,
                "op {op}: the memory plan gives {planned} scratch bytes but the engine needs {needed} \
                 (re-export the model with this version of `lasagna export`; exporters must ask lasagna_infer::scratch_bytes or scratch_bytes_int8)"
            ),
            Error::ArenaTooSmall { needed, got } => {
                write!(f, "the arena has {got} bytes but the model needs {needed}")
            }
            Error::ArenaMisaligned { needed, align } => write!(
                f,
                "the arena must start at a {align}-byte boundary (and hold {needed} bytes)"
            ),
            Error::InputLength { expected, got } => {
                write!(f, "the input has {got} elements but the model takes {expected}")
            }
            Error::InputKind { model, called } => {
                let call = |d: DType| match d {
                    DType::I32 => "run_tokens",
                    DType::I8 => "run_i8",
                    _ => "run",
                };
                write!(
                    f,
                    "the model's input is {model}, so call `{}`, not `{}`",
                    call(model),
                    call(called)
                )
            }
            Error::TokenOutOfRange { position, id, num } => write!(
                f,
                "token {position} is id {id}, outside the embedding table's 0..{num}"
            ),
            Error::Inconsistent { op, what } => {
                write!(f, "op {op}: internal plan error ({what}); please report this bug")
            }
        }
    }
}

impl core::error::Error for Error {}
