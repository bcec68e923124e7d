//! Element types and quantization kinds, with their on-disk codes.

use core::fmt;

/// Element type of a tensor or an activation value.
///
/// Codes are never reused: a retired type keeps its number as a tombstone.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum DType {
    /// IEEE-754 binary32, little-endian.
    F32 = 0,
    /// IEEE-754 binary16, little-endian (stored only; engines compute in f32).
    F16 = 1,
    /// Signed 8-bit integer; always carries quantization parameters.
    I8 = 2,
    /// Signed 32-bit integer, little-endian (int8 biases, token indices).
    I32 = 3,
}

impl DType {
    /// The type for an on-disk code, if it is one.
    pub fn from_code(code: u8) -> Option<DType> {
        match code {
            0 => Some(DType::F32),
            1 => Some(DType::F16),
            2 => Some(DType::I8),
            3 => Some(DType::I32),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::I8 => 1,
        }
    }

    /// Lower-case name, as `lasagna inspect` prints it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::I8 => "i8",
            DType::I32 => "i32",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How an `i8` tensor maps to real numbers: `real = scale * (q - zero_point)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum QuantKind {
    /// Not quantized (every non-`i8` tensor).
    None = 0,
    /// One scale and zero point for the whole tensor (TFLite's activations).
    PerTensor = 1,
    /// One scale per slice along axis 0, zero point 0 (TFLite's int8 weights).
    PerChannel = 2,
}

impl QuantKind {
    /// The kind for an on-disk code, if it is one.
    pub fn from_code(code: u8) -> Option<QuantKind> {
        match code {
            0 => Some(QuantKind::None),
            1 => Some(QuantKind::PerTensor),
            2 => Some(QuantKind::PerChannel),
            _ => None,
        }
    }
}
