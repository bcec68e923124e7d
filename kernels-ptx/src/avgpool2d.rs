//! AvgPool2d forward and backward (`ptx/avgpool2d.ptx`; CPU reference
//! `trainer/src/cpu/avgpool2d.rs`). Launch with
//! [`pool2d_launch`](crate::maxpool2d::pool2d_launch).
//!
//! Parameters: the pointers, the `maxpool2d` geometry (`planes, h, w, oh, ow,
//! kh, kw, sh, sw, ph, pw`), then `include_pad` (0 or 1, PyTorch's
//! `count_include_pad`).

use crate::kernel::{p, Kernel, Module};
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
/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&AVGPOOL2D_FORWARD, &AVGPOOL2D_BACKWARD];
