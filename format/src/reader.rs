//! `Model::parse`: validates a whole file once, then hands out borrowed views.

use crate::dtype::{DType, QuantKind};
use crate::error::{Error, Section};
use crate::layout::*;
use crate::op::{Op, OpKind, TensorRole};
use crate::records::{
    check_scale, check_zero_point, require_zero, OpRecord, TensorRecord, ValueRecord,
};
use crate::shape::{Shape, MAX_RANK};
use crate::strings::{self, Labels, Meta};
use crate::tensor::{Quant, Scales, TensorRef};
use crate::weight_layout::WeightLayout;

/// A validated model, borrowing its bytes. Every accessor is infallible in
/// practice because `parse` has already checked everything it reads.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    bytes: &'a [u8],
    sec: Sections,
    n_ops: u16,
    n_tensors: u16,
    n_labels: u16,
    n_meta: u16,
    strings_bytes: usize,
    meta_start: usize,
    arena_bytes: u32,
    input_shape: Shape,
    output_shape: Shape,
    mean: f32,
    std: f32,
    weight_bytes: u64,
    quant_bytes: u64,
}

/// An activation: the model input (value 0) or the output of op `i` (value `i + 1`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueInfo {
    /// Index in the value table.
    pub index: u16,
    /// Element type (`f32`, `i8`, or `i32` for token inputs).
    pub dtype: DType,
    /// Per-sample shape.
    pub shape: Shape,
    /// Offset in the arena (a multiple of 4).
    pub arena_offset: u32,
    /// Size in bytes.
    pub bytes: u32,
    /// `(scale, zero_point)` for `i8` values.
    pub quant: Option<(f32, i32)>,
}

/// One op of the execution order, with its operands resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpEntry {
    /// Position in the execution order.
    pub index: u16,
    /// The op and its parameters.
    pub op: Op,
    /// The value it reads.
    pub input: ValueInfo,
    /// The value it writes.
    pub output: ValueInfo,
    /// First tensor in the tensor table.
    pub first_tensor: u16,
    /// Number of tensors.
    pub n_tensors: u16,
    /// Scratch space in the arena: `(offset, bytes)`; `bytes == 0` means none.
    pub scratch: (u32, u32),
}

