//! Integer arithmetic of the int8 path, in the style of TFLite Micro and
//! CMSIS-NN: `real = scale · (q − zero_point)` for activations, symmetric
//! per-output-channel weights, `i32` accumulators, and requantization by a
//! fixed-point multiplier and a rounding right shift.
//!
//! The one floating-point step is choosing a multiplier: `s_in / s_out`
//! once per op and `· s_w[c]` once per output channel, both `f32`
//! operations IEEE 754 defines to the bit, so every target computes the same
//! multiplier. The multiplier's 24-bit significand then becomes the integer
//! `M` exactly (no rounding), and everything per element is integer-only.
//! The host run of this crate is therefore the bit-exact reference for a
//! device.
//!
//! [`int8_refusal`] is the list of op kinds the int8 path runs.

use lasagna_format::OpKind;

/// Quantization of an `i8` activation: `real = scale · (q − zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct QParams {
    /// Step between adjacent levels (finite, > 0 in a validated file).
    pub scale: f32,
    /// The level that represents real zero, in `[-128, 127]`.
    pub zero_point: i32,
}

impl QParams {
    /// The level nearest `x` (ties away from zero), saturated to `i8`.
    #[inline]
    pub fn quantize(&self, x: f32) -> i8 {
        let v = libm::roundf(x / self.scale) + self.zero_point as f32;
        // `as` saturates (and maps NaN to 0), which is what we want here.
        v.clamp(-128.0, 127.0) as i8
    }

    /// The real value of level `q`.
    #[inline]
    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (i32::from(q) - self.zero_point) as f32
    }
}

/// `acc · m` as `(acc · mult + 2^(shift−1)) >> shift`: a real multiplier
/// `m = mult · 2^−shift` with `mult` in `[2^30, 2^31)` and
/// `shift` in `1..=62`, rounding half up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Requant {
    mult: i32,
    shift: u32,
}

impl Requant {
    /// The fixed-point form of `m` (> 0). Exact: an `f32` has a 24-bit
    /// significand, which `mult` holds shifted left by 7. A multiplier of
    /// `2^30` or more saturates (the shift cannot go below 1); one below
    /// `2^−32` (or not positive and finite) is zero, since no `i32`
    /// accumulator times it reaches one half.
    #[inline]
    pub fn new(m: f32) -> Requant {
        let bits = m.to_bits();
        let exp = (bits >> 23) & 0xff;
        if bits >> 31 != 0 || exp == 0 || exp == 0xff {
            return Requant { mult: 0, shift: 1 };
        }
        // m = (2^23 + frac) · 2^(exp − 150) = mult · 2^(exp − 157).
        let mult = (((bits & 0x7f_ffff) | 0x80_0000) << 7) as i32;
        match 157u32.checked_sub(exp) {
            Some(shift @ 1..=62) => Requant { mult, shift },
            Some(0) | None => Requant {
                mult: i32::MAX,
                shift: 1,
            },
            Some(_) => Requant { mult: 0, shift: 1 },
        }
    }

    /// The multiplier and shift as two words, for kernels that keep a
    /// channel's requantization in their scratch ([`Requant::from_words`]).
    #[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
    #[inline(always)]
    pub(crate) fn to_words(self) -> [u32; 2] {
        [self.mult as u32, self.shift]
    }

    /// The inverse of [`Requant::to_words`]; a shift outside `1..=62`
    /// (never written by `to_words`) is clamped into it.
    #[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
    #[inline(always)]
    pub(crate) fn from_words([mult, shift]: [u32; 2]) -> Requant {
        Requant {
            mult: mult as i32,
            shift: shift.clamp(1, 62),
        }
    }

    /// `y[i] = saturate(apply(acc[i] + bias), zero_point)` for a run of
    /// accumulators of one channel, with [`Requant::apply`]'s test of the
    /// shift made once for the run rather than per value (the same
    /// integers).
    #[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
    #[inline]
    pub(crate) fn levels(self, bias: i32, zero_point: i32, acc: &[i32], y: &mut [i8]) {
        if self.shift >= 33 {
            let (round, sh) = (1i32 << (self.shift - 33), self.shift - 32);
            for (o, &a) in y.iter_mut().zip(acc) {
                let hi = ((i64::from(a.wrapping_add(bias)) * i64::from(self.mult)) >> 32) as i32;
                *o = saturate((hi + round) >> sh, zero_point);
            }
        } else {
            for (o, &a) in y.iter_mut().zip(acc) {
                *o = saturate(self.apply(a.wrapping_add(bias)), zero_point);
            }
        }
    }

    /// `round(acc · m)`, saturated to `i32`.
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        let p = i64::from(acc) * i64::from(self.mult);
        if self.shift >= 33 {
            // The usual case (multipliers below 2^-1.5). The rounding term
            // 2^(shift-1) has a zero low word, so it adds to the high word
            // alone and the shift stays within 32 bits: the same value as
            // below in four instructions instead of a 64-bit add, shift
            // and clamp. |p| < 2^62 keeps the high word and the sum in i32.
            let hi = (p >> 32) as i32;
            return (hi + (1 << (self.shift - 33))) >> (self.shift - 32);
        }
        let r = (p + (1i64 << (self.shift - 1))) >> self.shift;
        r.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    }
}

/// `zero_point + v`, saturated to `i8`.
#[inline(always)]
pub fn saturate(v: i32, zero_point: i32) -> i8 {
    v.saturating_add(zero_point).clamp(-128, 127) as i8
}

/// Maps levels of `from` to levels of `to` (`None` when they are equal and
/// levels pass through unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rescale {
    from_zp: i32,
    to_zp: i32,
    m: Requant,
}

