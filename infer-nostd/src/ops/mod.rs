//! The kernels, one file per op (named as in `trainer/src/backend/cpu/`). Each is a
//! plain, allocation-free loop over slices; the [`Engine`](crate::Engine)
//! has already checked every shape, dtype and buffer size, so a kernel only
//! guards what would otherwise panic (zero-sized chunks, short slices) and
//! does nothing rather than read out of bounds.
//!
//! Weights arrive as [`Weights`]: `f32` or `f16` (or `i8`, dequantized),
//! borrowed from the model file and converted to `f32` on the fly. The f32
//! path accumulates in `f32`, in the order of a straightforward dot product,
//! and adds in the same order as the trainer's eval forward (product, then
//! bias), which is what host parity is measured against.
//!
//! The int8 path (`*_i8` functions, arithmetic in [`crate::quant`]) reads
//! `i8` activations and weights, accumulates in `i32` and requantizes with a
//! fixed-point multiplier: integer-only, so every target agrees to the bit.

pub mod activation;
pub mod avgpool2d;
pub mod batchnorm;
pub mod conv2d;
pub(crate) mod conv2d_dsp;
#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
pub mod dsp;
pub mod embedding;
pub mod flatten;
#[cfg(all(test, not(all(feature = "arm-dsp", target_arch = "arm"))))]
pub(crate) mod lanes;
pub mod layernorm;
pub mod linear;
pub mod linear_interleaved;
pub mod lstm;
pub mod lstm_i8;
#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
mod lstm_i8_dsp;
pub mod lstm_lut;
pub mod maxpool2d;
pub mod softmax;

use half::f16;
use lasagna_format::Scales;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
}

/// A stored weight element: `f32` or `f16`, read as `f32`.
pub trait Element: Copy + sealed::Sealed {
    /// The value as `f32` (exact for both types).
    fn to_f32(self) -> f32;
}

impl Element for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Element for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// A weight, bias or statistics tensor borrowed in place from the model file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Weights<'m> {
    /// Stored as `f32`.
    F32(&'m [f32]),
    /// Stored as `f16`; converted element by element as the kernels read it.
    F16(&'m [f16]),
    /// Stored as `i8` with its scales (zero points are 0: weights are
    /// symmetric). The int8 kernels read the levels; [`at`](Weights::at)
    /// and friends dequantize.
    I8(&'m [i8], WeightScale<'m>),
    /// Stored as `i32`: an int8 Linear or Conv2d bias, in units of
    /// `s_in · s_w[c]` (the accumulator's).
    I32(&'m [i32]),
}

/// Scales of an `i8` weight tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum WeightScale<'m> {
    /// One scale for the whole tensor.
    Tensor(f32),
    /// One scale per slice along axis 0 (per output channel).
    Channel(Scales<'m>),
}

impl WeightScale<'_> {
    /// Scale of slice `c` along axis 0 (1.0 past the end; prepare checked
    /// the counts).
    #[inline]
    pub fn of(&self, c: usize) -> f32 {
        match self {
            WeightScale::Tensor(s) => *s,
            WeightScale::Channel(s) => s.get(c).unwrap_or(1.0),
        }
    }
}

impl<'m> Weights<'m> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Weights::F32(w) => w.len(),
            Weights::F16(w) => w.len(),
            Weights::I8(w, _) => w.len(),
            Weights::I32(w) => w.len(),
        }
    }

    /// True when the tensor has no elements (never for a validated model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as `f32`, or 0 past the end (prepare has checked the
    /// lengths; this only keeps a bad call from panicking).
    #[inline]
    pub fn at(&self, i: usize) -> f32 {
        match self {
            Weights::F32(w) => w.get(i).copied().unwrap_or(0.0),
            Weights::F16(w) => w.get(i).map_or(0.0, |v| v.to_f32()),
            Weights::I8(w, s) => {
                let per = w.len() / channels(s, w.len());
                w.get(i)
                    .map_or(0.0, |&q| s.of(i / per.max(1)) * f32::from(q))
            }
            Weights::I32(w) => w.get(i).map_or(0.0, |&v| v as f32),
        }
    }

    /// `sum_k x[k] * W[row, k]` for a row-major `[rows, x.len()]` tensor,
    /// accumulated in `f32` from `k = 0` up. 0 if the row is out of range.
    #[inline]
    pub fn dot(&self, row: usize, x: &[f32]) -> f32 {
        let n = x.len();
        let start = row.saturating_mul(n);
        let end = start.saturating_add(n);
        match self {
            Weights::F32(w) => w.get(start..end).map_or(0.0, |w| dot(x, w)),
            Weights::F16(w) => w.get(start..end).map_or(0.0, |w| dot(x, w)),
            _ => x
                .iter()
                .enumerate()
                .fold(0.0, |acc, (k, &a)| acc + a * self.at(start + k)),
        }
    }

    /// Copies row `row` of a row-major `[rows, out.len()]` tensor into `out`
    /// as `f32`; leaves `out` alone if the row is out of range.
    pub fn row_into(&self, row: usize, out: &mut [f32]) {
        let n = out.len();
        let start = row.saturating_mul(n);
        let end = start.saturating_add(n);
        match self {
            Weights::F32(w) => {
                if let Some(r) = w.get(start..end) {
                    copy(r, out);
                }
            }
            Weights::F16(w) => {
                if let Some(r) = w.get(start..end) {
                    for (o, v) in out.iter_mut().zip(r) {
                        *o = v.to_f32();
                    }
                }
            }
            _ => {
                if end <= self.len() {
                    for (k, o) in out.iter_mut().enumerate() {
                        *o = self.at(start + k);
                    }
                }
            }
        }
    }
}

