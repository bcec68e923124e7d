//! The one error type of the crate: what went wrong, at which node, and
//! what to do next.

use core::fmt;

/// What kind of problem an [`OnnxError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bytes are not an ONNX model (protobuf decoding failed).
    Decode,
    /// The model's opset is outside what the importer reads.
    Opset,
    /// An op, attribute or pattern the engine cannot run.
    Unsupported,
    /// A shape the engine cannot plan (dynamic, too large, or inconsistent).
    Shape,
    /// The graph itself is broken: a dangling value, a cycle, a second input.
    Graph,
    /// A tensor's data disagrees with its declared type or shape.
    Tensor,
    /// The `.lsn` side: a file that cannot be read, or a model the writer refuses.
    Model,
}

/// An import or export error with the node it is about and a hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OnnxError {
    /// The class of problem (tests match on it).
    pub kind: ErrorKind,
    /// `name (OpType)` of the node, when one is to blame.
    pub node: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl OnnxError {
    /// An error of `kind` with no node and no hint.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> OnnxError {
        OnnxError {
            kind,
            node: None,
            message: message.into(),
            hint: None,
        }
    }

    /// The same error, blamed on `node`.
    pub fn at(mut self, node: impl Into<String>) -> OnnxError {
        self.node = Some(node.into());
        self
    }

    /// The same error with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> OnnxError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for OnnxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.node {
            write!(f, "node {n}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, ". HINT: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for OnnxError {}

/// `Result` with [`OnnxError`].
pub type Result<T> = core::result::Result<T, OnnxError>;
