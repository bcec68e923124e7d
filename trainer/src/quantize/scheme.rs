//! Activation quantization: observed ranges, the `(scale, zero_point)` each
//! value gets, and the groups of values that must share one.

use crate::error::{Error, Result};
use lasagna_format::{Op, ValueType};

/// The smallest and largest real seen in a value during calibration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
}

impl Range {
    /// Nothing seen yet: the identity of [`Range::union`].
    pub const EMPTY: Range = Range {
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
    };

    /// A range from its bounds.
    pub fn new(min: f32, max: f32) -> Range {
        Range { min, max }
    }

    /// The smallest range holding both.
    pub fn union(self, o: Range) -> Range {
        Range {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
        }
    }

    /// What ReLU makes of this range: negatives become 0.
    pub fn relu(self) -> Range {
        if self == Range::EMPTY {
            return self;
        }
        Range {
            min: self.min.max(0.0),
            max: self.max.max(0.0),
        }
    }

    /// Widens the range to hold the finite values of `data`; false if
    /// `data` holds a NaN or an infinity (which no int8 scale can represent).
    pub fn observe(&mut self, data: &[f32]) -> bool {
        let mut finite = true;
        for &x in data {
            if x.is_finite() {
                self.min = self.min.min(x);
                self.max = self.max.max(x);
            } else {
                finite = false;
            }
        }
        finite
    }
}

/// Per-tensor affine quantization of an activation value:
/// `real = scale * (q - zero_point)`, `q` in `[-128, 127]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ValueQuant {
    /// Real step between consecutive int8 codes; finite and > 0.
    pub scale: f32,
    /// The code that represents real 0, in `[-128, 127]`.
    pub zero_point: i32,
}

impl ValueQuant {
    /// Softmax's output lies in `[0, 1]`: 256 codes of 1/256 starting at
    /// 0 (TFLite's fixed output quantization for int8 softmax).
    pub const SOFTMAX: ValueQuant = ValueQuant {
        scale: 1.0 / 256.0,
        zero_point: -128,
    };

    /// Asymmetric quantization of a calibrated range, widened to hold 0 so
    /// that zero (padding, ReLU's floor) is exactly representable:
    /// `lo = min(min, 0)`, `hi = max(max, 0)`, `scale = (hi - lo) / 255`
    /// (1 if that is 0), `zero_point = round(-128 - lo / scale)` clamped to
    /// `[-128, 127]`.
    pub fn from_range(r: Range) -> ValueQuant {
        let lo = r.min.min(0.0);
        let hi = r.max.max(0.0);
        let scale = (hi - lo) / 255.0;
        let scale = if scale > 0.0 && scale.is_finite() {
            scale
        } else {
            1.0
        };
        let zp = (-128.0 - f64::from(lo) / f64::from(scale)).round();
        ValueQuant {
            scale,
            zero_point: zp.clamp(-128.0, 127.0) as i32,
        }
    }

    /// The input quantization of a model trained on 8-bit pixels normalized
    /// as `(p / 255 - mean) / std`: `scale = 1 / (255 std)`,
    /// `zero_point = round(255 mean) - 128`, so pixel `p` in `[0, 255]` is
    /// the code `p - 128` exactly. `None` for no normalization (mean 0,
    /// std 1: the input is calibrated like any value) or for a mean outside
    /// `[0, 1]`, whose zero point would not be an int8 code.
    pub fn pixels(mean: f32, std: f32) -> Option<ValueQuant> {
        if (mean, std) == (0.0, 1.0) || !(std > 0.0 && std.is_finite() && mean.is_finite()) {
            return None;
        }
        let scale = (1.0 / (255.0 * f64::from(std))) as f32;
        let zero_point = (255.0 * f64::from(mean)).round() - 128.0;
        let ok = scale > 0.0 && scale.is_finite() && (-128.0..=127.0).contains(&zero_point);
        ok.then_some(ValueQuant {
            scale,
            zero_point: zero_point as i32,
        })
    }

    /// The format's value type for this quantization.
    pub fn value_type(self) -> ValueType {
        ValueType::I8 {
            scale: self.scale,
            zero_point: self.zero_point,
        }
    }
}

/// Ops whose input and output share one quantization, so that the int8
/// engine runs them as pure integer copies, maxima and averages.
pub fn passes_through(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu
            | Op::MaxPool2d { .. }
            | Op::AvgPool2d { .. }
            | Op::AdaptiveAvgPool2d { .. }
            | Op::Flatten
    )
}

/// The quantization group of every value (`ops.len() + 1` of them, input
/// first), named by its first value. Op `i` joins values `i` and `i + 1`
/// when it [`passes_through`]; a model is a chain, so groups are runs of
/// consecutive values.
pub fn share_groups(ops: &[Op]) -> Vec<usize> {
    let mut group = Vec::with_capacity(ops.len() + 1);
    group.push(0);
    for (i, op) in ops.iter().enumerate() {
        let g = if passes_through(op) { group[i] } else { i + 1 };
        group.push(g);
    }
    group
}