/// Slices along axis 0 an `i8` tensor of `len` elements has scales for.
fn channels(s: &WeightScale<'_>, len: usize) -> usize {
    match s {
        WeightScale::Tensor(_) => 1,
        WeightScale::Channel(c) => c.len().clamp(1, len.max(1)),
    }
}

/// `sum_k x[k] * w[k]` in `f32`, in index order (over the shorter length).
#[inline]
pub(crate) fn dot<W: Element>(x: &[f32], w: &[W]) -> f32 {
    let mut acc = 0.0f32;
    for (&a, &b) in x.iter().zip(w) {
        acc += a * b.to_f32();
    }
    acc
}

/// `dst = src` over the shorter length (`copy_from_slice` panics on a length
/// mismatch; prepare makes the lengths equal, this makes a mistake harmless).
#[inline]
pub(crate) fn copy<T: Copy>(src: &[T], dst: &mut [T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
pub(crate) mod testutil {
    use std::vec::Vec;

    /// Deterministic values in [-1, 1) (a 64-bit LCG; tests need no quality).
    pub fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Fails with the first mismatch beyond `tol + |want| * tol`.
    pub fn assert_close(got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "lengths");
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let d = (g as f64 - w).abs();
            assert!(
                d <= tol + w.abs() * tol,
                "element {i}: got {g}, want {w} (|diff| {d})"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_read_f32_and_f16_alike_and_never_panic_out_of_range() {
        let f = [1.0f32, 2.0, 3.0, 4.0];
        let h = [
            f16::from_f32(1.0),
            f16::from_f32(2.0),
            f16::from_f32(3.0),
            f16::from_f32(4.0),
        ];
        for w in [Weights::F32(&f), Weights::F16(&h)] {
            assert_eq!(w.len(), 4);
            assert_eq!(w.at(2), 3.0);
            assert_eq!(w.at(9), 0.0);
            assert_eq!(w.dot(1, &[1.0, 0.5]), 3.0 + 2.0);
            assert_eq!(w.dot(2, &[1.0, 0.5]), 0.0);
            let mut out = [0.0; 2];
            w.row_into(1, &mut out);
            assert_eq!(out, [3.0, 4.0]);
            w.row_into(5, &mut out);
            assert_eq!(out, [3.0, 4.0]);
        }
    }
}