fn value_info(
    b: &[u8],
    sec: &Sections,
    index: u16,
    shape: Shape,
    arena: u32,
) -> Result<ValueInfo, Error> {
    let r = ValueRecord::read(b, sec.values, index)?;
    let bad = |field| Error::BadValue {
        value: index,
        field,
    };
    let bytes = shape
        .numel()
        .checked_mul(r.dtype.size() as u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(bad("size"))?;
    if !(r.arena_offset as usize).is_multiple_of(ARENA_ALIGN) {
        return Err(bad("arena_offset alignment"));
    }
    if r.arena_offset as u64 + bytes as u64 > arena as u64 {
        return Err(bad("arena_offset (past the arena's end)"));
    }
    Ok(ValueInfo {
        index,
        dtype: r.dtype,
        shape,
        arena_offset: r.arena_offset,
        bytes,
        quant: r.quant,
    })
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let (a0, a1) = (a.0 as u64, a.0 as u64 + a.1 as u64);
    let (b0, b1) = (b.0 as u64, b.0 as u64 + b.1 as u64);
    a0 < b1 && b0 < a1
}

impl<'a> Model<'a> {
    /// Parses and validates a model. Never panics, never reads out of bounds.
    pub fn parse(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        let b = bytes;
        if b.len() < HEADER_BYTES {
            return Err(Error::Truncated {
                section: Section::Header,
                needed: HEADER_BYTES as u64,
                available: b.len(),
            });
        }
        let mut magic = [0u8; 4];
        magic.copy_from_slice(&b[0..4]);
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let h16 = |o| le::u16_at(b, o).unwrap_or(0);
        let h32 = |o| le::u32_at(b, o).unwrap_or(0);
        let version = h16(H_VERSION);
        if version != VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: VERSION,
            });
        }
        require_zero(b, H_RESERVED0, 2)?;
        let file_size = h32(H_FILE_SIZE);
        if file_size as usize != b.len() {
            return Err(Error::FileSize {
                header: file_size,
                actual: b.len(),
            });
        }
        let stored = h32(H_CRC);
        let computed = crate::crc::crc32(&b[CRC_START..]);
        if stored != computed {
            return Err(Error::Crc { stored, computed });
        }
        let (n_ops, n_tensors) = (h16(H_N_OPS), h16(H_N_TENSORS));
        let (n_labels, n_meta) = (h16(H_N_LABELS), h16(H_N_META));
        let arena_bytes = h32(H_ARENA);
        let strings_bytes = h32(H_STRINGS_BYTES) as usize;
        if n_ops == 0 {
            return Err(Error::NoOps);
        }
        let sec = Sections::compute(n_ops as usize, n_tensors as usize, strings_bytes).ok_or(
            Error::BadHeader {
                field: "strings_bytes",
            },
        )?;
        let data_offset = h32(H_DATA_OFFSET) as u64;
        if data_offset != sec.data as u64 {
            return Err(Error::SectionOffset {
                section: Section::Data,
                expected: sec.data as u64,
                found: data_offset,
            });
        }
        if sec.data > b.len() {
            return Err(Error::Truncated {
                section: Section::Strings,
                needed: sec.data as u64,
                available: b.len(),
            });
        }
        let input_shape = read_input_shape(b)?;
        let mean = le::f32_at(b, H_INPUT_MEAN).unwrap_or(f32::NAN);
        let std = le::f32_at(b, H_INPUT_STD).unwrap_or(f32::NAN);
        if !mean.is_finite() {
            return Err(Error::BadHeader {
                field: "input_mean",
            });
        }
        if !(std.is_finite() && std > 0.0) {
            return Err(Error::BadHeader { field: "input_std" });
        }

        let str_end = sec.strings + strings_bytes;
        let meta_start = strings::validate(&b[sec.strings..str_end], n_labels, n_meta)?;
        require_zero(b, str_end, sec.data - str_end)?;

        let mut model = Model {
            bytes,
            sec,
            n_ops,
            n_tensors,
            n_labels,
            n_meta,
            strings_bytes,
            meta_start,
            arena_bytes,
            input_shape,
            output_shape: input_shape,
            mean,
            std,
            weight_bytes: 0,
            quant_bytes: 0,
        };
        model.validate_graph()?;
        if n_labels != 0 && n_labels as u64 != model.output_shape.numel() {
            return Err(Error::LabelCount {
                labels: n_labels,
                outputs: model.output_shape.numel(),
            });
        }
        Ok(model)
    }

    /// Walks the ops in order: parameters, shapes, dtypes, tensors, data layout, arena.
    fn validate_graph(&mut self) -> Result<(), Error> {
        let b = self.bytes;
        let mut input = value_info(b, &self.sec, 0, self.input_shape, self.arena_bytes)?;
        let mut next_tensor: u16 = 0;
        let mut data_cursor = self.sec.data as u64;
        for i in 0..self.n_ops {
            let rec = OpRecord::read(b, self.sec.ops, i)?;
            let kind = rec.op.kind();
            let in_ok = match input.dtype {
                DType::I32 => kind == OpKind::Embedding,
                DType::F32 | DType::I8 => kind != OpKind::Embedding,
                DType::F16 => false,
            };
            if !in_ok {
                return Err(Error::BadValue {
                    value: i,
                    field: "dtype (Embedding takes i32 indices; every other op f32 or i8)",
                });
            }
            let out_shape =
                rec.op
                    .infer_shape(input.shape)
                    .map_err(|reason| Error::ShapeMismatch {
                        op: i,
                        kind,
                        input: input.shape,
                        reason,
                    })?;
            if !out_shape.is_nonempty() {
                return Err(Error::ShapeMismatch {
                    op: i,
                    kind,
                    input: input.shape,
                    reason: "output would be empty",
                });
            }
            let output = value_info(b, &self.sec, i + 1, out_shape, self.arena_bytes)?;
            if output.dtype == DType::I32 {
                return Err(Error::BadValue {
                    value: i + 1,
                    field: "dtype (only the input may be i32)",
                });
            }
            let want = rec.op.tensor_count() as u16;
            if rec.n_tensors as u16 != want {
                return Err(Error::TensorCount {
                    op: i,
                    kind,
                    expected: want,
                    found: rec.n_tensors as u16,
                });
            }
            if rec.first_tensor != next_tensor {
                return Err(Error::TensorCount {
                    op: i,
                    kind,
                    expected: next_tensor,
                    found: rec.first_tensor,
                });
            }
            for j in 0..want {
                let t = next_tensor
                    .checked_add(j)
                    .filter(|&t| t < self.n_tensors)
                    .ok_or(Error::UnusedTensors {
                        used: next_tensor.saturating_add(want),
                        total: self.n_tensors,
                    })?;
                data_cursor = self.check_tensor(&rec.op, i, j as usize, t, data_cursor)?;
            }
            next_tensor += want;
            check_arena(&rec, i, &input, &output, self.arena_bytes)?;
            input = output;
        }
        if next_tensor != self.n_tensors {
            return Err(Error::UnusedTensors {
                used: next_tensor,
                total: self.n_tensors,
            });
        }
        if data_cursor != b.len() as u64 {
            return Err(Error::TrailingBytes {
                end: data_cursor,
                len: b.len(),
            });
        }
        self.output_shape = input.shape;
        Ok(())
    }

    /// Checks tensor `t` (the `j`-th of op `op_index`) and returns the data cursor after it.
    fn check_tensor(
        &mut self,
        op: &Op,
        op_index: u16,
        j: usize,
        t: u16,
        cursor: u64,
    ) -> Result<u64, Error> {
        let b = self.bytes;
        let rec = TensorRecord::read(b, self.sec.tensors, t)?;
        let Some((name, role, expected)) = op.tensor_spec(j) else {
            return Err(Error::BadTensor {
                tensor: t,
                field: "role",
            });
        };
        if rec.shape != expected {
            return Err(Error::TensorShape {
                op: op_index,
                tensor: t,
                name,
                expected,
                found: rec.shape,
            });
        }
        // The interleaved layout is defined for i8 weights only (section
        // 6.2): a float weight with the flag is refused by its dtype.
        let interleaved = matches!(
            op,
            Op::Linear {
                layout: WeightLayout::Interleaved4,
                ..
            }
        );
        let allowed = match role {
            TensorRole::Weight if interleaved => rec.dtype == DType::I8,
            TensorRole::Weight => matches!(rec.dtype, DType::F32 | DType::F16 | DType::I8),
            TensorRole::Bias => matches!(rec.dtype, DType::F32 | DType::F16 | DType::I32),
        };
        if !allowed {
            return Err(Error::TensorDtype {
                tensor: t,
                name,
                dtype: rec.dtype,
            });
        }
        let nbytes = rec.shape.numel().saturating_mul(rec.dtype.size() as u64);
        if nbytes != rec.data_bytes as u64 {
            return Err(Error::BadTensor {
                tensor: t,
                field: "data_bytes",
            });
        }
        let data_at = self.block(t, cursor, rec.data_offset, nbytes)?;
        self.weight_bytes += nbytes;
        let mut end = data_at + nbytes;
        if rec.quant == QuantKind::None {
            if rec.quant_offset != 0 {
                return Err(Error::BadTensor {
                    tensor: t,
                    field: "quant_offset",
                });
            }
        } else {
            let q_at = self.block(t, end, rec.quant_offset, rec.quant_bytes())?;
            let bad = |field| Error::BadTensor { tensor: t, field };
            let q = b
                .get(q_at as usize..(q_at + rec.quant_bytes()) as usize)
                .ok_or(bad("quant_offset"))?;
            if rec.quant == QuantKind::PerTensor {
                check_scale(le::f32_at(q, 0).unwrap_or(0.0)).map_err(|_| bad("scale"))?;
                check_zero_point(le::i32_at(q, 4).unwrap_or(i32::MAX))
                    .map_err(|_| bad("zero_point"))?;
            } else if (Scales { bytes: q })
                .iter()
                .any(|s| check_scale(s).is_err())
            {
                return Err(bad("scale"));
            }
            end = q_at + rec.quant_bytes();
            self.quant_bytes += rec.quant_bytes();
        }
        Ok(end)
    }

    /// A data block must start at the next 16-byte boundary after `cursor`,
    /// with zero padding, and lie inside the file. Returns its offset.
    fn block(&self, t: u16, cursor: u64, stored: u32, len: u64) -> Result<u64, Error> {
        let at = cursor.div_ceil(DATA_ALIGN as u64) * DATA_ALIGN as u64;
        if stored as u64 != at {
            return Err(Error::DataLayout {
                tensor: t,
                expected: at,
                found: stored as u64,
            });
        }
        if at + len > self.bytes.len() as u64 {
            return Err(Error::Truncated {
                section: Section::Data,
                needed: at + len,
                available: self.bytes.len(),
            });
        }
        require_zero(self.bytes, cursor as usize, (at - cursor) as usize)?;
        Ok(at)
    }

    /// Total bytes of the file.
    pub fn file_bytes(&self) -> usize {
        self.bytes.len()
    }
    /// The whole file.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Bytes of tensor data (weights), excluding quantization blocks and padding.
    pub fn weight_bytes(&self) -> u64 {
        self.weight_bytes
    }
    /// Bytes of tensor content: data plus quantization parameters (scales and
    /// zero points), excluding records and padding. The format's overhead is
    /// `file_bytes() - tensor_bytes()`.
    pub fn tensor_bytes(&self) -> u64 {
        self.weight_bytes + self.quant_bytes
    }
    /// Arena bytes the memory plan needs for one inference.
    pub fn arena_bytes(&self) -> u32 {
        self.arena_bytes
    }
    /// Number of ops.
    pub fn op_count(&self) -> u16 {
        self.n_ops
    }
    /// Number of tensors.
    pub fn tensor_count(&self) -> u16 {
        self.n_tensors
    }
    /// Per-sample input shape.
    pub fn input_shape(&self) -> Shape {
        self.input_shape
    }
    /// Per-sample output shape.
    pub fn output_shape(&self) -> Shape {
        self.output_shape
    }
    /// Input normalization `(mean, std)`: the engine's input is `(x - mean) / std`.
    pub fn normalization(&self) -> (f32, f32) {
        (self.mean, self.std)
    }

    /// The input value (value 0).
    pub fn input(&self) -> Option<ValueInfo> {
        value_info(self.bytes, &self.sec, 0, self.input_shape, self.arena_bytes).ok()
    }

    /// The ops in execution order.
    pub fn ops(&self) -> Ops<'a> {
        Ops {
            model: *self,
            next: 0,
            input: self.input(),
        }
    }

    /// Op `i` (walks the ops before it to resolve shapes).
    pub fn op(&self, i: u16) -> Option<OpEntry> {
        self.ops().nth(i as usize)
    }

    /// Tensor `i` of the tensor table.
    pub fn tensor(&self, i: u16) -> Option<TensorRef<'a>> {
        if i >= self.n_tensors {
            return None;
        }
        let rec = TensorRecord::read(self.bytes, self.sec.tensors, i).ok()?;
        let at = rec.data_offset as usize;
        let data = self
            .bytes
            .get(at..at.checked_add(rec.data_bytes as usize)?)?;
        let q_at = rec.quant_offset as usize;
        let q = self
            .bytes
            .get(q_at..q_at.checked_add(rec.quant_bytes() as usize)?)?;
        let quant = match rec.quant {
            QuantKind::None => Quant::None,
            QuantKind::PerTensor => Quant::PerTensor {
                scale: le::f32_at(q, 0)?,
                zero_point: le::i32_at(q, 4)?,
            },
            QuantKind::PerChannel => Quant::PerChannel(Scales { bytes: q }),
        };
        Some(TensorRef {
            index: i,
            dtype: rec.dtype,
            shape: rec.shape,
            data,
            offset: at,
            quant,
        })
    }

    /// Tensor `j` of an op (in the order of [`Op::tensor_spec`]).
    pub fn op_tensor(&self, op: &OpEntry, j: u16) -> Option<TensorRef<'a>> {
        if j >= op.n_tensors {
            return None;
        }
        self.tensor(op.first_tensor.checked_add(j)?)
    }

    fn strings(&self) -> &'a [u8] {
        let s = self.sec.strings;
        self.bytes.get(s..s + self.strings_bytes).unwrap_or(&[])
    }

    /// Class labels, one per output element (may be empty).
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            sec: self.strings(),
            cur: 0,
            left: self.n_labels,
        }
    }

    /// Metadata `(key, value)` pairs, sorted by key.
    pub fn meta(&self) -> Meta<'a> {
        Meta {
            sec: self.strings(),
            cur: self.meta_start,
            left: self.n_meta,
        }
    }

    /// The metadata value for `key`.
    pub fn meta_get(&self, key: &str) -> Option<&'a str> {
        self.meta()
            .take_while(|(k, _)| *k <= key)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

