//! Mixed-precision matrix product on tensor cores (`ptx/gemm_f16.ptx`): A and
//! B in f16, C and the accumulation in f32. Contract as `gemm` without the
//! epilogue (`Gemm` in `trainer/src/backend/blas.rs`, CPU reference
//! `trainer/src/backend/cpu/gemm.rs` on f16-rounded inputs).

use crate::kernel::{p, tile_launch, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF16, PtrF32, F32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "gemm_f16",
    ptx: include_str!("../ptx/gemm_f16.ptx"),
};

/// `C = alpha op(A) op(B) + beta C`, A and B f16, C f32; every transpose
/// combination. C is not read when `beta == 0`.
pub static GEMM_F16: Kernel = Kernel {
    name: "gemm_f16",
    module: &MODULE,
    params: &[
        p("a", PtrF16),
        p("b", PtrF16),
        p("c", PtrF32),
        p("m", U32),
        p("n", U32),
        p("k", U32),
        p("alpha", F32),
        p("beta", F32),
        p("trans_a", U32),
        p("trans_b", U32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&GEMM_F16];

/// Rows and columns of C per block.
pub const TILE: usize = 64;
/// Threads per block: 4 warps, each a 32 x 32 sub-tile of mma.m16n8k16.
pub const BLOCK: u32 = 128;
/// Static shared memory: two stages of a 64 x 32 f16 tile of A and of B.
pub const STATIC_SHARED_BYTES: u32 = 16_384;
/// The kernel's K loop and edge arithmetic are signed 32-bit (`k - k0 - offset`),
/// with up to 64 added to a size.
const MAX_DIM: usize = (i32::MAX as usize) - TILE;

/// The launch for a product with C of `m x n` and inner dimension `k`.
pub fn gemm_f16_launch(m: usize, n: usize, k: usize) -> Result<Launch, LaunchError> {
    tile_launch("gemm_f16", [m, n, k], TILE, BLOCK, MAX_DIM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::testing::{assert_all_described, assert_declared};

    #[test]
    fn the_kernel_is_declared_with_its_params() {
        assert_declared(&GEMM_F16);
        assert_all_described(MODULE.ptx, ALL);
        assert!(MODULE
            .ptx
            .contains(&format!(".b8 smem[{STATIC_SHARED_BYTES}]")));
    }

    #[test]
    fn grid_tiles_cover_c_for_edge_sizes() {
        for m in [0usize, 1, 63, 64, 65, 1000] {
            for n in [0usize, 1, 7, 64, 129] {
                let l = gemm_f16_launch(m, n, 3).unwrap();
                assert!(l.grid.x as usize * TILE >= n && l.grid.y as usize * TILE >= m);
                assert!((l.grid.x as usize - 1) * TILE < n.max(1));
                assert!((l.grid.y as usize - 1) * TILE < m.max(1));
                assert_eq!(l.block.count(), 128);
            }
        }
    }

    #[test]
    fn sizes_past_the_signed_index_range_are_errors() {
        assert!(gemm_f16_launch(1, 1, MAX_DIM).is_ok());
        assert!(matches!(
            gemm_f16_launch(1, 1, MAX_DIM + 1),
            Err(LaunchError::TooLarge { what: "k", .. })
        ));
    }
}
