//! f32 matrix product with an optional bias + ReLU + mask epilogue, row sums
//! of op(A) and split-K (`ptx/gemm.ptx`; contract `Gemm` / `Blas::gemm` in
//! `trainer/src/backend/blas.rs`, CPU reference `trainer/src/backend/cpu/blas.rs`).

use crate::kernel::{
    at_most, blocks_for, p, tile_launch, Dim3, Kernel, Launch, LaunchError, Module,
};
use crate::ParamKind::{OptPtrF32, PtrF32, F32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "gemm",
    ptx: include_str!("../ptx/gemm.ptx"),
};

/// `C = alpha op(A) op(B) + beta C`, then `+ bias[col]` when `bias != 0`,
/// then `max(., 0)` when `relu == 1`, then `aux > 0 ? v * aux_scale : 0`
/// when `aux != 0`; `sums[r] = alpha * sum_k op(A)[r, k] + beta * sums[r]`
/// when `sums != 0`. C is not read when `beta == 0`. `k_split`, `ws` and
/// `sem` come from [`gemm_plan`].
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
        p("aux", OptPtrF32),
        p("aux_scale", F32),
        p("sums", OptPtrF32),
        p("k_split", U32),
        p("ws", OptPtrF32),
        p("sem", OptPtrF32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&GEMM];

/// Rows and columns of C per block.
pub const TILE: usize = 64;
/// Threads per block: each computes an 8 x 8 sub-tile of the 64 x 64 tile.
pub const BLOCK: u32 = 64;
/// Static shared memory of the kernel's tile buffer (A/B tiles, then the
/// staged C tile); the split-K flag word adds 4 bytes.
pub const STATIC_SHARED_BYTES: u32 = 16_384;
/// K values per K-step of the kernel's loop: a split holds whole K-steps.
pub const K_STEP: usize = 8;
/// The SMs a product should fill: H100 SXM's 132 (the H200 has the same
/// die). A product with fewer tiles is split along K until it has this many
/// blocks, or until every split is a single K-step.
pub const TARGET_BLOCKS: usize = 132;
/// Indices are 32-bit in the kernel (`row * ld + col` is formed in 64 bits,
/// but m, n, k themselves are u32 and the tile loops add 64 to them).
const MAX_DIM: usize = (u32::MAX as usize) - TILE;
/// CUDA's limit on the grid's z extent.
const MAX_GRID_Z: usize = 65_535;

/// The launch for a product with C of `m x n` and inner dimension `k`,
/// without split-K or row sums: one block per 64 x 64 tile of C, K walked
/// by one block.
pub fn gemm_launch(m: usize, n: usize, k: usize) -> Result<Launch, LaunchError> {
    tile_launch("gemm", [m, n, k], TILE, BLOCK, MAX_DIM)
}

/// How one product is launched: the grid, the K values per split and the
/// workspace the splits need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmPlan {
    /// Grid `(column tiles, row tiles, splits)` and block.
    pub launch: Launch,
    /// Tiles of C (with the ones column when row sums are asked for).
    pub tiles: usize,
    /// Splits of K (1: no split, `ws` and `sem` are not used).
    pub splits: usize,
    /// K values per split (the kernel's `k_split`; `k` or more without split).
    pub k_split: usize,
    /// `f32` elements of partial tiles the splits write (`tiles * splits *
    /// 4096`, 0 without split).
    pub workspace: usize,
    /// The splits a wave of [`TARGET_BLOCKS`] would take (K-steps allowing).
    pub wave_splits: usize,
    /// Bytes of operands and output the product moves without split.
    pub operand_bytes: usize,
    /// Bytes of partial tiles (written, then read) that `wave_splits` would add.
    pub wave_partial_bytes: usize,
}

impl GemmPlan {
    /// Blocks of the launch.
    pub fn blocks(&self) -> usize {
        self.tiles * self.splits
    }

