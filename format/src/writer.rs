//! `ModelBuilder`: the std-only writer the trainer's exporter uses.
//!
//! The builder lays out the canonical file (every offset derived from the
//! counts), plans the activation arena, then re-reads its own output with
//! [`Model::parse`] so that a file it returns is always one the reader accepts.

use crate::dtype::{DType, QuantKind};
use crate::error::Error;
use crate::layout::*;
use crate::op::Op;
use crate::reader::{Model, ValueInfo};
use crate::shape::Shape;
use crate::strings::check_key;
use crate::tensor::Quant;
use byteorder::{ByteOrder, LittleEndian as LE};
use std::collections::BTreeMap;
use std::fmt;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// Quantization parameters of a tensor being written.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantData {
    /// Not quantized.
    None,
    /// One scale and zero point for the whole tensor.
    PerTensor {
        /// Scale.
        scale: f32,
        /// Zero point (an int8 value).
        zero_point: i32,
    },
    /// One scale per slice along axis 0 (symmetric, zero point 0).
    PerChannel(Vec<f32>),
}

/// A tensor to write: dtype, shape, little-endian bytes and quantization.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// Little-endian element bytes.
    pub bytes: Vec<u8>,
    /// Quantization (only for `i8`).
    pub quant: QuantData,
}

fn shape_of(dims: &[u32]) -> Shape {
    Shape::new(dims).unwrap_or_default()
}

impl TensorData {
    /// An `f32` tensor. An invalid rank (0 or above 4) yields a tensor the
    /// builder rejects with a shape error.
    pub fn f32(dims: &[u32], values: &[f32]) -> TensorData {
        let mut bytes = vec![0u8; values.len() * 4];
        LE::write_f32_into(values, &mut bytes);
        TensorData {
            dtype: DType::F32,
            shape: shape_of(dims),
            bytes,
            quant: QuantData::None,
        }
    }

    /// An `f16` tensor, rounded from `f32` (round to nearest even).
    pub fn f16(dims: &[u32], values: &[f32]) -> TensorData {
        let bytes = values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
            .collect();
        TensorData {
            dtype: DType::F16,
            shape: shape_of(dims),
            bytes,
            quant: QuantData::None,
        }
    }

    /// An `i8` tensor with one scale per slice along axis 0.
    pub fn i8_per_channel(dims: &[u32], values: &[i8], scales: Vec<f32>) -> TensorData {
        TensorData {
            dtype: DType::I8,
            shape: shape_of(dims),
            bytes: values.iter().map(|&v| v as u8).collect(),
            quant: QuantData::PerChannel(scales),
        }
    }

    /// An `i8` tensor with one scale and zero point.
    pub fn i8_per_tensor(dims: &[u32], values: &[i8], scale: f32, zero_point: i32) -> TensorData {
        TensorData {
            dtype: DType::I8,
            shape: shape_of(dims),
            bytes: values.iter().map(|&v| v as u8).collect(),
            quant: QuantData::PerTensor { scale, zero_point },
        }
    }

    /// An `i32` tensor (int8 biases).
    pub fn i32(dims: &[u32], values: &[i32]) -> TensorData {
        let mut bytes = vec![0u8; values.len() * 4];
        LE::write_i32_into(values, &mut bytes);
        TensorData {
            dtype: DType::I32,
            shape: shape_of(dims),
            bytes,
            quant: QuantData::None,
        }
    }

    fn quant_kind(&self) -> QuantKind {
        match self.quant {
            QuantData::None => QuantKind::None,
            QuantData::PerTensor { .. } => QuantKind::PerTensor,
            QuantData::PerChannel(_) => QuantKind::PerChannel,
        }
    }

