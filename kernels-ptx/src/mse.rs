//! Mean squared error, forward and backward fused (`ptx/mse.ptx`; contract
//! `LossOps::mse` in `trainer/src/backend/loss.rs`, CPU reference
//! `trainer/src/backend/cpu/mse.rs`).

use crate::kernel::{grid_stride, p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "mse",
    ptx: include_str!("../ptx/mse.ptx"),
};

/// Overwrites `grad` with `d(mean loss)/dpred = 2 (pred - target) / n` and
/// adds the batch's summed squared error to `stats[0]` (one atomic per block).
pub static MSE: Kernel = Kernel {
    name: "mse",
    module: &MODULE,
    params: &[
        p("pred", PtrF32),
        p("target", PtrF32),
        p("grad", PtrF32),
        p("stats", PtrF32),
        p("n", U64),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&MSE];

/// Threads per block (the PTX takes any multiple of 32 up to 1024).
pub const BLOCK: u32 = 256;
/// Grid cap, as `reduce::MAX_GRID`: enough blocks to saturate DRAM, and it
/// bounds the atomics on `stats[0]` (one per block) and their f32 rounding.
pub const MAX_GRID: u32 = 1024;

/// The launch for `n` elements.
pub fn mse_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_is_declared_with_its_params() {
        crate::kernel::testing::assert_declared(&MSE);
        crate::kernel::testing::assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn launch_uses_full_blocks_and_caps_the_grid() {
        for n in [0usize, 1, 255, 256, 257, 1 << 20, (1 << 30) + 3] {
            let l = mse_launch(n).unwrap();
            assert_eq!(l.block.x, BLOCK);
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID, "n {n}");
            assert!(l.grid.count() * BLOCK as u64 >= n as u64 || l.grid.x == MAX_GRID);
        }
    }
}
