//! The int8 Conv2d on the Cortex-M4: the dispatch between the kernels and
//! what they share (geometry, requantization); see `conv2d_dsp`.

use super::super::WeightScale;

/// Taps of a one-channel kernel up to which the rows kernel runs (its
/// weights, at most 8 pairs, stay in registers).
pub(super) const ROW_TAPS: usize = 16;
use crate::quant::{saturate, Requant};

/// The geometry along one axis: kernel, stride, padding, dilation,
/// input length.
#[derive(Clone, Copy)]
pub(super) struct Axis {
    pub(super) k: usize,
    pub(super) s: usize,
    pub(super) p: usize,
    pub(super) d: usize,
    pub(super) n: usize,
}

impl Axis {
    /// For output `o`: the input index of tap 0 (wrapped when it lies
    /// in the padding) and the taps `lo..hi` that land inside the input.
    #[inline(always)]
    pub(super) fn taps(&self, o: usize) -> (usize, usize, usize) {
        let start = o * self.s;
        let lo = if self.p > start {
            (self.p - start).div_ceil(self.d.max(1))
        } else {
            0
        };
        let hi = if self.n + self.p > start {
            (self.n + self.p - start).div_ceil(self.d.max(1))
        } else {
            0
        };
        let (lo, hi) = (lo.min(self.k), hi.min(self.k));
        (start.wrapping_sub(self.p), lo, hi.max(lo))
    }
}

/// One group's input geometry.
pub(super) struct Geo {
    pub(super) ay: Axis,
    pub(super) ax: Axis,
    pub(super) cin_g: usize,
    pub(super) hw: usize,
    pub(super) w: usize,
    pub(super) ow: usize,
    pub(super) ohw: usize,
    pub(super) zp: i32,
}

/// One group's requantization.
pub(super) struct Out<'a> {
    pub(super) ratio: f32,
    pub(super) scale: WeightScale<'a>,
    /// First output channel of the group.
    pub(super) oc0: usize,
    pub(super) bias: Option<&'a [i32]>,
    pub(super) zp: i32,
}

impl Out<'_> {
    /// Channel `oc`'s (within the group) multiplier and bias: the
    /// portable kernel's `Requant::new(ratio · s_w[oc])`.
    #[inline(always)]
    pub(super) fn channel(&self, oc: usize) -> (Requant, i32) {
        let b = self.bias.and_then(|b| b.get(self.oc0 + oc)).copied();
        (
            Requant::new(self.ratio * self.scale.of(self.oc0 + oc)),
            b.unwrap_or(0),
        )
    }

    #[inline(always)]
    pub(super) fn level(&self, (m, b): (Requant, i32), acc: i32) -> i8 {
        saturate(m.apply(acc.wrapping_add(b)), self.zp)
    }
}

/// Output channels whose requantization [`Chans`] holds at once for
/// the rows kernel (12 bytes of stack each; past them it computes a
/// channel's once per output row).
pub(super) const CHAN_BLOCK: usize = 16;

/// Channels `first..first + n`'s multipliers and biases, computed once
/// per call: computed per output, they cost more than the 9
/// multiply-accumulates of a first layer's output.
pub(super) struct Chans {
    pub(super) m: [Requant; CHAN_BLOCK],
    pub(super) b: [i32; CHAN_BLOCK],
}

impl Chans {
    pub(super) fn new(out: &Out<'_>, first: usize, n: usize) -> Chans {
        let mut c = Chans {
            // Multiplier 0 (shift 1, a valid `apply`) past `n`.
            m: [Requant::new(0.0); CHAN_BLOCK],
            b: [0; CHAN_BLOCK],
        };
        for (k, (m, b)) in c.m.iter_mut().zip(c.b.iter_mut()).enumerate().take(n) {
            (*m, *b) = out.channel(first + k);
        }
        c
    }

    #[inline(always)]
    pub(super) fn get(&self, k: usize) -> (Requant, i32) {
        match (self.m.get(k), self.b.get(k)) {
            (Some(&m), Some(&b)) => (m, b),
            _ => (Requant::new(0.0), 0),
        }
    }
}

/// Two `i16` values as one word of lanes `[lo, hi]`.
#[inline(always)]
pub(super) fn pack(lo: i32, hi: i32) -> u32 {
    (lo as u32 & 0xffff) | ((hi as u32) << 16)
}
