//! Fused optimizer updates (`ptx/optim.ptx`; CPU references
//! `trainer/src/backend/cpu/sgd.rs` and `trainer/src/backend/cpu/adam.rs`).
//!
//! `sgd_step` takes the hyper-parameters as they are; `adam_step` takes the
//! per-call scalars of [`AdamScalars`], computed on the host exactly as the
//! CPU reference computes them (f64, then rounded), so the kernel's loop is
//! the CPU's f32 loop and the two agree bit for bit.

use crate::kernel::grid_stride;
use crate::kernel::{p, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{OptPtrF32, PtrF32, F32, U32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "optim",
    ptx: include_str!("../ptx/optim.ptx"),
};

const SGD: &[Param] = &[
    p("param", PtrF32),
    p("grad", PtrF32),
    p("mom", OptPtrF32),
    p("n", U64),
    p("lr", F32),
    p("momentum", F32),
    p("dampening", F32),
    p("weight_decay", F32),
    p("nesterov", U32),
    p("first", U32),
];
const ADAM: &[Param] = &[
    p("param", PtrF32),
    p("grad", PtrF32),
    p("m", PtrF32),
    p("v", PtrF32),
    p("n", U64),
    p("beta1", F32),
    p("beta2", F32),
    p("step_size", F32),
    p("bc2_sqrt", F32),
    p("eps", F32),
    p("weight_decay", F32),
    p("decay", F32),
    p("decoupled", U32),
];

const ADAM_MULTI: &[Param] = &[
    p("beta1", F32),
    p("beta2", F32),
    p("step_size", F32),
    p("bc2_sqrt", F32),
    p("eps", F32),
    p("weight_decay", F32),
    p("decay", F32),
    p("decoupled", U32),
    p("scalars", OptPtrF32),
    p("count", U32),
    p("param0", OptPtrF32),
    p("grad0", OptPtrF32),
    p("m0", OptPtrF32),
    p("v0", OptPtrF32),
    p("n0", U64),
    p("param1", OptPtrF32),
    p("grad1", OptPtrF32),
    p("m1", OptPtrF32),
    p("v1", OptPtrF32),
    p("n1", U64),
    p("param2", OptPtrF32),
    p("grad2", OptPtrF32),
    p("m2", OptPtrF32),
    p("v2", OptPtrF32),
    p("n2", U64),
    p("param3", OptPtrF32),
    p("grad3", OptPtrF32),
    p("m3", OptPtrF32),
    p("v3", OptPtrF32),
    p("n3", U64),
    p("param4", OptPtrF32),
    p("grad4", OptPtrF32),
    p("m4", OptPtrF32),
    p("v4", OptPtrF32),
    p("n4", U64),
    p("param5", OptPtrF32),
    p("grad5", OptPtrF32),
    p("m5", OptPtrF32),
    p("v5", OptPtrF32),
    p("n5", U64),
    p("param6", OptPtrF32),
    p("grad6", OptPtrF32),
    p("m6", OptPtrF32),
    p("v6", OptPtrF32),
    p("n6", U64),
    p("param7", OptPtrF32),
    p("grad7", OptPtrF32),
    p("m7", OptPtrF32),
    p("v7", OptPtrF32),
    p("n7", U64),
    p("param8", OptPtrF32),
    p("grad8", OptPtrF32),
    p("m8", OptPtrF32),
    p("v8", OptPtrF32),
    p("n8", U64),
    p("param9", OptPtrF32),
    p("grad9", OptPtrF32),
    p("m9", OptPtrF32),
    p("v9", OptPtrF32),
    p("n9", U64),
    p("param10", OptPtrF32),
    p("grad10", OptPtrF32),
    p("m10", OptPtrF32),
    p("v10", OptPtrF32),
    p("n10", U64),
    p("param11", OptPtrF32),
    p("grad11", OptPtrF32),
    p("m11", OptPtrF32),
    p("v11", OptPtrF32),
    p("n11", U64),
    p("param12", OptPtrF32),
    p("grad12", OptPtrF32),
    p("m12", OptPtrF32),
    p("v12", OptPtrF32),
    p("n12", U64),
    p("param13", OptPtrF32),
    p("grad13", OptPtrF32),
    p("m13", OptPtrF32),
    p("v13", OptPtrF32),
    p("n13", U64),
    p("param14", OptPtrF32),
    p("grad14", OptPtrF32),
    p("m14", OptPtrF32),
    p("v14", OptPtrF32),
    p("n14", U64),
    p("param15", OptPtrF32),
    p("grad15", OptPtrF32),
    p("m15", OptPtrF32),
    p("v15", OptPtrF32),
    p("n15", U64),
];

/// SGD with momentum, dampening, Nesterov and L2 weight decay
/// (`torch.optim.SGD`); `mom` is untouched (may be null) when momentum is 0.
pub static SGD_STEP: Kernel = Kernel {
    name: "sgd_step",
    module: &MODULE,
    params: SGD,
};
/// Adam (L2 weight decay) or AdamW (decoupled), amsgrad off.
pub static ADAM_STEP: Kernel = Kernel {
    name: "adam_step",
    module: &MODULE,
    params: ADAM,
};

/// [`ADAM_STEP`] on up to [`MULTI_SLOTS`] tensors in one launch: the
/// scalars, `scalars` (0, or the device address of `step_size`, `bc2_sqrt`,
/// `decay` as three f32, which then replace those parameters: a
/// graph-replayed step's bias corrections), then `count`, then (param,
/// grad, m, v, n) per slot; unused slots are `(0, 0, 0, 0, 0)`.
/// Bit-identical to one `adam_step` per tensor.
pub static ADAM_STEP_MULTI: Kernel = Kernel {
    name: "adam_step_multi",
    module: &MODULE,
    params: ADAM_MULTI,
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&SGD_STEP, &ADAM_STEP, &ADAM_STEP_MULTI];

/// Tensors per [`ADAM_STEP_MULTI`] launch. 16 covers the CNN preset (14
/// tensors: four Conv2d/Linear weights and biases, three BatchNorms' scale
/// and shift) in one launch; the 80 slot parameters take 640 of the 4 KiB
/// of kernel parameter space, and selecting a slot is 16 predicated moves
/// per pointer, once per block.
pub const MULTI_SLOTS: usize = 16;

/// Threads per block: 8 warps, as for the other element-wise ops.
pub const BLOCK: u32 = 256;
/// Grid cap; the loops are grid-stride (see `activation::MAX_GRID` for why).
pub const MAX_GRID: u32 = 65_535;

/// The launch for `n` parameters (either optimizer).
pub fn optim_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

/// The launch of [`ADAM_STEP_MULTI`] for tensors of `lens` elements (at
/// most [`MULTI_SLOTS`]): grid.y = one row of blocks per tensor, grid.x
/// sized for the largest (blocks past a smaller tensor's end exit at once;
/// for the MLP preset's 6 tensors that is 6 x 784 blocks, of which 854 work).
pub fn adam_multi_launch(lens: &[usize]) -> Result<Launch, LaunchError> {
    if lens.len() > MULTI_SLOTS {
        return Err(LaunchError::TooLarge {
            kernel: "adam_step_multi",
            what: "tensors",
            value: lens.len(),
            max: MULTI_SLOTS,
        });
    }
    let mut l = grid_stride(lens.iter().copied().max().unwrap_or(0), BLOCK, MAX_GRID);
    l.grid.y = (lens.len() as u32).max(1);
    Ok(l)
}

/// The per-call scalars of `adam_step`, computed once on the host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamScalars {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
    /// `1 - lr * weight_decay` (used by AdamW only).
    pub decay: f32,
}

