//! LayerNorm over the last dimension, in place: x is (rows, cols), weight
//! and bias are (cols). Biased variance, PyTorch's definition.

use super::Weights;
use crate::math;
use crate::quant::QParams;

/// `y = (x - mean) * rstd * weight + bias` per row, in place.
///
/// The row's mean and variance are summed in `f64`, two passes, as the
/// trainer does: in `f32` a row with a large mean and a small spread loses
/// the spread to cancellation, and parity with the trainer is the contract.
/// (On a Cortex-M without a double FPU this costs a few soft-float
/// operations per element, small next to the Linear that usually precedes it.)
pub fn forward_in_place(
    cols: usize,
    eps: f32,
    xy: &mut [f32],
    weight: Weights<'_>,
    bias: Weights<'_>,
) {
    if cols == 0 {
        return;
    }
    for row in xy.chunks_exact_mut(cols) {
        let (mean, rstd) = stats(row.iter().map(|&v| v as f64), eps);
        for (k, v) in row.iter_mut().enumerate() {
            *v = (*v - mean) * rstd * weight.at(k) + bias.at(k);
        }
    }
}

/// A row's mean and `1 / sqrt(var + eps)`: both sums in `f64`, two passes
/// (the iterator is cloned for the second).
#[inline]
fn stats(row: impl Iterator<Item = f64> + Clone, eps: f32) -> (f32, f32) {
    let (mut n, mut sum) = (0usize, 0.0f64);
    for v in row.clone() {
        n += 1;
        sum += v;
    }
    let n = n.max(1) as f64;
    let mean = sum / n;
    let var = row
        .map(|v| {
            let d = v - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean as f32, 1.0 / math::sqrt((var + eps as f64) as f32))
}

/// int8, in place: the f32 formula on dequantized levels (mean and
/// variance in `f64`, as above), each result quantized to `qy`.
pub fn forward_in_place_i8(
    cols: usize,
    eps: f32,
    (qx, qy): (QParams, QParams),
    xy: &mut [i8],
    weight: Weights<'_>,
    bias: Weights<'_>,
) {
    if cols == 0 {
        return;
    }
    for row in xy.chunks_exact_mut(cols) {
        let (mean, rstd) = stats(row.iter().map(|&q| qx.dequantize(q) as f64), eps);
        for (k, v) in row.iter_mut().enumerate() {
            let x = qx.dequantize(*v);
            *v = qy.quantize((x - mean) * rstd * weight.at(k) + bias.at(k));
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ops::testutil::{assert_close, values};
    use std::vec::Vec;

    #[test]
    fn matches_a_naive_layernorm_even_with_a_large_mean() {
        for &(rows, cols, offset) in &[(1, 1, 0.0f32), (3, 8, 0.0), (2, 33, 1000.0)] {
            let x: Vec<f32> = values(rows * cols, 70).iter().map(|v| v + offset).collect();
            let g = values(cols, 71);
            let b = values(cols, 72);
            let eps = 1e-5f32;
            let mut want = Vec::new();
            for r in x.chunks(cols) {
                let mean = r.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
                let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
                for (k, &v) in r.iter().enumerate() {
                    want.push(
                        (v as f64 - mean) / (var + eps as f64).sqrt() * g[k] as f64 + b[k] as f64,
                    );
                }
            }
            let mut y = x.clone();
            forward_in_place(cols, eps, &mut y, Weights::F32(&g), Weights::F32(&b));
            // With a mean of 1000, the f32 input itself carries 6e-5 of rounding
            // relative to the spread; the reference starts from the same f32s.
            let tol = if cfg!(feature = "fast-math") {
                1e-4
            } else {
                2e-5
            };
            assert_close(&y, &want, tol);
        }
    }
}
