//! Decoding of the fixed-size records. Each decoder checks only what one
//! record can tell on its own; cross-record rules live in `reader.rs`.

use crate::dtype::{DType, QuantKind};
use crate::error::{Error, Section};
use crate::layout::{le, OP_RECORD_BYTES, TENSOR_RECORD_BYTES, VALUE_RECORD_BYTES};
use crate::op::{Op, OpKind};
use crate::shape::{Shape, MAX_RANK};

fn slice(b: &[u8], off: usize, len: usize, section: Section) -> Result<&[u8], Error> {
    off.checked_add(len)
        .and_then(|end| b.get(off..end))
        .ok_or(Error::Truncated {
            section,
            needed: off as u64 + len as u64,
            available: b.len(),
        })
}

/// Fails with the offset of the first non-zero byte in `b[off..off + len]`.
pub(crate) fn require_zero(b: &[u8], off: usize, len: usize) -> Result<(), Error> {
    let s = slice(b, off, len, Section::Data)?;
    match s.iter().position(|&x| x != 0) {
        Some(i) => Err(Error::NonZeroReserved { offset: off + i }),
        None => Ok(()),
    }
}

/// One op record, decoded and checked for canonical form and parameter ranges.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpRecord {
    pub op: Op,
    pub n_tensors: u8,
    pub first_tensor: u16,
    pub scratch_offset: u32,
    pub scratch_bytes: u32,
}

impl OpRecord {
    pub fn read(b: &[u8], table: usize, index: u16) -> Result<OpRecord, Error> {
        let off = table + index as usize * OP_RECORD_BYTES;
        let r = slice(b, off, OP_RECORD_BYTES, Section::Ops)?;
        let code = r[0];
        let kind = OpKind::from_code(code).ok_or(Error::UnknownOpKind { op: index, code })?;
        require_zero(b, off + 3, 1)?;
        require_zero(b, off + 6, 2)?;
        let mut params = [0u8; 16];
        params.copy_from_slice(&r[16..32]);
        let op = Op::decode(kind, r[1], &params);
        // The encoding is canonical: anything that does not re-encode to the
        // same bytes (unknown flags, stray parameter bytes) is rejected.
        if op.encode() != (code, r[1], params) {
            return Err(Error::NonCanonicalOp { op: index, kind });
        }
        op.check_params().map_err(|param| Error::BadOpParam {
            op: index,
            kind,
            param,
        })?;
        Ok(OpRecord {
            op,
            n_tensors: r[2],
            first_tensor: le::u16_at(r, 4).unwrap_or(0),
            scratch_offset: le::u32_at(r, 8).unwrap_or(0),
            scratch_bytes: le::u32_at(r, 12).unwrap_or(0),
        })
    }
}

/// One value record: where an activation lives in the arena and how it is typed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ValueRecord {
    pub arena_offset: u32,
    pub dtype: DType,
    pub quant: Option<(f32, i32)>,
}

impl ValueRecord {
    pub fn read(b: &[u8], table: usize, index: u16) -> Result<ValueRecord, Error> {
        let off = table + index as usize * VALUE_RECORD_BYTES;
        let r = slice(b, off, VALUE_RECORD_BYTES, Section::Values)?;
        let bad = |field| Error::BadValue {
            value: index,
            field,
        };
        let dtype = DType::from_code(r[4]).ok_or(bad("dtype"))?;
        require_zero(b, off + 6, 2)?;
        let scale = le::f32_at(r, 8).unwrap_or(0.0);
        let zp = le::i32_at(r, 12).unwrap_or(0);
        let quant = match (dtype, QuantKind::from_code(r[5])) {
            (DType::I8, Some(QuantKind::PerTensor)) => {
                check_scale(scale).map_err(|_| bad("scale"))?;
                check_zero_point(zp).map_err(|_| bad("zero_point"))?;
                Some((scale, zp))
            }
            (DType::I8, _) => return Err(bad("quant")),
            (DType::F16, _) => return Err(bad("dtype")),
            (_, Some(QuantKind::None)) => {
                require_zero(b, off + 8, 8)?;
                None
            }
            _ => return Err(bad("quant")),
        };
        Ok(ValueRecord {
            arena_offset: le::u32_at(r, 0).unwrap_or(0),
            dtype,
            quant,
        })
    }
}

/// One tensor record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TensorRecord {
    pub dtype: DType,
    pub shape: Shape,
    pub quant: QuantKind,
    pub data_offset: u32,
    pub data_bytes: u32,
    pub quant_offset: u32,
}

impl TensorRecord {
    pub fn read(b: &[u8], table: usize, index: u16) -> Result<TensorRecord, Error> {
        let off = table + index as usize * TENSOR_RECORD_BYTES;
        let r = slice(b, off, TENSOR_RECORD_BYTES, Section::Tensors)?;
        let bad = |field| Error::BadTensor {
            tensor: index,
            field,
        };
        let dtype = DType::from_code(r[0]).ok_or(bad("dtype"))?;
        let rank = r[1] as usize;
        if rank == 0 || rank > MAX_RANK {
            return Err(bad("rank"));
        }
        let quant = QuantKind::from_code(r[2]).ok_or(bad("quant"))?;
        require_zero(b, off + 3, 1)?;
        let mut dims = [0u32; MAX_RANK];
        for (i, d) in dims.iter_mut().enumerate() {
            *d = le::u32_at(r, 4 + 4 * i).unwrap_or(0);
        }
        if dims[rank..].iter().any(|&d| d != 0) {
            return Err(bad("dims past rank"));
        }
        let shape = Shape::new(&dims[..rank]).ok_or(bad("rank"))?;
        match (dtype, quant) {
            (DType::I8, QuantKind::PerTensor | QuantKind::PerChannel) => {}
            (DType::I8, QuantKind::None) => return Err(bad("quant (i8 needs scales)")),
            (_, QuantKind::None) => {}
            _ => return Err(bad("quant (only i8 is quantized)")),
        }
        Ok(TensorRecord {
            dtype,
            shape,
            quant,
            data_offset: le::u32_at(r, 20).unwrap_or(0),
            data_bytes: le::u32_at(r, 24).unwrap_or(0),
            quant_offset: le::u32_at(r, 28).unwrap_or(0),
        })
    }

    /// Bytes of the quantization block that follows the data (0 if none).
    pub fn quant_bytes(&self) -> u64 {
        match self.quant {
            QuantKind::None => 0,
            QuantKind::PerTensor => 8,
            QuantKind::PerChannel => 4 * self.shape.dims()[0] as u64,
        }
    }
}

/// Scales must be finite and positive (a zero scale would divide by zero on requantization).
pub(crate) fn check_scale(s: f32) -> Result<(), ()> {
    if s.is_finite() && s > 0.0 {
        Ok(())
    } else {
        Err(())
    }
}

/// An int8 zero point must itself be an int8 value.
pub(crate) fn check_zero_point(z: i32) -> Result<(), ()> {
    if (-128..=127).contains(&z) {
        Ok(())
    } else {
        Err(())
    }
}
