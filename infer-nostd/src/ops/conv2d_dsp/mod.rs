//! The Cortex-M4 int8 Conv2d (feature `arm-dsp`): the same integers as
//! the portable kernel in `conv2d.rs` (each output is the wrapping `i32`
//! sum of exact products `(x − zp_x) · w` plus the bias, requantized by the
//! channel's [`Requant`]), computed with `SMLAD`, two products per
//! instruction. The sums are the same in any order, so the kernels are free
//! to pick theirs.
//!
//! Two kernels, chosen by the geometry:
//! - **Rows** (one input channel per group and at most 16 taps, such as
//!   an image's first layer): one output row's patches are widened once
//!   (`ow · ⌈kk/2⌉` words), then each channel's few weights stay in
//!   registers along the row.
//! - **Patches** (the rest), a partial im2col: the input patches of two
//!   output positions are widened side by side into `i16` lanes minus the
//!   zero point (whole kernel rows at a time when no tap falls on padding,
//!   most positions; padding is the zero point, so it widens to 0), in the
//!   lane order `SXTB16` gives a weight word, so the weights are widened
//!   in registers and each feeds both positions: every two output
//!   channels are one pass of `dsp::dot2x2_all` over the pair, 15
//!   instructions per 16 multiply-accumulates.
//!
//! The exporter plans scratch for two widened patches
//! ([`crate::scratch_bytes_int8`]: the larger of the portable kernel's
//! `i32` row, a row of one-channel patches, and `4 · kg` bytes for a
//! `kg`-tap patch). Files planned for one patch
//! ([`crate::scratch_min_bytes_int8`]) and patches with `kg % 4 != 0` run
//! with the patches kept as bytes and widened inside the dot product, two
//! positions at a time if they fit, else one (slower, but the engine never
//! runs with less room than one).
//!
//! On the host (tests only) the DSP instructions are replaced by portable
//! functions with the same lane arithmetic, so the unit tests run these
//! very loops against the portable kernel on every geometry class and
//! every scratch layout.

// The kernels (cfg: the Cortex-M4 build, and the host tests): `kernel`
// dispatches and holds what they share; `rows` for one-channel inputs;
// `patches` for the rest; `bytes` when the patches cannot be widened.
#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
mod bytes;
#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
mod kernel;
#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
mod patches;
#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
mod rows;
#[cfg(test)]
mod tests;

#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
use {
    super::{conv2d::Conv2d, WeightScale},
    crate::quant::QParams,
    kernel::{Axis, Geo, Out, ROW_TAPS},
    patches::patches,
    rows::rows,
};

#[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
/// See the module comment; `scratch` is what the plan reserved.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_i8(
    p: &Conv2d,
    (qx, qy): (QParams, QParams),
    x: &[i8],
    weight: &[i8],
    scale: WeightScale<'_>,
    bias: Option<&[i32]>,
    scratch: &mut [u32],
    y: &mut [i8],
) {
    let win = &p.window;
    let axis = |a: usize, n: usize| {
        let at = |v: [u8; 2]| usize::from(v.get(a).copied().unwrap_or(1));
        Axis {
            k: at(win.kernel),
            s: at(win.stride).max(1),
            p: at(win.padding),
            d: at(win.dilation).max(1),
            n,
        }
    };
    let (ay, ax) = (axis(0, p.h), axis(1, p.w));
    let groups = p.groups.max(1);
    let (cin_g, cout_g) = (p.in_channels / groups, p.out_channels / groups);
    let (hw, ohw, kk) = (p.h * p.w, p.oh * p.ow, ay.k * ax.k);
    let kg = cin_g * kk;
    if [hw, ohw, kg, cout_g, p.ow].contains(&0) {
        return;
    }
    let geo = Geo {
        ay,
        ax,
        cin_g,
        hw,
        w: p.w,
        ow: p.ow,
        ohw,
        zp: qx.zero_point,
    };
    for g in 0..groups {
        let (Some(x_g), Some(w_g), Some(y_g)) = (
            x.get(g * cin_g * hw..(g + 1) * cin_g * hw),
            weight.get(g * cout_g * kg..(g + 1) * cout_g * kg),
            y.get_mut(g * cout_g * ohw..(g + 1) * cout_g * ohw),
        ) else {
            return;
        };
        let out = Out {
            ratio: qx.scale / qy.scale,
            scale,
            oc0: g * cout_g,
            bias,
            zp: qy.zero_point,
        };
        if cin_g == 1 && kk <= ROW_TAPS && p.ow * kk.div_ceil(2) <= scratch.len() {
            rows(&geo, x_g, w_g, &out, scratch, y_g);
        } else {
            patches(&geo, x_g, w_g, &out, scratch, y_g);
        }
    }
}