    fn quant_bytes(&self) -> Vec<u8> {
        match &self.quant {
            QuantData::None => Vec::new(),
            QuantData::PerTensor { scale, zero_point } => {
                let mut v = scale.to_le_bytes().to_vec();
                v.extend_from_slice(&zero_point.to_le_bytes());
                v
            }
            QuantData::PerChannel(s) => s.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// Type and quantization of an activation value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueType {
    /// `f32` activations.
    F32,
    /// `i8` activations with `(scale, zero_point)`.
    I8 {
        /// Scale.
        scale: f32,
        /// Zero point.
        zero_point: i32,
    },
    /// `i32` indices (model input of an Embedding only).
    I32,
}

impl ValueType {
    fn dtype(self) -> DType {
        match self {
            ValueType::F32 => DType::F32,
            ValueType::I8 { .. } => DType::I8,
            ValueType::I32 => DType::I32,
        }
    }
}

/// One op to write, with its tensors and its output's type.
#[derive(Clone, Debug, PartialEq)]
pub struct OpSpec {
    /// The op.
    pub op: Op,
    /// Its tensors, in the order of [`Op::tensor_spec`].
    pub tensors: Vec<TensorData>,
    /// Type of its output value.
    pub output: ValueType,
    /// Scratch bytes the engine needs for this op (0 for none).
    pub scratch_bytes: u32,
}

/// Why a model could not be written.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WriteError {
    /// A count or size exceeds what the format stores.
    TooLarge {
        /// What overflowed.
        what: &'static str,
    },
    /// A label or metadata entry is not storable.
    BadString {
        /// The offending key or label.
        text: String,
        /// Why.
        reason: &'static str,
    },
    /// Shapes do not chain (found while planning, before writing).
    Shape {
        /// Op index.
        op: usize,
        /// Reason.
        reason: &'static str,
    },
    /// The assembled file failed validation (the reader's error says why).
    Invalid(Error),
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::TooLarge { what } => write!(f, "{what} exceeds what the format can store"),
            WriteError::BadString { text, reason } => write!(f, "{text:?}: {reason}"),
            WriteError::Shape { op, reason } => write!(f, "op {op}: {reason}"),
            WriteError::Invalid(e) => write!(f, "model is invalid: {e}"),
        }
    }
}

impl std::error::Error for WriteError {}

impl From<Error> for WriteError {
    fn from(e: Error) -> Self {
        WriteError::Invalid(e)
    }
}

/// Builds a model file: input description, ops in execution order, labels and metadata.
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    input_shape: Shape,
    input_type: ValueType,
    mean: f32,
    std: f32,
    labels: Vec<String>,
    meta: BTreeMap<String, String>,
    ops: Vec<OpSpec>,
    fixed_plan: Option<Plan>,
}

/// The activation memory plan the builder chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Arena bytes.
    pub arena_bytes: u32,
    /// Offset of each value (input first).
    pub value_offsets: Vec<u32>,
    /// Scratch offset of each op.
    pub scratch_offsets: Vec<u32>,
}

impl ModelBuilder {
    /// A builder for a model whose per-sample input has shape `dims` (f32, no normalization).
    pub fn new(dims: &[u32]) -> ModelBuilder {
        ModelBuilder {
            input_shape: shape_of(dims),
            input_type: ValueType::F32,
            mean: 0.0,
            std: 1.0,
            labels: Vec::new(),
            meta: BTreeMap::new(),
            ops: Vec::new(),
            fixed_plan: None,
        }
    }

    /// Uses `plan` instead of planning the arena; the reader still checks it.
    pub fn with_plan(&mut self, plan: Plan) -> &mut Self {
        self.fixed_plan = Some(plan);
        self
    }

