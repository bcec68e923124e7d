//! f32 <-> f16 conversion (`ptx/convert.ptx`; CPU reference
//! `half::f16::from_f32` / `to_f32`, as `format/src/writer.rs` stores f16
//! weights).
//!
//! Both entries take `(x, y, n)`: source, destination, element count.

use crate::kernel::grid_stride;
use crate::kernel::{p, Kernel, Launch, LaunchError, Module};
use crate::ParamKind::{PtrF16, PtrF32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "convert",
    ptx: include_str!("../ptx/convert.ptx"),
};

/// `y[i] = f16(x[i])`, round to nearest even (`cvt.rn.f16.f32`).
pub static F32_TO_F16: Kernel = Kernel {
    name: "f32_to_f16",
    module: &MODULE,
    params: &[p("x", PtrF32), p("y", PtrF16), p("n", U64)],
};

/// `y[i] = f32(x[i])`, exact.
pub static F16_TO_F32: Kernel = Kernel {
    name: "f16_to_f32",
    module: &MODULE,
    params: &[p("x", PtrF16), p("y", PtrF32), p("n", U64)],
};

/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&F32_TO_F16, &F16_TO_F32];

/// Threads per block (as the activations: a memory-bound element-wise op).
pub const BLOCK: u32 = 256;
/// Grid cap; the loop is grid-stride (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;

/// The launch for `n` elements (either direction).
pub fn convert_launch(n: usize) -> Result<Launch, LaunchError> {
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_every_element_or_strides_over_them() {
        for n in [0usize, 1, 255, 257, (1 << 26) + 3] {
            let l = convert_launch(n).unwrap();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            assert!(l.grid.count() * 256 >= n as u64 || l.grid.x == MAX_GRID);
        }
    }
}
