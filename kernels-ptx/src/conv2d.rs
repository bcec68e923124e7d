//! im2col and col2im for Conv2d as GEMMs (`ptx/conv2d.ptx`; CPU reference
//! `trainer/src/backend/cpu/conv2d/im2col.rs`, used per sample by
//! `trainer/src/backend/cpu/conv2d.rs`; contract `ConvOps` in
//! `trainer/src/backend/conv.rs`).
//!
//! A convolution runs as the CPU's does, per sample: forward is `im2col`, then
//! one [`gemm`](crate::gemm::GEMM) per group `y_g [cog, oh*ow] = W_g [cog, kg]
//! col_g [kg, oh*ow]` (beta 0), then the bias as a rank-1 update `y_g +=
//! bias_g [cog, 1] ones [1, oh*ow]` (k = 1, beta 1: one rounding of `y + b`,
//! as the CPU's). Backward is `dwt_g [kg, cog] += col_g dy_g^T` (beta 1),
//! `dcol_g = W_g^T dy_g`, then `col2im`; after the last sample `dweight_g +=
//! dwt_g^T` (a gemm with an identity, exact). Groups are
//! pointer offsets (group g's column rows are one contiguous block).
//!
//! Geometry parameters follow `Conv2dDims`, all as `u32`: `n, c_in, h, w, oh,
//! ow, kh, kw, sh, sw, ph, pw, dh, dw`. The host checks the geometry
//! (`Conv2dDims::check`) before launching.

use crate::kernel::{at_most, blocks_for, p, Dim3, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{PtrF32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "conv2d",
    ptx: include_str!("../ptx/conv2d.ptx"),
};

/// The geometry, in the order both entries take it after their pointers.
macro_rules! geometry {
    ($($ptr:expr),*) => {
        &[
            $($ptr,)*
            p("n", U32),
            p("c_in", U32),
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
            p("dh", U32),
            p("dw", U32),
        ]
    };
}

const IM2COL_PARAMS: &[Param] = geometry!(p("x", PtrF32), p("col", PtrF32));
const COL2IM_PARAMS: &[Param] = geometry!(p("col", PtrF32), p("dx", PtrF32));

/// `col [c_in*kh*kw, n*oh*ow] = im2col(x [n, c_in, h, w])`, 0 in the padding;
/// grid-stride over the column elements.
pub static IM2COL: Kernel = Kernel {
    name: "im2col",
    module: &MODULE,
    params: IM2COL_PARAMS,
};
/// `dx = col2im(col)`, overwriting dx: each input element gathers the column
/// entries that read it, in the CPU scatter's order (no atomics);
/// grid-stride over the inputs.
pub static COL2IM: Kernel = Kernel {
    name: "col2im",
    module: &MODULE,
    params: COL2IM_PARAMS,
};
/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&IM2COL, &COL2IM];

/// Threads per block: 8 warps, as the other element-wise kernels.
pub const BLOCK: u32 = 256;
/// Grid cap for the grid-stride loops (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;
/// The kernels index elements with a u32 and add the grid stride to it, so
/// the largest matrix is one the sum cannot wrap on.
pub const MAX_ELEMENTS: usize = i32::MAX as usize;

fn grid_stride(
    kernel: &'static str,
    what: &'static str,
    len: usize,
) -> Result<Launch, LaunchError> {
    at_most(kernel, what, len, MAX_ELEMENTS)?;
    Ok(Launch {
        grid: Dim3::x(blocks_for(len, BLOCK as usize).min(MAX_GRID as usize) as u32),
        block: Dim3::x(BLOCK),
        shared_bytes: 0,
    })
}

/// The launch of [`IM2COL`] for `col_len = c_in * kh * kw * n * oh * ow`
/// column elements (one thread each). The input is no larger than the
/// columns' extent in index terms, but its index is checked too: `x_len =
/// n * c_in * h * w`.
pub fn im2col_launch(col_len: usize, x_len: usize) -> Result<Launch, LaunchError> {
    at_most("im2col", "input elements", x_len, MAX_ELEMENTS)?;
    grid_stride("im2col", "column elements", col_len)
}

/// The launch of [`COL2IM`] for `x_len = n * c_in * h * w` input elements
/// (one thread each) gathering from `col_len` column elements.
pub fn col2im_launch(col_len: usize, x_len: usize) -> Result<Launch, LaunchError> {
    at_most("col2im", "column elements", col_len, MAX_ELEMENTS)?;
    grid_stride("col2im", "input elements", x_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_every_thread_and_refuses_wrapping_indices() {
        for (c, x) in [
            (0usize, 0usize),
            (1, 1),
            (256, 64),
            (9000, 1000),
            (1 << 30, 1),
        ] {
            for (l, len) in [
                (im2col_launch(c, x).unwrap(), c),
                (col2im_launch(c, x).unwrap(), x),
            ] {
                let threads = l.grid.count() * l.block.count();
                assert!(threads >= len as u64 || l.grid.x == MAX_GRID);
                assert!(l.grid.x >= 1);
            }
        }
        assert!(im2col_launch(MAX_ELEMENTS + 1, 1).is_err());
        assert!(im2col_launch(1, MAX_ELEMENTS + 1).is_err());
        assert!(col2im_launch(MAX_ELEMENTS + 1, 1).is_err());
        assert!(col2im_launch(1, MAX_ELEMENTS + 1).is_err());
    }
}
