//! Softmax over the last dimension, in place: x is (rows, cols).

use crate::math;

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
}
