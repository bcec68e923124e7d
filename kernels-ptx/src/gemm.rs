//! f32 matrix product with an optional bias + ReLU epilogue (`ptx/gemm.ptx`;
//! contract `Gemm` / `Blas::gemm` in `trainer/src/backend/blas.rs`, CPU
//! reference `trainer/src/backend/cpu/gemm.rs`).

use crate::kernel::{p, tile_launch, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{OptPtrF32, PtrF32, F32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "gemm",
    ptx: include_str!("../ptx/gemm.ptx"),
};

/// `C = alpha op(A) op(B) + beta C`, then `+ bias[col]` when `bias != 0`,
/// then `max(., 0)` when `relu == 1`. C is not read when `beta == 0`.
pub static GEMM: Kernel = Kernel {
    name: "gemm",
    module: &MODULE,
    params: &[
        p("a", PtrF32),
        p("b", PtrF32),
        p("c", PtrF32),
        p("bias", OptPtrF32),
        p("m", U32),
        p("n", U32),
        p("k", U32),
        p("alpha", F32),
        p("beta", F32),
        p("trans_a", U32),
        p("trans_b", U32),
        p("relu", U32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&GEMM];

/// Rows and columns of C per block.
pub const TILE: usize = 64;
/// Threads per block: each computes an 8 x 8 sub-tile of the 64 x 64 tile.
pub const BLOCK: u32 = 64;
/// Static shared memory of the kernel (A/B tiles, then the staged C tile).
pub const STATIC_SHARED_BYTES: u32 = 16_384;
/// Indices are 32-bit in the kernel (`row * ld + col` is formed in 64 bits,
/// but m, n, k themselves are u32 and the tile loops add 64 to them).
const MAX_DIM: usize = (u32::MAX as usize) - TILE;

/// The launch for a product with C of `m x n` and inner dimension `k`.
///
/// One block per 64 x 64 tile of C, so a product runs
/// `ceil(m / 64) * ceil(n / 64)` blocks and K is walked by one block. For the
/// `mlp` preset at batch 64 that is far below one wave of 132 SMs (H100):
/// fc1 forward (64 x 256, k 784) 4 blocks; fc2 forward (64 x 64) 1; fc3
/// forward (64 x 10) 1; dW3 (10 x 64) 1; dx3 (64 x 64) 1; dW2 (64 x 256) 4;
/// dx2 (64 x 256) 4; dW1 (256 x 784, k 64) 52. These shapes cannot reach 132
/// blocks by tiling C alone: with M = 64 even 16 x 16 tiles give 4 x 16 =
/// 64 blocks for fc1. Filling the GPU needs split-K over the long K (fc1's
/// 784) with a deterministic second pass that sums the partial tiles in a
/// fixed order (no atomics), at the cost of one more launch per product;
/// that is not implemented yet (issue 19).
pub fn gemm_launch(m: usize, n: usize, k: usize) -> Result<Launch, LaunchError> {
    tile_launch("gemm", [m, n, k], TILE, BLOCK, MAX_DIM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::testing::{assert_all_described, assert_declared};
    use crate::kernel::MAX_GRID_Y;

    #[test]
    fn the_kernel_is_declared_with_its_params() {
        assert_declared(&GEMM);
        assert_all_described(MODULE.ptx, ALL);
        assert!(MODULE
            .ptx
            .contains(&format!(".b8 smem[{STATIC_SHARED_BYTES}]")));
    }

    #[test]
    fn grid_tiles_cover_c_for_edge_sizes() {
        for m in [0usize, 1, 63, 64, 65, 127, 1000] {
            for n in [0usize, 1, 7, 64, 65, 129] {
                let l = gemm_launch(m, n, 3).unwrap();
                assert!(l.grid.x as usize * TILE >= n && l.grid.y as usize * TILE >= m);
                // No block is wholly outside C (except the one block of an empty C).
                assert!((l.grid.x as usize - 1) * TILE < n.max(1));
                assert!((l.grid.y as usize - 1) * TILE < m.max(1));
                assert_eq!(l.block.count() * 64, (TILE * TILE) as u64);
            }
        }
    }

    #[test]
    fn too_many_rows_is_an_error_not_a_bad_launch() {
        assert!(gemm_launch(MAX_GRID_Y * TILE, 1, 1).is_ok());
        assert!(matches!(
            gemm_launch(MAX_GRID_Y * TILE + 1, 1, 1),
            Err(LaunchError::TooLarge { what: "m", .. })
        ));
    }
}
