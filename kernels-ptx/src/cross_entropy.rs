//! Fused log-softmax + cross-entropy, forward and backward in one kernel
//! (`ptx/cross_entropy.ptx`; contract `LossOps::cross_entropy` in
//! `trainer/src/backend/loss.rs`, CPU reference `trainer/src/backend/cpu/cross_entropy.rs`).

use crate::kernel::{at_most, blocks_for, p, Dim3, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, PtrU32, F32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "cross_entropy",
    ptx: include_str!("../ptx/cross_entropy.ptx"),
};

/// Per row: overwrites `grad` with `d(mean loss)/dlogits`, adds the row's loss
/// to `stats[0]` and 1 to `stats[1]` when its first argmax is the target.
pub static CROSS_ENTROPY: Kernel = Kernel {
    name: "cross_entropy",
    module: &MODULE,
    params: &[
        p("logits", PtrF32),
        p("targets", PtrU32),
        p("grad", PtrF32),
        p("stats", PtrF32),
        p("rows", U32),
        p("cols", U32),
        p("smoothing", F32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&CROSS_ENTROPY];

/// Rows per block: one warp per row, 8 warps per block.
pub const ROWS_PER_BLOCK: usize = 8;
/// Threads per block.
pub const BLOCK: u32 = 32 * ROWS_PER_BLOCK as u32;

/// The launch for `rows` rows of `cols` classes.
pub fn cross_entropy_launch(rows: usize, cols: usize) -> Result<Launch, LaunchError> {
    // rows * cols is formed in 64 bits in the kernel; each alone is a u32.
    at_most("cross_entropy", "rows", rows, u32::MAX as usize)?;
    // The column loops step by 32 in u32 and must not wrap.
    at_most("cross_entropy", "cols", cols, u32::MAX as usize - 32)?;
    Ok(Launch {
        grid: Dim3::x(blocks_for(rows, ROWS_PER_BLOCK) as u32),
        block: Dim3::x(BLOCK),
        shared_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_is_declared_with_its_params() {
        crate::kernel::testing::assert_declared(&CROSS_ENTROPY);
        crate::kernel::testing::assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn one_warp_per_row_covers_every_row() {
        for rows in [0usize, 1, 7, 8, 9, 100, 60_000] {
            let l = cross_entropy_launch(rows, 10).unwrap();
            let warps = l.grid.count() * l.block.count() / 32;
            assert!(warps >= rows as u64, "rows {rows}");
            assert!(warps < rows as u64 + ROWS_PER_BLOCK as u64 + 1);
        }
    }
}