    /// Why the launch has fewer than [`TARGET_BLOCKS`] blocks, or `None`
    /// when it has at least that many: C has too few tiles and K too few
    /// K-steps to split further, or splitting would cost more partial-tile
    /// traffic than its blocks gain (see [`gemm_plan`]).
    pub fn under_a_wave(&self, k: usize) -> Option<String> {
        if self.blocks() >= TARGET_BLOCKS {
            return None;
        }
        let steps = k.div_ceil(K_STEP).max(1);
        Some(if self.splits == 1 && self.wave_splits > 1 {
            format!(
                "splitting K = {k} into {} parts ({} blocks) would add {} KB of partial tiles to the {} KB it moves: slower than {} block(s)",
                self.wave_splits,
                self.tiles * self.wave_splits,
                self.wave_partial_bytes.div_ceil(1024),
                self.operand_bytes.div_ceil(1024),
                self.tiles
            )
        } else {
            format!(
                "C has {} tile(s) of 64 x 64 and K = {k} has {steps} K-step(s) of 8: at most {} blocks",
                self.tiles,
                self.tiles * steps
            )
        })
    }
}

/// Blocks at which a GEMM grid gives every scheduler of an H100 a warp
/// (132 SMs x 4 schedulers / 2 warps per block): more blocks add no issue
/// slots, only partial-tile traffic.
pub const FULL_BLOCKS: usize = 4 * TARGET_BLOCKS / 2;

/// Candidate splits of `steps` K-steps for `tiles` tiles aiming at
/// `target` blocks: whole K-steps per split, rounded up and down (the split
/// count is recomputed from the K-steps per split, so no split is empty).
fn splits_near(steps: usize, tiles: usize, target: usize) -> [(usize, usize); 2] {
    let want = target.div_ceil(tiles).clamp(1, steps.clamp(1, MAX_GRID_Z));
    let up = steps.div_ceil(want).max(1);
    let down = (up - 1).max(1);
    [
        (steps.div_ceil(up).max(1), up),
        (steps.div_ceil(down).max(1), down),
    ]
}

