//! Constant tensors: initializers, `Constant` nodes and tensor attributes,
//! decoded with their declared shape checked against the data actually in
//! the file, so a hostile shape (2^31 elements over a few bytes) is refused
//! before anything is allocated for it.

use crate::error::{ErrorKind, OnnxError, Result};
use crate::proto::tensor_proto::{DataLocation, DataType};
use crate::proto::TensorProto;

/// A decoded constant: dimensions and values, floats or integers.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    /// Dimensions (empty for a scalar).
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Data,
}

/// The values of a [`Const`].
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// FLOAT, DOUBLE or FLOAT16 data, as `f32`.
    F32(Vec<f32>),
    /// INT64, INT32 (and smaller integer) data, as `i64`.
    I64(Vec<i64>),
}

impl Const {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values as floats (integers converted), for weights.
    pub fn floats(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as integers, for shapes, axes and indices; `None` for floats.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            Data::F32(_) => None,
        }
    }

    /// The single value of a one-element tensor, as a float.
    pub fn scalar(&self) -> Option<f32> {
        (self.numel() == 1).then(|| self.floats()[0])
    }
}

/// The element count of `dims`, refused when a dimension is negative or
/// the product overflows.
pub fn numel(dims: &[i64], what: &str) -> Result<usize> {
    dims.iter().try_fold(1usize, |n, &d| {
        let d = usize::try_from(d).map_err(|_| {
            OnnxError::new(
                ErrorKind::Tensor,
                format!("{what} has a negative dimension {d}"),
            )
        })?;
        n.checked_mul(d).ok_or_else(|| {
            OnnxError::new(
                ErrorKind::Tensor,
                format!("{what} has dimensions {dims:?}, more elements than memory can address"),
            )
        })
    })
}