    /// A builder that reproduces a parsed model. Because the format is
    /// canonical, `ModelBuilder::from_model(&m)?.build()` returns the same
    /// bytes `m` was parsed from; tools use it to edit labels or metadata.
    pub fn from_model(m: &Model<'_>) -> Result<ModelBuilder, WriteError> {
        let value_type = |v: &ValueInfo| match (v.dtype, v.quant) {
            (DType::I8, Some((scale, zero_point))) => ValueType::I8 { scale, zero_point },
            (DType::I32, _) => ValueType::I32,
            _ => ValueType::F32,
        };
        let input = m.input().ok_or(WriteError::Invalid(Error::NoOps))?;
        let (mean, std) = m.normalization();
        let mut b = ModelBuilder::new(m.input_shape().dims());
        b.input_type(value_type(&input))
            .normalization(mean, std)
            .labels(m.labels());
        for (k, v) in m.meta() {
            b.meta(k, v);
        }
        let mut plan = Plan {
            arena_bytes: m.arena_bytes(),
            value_offsets: vec![input.arena_offset],
            scratch_offsets: Vec::new(),
        };
        for e in m.ops() {
            plan.value_offsets.push(e.output.arena_offset);
            plan.scratch_offsets.push(e.scratch.0);
            let tensors = (0..e.n_tensors)
                .filter_map(|j| m.op_tensor(&e, j))
                .map(|t| TensorData {
                    dtype: t.dtype,
                    shape: t.shape,
                    bytes: t.data.to_vec(),
                    quant: match t.quant {
                        Quant::None => QuantData::None,
                        Quant::PerTensor { scale, zero_point } => {
                            QuantData::PerTensor { scale, zero_point }
                        }
                        Quant::PerChannel(s) => QuantData::PerChannel(s.iter().collect()),
                    },
                })
                .collect();
            b.push(OpSpec {
                op: e.op,
                tensors,
                output: value_type(&e.output),
                scratch_bytes: e.scratch.1,
            });
        }
        b.with_plan(plan);
        Ok(b)
    }

    /// Sets the input's type (e.g. `i8` for an int8 model, `i32` for token ids).
    pub fn input_type(&mut self, t: ValueType) -> &mut Self {
        self.input_type = t;
        self
    }

    /// Input normalization: the engine's input is `(x - mean) / std`.
    pub fn normalization(&mut self, mean: f32, std: f32) -> &mut Self {
        self.mean = mean;
        self.std = std;
        self
    }

