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

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&SGD_STEP, &ADAM_STEP];

/// Threads per block: 8 warps, as for the other element-wise ops.
pub const BLOCK: u32 = 256;
/// Grid cap; the loops are grid-stride (see `activation::MAX_GRID` for why).
pub const MAX_GRID: u32 = 65_535;

/// The launch for `n` parameters (either optimizer).
pub fn optim_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_stride(n, BLOCK, MAX_GRID))
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
        assert_eq!(ALL.len(), 2);
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