/// The quantization of every value, from calibrated `ranges` (one per
/// value, input first) and the model's input `normalization`:
///
/// - a group holding value 0 takes [`ValueQuant::pixels`] when the model
///   has a normalization;
/// - otherwise a group holding a Softmax output takes [`ValueQuant::SOFTMAX`];
/// - otherwise [`ValueQuant::from_range`] of the union of its members'
///   ranges, where a ReLU's input contributes the ReLU's output range (its
///   negatives are clipped): the layer before a ReLU then saturates at the
///   zero point, which is ReLU fused into it.
pub fn value_quants(
    ops: &[Op],
    ranges: &[Range],
    normalization: (f32, f32),
) -> Result<Vec<ValueQuant>> {
    let n = ops.len() + 1;
    if ranges.len() != n {
        return Err(Error::config(
            "int8 calibration",
            format!("{} ranges for {n} values", ranges.len()),
        ));
    }
    let group = share_groups(ops);
    let input = ValueQuant::pixels(normalization.0, normalization.1);
    let mut range = vec![Range::EMPTY; n];
    let mut softmax = vec![false; n];
    for v in 0..n {
        let r = match ops.get(v) {
            Some(Op::Relu) => ranges[v].relu(),
            _ => ranges[v],
        };
        range[group[v]] = range[group[v]].union(r);
        if v > 0 && matches!(ops[v - 1], Op::Softmax) {
            softmax[group[v]] = true;
        }
    }
    Ok(group
        .iter()
        .map(|&g| match input {
            Some(q) if g == 0 => q,
            _ if softmax[g] => ValueQuant::SOFTMAX,
            _ => ValueQuant::from_range(range[g]),
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn a_range_maps_its_ends_to_the_ends_of_int8() {
        let q = ValueQuant::from_range(Range::new(-1.0, 3.0));
        assert_eq!(q.scale, 4.0 / 255.0);
        // -1 is code -128 and 3 is code 127 (up to rounding of the zero point).
        assert_eq!(
            q.zero_point,
            (-128.0f64 + 1.0 / f64::from(q.scale)).round() as i32
        );
        assert!((q.scale * (127 - q.zero_point) as f32 - 3.0).abs() < q.scale);
    }

    #[test]
    fn ranges_are_widened_to_hold_zero_and_an_empty_range_gets_scale_one() {
        let pos = ValueQuant::from_range(Range::new(2.0, 5.1));
        assert_eq!((pos.scale, pos.zero_point), (5.1 / 255.0, -128));
        let neg = ValueQuant::from_range(Range::new(-5.1, -2.0));
        assert_eq!((neg.scale, neg.zero_point), (5.1 / 255.0, 127));
        let zero = ValueQuant::from_range(Range::new(0.0, 0.0));
        assert_eq!((zero.scale, zero.zero_point), (1.0, -128));
        let empty = ValueQuant::from_range(Range::EMPTY);
        assert_eq!((empty.scale, empty.zero_point), (1.0, -128));
    }

    #[test]
    fn mnist_pixels_map_to_code_pixel_minus_128_exactly() {
        let q = ValueQuant::pixels(0.1307, 0.3081).unwrap();
        assert_eq!(q.zero_point, 33 - 128);
        for p in 0..=255u8 {
            let x = (f32::from(p) / 255.0 - 0.1307) / 0.3081;
            let code = (x / q.scale).round() as i32 + q.zero_point;
            assert_eq!(code, i32::from(p) - 128, "pixel {p}");
        }
        assert_eq!(ValueQuant::pixels(0.0, 1.0), None);
        assert_eq!(ValueQuant::pixels(-3.0, 1.0), None);
    }

    #[test]
    fn pass_through_ops_share_one_group_and_relu_clips_its_input() {
        // Linear, ReLU, MaxPool-free chain: Flatten, Linear, ReLU, Linear, Softmax.
        let lin = Op::Linear {
            in_features: 4,
            out_features: 4,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        };
        let ops = [Op::Flatten, lin, Op::Relu, lin, Op::Softmax];
        assert_eq!(share_groups(&ops), vec![0, 0, 2, 2, 4, 5]);
        let ranges = [
            Range::new(-0.4, 2.8),
            Range::new(-0.4, 2.8),
            Range::new(-6.0, 4.0),
            Range::new(0.0, 3.0),
            Range::new(-2.0, 9.0),
            Range::new(0.01, 0.9),
        ];
        let q = value_quants(&ops, &ranges, (0.1307, 0.3081)).unwrap();
        let pixels = ValueQuant::pixels(0.1307, 0.3081).unwrap();
        assert_eq!((q[0], q[1]), (pixels, pixels));
        // Linear output before ReLU: [0, 4] (the -6 is clipped), shared with the ReLU output.
        let relu = ValueQuant::from_range(Range::new(0.0, 4.0));
        assert_eq!((q[2], q[3]), (relu, relu));
        assert_eq!(relu.zero_point, -128);
        assert_eq!(q[4], ValueQuant::from_range(Range::new(-2.0, 9.0)));
        assert_eq!(q[5], ValueQuant::SOFTMAX);
        // Without normalization the input group is calibrated.
        let q = value_quants(&ops, &ranges, (0.0, 1.0)).unwrap();
        assert_eq!(q[0], ValueQuant::from_range(Range::new(-0.4, 2.8)));
    }
}