/// The launch rule of [`GEMM`]: C of `m x n` (plus the ones column when
/// `row_sums`), inner dimension `k`.
///
/// A product of fewer than [`TARGET_BLOCKS`] tiles is split along K into
/// whole K-steps, so a skinny product still runs a wave on an H100: the `mlp`
/// preset's fc1 forward (64 x 256, k 784) becomes 4 tiles x 49 splits of 16
/// K values; the `cnn` preset's conv1 weight gradient (16 x 10 with the bias
/// column, k 50,176) 1 tile x 273 splits of 184. The last block of each tile
/// sums the partials in split order (deterministic).
///
/// A split costs its partial tile twice (written, then read by the last
/// block), so the rule weighs the candidates, no split and split counts near
/// a wave of [`TARGET_BLOCKS`] and near [`FULL_BLOCKS`] (counts short of a
/// wave only when K has no more K-steps), by bytes moved over the fraction
/// of the GPU's schedulers the grid occupies, and takes the cheapest. The
/// last block's read of its tile's partials is charged like any other
/// traffic; on a GPU it is one block's work, which a timing must calibrate. A
/// product with little K and a large output (the `mlp` preset's 64 x 64 x 10
/// input gradient: 21 KB of operands, 64 KB of partials for 2 splits) is
/// then not split; [`GemmPlan::under_a_wave`] says so.
pub fn gemm_plan(m: usize, n: usize, k: usize, row_sums: bool) -> Result<GemmPlan, LaunchError> {
    let nv = n + usize::from(row_sums);
    at_most("gemm", "n", nv, MAX_DIM)?;
    let mut launch = tile_launch("gemm", [m, nv, k], TILE, BLOCK, MAX_DIM)?;
    let (tiles_x, tiles_y) = (blocks_for(nv, TILE), blocks_for(m, TILE));
    let tiles = tiles_x * tiles_y;
    let steps = k.div_ceil(K_STEP);
    // Each tile reads its rows of op(A) and columns of op(B) over K; C is written once.
    let operand_bytes = 4 * (k * (m * tiles_x + nv * tiles_y) + m * nv);
    let partial_bytes = |splits: usize| {
        if splits > 1 {
            2 * 4 * splits * m * nv
        } else {
            0
        }
    };
    let score = |splits: usize| {
        let busy = (tiles * splits) as f64 / FULL_BLOCKS as f64;
        (operand_bytes + partial_bytes(splits)) as f64 / busy.min(1.0)
    };
    // Candidates: no split, and about a wave and a full GPU of blocks. A
    // split count short of a wave is kept only when K allows no more.
    let mut cands = vec![(1, steps.max(1))];
    for target in [TARGET_BLOCKS, FULL_BLOCKS] {
        cands.extend(splits_near(steps, tiles, target));
    }
    cands.retain(|&(s, _)| s == 1 || tiles * s >= TARGET_BLOCKS || s == steps);
    let wave = cands
        .iter()
        .copied()
        .filter(|&(s, _)| s > 1)
        .min_by_key(|&(s, _)| s)
        .unwrap_or((1, steps.max(1)));
    let (splits, per) = cands
        .into_iter()
        .min_by(|a, b| score(a.0).total_cmp(&score(b.0)))
        .unwrap_or((1, steps.max(1)));
    let k_split = if splits == 1 { k.max(1) } else { per * K_STEP };
    launch.grid = Dim3 {
        z: splits as u32,
        ..launch.grid
    };
    Ok(GemmPlan {
        launch,
        tiles,
        splits,
        k_split,
        workspace: if splits > 1 {
            tiles * splits * TILE * TILE
        } else {
            0
        },
        wave_splits: wave.0,
        operand_bytes,
        wave_partial_bytes: partial_bytes(wave.0),
    })
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
    fn skinny_products_are_split_along_k_into_a_wave_of_whole_k_steps() {
        // mlp fc1 forward: 4 tiles, 98 K-steps -> 49 splits of 16.
        let p = gemm_plan(64, 256, 784, false).unwrap();
        assert_eq!((p.tiles, p.splits, p.k_split, p.blocks()), (4, 49, 16, 196));
        assert_eq!(p.launch.grid.z, 49);
        assert_eq!(p.workspace, 4 * 49 * 4096);
        assert!(p.under_a_wave(784).is_none());
        // cnn conv1 weight gradient with its bias column: 1 tile, about a full GPU.
        let p = gemm_plan(16, 9, 50_176, true).unwrap();
        assert!(p.tiles == 1 && p.blocks() >= FULL_BLOCKS, "{p:?}");
        // A product with enough tiles is not split.
        let p = gemm_plan(1024, 1024, 1024, false).unwrap();
        assert_eq!((p.splits, p.workspace, p.launch.grid.z), (1, 0, 1));
        // Too little K to fill: every split is one K-step, and the rule says why.
        let p = gemm_plan(64, 10, 64, false).unwrap();
        assert_eq!((p.splits, p.k_split), (8, 8));
        let why = p.under_a_wave(64).unwrap();
        assert!(
            why.contains("1 tile(s)") && why.contains("8 K-step(s)"),
            "{why}"
        );
    }

    #[test]
    fn splits_cover_k_exactly_with_no_empty_split() {
        for (m, n) in [(1usize, 1usize), (64, 10), (10, 64), (200, 300)] {
            for k in [0usize, 1, 7, 8, 9, 63, 64, 65, 784, 1000, 50_176] {
                for sums in [false, true] {
                    let p = gemm_plan(m, n, k, sums).unwrap();
                    assert!(
                        p.k_split.is_multiple_of(K_STEP) || p.splits == 1,
                        "{m} {n} {k}"
                    );
                    assert!(p.splits * p.k_split >= k, "{m} {n} {k}: K not covered");
                    assert!(
                        p.splits == 1 || (p.splits - 1) * p.k_split < k,
                        "{m} {n} {k}: empty split"
                    );
                    let cols = n + usize::from(sums);
                    assert!(p.launch.grid.x as usize * TILE >= cols);
                }
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
