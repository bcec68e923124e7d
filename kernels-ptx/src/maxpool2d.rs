//! MaxPool2d forward (with argmax) and backward (`ptx/maxpool2d.ptx`; CPU
//! reference `trainer/src/backend/cpu/maxpool2d.rs`), and the launch rule shared with
//! `avgpool2d`.
//!
//! Geometry parameters follow `Pool2dDims` in `trainer/src/backend/pool.rs`,
//! all as `u32`: `planes` (= n * c), `h, w, oh, ow, kh, kw, sh, sw, ph, pw`.
//! The host checks the geometry (`Pool2dDims::check`) before launching.

use crate::kernel::grid_stride;
use crate::kernel::{at_most, p, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{OptPtrF32, PtrF32, PtrU32, F32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "maxpool2d",
    ptx: include_str!("../ptx/maxpool2d.ptx"),
};

/// The geometry, in the order every pooling entry takes it after its pointers.
macro_rules! geometry {
    ($($ptr:expr),*) => {
        &[
            $($ptr,)*
            p("planes", U32),
            p("h", U32),
            p("w", U32),
            p("oh", U32),
            p("ow", U32),
            p("kh", U32),
            p("kw", U32),
            p("sh", U32),
            p("sw", U32),
            p("ph", U32),
            p("pw", U32),
        ]
    };
}
pub(crate) use geometry;

const FWD: &[Param] = geometry!(p("x", PtrF32), p("y", PtrF32), p("argmax", PtrU32));
const BWD: &[Param] = geometry!(
    p("dy", PtrF32),
    p("argmax", PtrU32),
    p("relu_x", OptPtrF32),
    p("scale", F32),
    p("dx", PtrF32)
);

/// `y[o] = max(window(o))`, `argmax[o] = iy * w + ix` of the first maximum
/// (NaN wins); grid-stride over the outputs.
pub static MAXPOOL2D_FORWARD: Kernel = Kernel {
    name: "maxpool2d_forward",
    module: &MODULE,
    params: FWD,
};
/// `dx[i] = sum of dy[o] with argmax[o] == i` (a gather, no atomics);
/// grid-stride over the inputs. With `relu_x` (the forward's input; null for
/// none), `dx[i] = x[i] > 0 ? dx[i] * scale : 0`: the backward of a ReLU (and
/// a Dropout of scale `1 / (1 - p)`) before the pool, absorbed.
pub static MAXPOOL2D_BACKWARD: Kernel = Kernel {
    name: "maxpool2d_backward",
    module: &MODULE,
    params: BWD,
};
/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&MAXPOOL2D_FORWARD, &MAXPOOL2D_BACKWARD];

/// Threads per block: 8 warps, as the other element-wise kernels.
pub const BLOCK: u32 = 256;
/// Grid cap for the grid-stride loops (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;
/// The kernels index elements with a u32 and add the grid stride to it, so
/// the largest tensor is one the sum cannot wrap on.
pub const MAX_ELEMENTS: usize = i32::MAX as usize;

/// The launch of any pooling entry (max or average, either direction) for
/// `in_len = planes * h * w` inputs and `out_len = planes * oh * ow` outputs:
/// one thread per output for forward and per input for backward, so the grid
/// covers the larger of the two.
pub fn pool2d_launch(in_len: usize, out_len: usize) -> Result<Launch, LaunchError> {
    at_most("pool2d", "input elements", in_len, MAX_ELEMENTS)?;
    at_most("pool2d", "output elements", out_len, MAX_ELEMENTS)?;
    Ok(grid_stride(in_len.max(out_len), BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_the_larger_side_and_refuses_wrapping_indices() {
        for (i, o) in [
            (0usize, 0usize),
            (1, 1),
            (256, 64),
            (257, 1000),
            (1 << 30, 1),
        ] {
            let l = pool2d_launch(i, o).unwrap();
            let threads = l.grid.count() * l.block.count();
            assert!(threads >= i.max(o) as u64 || l.grid.x == MAX_GRID);
        }
        assert!(pool2d_launch(MAX_ELEMENTS + 1, 1).is_err());
        assert!(pool2d_launch(1, MAX_ELEMENTS + 1).is_err());
    }
}
