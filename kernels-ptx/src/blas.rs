//! The `Blas` trait's ops other than GEMM, plus `Memory::fill`
//! (`ptx/blas.ptx`; CPU reference `Blas for Cpu` and `Memory for Cpu` in
//! `trainer/src/backend/cpu/blas.rs` and `memory.rs`, and the NCHW bias of
//! `trainer/src/backend/cpu/conv2d.rs`).
//!
//! `fill`, `axpy`, `scale` and `add_bias` are grid-stride loops
//! ([`blas_launch`], [`add_bias_launch`]) and bit-exact with the CPU.
//! `sum_rows` gives each column to one block ([`sum_rows_launch`]), so it
//! needs no atomics and overwrites or accumulates as asked.
//!
//! `add_bias` and `sum_rows` see their tensor as `[rows, cols, positions]`:
//! `positions = 1` for a Linear's `[rows, cols]`, `positions = H * W` for a
//! per-channel bias of an NCHW tensor (Conv2d, with `rows` the batch).

use crate::kernel::{at_most, blocks_for, grid_stride, p, Dim3, Kernel, Launch, LaunchError};
use crate::Module;
use crate::ParamKind::{PtrF32, F32, U32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "blas",
    ptx: include_str!("../ptx/blas.ptx"),
};

/// `y[..n] = value`.
pub static FILL: Kernel = Kernel {
    name: "fill",
    module: &MODULE,
    params: &[p("y", PtrF32), p("value", F32), p("n", U64)],
};

/// `y[..n] += alpha * x[..n]` (product and sum rounded separately, as the CPU).
pub static AXPY: Kernel = Kernel {
    name: "axpy",
    module: &MODULE,
    params: &[p("x", PtrF32), p("y", PtrF32), p("alpha", F32), p("n", U64)],
};

/// `x[..n] *= s`.
pub static SCALE: Kernel = Kernel {
    name: "scale",
    module: &MODULE,
    params: &[p("x", PtrF32), p("s", F32), p("n", U64)],
};

/// `y[r, c, p] += bias[c]`, with `n = rows * cols * positions`.
pub static ADD_BIAS: Kernel = Kernel {
    name: "add_bias",
    module: &MODULE,
    params: &[
        p("y", PtrF32),
        p("bias", PtrF32),
        p("n", U64),
        p("cols", U32),
        p("positions", U32),
    ],
};

