//! BatchNorm in eval form, in place: x is (c, s) with `s` the product of the
//! dimensions after the first (1 for `[C]`, `L` for `[C, L]`, `H * W` for
//! `[C, H, W]`); each channel uses its running statistics.

use super::Weights;
use crate::math;
use crate::quant::QParams;

/// A BatchNorm op's sizes for one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    /// Channels (the first input dimension).
    pub channels: usize,
    /// Elements per channel.
    pub spatial: usize,
    /// Added to the running variance before the square root.
    pub eps: f32,
}

/// `y = (x - running_mean) * (weight / sqrt(running_var + eps)) + bias`, in
/// place, with the scale formed first exactly as the trainer's eval forward.
pub fn forward_in_place(
    p: &BatchNorm,
    xy: &mut [f32],
    weight: Weights<'_>,
    bias: Weights<'_>,
    running_mean: Weights<'_>,
    running_var: Weights<'_>,
) {
    if p.spatial == 0 {
        return;
    }
    for (c, plane) in xy.chunks_exact_mut(p.spatial).enumerate().take(p.channels) {
        let (mean, scale, shift) = affine(p, c, [weight, bias, running_mean, running_var]);
        for v in plane {
            *v = (*v - mean) * scale + shift;
        }
    }
}

/// Channel `c`'s `(running_mean, weight / sqrt(running_var + eps), bias)`,
/// the scale formed first as in the trainer. One square root per channel
/// per run: precomputing the scales in prepare would need a per-channel
/// buffer, which the engine does not own.
#[inline]
fn affine(p: &BatchNorm, c: usize, t: [Weights<'_>; 4]) -> (f32, f32, f32) {
    let [weight, bias, running_mean, running_var] = t;
    let scale = weight.at(c) / math::sqrt(running_var.at(c) + p.eps);
    (running_mean.at(c), scale, bias.at(c))
}

/// int8, in place: the f32 formula on each dequantized level, quantized to
/// `qy` (a BatchNorm the exporter could not fold).
pub fn forward_in_place_i8(
    p: &BatchNorm,
    (qx, qy): (QParams, QParams),
    xy: &mut [i8],
    t: [Weights<'_>; 4],
) {
    let [weight, bias, running_mean, running_var] = t;
    if p.spatial == 0 {
        return;
    }
    for (c, plane) in xy.chunks_exact_mut(p.spatial).enumerate().take(p.channels) {
        let (mean, scale, shift) = affine(p, c, [weight, bias, running_mean, running_var]);
        for v in plane {
            *v = qy.quantize((qx.dequantize(*v) - mean) * scale + shift);
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
    fn normalizes_each_channel_with_its_running_statistics() {
        for &(c, s) in &[(1, 1), (3, 1), (2, 5), (4, 9)] {
            let x = values(c * s, 60);
            let g = values(c, 61);
            let b = values(c, 62);
            let m = values(c, 63);
            let v: Vec<f32> = values(c, 64).iter().map(|v| v.abs() + 0.1).collect();
            let eps = 1e-5;
            let want: Vec<f64> = (0..c * s)
                .map(|i| {
                    let ch = i / s;
                    (x[i] as f64 - m[ch] as f64) / (v[ch] as f64 + eps as f64).sqrt() * g[ch] as f64
                        + b[ch] as f64
                })
                .collect();
            let mut y = x.clone();
            let p = BatchNorm {
                channels: c,
                spatial: s,
                eps,
            };
            let (g, b, m, v) = (
                Weights::F32(&g),
                Weights::F32(&b),
                Weights::F32(&m),
                Weights::F32(&v),
            );
            forward_in_place(&p, &mut y, g, b, m, v);
            let tol = if cfg!(feature = "fast-math") {
                1e-4
            } else {
                1e-5
            };
            assert_close(&y, &want, tol);
        }
    }
}
