//! Element-wise activations, in place (PyTorch's definitions, written as the
//! trainer's `backend/cpu/activation.rs` writes them so that rounding agrees).

use crate::math;
use crate::quant::{saturate, QParams, Requant, Rescale};

/// sqrt(2 / pi), for the tanh form of GELU (the trainer's literal).
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of GELU's tanh form (Hendrycks & Gimpel, 2016).
const GELU_CUBIC: f32 = 0.044_715;

/// An element-wise activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `x` if positive, else `alpha * x`.
    LeakyRelu(f32),
    /// `x * Phi(x)` with the exact normal CDF (erf).
    Gelu,
    /// GELU's tanh approximation.
    GeluTanh,
    /// `x * sigmoid(x)`.
    Silu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

/// `1 / (1 + e^-x)`, split by sign so `exp` never overflows.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + math::exp(-x))
    } else {
        let e = math::exp(x);
        e / (1.0 + e)
    }
}

/// The activation of one value.
#[inline]
pub fn apply(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu(a) => {
            if x > 0.0 {
                x
            } else {
                a * x
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + math::erf(x * core::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluTanh => {
            0.5 * x * (1.0 + math::tanh(SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)))
        }
        Activation::Silu => x * sigmoid(x),
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => math::tanh(x),
    }
}

#[inline(always)]
fn map(xy: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in xy {
        *v = f(*v);
    }
}

/// `x = act(x)` for every element.
pub fn forward_in_place(act: Activation, xy: &mut [f32]) {
    // One loop per kind, so the match is not inside the hot loop.
    match act {
        Activation::Relu => map(xy, |x| apply(Activation::Relu, x)),
        Activation::LeakyRelu(a) => map(xy, |x| apply(Activation::LeakyRelu(a), x)),
        Activation::Gelu => map(xy, |x| apply(Activation::Gelu, x)),
        Activation::GeluTanh => map(xy, |x| apply(Activation::GeluTanh, x)),
        Activation::Silu => map(xy, |x| apply(Activation::Silu, x)),
        Activation::Sigmoid => map(xy, |x| apply(Activation::Sigmoid, x)),
        Activation::Tanh => map(xy, |x| apply(Activation::Tanh, x)),
    }
}

/// int8, in place. ReLU is integer-only: `max(q, zp_x)` (the level of real
/// 0), then mapped to the output's quantization if it differs (the exporter
/// makes it equal, so ReLU fused into the op before it costs one compare).
/// LeakyReLU is integer-only too: `zp_y + M·(q − zp_x)`, with `M` the
/// positive or the negative slope's multiplier. The smooth activations go
/// through `f32` per element: dequantize, the f32 function, quantize.
pub fn forward_in_place_i8(act: Activation, (qx, qy): (QParams, QParams), xy: &mut [i8]) {
    match act {
        Activation::Relu => {
            let zero = qx.zero_point.clamp(-128, 127) as i8;
            match Rescale::new(qx, qy) {
                // Zero at the lowest level (what the exporter gives a ReLU
                // that follows a conv): every level is already >= it, so
                // the op is the identity and the pass over the tensor is
                // skipped (the int8 CNN: 21,952 bytes, 137 k instructions).
                None if zero == i8::MIN => {}
                None => xy.iter_mut().for_each(|v| *v = (*v).max(zero)),
                Some(r) => xy.iter_mut().for_each(|v| *v = r.apply((*v).max(zero))),
            }
        }
        Activation::LeakyRelu(a) => {
            let ratio = qx.scale / qy.scale;
            let pos = Requant::new(ratio);
            // A negative slope flips the sign; its multiplier is |a|.
            let neg = Requant::new(a.abs() * ratio);
            let sign = if a < 0.0 { -1 } else { 1 };
            for v in xy.iter_mut() {
                let d = i32::from(*v) - qx.zero_point;
                let r = if d > 0 {
                    pos.apply(d)
                } else {
                    sign * neg.apply(d)
                };
                *v = saturate(r, qy.zero_point);
            }
        }
        _ => map_i8(xy, |x| qy.quantize(apply(act, qx.dequantize(x)))),
    }
}

#[inline(always)]
fn map_i8(xy: &mut [i8], f: impl Fn(i8) -> i8) {
    for v in xy {
        *v = f(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f64 references, written from the definitions.
    fn reference(act: Activation, x: f64) -> f64 {
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        match act {
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a as f64 * x
                }
            }
            Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / core::f64::consts::SQRT_2)),
            Activation::GeluTanh => {
                let k = (2.0 / core::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044_715 * x * x * x)).tanh())
            }
            Activation::Silu => x * sig(x),
            Activation::Sigmoid => sig(x),
            Activation::Tanh => x.tanh(),
        }
    }

    #[test]
    fn every_activation_matches_its_f64_definition() {
        let acts = [
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
            Activation::Sigmoid,
            Activation::Tanh,
        ];
        // Absolute error: activations are O(1) near 0 and O(x) far out.
        let tol = if cfg!(feature = "fast-math") {
            2e-3
        } else {
            1e-6
        };
        for act in acts {
            let mut xs = [0.0f32; 161];
            for (i, x) in xs.iter_mut().enumerate() {
                *x = (i as f32 - 80.0) * 0.1;
            }
            let mut y = xs;
            forward_in_place(act, &mut y);
            for (&x, &y) in xs.iter().zip(&y) {
                let want = reference(act, x as f64);
                let err = (y as f64 - want).abs();
                assert!(
                    err <= tol * (1.0 + want.abs()),
                    "{act:?}({x}) = {y}, want {want}"
                );
            }
        }
    }

    #[test]
    fn sigmoid_saturates_without_nan_at_the_extremes() {
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(apply(Activation::Silu, -1000.0), -0.0);
        assert_eq!(apply(Activation::Tanh, 50.0), 1.0);
        assert_eq!(apply(Activation::Tanh, -50.0), -1.0);
    }

    #[test]
    fn int8_activations_stay_within_one_level_of_the_real_function() {
        let qx = QParams {
            scale: 0.05,
            zero_point: -10,
        };
        let qy = QParams {
            scale: 0.03,
            zero_point: 4,
        };
        let acts = [
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::LeakyRelu(-0.5),
            Activation::Gelu,
            Activation::Silu,
            Activation::Sigmoid,
            Activation::Tanh,
        ];
        for act in acts {
            for same in [false, true] {
                let qy = if same { qx } else { qy };
                let mut xy: [i8; 256] = core::array::from_fn(|i| (i as i32 - 128) as i8);
                forward_in_place_i8(act, (qx, qy), &mut xy);
                for (i, &got) in xy.iter().enumerate() {
                    let x = qx.dequantize((i as i32 - 128) as i8) as f64;
                    let want = reference(act, x) / qy.scale as f64 + qy.zero_point as f64;
                    let want = want.clamp(-128.0, 127.0);
                    let slack = if cfg!(feature = "fast-math") {
                        0.1
                    } else {
                        1e-3
                    };
                    assert!(
                        (got as f64 - want).abs() <= 0.5 + slack,
                        "{act:?} same {same}: level {i}: got {got}, want {want}"
                    );
                }
            }
        }
    }
}
