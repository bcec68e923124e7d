//! Gradient clipping by global norm, the scaling half (`ptx/clip.ptx`; CPU
//! reference `trainer/src/backend/cpu/clip.rs`, `scale_to_norm`, through `Cpu`'s
//! `OptimOps::clip_by_norm`).
//!
//! The squared norm comes from `reduce::REDUCE_SUM_SQUARES` into a
//! one-element device buffer, which `clip_by_norm` reads on the device: the
//! host never waits for the norm. Bit-exact with the CPU.

use crate::kernel::{grid_stride, p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, F32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "clip",
    ptx: include_str!("../ptx/clip.ptx"),
};

/// `x[..n] *= min(1, max_norm / (sqrt(sumsq[0]) + 1e-6))`; `x` is not
/// touched when the coefficient is at least 1.
pub static CLIP_BY_NORM: Kernel = Kernel {
    name: "clip_by_norm",
    module: &MODULE,
    params: &[
        p("x", PtrF32),
        p("sumsq", PtrF32),
        p("n", U64),
        p("max_norm", F32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&CLIP_BY_NORM];

/// Threads per block (a memory-bound scale, as `activation`).
pub const BLOCK: u32 = 256;
/// Grid cap; the loop is grid-stride (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;

/// The launch of `clip_by_norm` over `n` elements.
pub fn clip_launch(n: usize) -> Result<Launch, LaunchError> {
    // n is passed as a u64, which holds any usize on supported hosts.
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::testing::{assert_all_described, assert_declared};

    #[test]
    fn every_kernel_is_declared_with_its_params() {
        assert_declared(&CLIP_BY_NORM);
        assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn launch_covers_every_element_or_strides_over_them() {
        for n in [0usize, 1, 255, 256, 257, 1 << 20, (1 << 26) + 3] {
            let l = clip_launch(n).unwrap();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(
                l.grid.count() * 256 >= n as u64 || l.grid.x == MAX_GRID,
                "n {n}"
            );
        }
    }
}
