//! Row-wise softmax forward and backward (`ptx/softmax.ptx`; contract
//! `ActivationOps::softmax_forward` / `softmax_backward` in
//! `trainer/src/backend/activation.rs`, CPU reference `trainer/src/backend/cpu/softmax.rs`).
//!
//! A row belongs to the `block.x` threads of one block row: one warp for
//! rows up to [`WARP_COLS`] wide, a whole block beyond. Both entries take
//! the same launch, [`softmax_launch`].

use crate::kernel::{at_most, blocks_for, p, Dim3, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "softmax",
    ptx: include_str!("../ptx/softmax.ptx"),
};

/// `y = exp(x - max) / sum(exp(x - max))` per row (overwrites `y`); two
/// passes over `x` (online max and sum, then the output).
pub static SOFTMAX_FORWARD: Kernel = Kernel {
    name: "softmax_forward",
    module: &MODULE,
    params: &[
        p("x", PtrF32),
        p("y", PtrF32),
        p("rows", U32),
        p("cols", U32),
    ],
};

/// `dx = y * (dy - <dy, y>)` per row (overwrites `dx`), with `y` the forward
/// output; two passes over `y` and `dy`.
pub static SOFTMAX_BACKWARD: Kernel = Kernel {
    name: "softmax_backward",
    module: &MODULE,
    params: &[
        p("y", PtrF32),
        p("dy", PtrF32),
        p("dx", PtrF32),
        p("rows", U32),
        p("cols", U32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&SOFTMAX_FORWARD, &SOFTMAX_BACKWARD];

/// The widest row given one warp. Up to here a lane makes at most 32 trips
/// per pass and a block holds [`ROWS_PER_BLOCK`] rows; beyond, a warp's
/// serial loop grows with the row while the grid (rows / 8 blocks) may be
/// too small to fill the GPU, so the row gets a block of [`WIDE_BLOCK`].
pub const WARP_COLS: usize = 1024;
/// Rows per block with one warp per row (block 32 x 8).
pub const ROWS_PER_BLOCK: u32 = 8;
/// Threads per row (and per block) for rows wider than [`WARP_COLS`]: 8
/// warps, at least 4 elements per thread per pass, one barrier per row.
pub const WIDE_BLOCK: u32 = 256;

/// The launch of either entry for `rows` rows of `cols` elements.
pub fn softmax_launch(rows: usize, cols: usize) -> Result<Launch, LaunchError> {
    // One block per row needs rows <= the grid's 2^31 - 1 blocks; the row
    // index blockIdx.x * block.y + tid.y is a u32.
    at_most("softmax", "rows", rows, i32::MAX as usize)?;
    // The column loops step by block.x (<= 1024) in u32 and must not wrap.
    at_most("softmax", "cols", cols, u32::MAX as usize - 1024)?;
    Ok(if cols <= WARP_COLS {
        Launch {
            grid: Dim3::x(blocks_for(rows, ROWS_PER_BLOCK as usize) as u32),
            block: Dim3 {
                x: 32,
                y: ROWS_PER_BLOCK,
                z: 1,
            },
            shared_bytes: 0,
        }
    } else {
        Launch {
            grid: Dim3::x(rows.max(1) as u32),
            block: Dim3::x(WIDE_BLOCK),
            shared_bytes: 0,
        }
    })
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
    fn every_row_gets_one_thread_group_of_whole_warps() {
        for rows in [0usize, 1, 7, 8, 9, 100, 60_000] {
            for cols in [1usize, 32, 1024, 1025, 50_000] {
                let l = softmax_launch(rows, cols).unwrap();
                assert_eq!(l.block.x % 32, 0);
                assert!(l.block.count() <= 1024);
                let groups = l.grid.count() * l.block.y as u64;
                assert!(groups >= rows as u64, "rows {rows} cols {cols}");
                assert!(groups < rows as u64 + l.block.y as u64 + 1);
                assert_eq!(l.block.x == 32, cols <= WARP_COLS);
            }
        }
        assert!(softmax_launch(1 << 31, 10).is_err());
        assert!(softmax_launch(1, u32::MAX as usize).is_err());
    }
}