    /// Class labels, one per output element.
    pub fn labels<S: Into<String>>(&mut self, labels: impl IntoIterator<Item = S>) -> &mut Self {
        self.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// A metadata entry; keys are namespaced (`lasagna.train.test_accuracy`).
    pub fn meta(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.meta.insert(key.into(), value.into());
        self
    }

    /// Appends an op whose output is `f32`.
    pub fn op(&mut self, op: Op, tensors: Vec<TensorData>) -> &mut Self {
        self.push(OpSpec {
            op,
            tensors,
            output: ValueType::F32,
            scratch_bytes: 0,
        })
    }

    /// Appends an op with full control over its output type and scratch.
    pub fn push(&mut self, spec: OpSpec) -> &mut Self {
        self.ops.push(spec);
        self
    }

    /// Per-sample shapes of every value (input first), checking that the ops chain.
    pub fn shapes(&self) -> Result<Vec<Shape>, WriteError> {
        let mut shapes = vec![self.input_shape];
        for (i, spec) in self.ops.iter().enumerate() {
            let s = spec
                .op
                .infer_shape(shapes[i])
                .map_err(|reason| WriteError::Shape { op: i, reason })?;
            shapes.push(s);
        }
        Ok(shapes)
    }

    /// Plans the arena for a chain: value `i` and `i + 1` are live together
    /// during op `i`. Values alternate between the bottom and the top of the
    /// arena, scratch goes between them, and element-wise ops run in place,
    /// so the arena is the largest `input + output + scratch` over all ops.
    pub fn plan(&self) -> Result<Plan, WriteError> {
        let shapes = self.shapes()?;
        let too_large = WriteError::TooLarge { what: "arena" };
        let mut sizes = Vec::with_capacity(shapes.len());
        let types: Vec<ValueType> = std::iter::once(self.input_type)
            .chain(self.ops.iter().map(|o| o.output))
            .collect();
        for (s, t) in shapes.iter().zip(&types) {
            let n = s
                .numel()
                .checked_mul(t.dtype().size() as u64)
                .ok_or(too_large.clone())?;
            sizes.push(align_up(n as usize, ARENA_ALIGN).ok_or(too_large.clone())? as u64);
        }
        let in_place: Vec<bool> = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.op.in_place_ok() && sizes[i] == sizes[i + 1] && types[i] == types[i + 1]
            })
            .collect();
        let mut arena = sizes[0];
        for (i, o) in self.ops.iter().enumerate() {
            let scratch =
                align_up(o.scratch_bytes as usize, ARENA_ALIGN).ok_or(too_large.clone())? as u64;
            let live = if in_place[i] {
                sizes[i]
            } else {
                sizes[i] + sizes[i + 1]
            };
            arena = arena.max(live + scratch);
        }
        let arena = u32::try_from(arena).map_err(|_| too_large)?;
        // top[i]: value i sits at the top end of the arena.
        let mut top = vec![false; sizes.len()];
        for i in 0..self.ops.len() {
            top[i + 1] = if in_place[i] { top[i] } else { !top[i] };
        }
        let at = |i: usize| if top[i] { arena - sizes[i] as u32 } else { 0 };
        let value_offsets: Vec<u32> = (0..sizes.len()).map(at).collect();
        let scratch_offsets = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, o)| {
                if o.scratch_bytes == 0 || (top[i] && top[i + 1]) {
                    // No scratch, or both values on top: scratch starts at 0.
                    0
                } else {
                    // The bottom value ends where the scratch can begin.
                    let bottom = if top[i] { i + 1 } else { i };
                    sizes[bottom] as u32
                }
            })
            .collect();
        Ok(Plan {
            arena_bytes: arena,
            value_offsets,
            scratch_offsets,
        })
    }

    /// Writes the file and validates it with the reader.
    pub fn build(&self) -> Result<Vec<u8>, WriteError> {
        let plan = match &self.fixed_plan {
            Some(p)
                if p.value_offsets.len() == self.ops.len() + 1
                    && p.scratch_offsets.len() == self.ops.len() =>
            {
                p.clone()
            }
            Some(_) => {
                return Err(WriteError::Shape {
                    op: self.ops.len(),
                    reason: "the fixed plan does not have one offset per value and op",
                })
            }
            None => self.plan()?,
        };
        let u16_count =
            |n: usize, what| u16::try_from(n).map_err(|_| WriteError::TooLarge { what });
        let n_ops = u16_count(self.ops.len(), "op count")?;
        let n_tensors = u16_count(
            self.ops.iter().map(|o| o.tensors.len()).sum(),
            "tensor count",
        )?;
        let n_labels = u16_count(self.labels.len(), "label count")?;
        let n_meta = u16_count(self.meta.len(), "metadata count")?;
        let strings = self.strings()?;
        let sec = Sections::compute(self.ops.len(), n_tensors as usize, strings.len())
            .ok_or(WriteError::TooLarge { what: "header" })?;

        let mut out = vec![0u8; sec.data];
        out[0..4].copy_from_slice(&MAGIC);
        LE::write_u16(&mut out[H_VERSION..], VERSION);
        LE::write_u16(&mut out[H_N_OPS..], n_ops);
        LE::write_u16(&mut out[H_N_TENSORS..], n_tensors);
        LE::write_u16(&mut out[H_N_LABELS..], n_labels);
        LE::write_u16(&mut out[H_N_META..], n_meta);
        LE::write_u32(&mut out[H_ARENA..], plan.arena_bytes);
        LE::write_u32(&mut out[H_STRINGS_BYTES..], strings.len() as u32);
        LE::write_u32(&mut out[H_DATA_OFFSET..], sec.data as u32);
        out[H_INPUT_RANK] = self.input_shape.rank() as u8;
        for (i, d) in self.input_shape.raw().iter().enumerate() {
            LE::write_u32(&mut out[H_INPUT_DIMS + 4 * i..], *d);
        }
        LE::write_f32(&mut out[H_INPUT_MEAN..], self.mean);
        LE::write_f32(&mut out[H_INPUT_STD..], self.std);

        let value_types = std::iter::once(self.input_type).chain(self.ops.iter().map(|o| o.output));
        for (i, t) in value_types.enumerate() {
            let r = &mut out[sec.values + i * VALUE_RECORD_BYTES..][..VALUE_RECORD_BYTES];
            LE::write_u32(&mut r[0..4], plan.value_offsets[i]);
            r[4] = t.dtype() as u8;
            if let ValueType::I8 { scale, zero_point } = t {
                r[5] = QuantKind::PerTensor as u8;
                LE::write_f32(&mut r[8..12], scale);
                LE::write_i32(&mut r[12..16], zero_point);
            }
        }
        out[sec.strings..sec.strings + strings.len()].copy_from_slice(&strings);

        let mut t_index = 0usize;
        for (i, spec) in self.ops.iter().enumerate() {
            let (code, flags, params) = spec.op.encode();
            let r = &mut out[sec.ops + i * OP_RECORD_BYTES..][..OP_RECORD_BYTES];
            r[0] = code;
            r[1] = flags;
            r[2] = u8::try_from(spec.tensors.len()).map_err(|_| WriteError::TooLarge {
                what: "tensors per op",
            })?;
            LE::write_u16(&mut r[4..6], t_index as u16);
            LE::write_u32(&mut r[8..12], plan.scratch_offsets[i]);
            LE::write_u32(&mut r[12..16], spec.scratch_bytes);
            r[16..32].copy_from_slice(&params);
            for t in &spec.tensors {
                write_tensor(&mut out, sec.tensors + t_index * TENSOR_RECORD_BYTES, t)?;
                t_index += 1;
            }
        }
        if out.len() > MAX_FILE_BYTES {
            return Err(WriteError::TooLarge { what: "file" });
        }
        let len = out.len() as u32;
        LE::write_u32(&mut out[H_FILE_SIZE..], len);
        let crc = crate::crc::crc32(&out[CRC_START..]);
        LE::write_u32(&mut out[H_CRC..], crc);
        Model::parse(&out)?;
        Ok(out)
    }

    fn strings(&self) -> Result<Vec<u8>, WriteError> {
        let mut s = Vec::new();
        for l in &self.labels {
            let len =
                u8::try_from(l.len()).map_err(|_| bad_string(l, "label longer than 255 bytes"))?;
            if len == 0 {
                return Err(bad_string(l, "empty label"));
            }
            s.push(len);
            s.extend_from_slice(l.as_bytes());
        }
        for (k, v) in &self.meta {
            check_key(k.as_bytes()).map_err(|reason| bad_string(k, reason))?;
            let klen =
                u8::try_from(k.len()).map_err(|_| bad_string(k, "key longer than 255 bytes"))?;
            let vlen = u16::try_from(v.len())
                .map_err(|_| bad_string(k, "value longer than 65535 bytes"))?;
            s.push(klen);
            s.extend_from_slice(k.as_bytes());
            s.extend_from_slice(&vlen.to_le_bytes());
            s.extend_from_slice(v.as_bytes());
        }
        Ok(s)
    }
}

