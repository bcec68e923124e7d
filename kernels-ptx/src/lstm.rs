//! The element-wise half of an LSTM time step (`ptx/lstm.ptx`; CPU reference
//! `trainer/src/backend/cpu/lstm.rs`, layouts in `trainer/src/backend/rnn.rs`).
//!
//! Both entries end in `(n, hidden, steps, t)` with `n = samples * hidden`;
//! optional inputs and outputs (`rec`, `h_seq`, `dh_seq`, `dh`) are null (0)
//! when absent. The outputs are bit-exact with the CPU (see the PTX header).

use crate::kernel::grid_stride;
use crate::kernel::{at_most, p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{OptPtrF32, PtrF32, U32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "lstm",
    ptx: include_str!("../ptx/lstm.ptx"),
};

/// One forward step: activations into `gates`, `c_t`, `h_t` (and `h_seq`).
pub static LSTM_CELL_FORWARD: Kernel = Kernel {
    name: "lstm_cell_forward",
    module: &MODULE,
    params: &[
        p("gates", PtrF32),
        p("rec", OptPtrF32),
        p("c", PtrF32),
        p("h_seq", OptPtrF32),
        p("h", PtrF32),
        p("n", U64),
        p("hidden", U32),
        p("steps", U32),
        p("t", U32),
    ],
};

/// One backward step: `dc` updated in place, `dL/da` into `dgates` (step `t`)
/// and `dgates_step`.
pub static LSTM_CELL_BACKWARD: Kernel = Kernel {
    name: "lstm_cell_backward",
    module: &MODULE,
    params: &[
        p("gates", PtrF32),
        p("c", PtrF32),
        p("dh_seq", OptPtrF32),
        p("dh", OptPtrF32),
        p("dc", PtrF32),
        p("dgates", PtrF32),
        p("dgates_step", PtrF32),
        p("n", U64),
        p("hidden", U32),
        p("steps", U32),
        p("t", U32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&LSTM_CELL_FORWARD, &LSTM_CELL_BACKWARD];

/// Threads per block (memory-bound element-wise math, as the activations).
pub const BLOCK: u32 = 256;
/// Grid cap; the loop is grid-stride (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;

/// The launch of either entry for `samples` sequences of `steps` steps with
/// `hidden` units. Sizes are checked so that every sequence offset
/// (`samples * steps * 4 * hidden`) fits in the kernel's 64-bit arithmetic
/// and the u32 parameters hold `hidden` and `steps`.
pub fn lstm_launch(samples: usize, hidden: usize, steps: usize) -> Result<Launch, LaunchError> {
    at_most("lstm", "hidden", hidden, u32::MAX as usize)?;
    at_most("lstm", "steps", steps, u32::MAX as usize)?;
    let too_large = LaunchError::TooLarge {
        kernel: "lstm",
        what: "samples",
        value: samples,
        max: usize::MAX / 16 / steps.max(1) / hidden.max(1),
    };
    let n = samples.checked_mul(hidden).ok_or(too_large)?;
    // Byte offsets of the [samples, steps, 4H] buffers must fit too.
    n.checked_mul(steps)
        .and_then(|v| v.checked_mul(16))
        .ok_or(too_large)?;
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_every_unit_or_strides_over_them() {
        for (samples, hidden) in [(0usize, 0usize), (1, 1), (3, 33), (1000, 257)] {
            let l = lstm_launch(samples, hidden, 5).unwrap();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(l.grid.count() * 256 >= (samples * hidden) as u64 || l.grid.x == MAX_GRID);
        }
        assert!(lstm_launch(usize::MAX, 2, 1).is_err());
        assert!(lstm_launch(1 << 40, 1 << 10, 1 << 10).is_err());
        assert!(lstm_launch(1, 1 << 32, 1).is_err());
    }
}