/// `out[c] = (accumulate ? out[c] : 0) + sum_{r, p} x[r, c, p]`; `accumulate`
/// is 0 or 1.
pub static SUM_ROWS: Kernel = Kernel {
    name: "sum_rows",
    module: &MODULE,
    params: &[
        p("x", PtrF32),
        p("out", PtrF32),
        p("rows", U32),
        p("cols", U32),
        p("positions", U32),
        p("accumulate", U32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&FILL, &AXPY, &SCALE, &ADD_BIAS, &SUM_ROWS];

/// Threads per block for every entry. `sum_rows` requires exactly this (its
/// shared array and its 8 row lanes assume 8 warps).
pub const BLOCK: u32 = 256;
/// Grid cap of the grid-stride entries (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;
/// Columns per block of `sum_rows` when `positions = 1`: one warp's width,
/// so each warp reads 128 contiguous bytes of a row per step.
pub const SUM_ROWS_TILE: u32 = 32;
/// The largest `rows` of `sum_rows` (its 32-bit row counter steps past `rows`
/// by up to 257) and largest `cols` (a grid extent is below 2^31).
pub const SUM_ROWS_MAX: usize = i32::MAX as usize;

/// The launch of `fill`, `axpy` or `scale` over `n` elements.
pub fn blas_launch(n: usize) -> Result<Launch, LaunchError> {
    // n is passed as a u64, which holds any usize on supported hosts.
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

/// `rows * cols * positions`, or the size that makes it overflow.
fn elements(
    kernel: &'static str,
    rows: usize,
    cols: usize,
    positions: usize,
) -> Result<usize, LaunchError> {
    let inner = cols.checked_mul(positions).ok_or(LaunchError::TooLarge {
        kernel,
        what: "positions",
        value: positions,
        max: usize::MAX / cols.max(1),
    })?;
    rows.checked_mul(inner).ok_or(LaunchError::TooLarge {
        kernel,
        what: "rows",
        value: rows,
        max: usize::MAX / inner.max(1),
    })
}

/// The launch of `add_bias` over `y [rows, cols, positions]` (pass
/// `n = rows * cols * positions` to the kernel).
pub fn add_bias_launch(rows: usize, cols: usize, positions: usize) -> Result<Launch, LaunchError> {
    at_most("add_bias", "cols", cols, u32::MAX as usize)?;
    at_most("add_bias", "positions", positions, u32::MAX as usize)?;
    let n = elements("add_bias", rows, cols, positions)?;
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

/// The launch of `sum_rows` over `x [rows, cols, positions]`: a block per 32
/// columns when `positions = 1`, a block per column otherwise.
pub fn sum_rows_launch(rows: usize, cols: usize, positions: usize) -> Result<Launch, LaunchError> {
    at_most("sum_rows", "rows", rows, SUM_ROWS_MAX)?;
    at_most("sum_rows", "cols", cols, SUM_ROWS_MAX)?;
    at_most("sum_rows", "positions", positions, u32::MAX as usize)?;
    elements("sum_rows", rows, cols, positions)?;
    let blocks = if positions == 1 {
        blocks_for(cols, SUM_ROWS_TILE as usize)
    } else {
        cols.max(1)
    };
    Ok(Launch {
        grid: Dim3::x(blocks as u32),
        block: Dim3::x(BLOCK),
        shared_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::testing::{assert_all_described, assert_declared};

    #[test]
    fn every_kernel_is_declared_with_its_params() {
        for k in ALL {
            assert_declared(k);
        }
        assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn elementwise_launches_cover_every_element_or_stride_over_them() {
        for n in [0usize, 1, 255, 256, 257, 1 << 20, (1 << 26) + 3] {
            let l = blas_launch(n).unwrap();
            assert_eq!(l.block, Dim3::x(BLOCK));
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(
                l.grid.count() * 256 >= n as u64 || l.grid.x == MAX_GRID,
                "n {n}"
            );
        }
        for (r, c, p) in [
            (0usize, 0usize, 0usize),
            (1, 1, 1),
            (64, 10, 1),
            (64, 6, 784),
        ] {
            let l = add_bias_launch(r, c, p).unwrap();
            assert!(l.grid.x >= 1 && l.grid.count() * 256 >= (r * c * p) as u64);
        }
        assert!(add_bias_launch(usize::MAX, 2, 1).is_err());
        assert!(add_bias_launch(1, 1 << 32, 1).is_err());
        assert!(add_bias_launch(1, 1, 1 << 32).is_err());
    }

    #[test]
    fn sum_rows_gives_every_column_one_block() {
        for (r, c) in [
            (0usize, 0usize),
            (1, 1),
            (64, 10),
            (7, 32),
            (7, 33),
            (3, 1000),
        ] {
            let l = sum_rows_launch(r, c, 1).unwrap();
            assert_eq!(l.block, Dim3::x(BLOCK));
            assert_eq!(l.grid.x as usize, c.div_ceil(32).max(1), "{r} x {c}");
            let l = sum_rows_launch(r, c, 49).unwrap();
            assert_eq!(l.grid.x as usize, c.max(1), "{r} x {c} x 49");
        }
        assert!(sum_rows_launch(1 << 31, 1, 1).is_err());
        assert!(sum_rows_launch(1, 1 << 31, 2).is_err());
        assert!(sum_rows_launch(1, 1, 1 << 32).is_err());
    }
}
