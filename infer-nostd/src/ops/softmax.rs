//! Softmax over the last dimension, in place: x is (rows, cols).

use crate::math;
use crate::quant::QParams;

/// `x = softmax(x)` per row of `cols`, with the row max subtracted for
/// stability and the sum's inverse multiplied in, the trainer's order.
pub fn forward_in_place(cols: usize, xy: &mut [f32]) {
    if cols == 0 {
        return;
    }
    for row in xy.chunks_exact_mut(cols) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = math::exp(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// int8, in place: per row, `exp(s_x · (q − q_max))` in `f32` (the
/// largest level is the largest value), summed in order, then each
/// probability quantized to `qy` (the exporter uses scale 1/256, zero point
/// −128, TFLite's choice). The exponentials are recomputed in the second
/// pass rather than stored: no scratch, the same values.
pub fn forward_in_place_i8(cols: usize, (qx, qy): (QParams, QParams), xy: &mut [i8]) {
    if cols == 0 {
        return;
    }
    for row in xy.chunks_exact_mut(cols) {
        let max = row.iter().copied().fold(i8::MIN, i8::max);
        let e = |q: i8| math::exp(qx.scale * (i32::from(q) - i32::from(max)) as f32);
        let sum: f32 = row.iter().map(|&q| e(q)).sum();
        let inv = 1.0 / sum;
        for v in row.iter_mut() {
            *v = qy.quantize(e(*v) * inv);
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
    fn rows_match_the_definition_and_sum_to_one() {
        let (rows, cols) = (3, 10);
        let x: Vec<f32> = values(rows * cols, 80).iter().map(|v| v * 20.0).collect();
        let mut want = Vec::new();
        for r in x.chunks(cols) {
            let e: Vec<f64> = r.iter().map(|&v| (v as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            want.extend(e.iter().map(|v| v / s));
        }
        let mut y = x.clone();
        forward_in_place(cols, &mut y);
        let tol = if cfg!(feature = "fast-math") {
            5e-3
        } else {
            1e-6
        };
        assert_close(&y, &want, tol);
    }

    #[test]
    fn huge_logits_do_not_overflow() {
        let mut y = [1000.0f32, 1000.0, -1000.0];
        forward_in_place(3, &mut y);
        assert_eq!(y, [0.5, 0.5, 0.0]);
    }

    #[test]
    fn int8_rows_are_the_quantized_probabilities() {
        let qx = QParams {
            scale: 0.1,
            zero_point: 3,
        };
        let qy = QParams {
            scale: 1.0 / 256.0,
            zero_point: -128,
        };
        let mut xy: Vec<i8> = values(20, 81).iter().map(|v| (v * 100.0) as i8).collect();
        let x = xy.clone();
        forward_in_place_i8(10, (qx, qy), &mut xy);
        for (r, row) in x.chunks(10).enumerate() {
            let e: Vec<f64> = row
                .iter()
                .map(|&q| (0.1 * (q as f64 - 3.0)).exp())
                .collect();
            let s: f64 = e.iter().sum();
            for (k, v) in e.iter().enumerate() {
                let want = (v / s * 256.0 - 128.0).clamp(-128.0, 127.0);
                let got = xy[r * 10 + k] as f64;
                assert!(
                    (got - want).abs() <= 0.51,
                    "row {r} col {k}: {got} vs {want}"
                );
            }
        }
    }
}
