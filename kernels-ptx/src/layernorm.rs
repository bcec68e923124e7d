//! LayerNorm over the last dimension (`ptx/layernorm.ptx`; CPU reference
//! `trainer/src/backend/cpu/layernorm.rs`).
//!
//! Forward and the input gradient run one warp per row
//! ([`layernorm_launch`]); the parameter gradients run one thread per column
//! ([`layernorm_params_launch`]) and accumulate into `dgamma`/`dbeta`.

use crate::kernel::{at_most, blocks_for, p, Dim3, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF32, F32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "layernorm",
    ptx: include_str!("../ptx/layernorm.ptx"),
};

/// `y = (x - mean) * rstd * gamma + beta`; saves `mean` and `rstd` per row.
pub static LAYERNORM_FORWARD: Kernel = Kernel {
    name: "layernorm_forward",
    module: &MODULE,
    params: &[
        p("x", PtrF32),
        p("gamma", PtrF32),
        p("beta", PtrF32),
        p("mean", PtrF32),
        p("rstd", PtrF32),
        p("y", PtrF32),
        p("rows", U32),
        p("cols", U32),
        p("eps", F32),
    ],
};

/// `dx = rstd * (g - mean(g) - xh * mean(g * xh))`, `g = dy * gamma` (overwrites `dx`).
pub static LAYERNORM_BACKWARD_INPUT: Kernel = Kernel {
    name: "layernorm_backward_input",
    module: &MODULE,
    params: &[
        p("x", PtrF32),
        p("gamma", PtrF32),
        p("mean", PtrF32),
        p("rstd", PtrF32),
        p("dy", PtrF32),
        p("dx", PtrF32),
        p("rows", U32),
        p("cols", U32),
    ],
};

/// `dgamma += sum_rows(dy * xh)`, `dbeta += sum_rows(dy)`.
pub static LAYERNORM_BACKWARD_PARAMS: Kernel = Kernel {
    name: "layernorm_backward_params",
    module: &MODULE,
    params: &[
        p("x", PtrF32),
        p("mean", PtrF32),
        p("rstd", PtrF32),
        p("dy", PtrF32),
        p("dgamma", PtrF32),
        p("dbeta", PtrF32),
        p("rows", U32),
        p("cols", U32),
    ],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[
    &LAYERNORM_FORWARD,
    &LAYERNORM_BACKWARD_INPUT,
    &LAYERNORM_BACKWARD_PARAMS,
];

/// Threads per block: 8 warps, so 8 rows per block.
pub const BLOCK: u32 = 256;
const ROWS_PER_BLOCK: usize = BLOCK as usize / 32;

/// Checks that `rows` and `cols` fit the kernels' u32 parameters.
fn check(kernel: &'static str, rows: usize, cols: usize) -> Result<(), LaunchError> {
    at_most(kernel, "rows", rows, u32::MAX as usize)?;
    at_most(kernel, "cols", cols, u32::MAX as usize)
}

/// The launch for `layernorm_forward` and `layernorm_backward_input`.
pub fn layernorm_launch(rows: usize, cols: usize) -> Result<Launch, LaunchError> {
    check("layernorm_forward", rows, cols)?;
    Ok(Launch {
        grid: Dim3::x(blocks_for(rows, ROWS_PER_BLOCK) as u32),
        block: Dim3::x(BLOCK),
        shared_bytes: 0,
    })
}

/// The launch for `layernorm_backward_params`.
pub fn layernorm_params_launch(rows: usize, cols: usize) -> Result<Launch, LaunchError> {
    check("layernorm_backward_params", rows, cols)?;
    Ok(Launch {
        grid: Dim3::x(blocks_for(cols, BLOCK as usize) as u32),
        block: Dim3::x(BLOCK),
        shared_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launches_cover_every_row_and_column() {
        for (rows, cols) in [(0usize, 0usize), (1, 1), (9, 33), (1000, 257)] {
            let l = layernorm_launch(rows, cols).unwrap();
            assert!(l.grid.x as usize * ROWS_PER_BLOCK >= rows && l.grid.x >= 1);
            let l = layernorm_params_launch(rows, cols).unwrap();
            assert!(l.grid.x as usize * BLOCK as usize >= cols && l.grid.x >= 1);
        }
        assert!(layernorm_launch(1 << 33, 1).is_err());
    }
}
