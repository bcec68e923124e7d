//! Element-wise activations and their derivatives (PyTorch's definitions),
//! and `ActivationOps` for the CPU, which also hands softmax and dropout to
//! their own files: the family and this op share the name `activation`.

use super::{dropout, softmax, Cpu};
use crate::backend::{need, Act, ActivationOps};
use crate::error::Result;

/// sqrt(2 / pi), for the tanh form of GELU.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// 1 / sqrt(2), for the erf form of GELU.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi), the standard normal density's constant.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

fn sigmoid(x: f32) -> f32 {
    // Split by sign so exp never overflows.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit, in f64).
pub fn erf(x: f32) -> f32 {
    let z = (x as f64).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    let v = 1.0 - r;
    (if x >= 0.0 { v } else { -v }) as f32
}

/// The activation of one value.
#[inline]
pub fn f(act: Act, x: f32) -> f32 {
    match act {
        Act::Relu => x.max(0.0),
        Act::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a * x
            }
        }
        Act::Gelu => 0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2)),
        Act::GeluTanh => 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh()),
        Act::Silu => x * sigmoid(x),
        Act::Sigmoid => sigmoid(x),
        Act::Tanh => x.tanh(),
    }
}

/// The derivative at `x`.
#[inline]
pub fn df(act: Act, x: f32) -> f32 {
    match act {
        Act::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Act::LeakyRelu(a) => {
            if x > 0.0 {
                1.0
            } else {
                a
            }
        }
        Act::Gelu => {
            let cdf = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
            cdf + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
        }
        Act::GeluTanh => {
            let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
            let t = u.tanh();
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x);
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du
        }
        Act::Silu => {
            let s = sigmoid(x);
            s * (1.0 + x * (1.0 - s))
        }
        Act::Sigmoid => {
            let s = sigmoid(x);
            s * (1.0 - s)
        }
        Act::Tanh => {
            let t = x.tanh();
            1.0 - t * t
        }
    }
}

/// `y = act(x)`.
// Compiled for AVX2+FMA as well as the baseline and chosen at run time: the
// loop is hot and vectorizes twice as wide, and results are identical
// (Rust never contracts a*b+c into an FMA on its own).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma"
))]
pub fn forward(act: Act, x: &[f32], y: &mut [f32]) {
    if act == Act::Relu {
        // The hot case: a plain loop the compiler vectorizes.
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x.max(0.0);
        }
        return;
    }
    for (y, &x) in y.iter_mut().zip(x) {
        *y = f(act, x);
    }
}

/// `dx = dy * act'(x)`.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma"
))]
pub fn backward(act: Act, x: &[f32], dy: &[f32], dx: &mut [f32]) {
    if act == Act::Relu {
        for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
            *dx = if x > 0.0 { dy } else { 0.0 };
        }
        return;
    }
    for ((dx, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
        *dx = dy * df(act, x);
    }
}

impl ActivationOps for Cpu {
    fn act_forward(&self, act: Act, x: &Vec<f32>, y: &mut Vec<f32>, n: usize) -> Result<()> {
        need(self, "act_forward", n, &[x.len(), y.len()])?;
        forward(act, &x[..n], &mut y[..n]);
        Ok(())
    }
    fn act_backward(
        &self,
        act: Act,
        x: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need(self, "act_backward", n, &[x.len(), dy.len(), dx.len()])?;
        backward(act, &x[..n], &dy[..n], &mut dx[..n]);
        Ok(())
    }
    fn softmax_forward(
        &self,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need(self, "softmax_forward", rows * cols, &[x.len(), y.len()])?;
        softmax::forward(&x[..rows * cols], &mut y[..rows * cols], cols);
        Ok(())
    }
    fn softmax_backward(
        &self,
        y: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let n = rows * cols;
        need(self, "softmax_backward", n, &[y.len(), dy.len(), dx.len()])?;
        softmax::backward(&y[..n], &dy[..n], &mut dx[..n], cols);
        Ok(())
    }
    fn dropout_forward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need(self, "dropout_forward", n, &[x.len(), y.len()])?;
        dropout::apply(p, seed, offset, group, &x[..n], &mut y[..n]);
        Ok(())
    }
    fn dropout_backward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need(self, "dropout_backward", n, &[dy.len(), dx.len()])?;
        // The mask is regenerated from (seed, offset): the same function as forward.
        dropout::apply(p, seed, offset, group, &dy[..n], &mut dx[..n]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_accurate_to_2e_7() {
        // Reference values of erf from Abramowitz & Stegun, table 7.1.
        for (x, want) in [
            (0.0f32, 0.0f64),
            (0.5, 0.520_499_877_8),
            (1.0, 0.842_700_792_9),
            (2.0, 0.995_322_265_0),
        ] {
            assert!((erf(x) as f64 - want).abs() < 2e-7, "erf({x})");
            assert!((erf(-x) as f64 + want).abs() < 2e-7, "erf(-{x})");
        }
    }

    #[test]
    fn derivatives_match_central_differences() {
        let acts = [
            Act::Relu,
            Act::LeakyRelu(0.1),
            Act::Gelu,
            Act::GeluTanh,
            Act::Silu,
            Act::Sigmoid,
            Act::Tanh,
        ];
        for act in acts {
            for i in -40..=40 {
                let x = i as f64 * 0.1 + 0.013; // avoid ReLU's kink at 0
                let h = 1e-3;
                let num =
                    (f(act, (x + h) as f32) as f64 - f(act, (x - h) as f32) as f64) / (2.0 * h);
                let ana = df(act, x as f32) as f64;
                assert!(
                    (num - ana).abs() < 2e-3,
                    "{act:?} at {x}: numeric {num}, analytic {ana}"
                );
            }
        }
    }
}
