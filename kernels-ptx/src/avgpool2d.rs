//! AvgPool2d and AdaptiveAvgPool2d forward and backward
//! (`ptx/avgpool2d.ptx`; CPU reference `trainer/src/backend/cpu/avgpool2d.rs`).
//! Launch the fixed-window entries with
//! [`pool2d_launch`](crate::maxpool2d::pool2d_launch), the adaptive ones with
//! [`adaptive_pool2d_launch`].
//!
//! Parameters of the fixed-window entries: the pointers, the `maxpool2d`
//! geometry (`planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw`), then
//! `include_pad` (0 or 1, PyTorch's `count_include_pad`). The adaptive
//! entries take the pointers and `planes, h, w, oh, ow`.

use crate::kernel::{at_most, p, Kernel, Launch, LaunchError, Module};
use crate::maxpool2d::geometry;
use crate::Param;
use crate::ParamKind::{PtrF32, U32};

pub use crate::maxpool2d::pool2d_launch;

/// The PTX module.
pub static MODULE: Module = Module {
    name: "avgpool2d",
    ptx: include_str!("../ptx/avgpool2d.ptx"),
};

const FWD_PTRS: &[Param] = geometry!(p("x", PtrF32), p("y", PtrF32));
const BWD_PTRS: &[Param] = geometry!(p("dy", PtrF32), p("dx", PtrF32));
const FWD: &[Param] = &concat(FWD_PTRS);
const BWD: &[Param] = &concat(BWD_PTRS);

/// `head` followed by `include_pad` (both entries have 13 leading params).
const fn concat(head: &[Param]) -> [Param; 14] {
    let mut out = [p("include_pad", U32); 14];
    let mut i = 0;
    while i < 13 {
        out[i] = head[i];
        i += 1;
    }
    out
}

/// `y[o] = sum(window(o)) / divisor(o)`; grid-stride over the outputs.
pub static AVGPOOL2D_FORWARD: Kernel = Kernel {
    name: "avgpool2d_forward",
    module: &MODULE,
    params: FWD,
};
/// `dx[i] = sum of dy[o] / divisor(o)` over windows holding `i` (a gather);
/// grid-stride over the inputs.
pub static AVGPOOL2D_BACKWARD: Kernel = Kernel {
    name: "avgpool2d_backward",
    module: &MODULE,
    params: BWD,
};

/// `planes, h, w, oh, ow` after the two pointers.
macro_rules! adaptive {
    ($a:expr, $b:expr) => {
        &[
            $a,
            $b,
            p("planes", U32),
            p("h", U32),
            p("w", U32),
            p("oh", U32),
            p("ow", U32),
        ]
    };
}

/// `y[o] = sum(bin(o)) / bin height / bin width`, PyTorch's adaptive bins
/// (`adaptive_bin` in `trainer/src/backend/pool.rs`); grid-stride over the
/// outputs.
pub static ADAPTIVE_AVGPOOL2D_FORWARD: Kernel = Kernel {
    name: "adaptive_avgpool2d_forward",
    module: &MODULE,
    params: adaptive!(p("x", PtrF32), p("y", PtrF32)),
};
/// `dx[i] = sum of dy[o] / bin height / bin width` over the bins holding `i`
/// (a gather: each `dx` written once, no atomics); grid-stride over the inputs.
pub static ADAPTIVE_AVGPOOL2D_BACKWARD: Kernel = Kernel {
    name: "adaptive_avgpool2d_backward",
    module: &MODULE,
    params: adaptive!(p("dy", PtrF32), p("dx", PtrF32)),
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[
    &AVGPOOL2D_FORWARD,
    &AVGPOOL2D_BACKWARD,
    &ADAPTIVE_AVGPOOL2D_FORWARD,
    &ADAPTIVE_AVGPOOL2D_BACKWARD,
];

/// The launch of either adaptive entry for `planes` planes of `h x w` pooled
/// to `oh x ow`: [`pool2d_launch`]'s, after checking that the kernels' u32
/// bin arithmetic (`i * h + h + oh - 1` and its transpose) cannot wrap.
pub fn adaptive_pool2d_launch(
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Result<Launch, LaunchError> {
    let max = u32::MAX as usize;
    let k = "adaptive_avgpool2d";
    let span = |a: usize, b: usize| a.saturating_add(1).saturating_mul(b.saturating_add(1));
    at_most(k, "(h + 1) * (oh + 1)", span(h, oh), max)?;
    at_most(k, "(w + 1) * (ow + 1)", span(w, ow), max)?;
    let in_len = planes.saturating_mul(h).saturating_mul(w);
    let out_len = planes.saturating_mul(oh).saturating_mul(ow);
    pool2d_launch(in_len, out_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_are_declared_with_their_params() {
        for k in ALL {
            crate::kernel::testing::assert_declared(k);
        }
        crate::kernel::testing::assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn adaptive_launch_refuses_wrapping_bin_arithmetic() {
        let l = adaptive_pool2d_launch(8 * 64, 7, 7, 1, 1).unwrap();
        assert!(l.grid.count() * l.block.count() >= 8 * 64 * 49);
        assert!(adaptive_pool2d_launch(1, 65_534, 1, 65_534, 1).is_ok());
        assert!(adaptive_pool2d_launch(1, 65_535, 1, 65_535, 1).is_err());
        assert!(adaptive_pool2d_launch(1, 1, 70_000, 1, 70_000).is_err());
        assert!(adaptive_pool2d_launch(usize::MAX, 2, 2, 1, 1).is_err());
        assert!(adaptive_pool2d_launch(1, usize::MAX, 1, 1, 1).is_err());
    }
}
