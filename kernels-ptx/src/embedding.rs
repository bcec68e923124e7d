//! Embedding lookup and its backward (`ptx/embedding.ptx`; CPU reference
//! `trainer/src/backend/cpu/embedding.rs`).
//!
//! Both entries take `(idx, <in>, <out>, n, dim, rows)` with `n = count * dim`
//! and `rows` the table's row count (indices past it are not followed).

use crate::kernel::grid_stride;
use crate::kernel::{at_most, p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, PtrU32, U32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "embedding",
    ptx: include_str!("../ptx/embedding.ptx"),
};

/// `y[r, :] = table[idx[r], :]`.
pub static EMBEDDING_FORWARD: Kernel = Kernel {
    name: "embedding_forward",
    module: &MODULE,
    params: &[
        p("idx", PtrU32),
        p("table", PtrF32),
        p("y", PtrF32),
        p("n", U64),
        p("dim", U32),
        p("rows", U32),
    ],
};

/// `dtable[idx[r], :] += dy[r, :]` (atomic adds; repeated indices add up).
pub static EMBEDDING_BACKWARD: Kernel = Kernel {
    name: "embedding_backward",
    module: &MODULE,
    params: &[
        p("idx", PtrU32),
        p("dy", PtrF32),
        p("dtable", PtrF32),
        p("n", U64),
        p("dim", U32),
        p("rows", U32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&EMBEDDING_FORWARD, &EMBEDDING_BACKWARD];

/// Threads per block (a memory-bound copy, as the activations).
pub const BLOCK: u32 = 256;
/// Grid cap; the loop is grid-stride (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;

/// The launch for `count` indices of `dim` values from a table of `rows` rows.
pub fn embedding_launch(count: usize, dim: usize, rows: usize) -> Result<Launch, LaunchError> {
    at_most("embedding", "dim", dim, u32::MAX as usize)?;
    at_most("embedding", "rows", rows, u32::MAX as usize)?;
    let n = count.checked_mul(dim).ok_or(LaunchError::TooLarge {
        kernel: "embedding",
        what: "count",
        value: count,
        max: usize::MAX / dim.max(1),
    })?;
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_every_element_or_strides_over_them() {
        for (count, dim) in [(0usize, 0usize), (1, 1), (3, 33), (1000, 257)] {
            let l = embedding_launch(count, dim, 10).unwrap();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(l.grid.count() * 256 >= (count * dim) as u64 || l.grid.x == MAX_GRID);
        }
        assert!(embedding_launch(usize::MAX, 2, 1).is_err());
    }
}