fn read_input_shape(b: &[u8]) -> Result<Shape, Error> {
    let rank = le::u8_at(b, H_INPUT_RANK).unwrap_or(0) as usize;
    if rank == 0 || rank > MAX_RANK {
        return Err(Error::BadHeader {
            field: "input_rank",
        });
    }
    require_zero(b, H_RESERVED1, 3)?;
    let mut dims = [0u32; MAX_RANK];
    for (i, d) in dims.iter_mut().enumerate() {
        *d = le::u32_at(b, H_INPUT_DIMS + 4 * i).unwrap_or(0);
    }
    if dims[rank..].iter().any(|&d| d != 0) {
        require_zero(b, H_INPUT_DIMS + 4 * rank, 4 * (MAX_RANK - rank))?;
    }
    let shape = Shape::new(&dims[..rank]).ok_or(Error::BadHeader {
        field: "input_rank",
    })?;
    if !shape.is_nonempty() {
        return Err(Error::BadHeader {
            field: "input_dims",
        });
    }
    Ok(shape)
}

fn check_arena(
    rec: &OpRecord,
    i: u16,
    input: &ValueInfo,
    output: &ValueInfo,
    arena: u32,
) -> Result<(), Error> {
    let inr = (input.arena_offset, input.bytes);
    let outr = (output.arena_offset, output.bytes);
    if overlaps(inr, outr) && !(rec.op.in_place_ok() && inr == outr) {
        return Err(Error::Arena {
            op: i,
            what:
                "output overlaps input (only element-wise ops may run in place, at the same offset)",
        });
    }
    let scr = (rec.scratch_offset, rec.scratch_bytes);
    if scr.1 == 0 {
        if scr.0 != 0 {
            return Err(Error::Arena {
                op: i,
                what: "scratch offset set without scratch bytes",
            });
        }
        return Ok(());
    }
    if !(scr.0 as usize).is_multiple_of(ARENA_ALIGN) || scr.0 as u64 + scr.1 as u64 > arena as u64 {
        return Err(Error::Arena {
            op: i,
            what: "scratch lies outside the arena or is misaligned",
        });
    }
    if overlaps(scr, inr) || overlaps(scr, outr) {
        return Err(Error::Arena {
            op: i,
            what: "scratch overlaps the op's input or output",
        });
    }
    Ok(())
}

/// Iterator over the ops, resolving each one's input and output values.
#[derive(Clone, Debug)]
pub struct Ops<'a> {
    model: Model<'a>,
    next: u16,
    input: Option<ValueInfo>,
}

impl Iterator for Ops<'_> {
    type Item = OpEntry;
    fn next(&mut self) -> Option<OpEntry> {
        let m = &self.model;
        if self.next >= m.n_ops {
            return None;
        }
        let i = self.next;
        let rec = OpRecord::read(m.bytes, m.sec.ops, i).ok()?;
        let input = self.input?;
        let shape = rec.op.infer_shape(input.shape).ok()?;
        let output = value_info(m.bytes, &m.sec, i + 1, shape, m.arena_bytes).ok()?;
        self.next += 1;
        self.input = Some(output);
        Some(OpEntry {
            index: i,
            op: rec.op,
            input,
            output,
            first_tensor: rec.first_tensor,
            n_tensors: rec.n_tensors as u16,
            scratch: (rec.scratch_offset, rec.scratch_bytes),
        })
    }
}