impl AdamScalars {
    /// The scalars for 1-based step `step` (0 is treated as 1). The bias
    /// corrections are computed in f64 (Python floats in PyTorch) and
    /// rounded, the same expressions as `trainer/src/backend/cpu/adam.rs`.
    pub fn new(lr: f32, beta1: f32, beta2: f32, weight_decay: f32, step: u64) -> AdamScalars {
        let t = i32::try_from(step.max(1)).unwrap_or(i32::MAX);
        let bc1 = 1.0 - (beta1 as f64).powi(t);
        let bc2 = 1.0 - (beta2 as f64).powi(t);
        AdamScalars {
            step_size: (lr as f64 / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            decay: (1.0 - lr as f64 * weight_decay as f64) as f32,
        }
    }
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
    fn launch_covers_every_element_or_strides_over_them() {
        for n in [0usize, 1, 255, 256, 257, 1000, 1 << 20, (1 << 26) + 3] {
            let l = optim_launch(n).unwrap();
            let threads = l.grid.count() * l.block.count();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(threads >= n as u64 || l.grid.x == MAX_GRID, "n {n}");
        }
    }

    #[test]
    fn adam_scalars_follow_the_bias_corrections() {
        // t = 1: bc1 = 0.1, bc2 = 0.001 -> step_size = lr / 0.1.
        let s = AdamScalars::new(0.1, 0.9, 0.999, 0.1, 1);
        assert!((s.step_size - 1.0).abs() < 1e-6);
        assert!((s.bc2_sqrt - 0.001f32.sqrt()).abs() < 1e-6);
        assert!((s.decay - 0.99).abs() < 1e-7);
        assert_eq!(
            AdamScalars::new(0.1, 0.9, 0.999, 0.0, 0),
            AdamScalars::new(0.1, 0.9, 0.999, 0.0, 1)
        );
    }
}
