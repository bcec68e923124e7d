//! Mixed-precision element-wise ops (`ptx/amp.ptx`; CPU reference
//! `trainer/src/backend/cpu/amp.rs`, bit-exact).
//!
//! Both entries are grid-stride loops launched with [`amp_launch`].
//! `amp_unscale_check` ORs each block's verdicts in shared memory and stores
//! the flag at most once per block, so a step's flag costs no atomics and
//! at most `grid` 4-byte stores whatever the gradient size.

use crate::kernel::grid_stride;
use crate::kernel::{p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, F32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "amp",
    ptx: include_str!("../ptx/amp.ptx"),
};

/// `g[..n] *= inv_scale`; `found[0] = 1.0` if any element was inf/NaN before
/// or after (never cleared).
pub static AMP_UNSCALE_CHECK: Kernel = Kernel {
    name: "amp_unscale_check",
    module: &MODULE,
    params: &[
        p("g", PtrF32),
        p("found", PtrF32),
        p("n", U64),
        p("inv_scale", F32),
    ],
};

/// `y[..n] = f32(f16(x[..n]))`, round to nearest even (`cvt.rn.f16.f32`).
pub static ROUND_F16: Kernel = Kernel {
    name: "round_f16",
    module: &MODULE,
    params: &[p("x", PtrF32), p("y", PtrF32), p("n", U64)],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&AMP_UNSCALE_CHECK, &ROUND_F16];

/// Threads per block (a memory-bound element-wise op, as `convert`).
pub const BLOCK: u32 = 256;
/// Grid cap; the loops are grid-stride (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;

/// The launch for `n` elements (either entry).
pub fn amp_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_every_element_or_strides_over_them() {
        for n in [0usize, 1, 255, 257, (1 << 26) + 3] {
            let l = amp_launch(n).unwrap();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert_eq!(l.block.x, BLOCK);
            assert!(l.grid.count() * 256 >= n as u64 || l.grid.x == MAX_GRID);
        }
    }
}
