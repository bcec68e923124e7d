//! Sum and sum of squares of a vector into one accumulator (`ptx/reduce.ptx`;
//! CPU reference `trainer/src/backend/cpu/clip.rs`, `sum_squares`).
//!
//! Both entries take `(x, out, n)` and add the block partials into `out[0]`
//! with one atomic per block.

use crate::kernel::grid_stride;
use crate::kernel::{p, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{PtrF32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "reduce",
    ptx: include_str!("../ptx/reduce.ptx"),
};

const PARAMS: &[Param] = &[p("x", PtrF32), p("out", PtrF32), p("n", U64)];

/// `out[0] += sum(x[..n])`.
pub static REDUCE_SUM: Kernel = Kernel {
    name: "reduce_sum",
    module: &MODULE,
    params: PARAMS,
};

/// `out[0] += sum(x[..n]^2)`, the squared global norm for gradient clipping.
pub static REDUCE_SUM_SQUARES: Kernel = Kernel {
    name: "reduce_sum_squares",
    module: &MODULE,
    params: PARAMS,
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&REDUCE_SUM, &REDUCE_SUM_SQUARES];

/// Threads per block. The PTX's shared array has one slot per warp of a
/// 256-thread block, so this is fixed, not tunable.
pub const BLOCK: u32 = 256;
/// Grid cap: 1024 blocks of 256 threads is 8 blocks on each of 128 SMs, enough
/// to saturate DRAM; it also bounds the atomics on `out[0]` (one per block)
/// and the f32 rounding of adding the block partials.
pub const MAX_GRID: u32 = 1024;

/// The launch for `n` elements (either entry).
pub fn reduce_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dim3;

    #[test]
    fn launch_uses_full_blocks_and_caps_the_grid() {
        for n in [0usize, 1, 255, 256, 257, 1 << 20, (1 << 30) + 3] {
            let l = reduce_launch(n).unwrap();
            assert_eq!(l.block, Dim3::x(BLOCK));
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID, "n {n}");
            assert!(l.grid.count() * 256 >= n as u64 || l.grid.x == MAX_GRID);
        }
    }
}
