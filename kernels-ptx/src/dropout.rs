//! Inverted dropout with an in-kernel Philox4x32-10 mask (`ptx/dropout.ptx`;
//! CPU reference `trainer/src/backend/cpu/dropout.rs`, generator `trainer/src/philox.rs`).
//!
//! Both directions take `(src, dst, n, p, seed, offset, group)`; the backward
//! regenerates the forward's mask from `(seed, offset)` instead of storing it.
//! `philox4x32_10` exposes the generator alone (known-answer tests, random fills).

use crate::kernel::grid_stride;
use crate::kernel::{p, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{OptPtrF32, PtrF32, PtrU32, F32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "dropout",
    ptx: include_str!("../ptx/dropout.ptx"),
};

const FWD: &[Param] = &[
    p("x", PtrF32),
    p("y", PtrF32),
    p("n", U64),
    p("p", F32),
    p("seed", U64),
    p("offset", U64),
    p("group", U64),
    p("base", OptPtrF32),
];
const BWD: &[Param] = &[
    p("dy", PtrF32),
    p("dx", PtrF32),
    p("n", U64),
    p("p", F32),
    p("seed", U64),
    p("offset", U64),
    p("group", U64),
    p("base", OptPtrF32),
];
const PHILOX: &[Param] = &[
    p("ctr", PtrU32),
    p("key", PtrU32),
    p("out", PtrU32),
    p("n", U64),
];

/// `y = x * keep / (1 - p)`, `keep` drawn per group of `group` elements;
/// `base` (0 or the address of a u64) is added to `offset` first.
pub static DROPOUT_FORWARD: Kernel = Kernel {
    name: "dropout_forward",
    module: &MODULE,
    params: FWD,
};
/// `dx = dy * keep / (1 - p)` with the forward's `keep`, regenerated.
pub static DROPOUT_BACKWARD: Kernel = Kernel {
    name: "dropout_backward",
    module: &MODULE,
    params: BWD,
};
/// `out[4j..4j+4] = philox4x32_10(ctr[4j..4j+4], key[2j..2j+2])` for `j < n`.
pub static PHILOX4X32_10: Kernel = Kernel {
    name: "philox4x32_10",
    module: &MODULE,
    params: PHILOX,
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&DROPOUT_FORWARD, &DROPOUT_BACKWARD, &PHILOX4X32_10];

/// Threads per block: 8 warps, as for the other element-wise ops.
pub const BLOCK: u32 = 256;
/// Grid cap; the loops are grid-stride (see `activation::MAX_GRID` for why).
pub const MAX_GRID: u32 = 65_535;
/// Elements per thread per iteration: one Philox block yields 4 draws.
pub const PER_THREAD: usize = 4;

/// The launch for `n` elements (either direction): one thread per quad.
pub fn dropout_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_for(n.div_ceil(PER_THREAD)))
}

/// The launch for `n` Philox blocks of [`PHILOX4X32_10`].
pub fn philox_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_for(n))
}

fn grid_for(threads: usize) -> Launch {
    grid_stride(threads, BLOCK, MAX_GRID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::testing::{assert_all_described, assert_declared};

    #[test]
    fn every_kernel_is_declared_with_its_params() {
        assert_eq!(ALL.len(), 3);
        for k in ALL {
            assert_declared(k);
        }
        assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn launch_covers_every_quad_or_strides_over_them() {
        for n in [
            0usize,
            1,
            3,
            4,
            5,
            1023,
            1024,
            1025,
            4097,
            1 << 20,
            (1 << 28) + 3,
        ] {
            let l = dropout_launch(n).unwrap();
            let threads = l.grid.count() * l.block.count();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(
                threads * PER_THREAD as u64 >= n as u64 || l.grid.x == MAX_GRID,
                "n {n}"
            );
        }
    }
}
