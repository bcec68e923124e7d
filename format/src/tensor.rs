//! Borrowed views of tensors, zero-copy where the buffer is aligned.

use crate::dtype::DType;
use crate::error::Error;
use crate::layout::le;
use crate::shape::Shape;
use crate::weight_layout::WeightLayout;

/// Quantization parameters of a tensor, borrowed from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quant<'a> {
    /// Not quantized.
    None,
    /// One scale and zero point for the whole tensor.
    PerTensor {
        /// `real = scale * (q - zero_point)`.
        scale: f32,
        /// The int8 value that represents real zero.
        zero_point: i32,
    },
    /// One scale per slice along axis 0; zero points are 0.
    PerChannel(Scales<'a>),
}

/// Per-channel scales, read as little-endian `f32` (no alignment needed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scales<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Scales<'a> {
    /// Scales read from little-endian `f32` bytes (a trailing partial
    /// scale is ignored). The reader builds these from quant blocks; this
    /// is for tools and tests that have the bytes.
    pub fn from_le_bytes(bytes: &'a [u8]) -> Scales<'a> {
        let whole = bytes.len() - bytes.len() % 4;
        Scales {
            bytes: bytes.get(..whole).unwrap_or_default(),
        }
    }
    /// Number of scales (the tensor's first dimension).
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }
    /// True when there are no scales (never for a validated file).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Scale of channel `i`.
    pub fn get(&self, i: usize) -> Option<f32> {
        le::f32_at(self.bytes, i.checked_mul(4)?)
    }
    /// All scales in channel order.
    pub fn iter(&self) -> impl Iterator<Item = f32> + 'a {
        let b = self.bytes;
        (0..b.len() / 4).filter_map(move |i| le::f32_at(b, 4 * i))
    }
}

/// A tensor stored in the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorRef<'a> {
    /// Index in the tensor table.
    pub index: u16,
    /// Element type.
    pub dtype: DType,
    /// Shape (PyTorch's layout for the parameter).
    pub shape: Shape,
    /// Raw little-endian bytes, borrowed from the file.
    pub data: &'a [u8],
    /// Offset of `data` from the start of the file (a multiple of 16).
    pub offset: usize,
    /// Quantization parameters (only for `i8`).
    pub quant: Quant<'a>,
}

impl<'a> TensorRef<'a> {
    fn cast<T: bytemuck::AnyBitPattern>(&self, want: DType) -> Result<&'a [T], Error> {
        if self.dtype != want {
            return Err(Error::WrongDtype {
                requested: want,
                stored: self.dtype,
            });
        }
        bytemuck::try_cast_slice(self.data).map_err(|_| Error::Misaligned {
            offset: self.offset,
            align: core::mem::align_of::<T>(),
        })
    }

    /// The data as `&[f32]`, borrowed in place.
    pub fn as_f32(&self) -> Result<&'a [f32], Error> {
        self.cast(DType::F32)
    }
    /// The data as `&[f16]`, borrowed in place.
    pub fn as_f16(&self) -> Result<&'a [half::f16], Error> {
        self.cast(DType::F16)
    }
    /// The data as `&[i8]`.
    pub fn as_i8(&self) -> Result<&'a [i8], Error> {
        self.cast(DType::I8)
    }
    /// The data as `&[i32]`, borrowed in place.
    pub fn as_i32(&self) -> Result<&'a [i32], Error> {
        self.cast(DType::I32)
    }

    /// Element `i` in row-major order of the tensor's dims, converted to
    /// `f32` like [`value_f32`](Self::value_f32), from a data block stored
    /// in `layout` (an op's [`Op::weight_layout`](crate::Op::weight_layout)
    /// for its weight; `docs/FORMAT.md` section 6.2). For a row-major
    /// block it is `value_f32(i)`.
    pub fn value_f32_in(&self, layout: WeightLayout, i: usize) -> Option<f32> {
        let &[out, inp] = self.shape.dims() else {
            return match layout {
                WeightLayout::RowMajor => self.value_f32(i),
                WeightLayout::Interleaved4 => None,
            };
        };
        let (out, inp) = (out as usize, inp as usize);
        let o = i.checked_div(inp)?;
        if o >= out {
            return None;
        }
        let stored = layout.index(out, inp, o, i % inp);
        match (self.dtype, self.quant) {
            // The scale is row `o`'s, wherever the byte sits.
            (DType::I8, Quant::PerChannel(s)) => {
                Some(s.get(o)? * *self.data.get(stored)? as i8 as f32)
            }
            _ => self.value_f32(stored),
        }
    }

    /// Element `i` converted to `f32` (dequantized for `i8`), for tools that
    /// want a value whatever the storage type. Not for hot loops. `i` is the
    /// position in the data block: for a weight stored interleaved, use
    /// [`value_f32_in`](Self::value_f32_in).
    pub fn value_f32(&self, i: usize) -> Option<f32> {
        let at = i.checked_mul(self.dtype.size())?;
        match self.dtype {
            DType::F32 => le::f32_at(self.data, at),
            DType::F16 => le::u16_at(self.data, at).map(|b| half::f16::from_bits(b).to_f32()),
            DType::I32 => le::i32_at(self.data, at).map(|v| v as f32),
            DType::I8 => {
                let q = *self.data.get(at)? as i8 as f32;
                match self.quant {
                    Quant::PerTensor { scale, zero_point } => Some(scale * (q - zero_point as f32)),
                    Quant::PerChannel(s) => {
                        let per = self.shape.numel() / self.shape.dims()[0].max(1) as u64;
                        Some(s.get((i as u64 / per.max(1)) as usize)? * q)
                    }
                    Quant::None => None,
                }
            }
        }
    }
}
