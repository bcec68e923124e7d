//! Batches from a device-resident dataset, and token ids from an f32 buffer
//! (`ptx/gather.ptx`; CPU reference `DataOps for Cpu` in
//! `trainer/src/backend/cpu/data.rs`).
//!
//! `gather_rows` takes `(src, idx, dst, n, cols, src_rows)` with
//! `n = rows * cols`; `gather_idx` takes `(src, idx, dst, rows, src_len)`.
//! Indices past the source are not followed (see the PTX header).
//! `to_index` takes `(x, dst, flag, n)` and sets `flag[0] = 1` instead of
//! failing, so the host reads one word to raise the CPU's error.

use crate::kernel::grid_stride;
use crate::kernel::{at_most, p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, PtrU32, U32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "gather",
    ptx: include_str!("../ptx/gather.ptx"),
};

/// `dst[r, :] = src[idx[r], :]`.
pub static GATHER_ROWS: Kernel = Kernel {
    name: "gather_rows",
    module: &MODULE,
    params: &[
        p("src", PtrF32),
        p("idx", PtrU32),
        p("dst", PtrF32),
        p("n", U64),
        p("cols", U32),
        p("src_rows", U32),
    ],
};

/// `dst[r] = src[idx[r]]` (u32 labels).
pub static GATHER_IDX: Kernel = Kernel {
    name: "gather_idx",
    module: &MODULE,
    params: &[
        p("src", PtrU32),
        p("idx", PtrU32),
        p("dst", PtrU32),
        p("rows", U64),
        p("src_len", U32),
    ],
};

/// [`GATHER_ROWS`] and [`GATHER_IDX`] in one launch: also
/// `dst_labels[r] = labels[idx[r]]` (needs `cols > 0`).
pub static GATHER_BATCH: Kernel = Kernel {
    name: "gather_batch",
    module: &MODULE,
    params: &[
        p("src", PtrF32),
        p("idx", PtrU32),
        p("dst", PtrF32),
        p("n", U64),
        p("cols", U32),
        p("src_rows", U32),
        p("labels", PtrU32),
        p("dst_labels", PtrU32),
        p("labels_len", U32),
    ],
};

/// [`GATHER_BATCH`] at `order + start`, `start` read from the step table
/// `steps` ([`step_table`] layout), whose last block to finish makes this
/// step's row current and advances the table: one training step per launch,
/// with no argument that changes between steps (a replayed graph's gather).
pub static GATHER_BATCH_STEP: Kernel = Kernel {
    name: "gather_batch_step",
    module: &MODULE,
    params: &[
        p("src", PtrF32),
        p("order", PtrU32),
        p("dst", PtrF32),
        p("n", U64),
        p("cols", U32),
        p("src_rows", U32),
        p("labels", PtrU32),
        p("dst_labels", PtrU32),
        p("labels_len", U32),
        p("steps", PtrU32),
    ],
};

/// Byte offsets in the step table `gather_batch_step` reads and advances
/// (one buffer, 16-byte aligned): a header, the current row, then one row
/// per step. Dropout's `base` and `adam_step_multi`'s `scalars` point into
/// the current row.
pub mod step_table {
    /// `u32`: the next step's row index.
    pub const COUNTER: u64 = 0;
    /// `u32`: blocks of the running `gather_batch_step` that have finished.
    pub const ARRIVALS: u64 = 4;
    /// The current step's row (a copy of `table[counter - 1]`).
    pub const CURRENT: u64 = 32;
    /// Row 0.
    pub const ROWS: u64 = 64;
    /// Bytes per row.
    pub const ROW_BYTES: u64 = 32;
    /// In a row: `u32` batch start, an index into the epoch's order.
    pub const START: u64 = 0;
    /// In a row: `u64` added to dropout's offset.
    pub const DROPOUT_BASE: u64 = 8;
    /// In a row: `f32` step_size, bc2_sqrt, decay (`AdamScalars`).
    pub const ADAM: u64 = 16;
}

/// `dst[i] = x[i] as u32` when `x[i]` is an integer in `[0, 2^24)`; any other
/// value writes 0 and sets `flag[0] = 1` (the caller zeroes `flag` first).
pub static TO_INDEX: Kernel = Kernel {
    name: "to_index",
    module: &MODULE,
    params: &[
        p("x", PtrF32),
        p("dst", PtrU32),
        p("flag", PtrU32),
        p("n", U64),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[
    &GATHER_ROWS,
    &GATHER_IDX,
    &GATHER_BATCH,
    &GATHER_BATCH_STEP,
    &TO_INDEX,
];

/// Threads per block (a memory-bound copy, as `embedding`).
pub const BLOCK: u32 = 256;
/// Grid cap; the loops are grid-stride (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;

/// The launch of `gather_rows` for `rows` rows of `cols` values from a source
/// of `src_rows` rows.
pub fn gather_rows_launch(
    rows: usize,
    cols: usize,
    src_rows: usize,
) -> Result<Launch, LaunchError> {
    at_most("gather_rows", "cols", cols, u32::MAX as usize)?;
    at_most("gather_rows", "src_rows", src_rows, u32::MAX as usize)?;
    let n = rows.checked_mul(cols).ok_or(LaunchError::TooLarge {
        kernel: "gather_rows",
        what: "rows",
        value: rows,
        max: usize::MAX / cols.max(1),
    })?;
    Ok(launch_for(n))
}

/// The launch of `gather_idx` for `rows` labels from a source of `src_len`.
pub fn gather_idx_launch(rows: usize, src_len: usize) -> Result<Launch, LaunchError> {
    at_most("gather_idx", "src_len", src_len, u32::MAX as usize)?;
    Ok(launch_for(rows))
}

/// The launch of `gather_batch`: `gather_rows`'s, with the labels' source
/// length checked as `gather_idx` does.
pub fn gather_batch_launch(
    rows: usize,
    cols: usize,
    src_rows: usize,
    labels_len: usize,
) -> Result<Launch, LaunchError> {
    at_most("gather_batch", "labels_len", labels_len, u32::MAX as usize)?;
    gather_rows_launch(rows, cols, src_rows)
}

/// The launch of `to_index` over `n` values.
pub fn to_index_launch(n: usize) -> Result<Launch, LaunchError> {
    // n is passed as a u64, which holds any usize on supported hosts.
    Ok(launch_for(n))
}

fn launch_for(n: usize) -> Launch {
    grid_stride(n, BLOCK, MAX_GRID)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_every_element_or_strides_over_them() {
        for (rows, cols) in [(0usize, 0usize), (1, 1), (3, 33), (1000, 257)] {
            let l = gather_rows_launch(rows, cols, 10).unwrap();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(l.grid.count() * 256 >= (rows * cols) as u64 || l.grid.x == MAX_GRID);
            let l = gather_idx_launch(rows, 10).unwrap();
            assert!(l.grid.count() * 256 >= rows as u64);
            let l = to_index_launch(rows * cols).unwrap();
            assert!(l.grid.count() * 256 >= (rows * cols) as u64);
        }
        assert!(gather_rows_launch(usize::MAX, 2, 1).is_err());
        assert!(gather_rows_launch(1, 1 << 32, 1).is_err());
        assert!(gather_idx_launch(1, 1 << 32).is_err());
    }
}
