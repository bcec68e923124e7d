//! The reader's typed errors. Each names what is wrong and where, so a tool
//! can point at the byte, op or tensor at fault.

use crate::dtype::DType;
use crate::op::OpKind;
use crate::shape::Shape;
use core::fmt;

/// Which part of the file an error is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub enum Section {
    /// The 64-byte header.
    Header,
    /// The op table.
    Ops,
    /// The value (activation memory plan) table.
    Values,
    /// The tensor table.
    Tensors,
    /// Labels and metadata.
    Strings,
    /// Tensor data and quantization blocks.
    Data,
}

/// Everything the reader can reject. Offsets are bytes from the start of the file.
#[derive(Clone, Copy, PartialEq, Debug)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before a structure that must be present.
    Truncated {
        /// Section being read.
        section: Section,
        /// Bytes the structure needs (end offset).
        needed: u64,
        /// Bytes available.
        available: usize,
    },
    /// The first four bytes are not `LSNA`.
    BadMagic {
        /// The bytes found.
        found: [u8; 4],
    },
    /// The structural version is not one this reader understands.
    UnsupportedVersion {
        /// Version in the file.
        found: u16,
        /// Version this reader supports.
        supported: u16,
    },
    /// The header's file size differs from the buffer length.
    FileSize {
        /// Size the header states.
        header: u32,
        /// Length of the buffer.
        actual: usize,
    },
    /// The CRC-32 over bytes 16.. does not match the stored one.
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A reserved or padding byte is not zero.
    NonZeroReserved {
        /// Offset of the byte.
        offset: usize,
    },
    /// A section offset stored in the header is not where the counts put it.
    SectionOffset {
        /// Section concerned.
        section: Section,
        /// Offset derived from the counts.
        expected: u64,
        /// Offset stored.
        found: u64,
    },
    /// A header field is out of range.
    BadHeader {
        /// The field's name.
        field: &'static str,
    },
    /// The model has no ops.
    NoOps,
    /// An op kind code this reader does not know.
    UnknownOpKind {
        /// Op index.
        op: u16,
        /// The code.
        code: u8,
    },
    /// An op record is not in canonical form (unknown flag bits, non-zero unused bytes).
    NonCanonicalOp {
        /// Op index.
        op: u16,
        /// The op's kind.
        kind: OpKind,
    },
    /// An op parameter is out of range.
    BadOpParam {
        /// Op index.
        op: u16,
        /// The op's kind.
        kind: OpKind,
        /// The parameter's name.
        param: &'static str,
    },
    /// An op does not accept the shape produced by the op before it.
    ShapeMismatch {
        /// Op index.
        op: u16,
        /// The op's kind.
        kind: OpKind,
        /// The input shape it received.
        input: Shape,
        /// What the op requires.
        reason: &'static str,
    },
    /// An op has the wrong number of tensors, or they are not the next ones in the table.
    TensorCount {
        /// Op index.
        op: u16,
        /// The op's kind.
        kind: OpKind,
        /// Count (or first index) the op requires.
        expected: u16,
        /// Count (or first index) in the record.
        found: u16,
    },
    /// The tensor table has tensors that no op uses.
    UnusedTensors {
        /// Tensors used by ops.
        used: u16,
        /// Tensors in the table.
        total: u16,
    },
    /// A tensor's shape is not what its op requires.
    TensorShape {
        /// Op index.
        op: u16,
        /// Tensor index.
        tensor: u16,
        /// The tensor's name within the op.
        name: &'static str,
        /// Required shape.
        expected: Shape,
        /// Stored shape.
        found: Shape,
    },
    /// A field of a tensor record is invalid.
    BadTensor {
        /// Tensor index.
        tensor: u16,
        /// What is wrong.
        field: &'static str,
    },
    /// A tensor's dtype is not allowed for its role in the op.
    TensorDtype {
        /// Tensor index.
        tensor: u16,
        /// The tensor's name within the op.
        name: &'static str,
        /// The dtype stored.
        dtype: DType,
    },
    /// A tensor or quantization block is not at the canonical offset in the data section.
    DataLayout {
        /// Tensor index.
        tensor: u16,
        /// Offset required.
        expected: u64,
        /// Offset stored.
        found: u64,
    },
    /// A value (activation) record is invalid.
    BadValue {
        /// Value index (0 is the input, `i + 1` the output of op `i`).
        value: u16,
        /// What is wrong.
        field: &'static str,
    },
    /// A value lies outside the arena, or overlaps another live buffer.
    Arena {
        /// Op during which the conflict happens.
        op: u16,
        /// What conflicts.
        what: &'static str,
    },
    /// A label or metadata string is malformed.
    BadString {
        /// Entry index within labels or metadata.
        index: u16,
        /// What is wrong.
        reason: &'static str,
    },
    /// There are labels, but not one per output element.
    LabelCount {
        /// Labels stored.
        labels: u16,
        /// Output elements.
        outputs: u64,
    },
    /// Bytes follow the last data block.
    TrailingBytes {
        /// Where the file should end.
        end: u64,
        /// Length of the file.
        len: usize,
    },
    /// A slice is not aligned for a zero-copy cast (the buffer itself is misaligned).
    Misaligned {
        /// Offset of the data.
        offset: usize,
        /// Alignment needed.
        align: usize,
    },
    /// The data was requested as another dtype than it is stored in.
    WrongDtype {
        /// dtype requested.
        requested: DType,
        /// dtype stored.
        stored: DType,
    },
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Header => "header",
            Section::Ops => "op table",
            Section::Values => "value table",
            Section::Tensors => "tensor table",
            Section::Strings => "labels/metadata",
            Section::Data => "data section",
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Error::*;
        match *self {
            Truncated { section, needed, available } => write!(
                f,
                "file truncated in the {section}: needs {needed} bytes, has {available}"
            ),
            BadMagic { found } => write!(f, "not a Lasagna model: magic {found:02x?}, expected \"LSNA\""),
            UnsupportedVersion { found, supported } => write!(
                f,
                "format version {found} is not supported (this reader reads version {supported})"
            ),
            FileSize { header, actual } => write!(
                f,
                "header says the file is {header} bytes but it is {actual} (truncated or padded?)"
            ),
            Crc { stored, computed } => write!(
                f,
                "CRC-32 mismatch: stored {stored:#010x}, computed {computed:#010x} (file corrupted)"
            ),
            NonZeroReserved { offset } => write!(f, "reserved/padding byte at offset {offset} is not zero"),
            SectionOffset { section, expected, found } => write!(
                f,
                "{section} starts at {found}, expected {expected}"
            ),
            BadHeader { field } => write!(f, "header field `{field}` is out of range"),
            NoOps => write!(f, "the model has no ops"),
            UnknownOpKind { op, code } => write!(f, "op {op}: unknown kind code {code}"),
            NonCanonicalOp { op, kind } => write!(
                f,
                "op {op} ({kind}): unknown flag bits or non-zero unused parameter bytes"
            ),
            BadOpParam { op, kind, param } => write!(f, "op {op} ({kind}): parameter `{param}` is invalid"),
            ShapeMismatch { op, kind, input, reason } => write!(
                f,
                "op {op} ({kind}) cannot take input of shape {input}: {reason}"
            ),
            TensorCount { op, kind, expected, found } => write!(
                f,
                "op {op} ({kind}): tensor reference is {found}, expected {expected}"
            ),
            UnusedTensors { used, total } => write!(f, "{total} tensors stored but ops use {used}"),
            TensorShape { op, tensor, name, expected, found } => write!(
                f,
                "op {op}: tensor {tensor} (`{name}`) has shape {found}, expected {expected}"
            ),
            BadTensor { tensor, field } => write!(f, "tensor {tensor}: invalid `{field}`"),
            TensorDtype { tensor, name, dtype } => write!(
                f,
                "tensor {tensor} (`{name}`): dtype {dtype} is not allowed here"
            ),
            DataLayout { tensor, expected, found } => write!(
                f,
                "tensor {tensor}: data at offset {found}, expected {expected}"
            ),
            BadValue { value, field } => write!(f, "value {value}: invalid `{field}`"),
            Arena { op, what } => write!(f, "memory plan at op {op}: {what}"),
            BadString { index, reason } => write!(f, "string entry {index}: {reason}"),
            LabelCount { labels, outputs } => write!(
                f,
                "{labels} labels for {outputs} outputs (need one label per output, or none)"
            ),
            TrailingBytes { end, len } => write!(f, "file should end at byte {end} but is {len} bytes long"),
            Misaligned { offset, align } => write!(
                f,
                "data at offset {offset} is not {align}-byte aligned in memory (load the file into an aligned buffer, e.g. `include_model!`)"
            ),
            WrongDtype { requested, stored } => write!(f, "requested {requested} data from a {stored} tensor"),
        }
    }
}

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
impl std::error::Error for Error {}
