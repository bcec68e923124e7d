//! Linear: `y = x W^T + b` over the last dimension.
//! x is (rows, in), weight is (out, in), bias is (out), y is (rows, out).

use super::Weights;

/// A Linear op's sizes for one sample: `rows` is the input's element count
/// divided by `in_features` (Linear acts on the last dimension).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// Rows of the input (product of all but the last dimension).
    pub rows: usize,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

/// `y[r, o] = dot(x[r, :], weight[o, :]) + bias[o]`.
pub fn forward(
    p: &Linear,
    x: &[f32],
    weight: Weights<'_>,
    bias: Option<Weights<'_>>,
    y: &mut [f32],
) {
    if p.in_features == 0 || p.out_features == 0 {
        return;
    }
    let rows = x
        .chunks_exact(p.in_features)
        .zip(y.chunks_exact_mut(p.out_features))
        .take(p.rows);
    for (xr, yr) in rows {
        for (o, yv) in yr.iter_mut().enumerate() {
            let acc = weight.dot(o, xr);
            // The trainer adds the bias after the product (GEMM, then
            // add_bias); the same order here keeps parity to rounding.
            *yv = match bias {
                Some(b) => acc + b.at(o),
                None => acc,
            };
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ops::testutil::{assert_close, values};
    use std::vec;
    use std::vec::Vec;

    fn naive(rows: usize, i: usize, o: usize, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f64> {
        let mut y = vec![0.0f64; rows * o];
        for r in 0..rows {
            for c in 0..o {
                let mut s = 0.0f64;
                for k in 0..i {
                    s += x[r * i + k] as f64 * w[c * i + k] as f64;
                }
                y[r * o + c] = s + b.map_or(0.0, |b| b[c] as f64);
            }
        }
        y
    }

    #[test]
    fn matches_a_naive_product_with_and_without_bias_on_several_rows() {
        for &(rows, i, o) in &[(1, 1, 1), (1, 7, 3), (3, 16, 5), (2, 64, 10)] {
            let x = values(rows * i, 1);
            let w = values(o * i, 2);
            let b = values(o, 3);
            for bias in [false, true] {
                let p = Linear {
                    rows,
                    in_features: i,
                    out_features: o,
                };
                let mut y = vec![0.0; rows * o];
                let bw = bias.then_some(Weights::F32(&b));
                forward(&p, &x, Weights::F32(&w), bw, &mut y);
                let want = naive(rows, i, o, &x, &w, bias.then_some(&b[..]));
                assert_close(&y, &want, 1e-5);
            }
        }
    }

    #[test]
    fn f16_weights_give_the_product_with_the_rounded_weights() {
        let (i, o) = (9, 4);
        let x = values(i, 4);
        let w32 = values(o * i, 5);
        let w16: Vec<half::f16> = w32.iter().map(|&v| half::f16::from_f32(v)).collect();
        let rounded: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
        let p = Linear {
            rows: 1,
            in_features: i,
            out_features: o,
        };
        let mut y = vec![0.0; o];
        forward(&p, &x, Weights::F16(&w16), None, &mut y);
        assert_close(&y, &naive(1, i, o, &x, &rounded, None), 1e-6);
    }

    #[test]
    fn short_buffers_do_not_panic() {
        let p = Linear {
            rows: 2,
            in_features: 3,
            out_features: 2,
        };
        let mut y = [0.0; 1];
        forward(&p, &[1.0; 2], Weights::F32(&[1.0; 1]), None, &mut y);
        let p0 = Linear {
            rows: 1,
            in_features: 0,
            out_features: 0,
        };
        forward(&p0, &[], Weights::F32(&[]), None, &mut []);
    }
}
