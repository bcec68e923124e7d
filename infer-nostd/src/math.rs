//! `exp`, `tanh`, `erf` and `sqrt` for the kernels, in `f32`.
//!
//! By default they are `libm`'s (`expf`, `tanhf`, `erff`, `sqrtf`): within
//! an ulp or two of the true value, so the engine matches the trainer (whose
//! `f32::exp` etc. are the platform's libm) to rounding. With the
//! `fast-math` feature they are built on `micromath`'s `exp` (a 4-term
//! series after range reduction, no tables): smaller and faster on a
//! Cortex-M without an FPU for transcendental functions, at about 1e-3
//! relative error. The bounds measured against `f64` on the host are in the
//! crate README and asserted by `measured_error_bounds` below.

#[cfg(not(feature = "fast-math"))]
mod imp {
    #[inline]
    pub fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        libm::tanhf(x)
    }
    #[inline]
    pub fn erf(x: f32) -> f32 {
        libm::erff(x)
    }
    #[inline]
    pub fn sqrt(x: f32) -> f32 {
        libm::sqrtf(x)
    }
}

#[cfg(feature = "fast-math")]
mod imp {
    use micromath::F32;

    #[inline]
    pub fn exp(x: f32) -> f32 {
        // micromath turns -inf into NaN (its range reduction takes inf - inf)
        // and builds a NaN just past ln(f32::MAX) = 88.72: take the limits
        // here, and pass NaN through (micromath returns a number for it).
        if x.is_nan() {
            return x;
        }
        if x > 88.72 {
            return f32::INFINITY;
        }
        if x < -104.0 {
            return 0.0;
        }
        F32(x).exp().0
    }

    /// `1 - 2 / (e^2x + 1)`: exact limits (exp overflows to inf, giving 1;
    /// underflows to 0, giving -1), absolute error a fraction of exp's.
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        1.0 - 2.0 / (exp(2.0 * x) + 1.0)
    }

    /// Abramowitz & Stegun 7.1.26: `1 - (a1 t + .. + a5 t^5) e^{-x^2}`,
    /// `t = 1 / (1 + p x)`, |error| <= 1.5e-7 with an exact exp; odd in x.
    #[inline]
    pub fn erf(x: f32) -> f32 {
        const P: f32 = 0.327_591_1;
        const A: [f32; 5] = [
            0.254_829_6,
            -0.284_496_74,
            1.421_413_7,
            -1.453_152_1,
            1.061_405_4,
        ];
        let z = if x < 0.0 { -x } else { x };
        let t = 1.0 / (1.0 + P * z);
        let [a1, a2, a3, a4, a5] = A;
        let poly = t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))));
        let v = 1.0 - poly * exp(-z * z);
        if x < 0.0 {
            -v
        } else {
            v
        }
    }

    /// micromath's bit-trick estimate (up to 6% off) refined by three Newton
    /// steps `y = (y + x / y) / 2`, each squaring the relative error
    /// (6e-2, 2e-3, 2e-6, then f32 rounding). sqrt runs once per BatchNorm
    /// channel or LayerNorm row, so the third step costs nothing that shows.
    #[inline]
    pub fn sqrt(x: f32) -> f32 {
        if x == 0.0 || x == f32::INFINITY {
            return x;
        }
        let y = F32(x).sqrt().0;
        let y = 0.5 * (y + x / y);
        let y = 0.5 * (y + x / y);
        0.5 * (y + x / y)
    }
}

/// `e^x`.
#[inline]
pub fn exp(x: f32) -> f32 {
    imp::exp(x)
}

/// Hyperbolic tangent.
#[inline]
pub fn tanh(x: f32) -> f32 {
    imp::tanh(x)
}

/// The error function.
#[inline]
pub fn erf(x: f32) -> f32 {
    imp::erf(x)
}

/// Square root (NaN for negative input).
#[inline]
pub fn sqrt(x: f32) -> f32 {
    imp::sqrt(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::println;

    /// Largest error of `f` against `reference` over `xs`, relative to
    /// `max(|reference|, floor)` (floor 0: relative error; floor 1: absolute
    /// error for values up to 1, relative beyond).
    fn max_err(
        f: fn(f32) -> f32,
        reference: fn(f64) -> f64,
        floor: f64,
        xs: impl Iterator<Item = f32>,
    ) -> f64 {
        xs.map(|x| {
            let want = reference(x as f64);
            (f(x) as f64 - want).abs() / want.abs().max(floor)
        })
        .fold(0.0, f64::max)
    }

    fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
        (0..=n).map(move |i| lo + (hi - lo) * (i as f32 / n as f32))
    }

    /// The error bounds the README states. Measured against `f64` (`std` for
    /// exp, tanh, sqrt; `libm::erf` in f64 for erf) on dense grids: exp
    /// relative over [-87, 88], tanh and erf absolute over [-10, 10] and
    /// [-6, 6], sqrt relative over 1e-30..1e30. Run with and without
    /// `--features fast-math`; `--nocapture` prints the measured values.
    #[test]
    fn measured_error_bounds() {
        let exp_err = max_err(exp, f64::exp, 0.0, grid(-87.0, 88.0, 200_000));
        let tanh_err = max_err(tanh, f64::tanh, 1.0, grid(-10.0, 10.0, 200_000));
        let erf_err = max_err(erf, libm::erf, 1.0, grid(-6.0, 6.0, 200_000));
        let sqrt_err = max_err(
            sqrt,
            f64::sqrt,
            0.0,
            (0..=60_000).map(|i| 10f32.powf(i as f32 / 1000.0 - 30.0)),
        );
        let fast = cfg!(feature = "fast-math");
        println!("fast-math {fast}: exp rel {exp_err:.3e}, tanh abs {tanh_err:.3e}, erf abs {erf_err:.3e}, sqrt rel {sqrt_err:.3e}");
        let [e, t, r, s] = if fast {
            [2.5e-3, 1.2e-3, 6e-4, 1.2e-7]
        } else {
            [1.2e-7, 1.2e-7, 1.2e-7, 6e-8]
        };
        assert!(exp_err <= e, "exp: {exp_err:e} > {e:e}");
        assert!(tanh_err <= t, "tanh: {tanh_err:e} > {t:e}");
        assert!(erf_err <= r, "erf: {erf_err:e} > {r:e}");
        assert!(sqrt_err <= s, "sqrt: {sqrt_err:e} > {s:e}");
    }

    #[test]
    fn limits_and_special_values() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(200.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        assert_eq!(sqrt(0.0), 0.0);
        assert_eq!(sqrt(4.0), 2.0);
        assert!(sqrt(-1.0).is_nan());
    }
}