impl Rescale {
    /// `None` when `from == to`.
    pub fn new(from: QParams, to: QParams) -> Option<Rescale> {
        (from != to).then(|| Rescale {
            from_zp: from.zero_point,
            to_zp: to.zero_point,
            m: Requant::new(from.scale / to.scale),
        })
    }

    /// Level `q` of `from` as a level of `to`.
    #[inline]
    pub fn apply(&self, q: i8) -> i8 {
        saturate(self.m.apply(i32::from(q) - self.from_zp), self.to_zp)
    }
}

/// `round(sum / count)`, ties away from zero (TFLite Micro's average-pool
/// rounding); 0 for a zero count.
#[inline]
pub fn div_round(sum: i32, count: i32) -> i32 {
    if count <= 0 {
        return 0;
    }
    let half = count / 2;
    if sum >= 0 {
        (sum + half) / count
    } else {
        (sum - half) / count
    }
}

/// Why this engine cannot run an op kind in an int8 model, worded for
/// each reader of the refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int8Refusal {
    /// What the engine refuses, as [`Error::Unsupported`](crate::Error::Unsupported)
    /// names it ("this op kind in an int8 model (export the model as f32 or f16)").
    pub what: &'static str,
    /// Why the kind has no int8 form, for an exporter's message ("this
    /// engine has no int8 kernel for it").
    pub why: &'static str,
}

/// Whether this engine runs `kind` in an int8 model: see [`int8_refusal`].
pub fn int8_supported(kind: OpKind) -> bool {
    int8_refusal(kind).is_none()
}

/// `None` for an op kind this engine runs in an int8 model, else why not.
///
/// This is the one list of int8-capable ops: [`Engine::new`](crate::Engine::new)
/// refuses the others in an int8 file, and an exporter asks it before
/// quantizing (Lasagna's `--quantize int8` names the op and the `why`).
/// A kind newer than this engine (`OpKind` is non-exhaustive) has no int8
/// form until its kernel is written.
pub fn int8_refusal(kind: OpKind) -> Option<Int8Refusal> {
    match kind {
        OpKind::Linear
        | OpKind::Conv2d
        | OpKind::MaxPool2d
        | OpKind::AvgPool2d
        | OpKind::AdaptiveAvgPool2d
        | OpKind::BatchNorm
        | OpKind::LayerNorm
        | OpKind::Embedding
        | OpKind::Lstm
        | OpKind::Flatten
        | OpKind::Relu
        | OpKind::LeakyRelu
        | OpKind::Gelu
        | OpKind::Silu
        | OpKind::Sigmoid
        | OpKind::Tanh
        | OpKind::Softmax => None,
        _ => Some(Int8Refusal {
            what: "this op kind in an int8 model (export the model as f32 or f16)",
            why: "this engine has no int8 kernel for it",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requant_is_the_real_product_rounded_half_up() {
        for &m in &[1.0f32, 0.5, 0.75, 1.0e-3, 3.3e-5, 0.999_999, 1.5, 123.25] {
            let r = Requant::new(m);
            for acc in [
                -1_000_000, -12_345, -3, -1, 0, 1, 2, 7, 999, 65_536, 2_000_000,
            ] {
                let want = (f64::from(acc) * f64::from(m) + 0.5).floor();
                assert_eq!(f64::from(r.apply(acc)), want, "m {m} acc {acc}");
            }
        }
    }

    #[test]
    fn requant_handles_extremes_without_overflow() {
        assert_eq!(Requant::new(0.0).apply(i32::MAX), 0);
        assert_eq!(Requant::new(f32::NAN).apply(5), 0);
        assert_eq!(Requant::new(-1.0).apply(5), 0);
        assert_eq!(Requant::new(1.0e-12).apply(i32::MAX), 0);
        assert_eq!(Requant::new(1.0e12).apply(3), i32::MAX);
        assert_eq!(Requant::new(1.0).apply(i32::MIN), i32::MIN);
        assert_eq!(Requant::new(1.0).apply(i32::MAX), i32::MAX);
    }

    #[test]
    fn quantize_rounds_ties_away_and_saturates() {
        let q = QParams {
            scale: 0.5,
            zero_point: -3,
        };
        assert_eq!(q.quantize(0.25), -2); // 0.5 rounds to 1
        assert_eq!(q.quantize(-0.25), -4);
        assert_eq!(q.quantize(1.0e9), 127);
        assert_eq!(q.quantize(-1.0e9), -128);
        assert_eq!(q.quantize(f32::NAN), 0);
        assert_eq!(q.dequantize(-3), 0.0);
        assert_eq!(q.dequantize(1), 2.0);
    }

    #[test]
    fn rescale_and_rounding_division() {
        let a = QParams {
            scale: 0.1,
            zero_point: 0,
        };
        assert_eq!(Rescale::new(a, a), None);
        let b = QParams {
            scale: 0.2,
            zero_point: 10,
        };
        let r = Rescale::new(a, b).unwrap_or(Rescale {
            from_zp: 0,
            to_zp: 0,
            m: Requant::default(),
        });
        assert_eq!(r.apply(20), 20);
        assert_eq!(r.apply(-128), -54);
        assert_eq!(div_round(7, 2), 4);
        assert_eq!(div_round(-7, 2), -4);
        assert_eq!(div_round(5, 3), 2);
        assert_eq!(div_round(5, 0), 0);
    }

    #[test]
    fn int8_runs_every_kind_of_the_format() {
        for code in 0..=u8::MAX {
            let Some(kind) = OpKind::from_code(code) else {
                continue;
            };
            assert!(int8_supported(kind), "{kind}");
        }
    }
}
