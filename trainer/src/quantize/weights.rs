//! Weight and bias quantization for Linear and Conv2d: int8 weights with one
//! symmetric scale per output channel, int32 biases in the accumulator's units.

use crate::error::{Error, Result};

/// Symmetric per-channel quantization of a weight whose axis 0 is the
/// output channel (`[out, in]` or `[out, in / groups, kh, kw]`):
/// `s[c] = max |w[c, ..]| / 127` (1 for an all-zero row, or one so small
/// that its scale underflows), `q = round(w / s[c])` clamped to
/// `[-127, 127]` so that the range is symmetric (-128 is never used).
/// Returns the codes and the scales. `what` names the tensor in errors.
pub fn quantize_per_channel(w: &[f32], channels: usize, what: &str) -> Result<(Vec<i8>, Vec<f32>)> {
    if channels == 0 || !w.len().is_multiple_of(channels) {
        return Err(Error::config(
            "int8 export",
            format!(
                "{what}: {} values do not split into {channels} output channels",
                w.len()
            ),
        ));
    }
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::config(
            "int8 export",
            format!("{what}: element {i} is {}; it cannot be quantized", w[i]),
        ));
    }
    let per = w.len() / channels;
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for row in w.chunks(per.max(1)) {
        let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let s = max / 127.0;
        let s = if s > 0.0 { s } else { 1.0 };
        codes.extend(
            row.iter()
                .map(|&v| (f64::from(v) / f64::from(s)).round().clamp(-127.0, 127.0) as i8),
        );
        scales.push(s);
    }
    Ok((codes, scales))
}

/// Int32 bias in units of the accumulator, `s_in * s_w[c]` (TFLite's
/// convention, so the engine adds it to the integer dot product as is):
/// `round(b[c] / (s_in * s_w[c]))` computed in `f64` and clamped to the
/// `i32` range.
pub fn quantize_bias(b: &[f32], s_in: f32, s_w: &[f32], what: &str) -> Result<Vec<i32>> {
    if b.len() != s_w.len() {
        return Err(Error::config(
            "int8 export",
            format!(
                "{what}: {} biases for {} output channels",
                b.len(),
                s_w.len()
            ),
        ));
    }
    if let Some(i) = b.iter().position(|v| !v.is_finite()) {
        return Err(Error::config(
            "int8 export",
            format!("{what}: element {i} is {}; it cannot be quantized", b[i]),
        ));
    }
    Ok(b.iter()
        .zip(s_w)
        .map(|(&b, &s)| {
            let q = f64::from(b) / (f64::from(s_in) * f64::from(s));
            q.round().clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn each_row_gets_its_own_symmetric_scale_and_its_largest_magnitude_is_127() {
        let w = [0.3, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.2, -0.5];
        let (q, s) = quantize_per_channel(&w, 3, "w").unwrap();
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 2.0 / 127.0]);
        assert_eq!(q, vec![38, -127, 32, 0, 0, 0, 127, 76, -32]);
    }

    #[test]
    fn biases_are_in_accumulator_units_and_saturate_at_the_i32_range() {
        let b = quantize_bias(&[1.0, -0.5, 1e30], 0.5, &[0.01, 0.02, 0.01], "b").unwrap();
        assert_eq!(b, vec![200, -50, i32::MAX]);
    }

    #[test]
    fn shape_and_non_finite_problems_are_errors_naming_the_tensor() {
        let e = quantize_per_channel(&[1.0; 5], 2, "op 3 weight").unwrap_err();
        assert!(e.to_string().contains("op 3 weight"), "{e}");
        let e = quantize_per_channel(&[1.0, f32::NAN], 1, "w").unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
        assert!(quantize_bias(&[1.0], 1.0, &[1.0, 1.0], "b").is_err());
    }
}
