//! Binary cross-entropy on logits, forward and backward fused (`ptx/bce.ptx`;
//! contract `LossOps::bce_with_logits` in `trainer/src/backend/loss.rs`, CPU
//! reference `trainer/src/backend/cpu/bce.rs`).

use crate::kernel::{grid_stride, p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "bce",
    ptx: include_str!("../ptx/bce.ptx"),
};

/// Overwrites `grad` with `d(mean loss)/dlogits = (sigmoid(x) - t) / n`, adds
/// the summed loss to `stats[0]` and the count of `(x > 0) == (t > 0.5)` to
/// `stats[1]` (one atomic per block for each).
pub static BCE_WITH_LOGITS: Kernel = Kernel {
    name: "bce_with_logits",
    module: &MODULE,
    params: &[
        p("logits", PtrF32),
        p("target", PtrF32),
        p("grad", PtrF32),
        p("stats", PtrF32),
        p("n", U64),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&BCE_WITH_LOGITS];

/// Threads per block (the PTX takes any multiple of 32 up to 1024).
pub const BLOCK: u32 = 256;
/// Grid cap, as `mse::MAX_GRID`: at most 1024 atomics per stat.
pub const MAX_GRID: u32 = 1024;

/// The launch for `n` elements.
pub fn bce_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_is_declared_with_its_params() {
        crate::kernel::testing::assert_declared(&BCE_WITH_LOGITS);
        crate::kernel::testing::assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn launch_uses_full_blocks_and_caps_the_grid() {
        for n in [0usize, 1, 255, 256, 257, 1 << 20, (1 << 30) + 3] {
            let l = bce_launch(n).unwrap();
            assert_eq!(l.block.x, BLOCK);
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID, "n {n}");
            assert!(l.grid.count() * BLOCK as u64 >= n as u64 || l.grid.x == MAX_GRID);
        }
    }
}