fn bad_string(text: &str, reason: &'static str) -> WriteError {
    WriteError::BadString {
        text: text.into(),
        reason,
    }
}

/// Appends `t`'s data (and quantization block) at the next aligned offsets
/// and fills its record at `rec`.
fn write_tensor(out: &mut Vec<u8>, rec: usize, t: &TensorData) -> Result<(), WriteError> {
    let too_large = || WriteError::TooLarge { what: "file" };
    let data_at = align_up(out.len(), DATA_ALIGN).ok_or_else(too_large)?;
    out.resize(data_at, 0);
    out.extend_from_slice(&t.bytes);
    let q = t.quant_bytes();
    let q_at = if q.is_empty() {
        0
    } else {
        let at = align_up(out.len(), DATA_ALIGN).ok_or_else(too_large)?;
        out.resize(at, 0);
        out.extend_from_slice(&q);
        at
    };
    let r = &mut out[rec..rec + TENSOR_RECORD_BYTES];
    r[0] = t.dtype as u8;
    r[1] = t.shape.rank() as u8;
    r[2] = t.quant_kind() as u8;
    for (i, d) in t.shape.raw().iter().enumerate() {
        LE::write_u32(&mut r[4 + 4 * i..], *d);
    }
    let u32_of = |v: usize| u32::try_from(v).map_err(|_| too_large());
    LE::write_u32(&mut r[20..24], u32_of(data_at)?);
    LE::write_u32(&mut r[24..28], u32_of(t.bytes.len())?);
    LE::write_u32(&mut r[28..32], u32_of(q_at)?);
    Ok(())
}