/// Decodes a tensor, checking that its data holds exactly as many elements
/// as its dimensions say.
pub fn decode(t: &TensorProto) -> Result<Const> {
    let name = t.name.as_deref().unwrap_or("(unnamed)");
    let what = format!("tensor `{name}`");
    if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty() {
        return Err(OnnxError::new(
            ErrorKind::Unsupported,
            format!("{what} keeps its data in an external file"),
        )
        .hint("save the model with its weights inside (onnx.save(model, path, save_as_external_data=False))"));
    }
    if t.segment.is_some() {
        return Err(OnnxError::new(
            ErrorKind::Unsupported,
            format!("{what} is a segment of a larger tensor"),
        ));
    }
    let n = numel(&t.dims, &what)?;
    let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
    let dtype = t.data_type.unwrap_or(0);
    let raw = t.raw_data.as_deref();
    // The element count must match the data present before anything of
    // size `n` is allocated: the data is already in memory, so `n` is then
    // bounded by the file.
    let check = |have: usize, what_data: &str| -> Result<()> {
        if have != n {
            return Err(OnnxError::new(
                ErrorKind::Tensor,
                format!("{what} declares {dims:?} ({n} elements) but its {what_data} holds {have}"),
            ));
        }
        Ok(())
    };
    // Little-endian words of `W` bytes from raw_data, or the typed field.
    fn words<const W: usize, T>(
        raw: &[u8],
        what: &str,
        f: impl Fn([u8; W]) -> T,
    ) -> Result<Vec<T>> {
        if !raw.len().is_multiple_of(W) {
            return Err(OnnxError::new(
                ErrorKind::Tensor,
                format!("{what}: raw_data is not whole {W}-byte words"),
            ));
        }
        Ok(raw
            .chunks_exact(W)
            .map(|c| f(c.try_into().unwrap_or([0; W])))
            .collect())
    }
    let data = match (DataType::try_from(dtype), raw) {
        (Ok(DataType::Float), Some(r)) => {
            check(r.len() / 4, "raw_data")?;
            Data::F32(words(r, &what, f32::from_le_bytes)?)
        }
        (Ok(DataType::Float), None) => {
            check(t.float_data.len(), "float_data")?;
            Data::F32(t.float_data.clone())
        }
        (Ok(DataType::Double), Some(r)) => {
            check(r.len() / 8, "raw_data")?;
            Data::F32(words(r, &what, |b| f64::from_le_bytes(b) as f32)?)
        }
        (Ok(DataType::Double), None) => {
            check(t.double_data.len(), "double_data")?;
            Data::F32(t.double_data.iter().map(|&x| x as f32).collect())
        }
        (Ok(DataType::Int64), Some(r)) => {
            check(r.len() / 8, "raw_data")?;
            Data::I64(words(r, &what, i64::from_le_bytes)?)
        }
        (Ok(DataType::Int64), None) => {
            check(t.int64_data.len(), "int64_data")?;
            Data::I64(t.int64_data.clone())
        }
        (Ok(DataType::Int32), Some(r)) => {
            check(r.len() / 4, "raw_data")?;
            Data::I64(words(r, &what, |b| i64::from(i32::from_le_bytes(b)))?)
        }
        (Ok(DataType::Float16), Some(r)) => {
            check(r.len() / 2, "raw_data")?;
            Data::F32(words(r, &what, |b| f16_to_f32(u16::from_le_bytes(b)))?)
        }
        (Ok(DataType::Float16), None) => {
            check(t.int32_data.len(), "int32_data")?;
            Data::F32(t.int32_data.iter().map(|&x| f16_to_f32(x as u16)).collect())
        }
        (Ok(DataType::Bool | DataType::Int8 | DataType::Uint8), Some(r)) => {
            check(r.len(), "raw_data")?;
            let signed = dtype == DataType::Int8 as i32;
            Data::I64(
                r.iter()
                    .map(|&b| {
                        if signed {
                            i64::from(b as i8)
                        } else {
                            i64::from(b)
                        }
                    })
                    .collect(),
            )
        }
        // INT32, INT8, UINT8 and BOOL keep their typed values in int32_data.
        (Ok(DataType::Int32 | DataType::Bool | DataType::Int8 | DataType::Uint8), None) => {
            check(t.int32_data.len(), "int32_data")?;
            Data::I64(t.int32_data.iter().map(|&x| i64::from(x)).collect())
        }
        _ => {
            let ty = DataType::try_from(dtype)
                .map(|d| d.as_str_name())
                .unwrap_or("an unknown type");
            return Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!("{what} has element type {ty} ({dtype})"),
            )
            .hint("constants must be float, double, float16 or integers"));
        }
    };
    Ok(Const { dims, data })
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value = f * 2^-24.
            let v = f as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// An f32 tensor for the exporter: raw little-endian data.
pub fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

/// An i64 tensor for the exporter.
pub fn i64_tensor(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(DataType::Int64 as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shape_larger_than_its_data_is_refused_before_allocation() {
        let t = TensorProto {
            name: Some("w".into()),
            dims: vec![1 << 31],
            data_type: Some(DataType::Float as i32),
            raw_data: Some(vec![0; 16]),
            ..Default::default()
        };
        let e = decode(&t).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("2147483648 elements") && e.contains("holds 4"),
            "{e}"
        );
        let t = TensorProto {
            dims: vec![i64::MAX, 4],
            ..t
        };
        let e = decode(&t).err().map(|e| e.kind);
        assert_eq!(e, Some(ErrorKind::Tensor));
    }

    #[test]
    fn every_float_encoding_decodes_to_the_same_values() {
        let want = [1.5f32, -2.0, 0.0];
        let raw = f32_tensor("x", &[3], &want);
        let typed = TensorProto {
            raw_data: None,
            float_data: want.to_vec(),
            ..raw.clone()
        };
        let double = TensorProto {
            raw_data: None,
            data_type: Some(DataType::Double as i32),
            double_data: want.iter().map(|&x| x as f64).collect(),
            ..raw.clone()
        };
        let half = TensorProto {
            data_type: Some(DataType::Float16 as i32),
            raw_data: Some(vec![0x00, 0x3e, 0x00, 0xc0, 0x00, 0x00]),
            ..raw.clone()
        };
        for t in [raw, typed, double, half] {
            assert_eq!(decode(&t).ok().map(|c| c.floats()), Some(want.to_vec()));
        }
    }
}
