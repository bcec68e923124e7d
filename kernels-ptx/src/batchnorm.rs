//! BatchNorm train forward, eval forward and backward (`ptx/batchnorm.ptx`;
//! CPU reference `trainer/src/backend/cpu/batchnorm.rs`) over `(N, C, S)` tensors,
//! with `n, c, s` as in `NormDims` (`trainer/src/backend/norm.rs`).

use crate::kernel::{at_most, blocks_for, p, Dim3, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{PtrF32, F32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "batchnorm",
    ptx: include_str!("../ptx/batchnorm.ptx"),
};

const TRAIN: &[Param] = &[
    p("x", PtrF32),
    p("gamma", PtrF32),
    p("beta", PtrF32),
    p("running_mean", PtrF32),
    p("running_var", PtrF32),
    p("save_mean", PtrF32),
    p("save_invstd", PtrF32),
    p("y", PtrF32),
    p("n", U32),
    p("c", U32),
    p("s", U32),
    p("eps", F32),
    p("momentum", F32),
    p("relu", U32),
];
const EVAL: &[Param] = &[
    p("x", PtrF32),
    p("gamma", PtrF32),
    p("beta", PtrF32),
    p("running_mean", PtrF32),
    p("running_var", PtrF32),
    p("y", PtrF32),
    p("n", U32),
    p("c", U32),
    p("s", U32),
    p("eps", F32),
    p("relu", U32),
];
const BWD: &[Param] = &[
    p("x", PtrF32),
    p("gamma", PtrF32),
    p("save_mean", PtrF32),
    p("save_invstd", PtrF32),
    p("dy", PtrF32),
    p("dx", PtrF32),
    p("dgamma", PtrF32),
    p("dbeta", PtrF32),
    p("n", U32),
    p("c", U32),
    p("s", U32),
];

/// Batch statistics, running-stat update and normalization, then
/// `max(y, 0)` when `relu == 1` (a fused ReLU); one block per channel
/// ([`channel_launch`]).
pub static BATCHNORM_FORWARD_TRAIN: Kernel = Kernel {
    name: "batchnorm_forward_train",
    module: &MODULE,
    params: TRAIN,
};
/// Normalization with the running statistics, then `max(y, 0)` when
/// `relu == 1`; element-wise ([`eval_launch`]).
pub static BATCHNORM_FORWARD_EVAL: Kernel = Kernel {
    name: "batchnorm_forward_eval",
    module: &MODULE,
    params: EVAL,
};
/// `dx`, and `dgamma = sum(dy xh)`, `dbeta = sum(dy)` (overwritten, so no
/// zero-fill is needed before it); one block per channel ([`channel_launch`]).
pub static BATCHNORM_BACKWARD: Kernel = Kernel {
    name: "batchnorm_backward",
    module: &MODULE,
    params: BWD,
};
/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[
    &BATCHNORM_FORWARD_TRAIN,
    &BATCHNORM_FORWARD_EVAL,
    &BATCHNORM_BACKWARD,
];

/// Threads per block of the element-wise eval kernel.
pub const BLOCK: u32 = 256;
/// Most threads per block of the per-channel kernels (the PTX takes any
/// multiple of 32 up to 1024; the second reduction level is one warp's
/// butterfly over at most 32 warp sums). The grid is one block per channel,
/// 16 to 64 for the CNN preset on a 132-SM H100: 1024 threads (32 warps, 2
/// blocks per SM at the kernels' 21-26 registers) keep 4x more loads in
/// flight per SM than 256 did, with the same launch and a fixed, so still
/// deterministic, reduction order.
pub const CHANNEL_BLOCK: u32 = 1024;
/// Grid cap of the element-wise eval kernel (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;
/// u32 indices plus a grid or block stride must not wrap.
pub const MAX_ELEMENTS: usize = i32::MAX as usize;

fn check(kernel: &'static str, n: usize, c: usize, s: usize) -> Result<usize, LaunchError> {
    let len = n.saturating_mul(c).saturating_mul(s);
    at_most(kernel, "n * c * s", len, MAX_ELEMENTS)?;
    // Each dimension is passed as a u32 even when another one is 0.
    at_most(kernel, "n", n, MAX_ELEMENTS)?;
    at_most(kernel, "c", c, MAX_ELEMENTS)?;
    at_most(kernel, "s", s, MAX_ELEMENTS)?;
    Ok(len)
}

/// The launch of `batchnorm_forward_train` and `batchnorm_backward`: one
/// block per channel (grid.x = `c`; `c = 0` gives one block, which returns at
/// once) of [`CHANNEL_BLOCK`] threads, fewer (whole warps) when a channel has
/// fewer values `n * s`: idle threads would only add reduction work. The
/// block depends on the shape alone, so the summation order does too.
pub fn channel_launch(n: usize, c: usize, s: usize) -> Result<Launch, LaunchError> {
    check("batchnorm", n, c, s)?;
    // Saturating: with c = 0, check() leaves n * s unbounded.
    let per_channel = n.saturating_mul(s).clamp(1, CHANNEL_BLOCK as usize);
    Ok(Launch {
        grid: Dim3::x(c.max(1) as u32),
        block: Dim3::x(per_channel.next_multiple_of(32) as u32),
        shared_bytes: 0,
    })
}

/// The launch of `batchnorm_forward_eval`: element-wise, capped grid.
pub fn eval_launch(n: usize, c: usize, s: usize) -> Result<Launch, LaunchError> {
    let len = check("batchnorm_forward_eval", n, c, s)?;
    Ok(Launch {
        grid: Dim3::x(blocks_for(len, BLOCK as usize).min(MAX_GRID as usize) as u32),
        block: Dim3::x(BLOCK),
        shared_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches_give_a_block_per_channel_and_refuse_wrapping_indices() {
        let l = channel_launch(3, 5, 49).unwrap();
        assert_eq!((l.grid.x, l.block.x), (5, 160));
        let l = channel_launch(64, 16, 28 * 28).unwrap();
        assert_eq!((l.grid.x, l.block.x), (16, CHANNEL_BLOCK));
        assert_eq!(channel_launch(64, 3, 1).unwrap().block.x, 64);
        assert_eq!(channel_launch(0, 3, 5).unwrap().block.x, 32);
        assert!(channel_launch(1 << 16, 1 << 16, 1).is_err());
        let l = eval_launch(3, 5, 49).unwrap();
        assert!(l.grid.count() * l.block.count() >= 3 * 5 * 49);
        assert!(eval_launch(usize::MAX, 2, 2).is_err());
    }
}
