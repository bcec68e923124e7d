//! Element-wise activations and their derivatives (`ptx/activation.ptx`;
//! CPU reference `trainer/src/backend/cpu/activation.rs`).
//!
//! Forward entries take `(x, y, n)`, backward entries `(x, dy, dx, n)` with
//! `x` the forward *input*; the LeakyReLU pair takes `alpha` last.

use crate::kernel::grid_stride;
use crate::kernel::{p, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{PtrF32, F32, U64};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "activation",
    ptx: include_str!("../ptx/activation.ptx"),
};

const FWD: &[Param] = &[p("x", PtrF32), p("y", PtrF32), p("n", U64)];
const BWD: &[Param] = &[
    p("x", PtrF32),
    p("dy", PtrF32),
    p("dx", PtrF32),
    p("n", U64),
];
const FWD_ALPHA: &[Param] = &[p("x", PtrF32), p("y", PtrF32), p("n", U64), p("alpha", F32)];
const BWD_ALPHA: &[Param] = &[
    p("x", PtrF32),
    p("dy", PtrF32),
    p("dx", PtrF32),
    p("n", U64),
    p("alpha", F32),
];

macro_rules! kernels {
    ($($(#[$doc:meta])* $id:ident = $name:literal, $params:ident;)*) => {
        $( $(#[$doc])* pub static $id: Kernel = Kernel { name: $name, module: &MODULE, params: $params }; )*
        /// Every kernel of the module.
        pub static ALL: &[&Kernel] = &[$(&$id),*];
    };
}

kernels! {
    /// `y = max(x, 0)`.
    RELU_FORWARD = "relu_forward", FWD;
    /// `dx = x > 0 ? dy : 0`.
    RELU_BACKWARD = "relu_backward", BWD;
    /// `y = x > 0 ? x : alpha x`.
    LEAKY_RELU_FORWARD = "leaky_relu_forward", FWD_ALPHA;
    /// `dx = dy (x > 0 ? 1 : alpha)`.
    LEAKY_RELU_BACKWARD = "leaky_relu_backward", BWD_ALPHA;
    /// `y = 1 / (1 + exp(-x))`.
    SIGMOID_FORWARD = "sigmoid_forward", FWD;
    /// `dx = dy s (1 - s)`, `s = sigmoid(x)`.
    SIGMOID_BACKWARD = "sigmoid_backward", BWD;
    /// `y = tanh(x)`.
    TANH_FORWARD = "tanh_forward", FWD;
    /// `dx = dy (1 - tanh(x)^2)`.
    TANH_BACKWARD = "tanh_backward", BWD;
    /// `y = x Phi(x)` (erf form).
    GELU_FORWARD = "gelu_forward", FWD;
    /// `dx = dy (Phi(x) + x phi(x))`.
    GELU_BACKWARD = "gelu_backward", BWD;
    /// `y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    GELU_TANH_FORWARD = "gelu_tanh_forward", FWD;
    /// The derivative of the tanh form, times `dy`.
    GELU_TANH_BACKWARD = "gelu_tanh_backward", BWD;
    /// `y = x sigmoid(x)`.
    SILU_FORWARD = "silu_forward", FWD;
    /// `dx = dy s (1 + x (1 - s))`, `s = sigmoid(x)`.
    SILU_BACKWARD = "silu_backward", BWD;
}

/// Threads per block: 8 warps, enough to hide latency on a memory-bound op.
pub const BLOCK: u32 = 256;
/// Grid cap: the loop is grid-stride, and 8 resident blocks of 256 threads on
/// each of up to 132 SMs (H100) already keep every SM full; more blocks only
/// add scheduling overhead. 65535 also stays inside every grid limit.
pub const MAX_GRID: u32 = 65_535;

/// The launch for `n` elements (any activation, either direction).
pub fn activation_launch(n: usize) -> Result<Launch, LaunchError> {
    // n is passed as a u64, which holds any usize on supported hosts; the
    // Result keeps the signature uniform with the other launch rules.
    Ok(grid_stride(n, BLOCK, MAX_GRID))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::testing::{assert_all_described, assert_declared};

    #[test]
    fn every_kernel_is_declared_with_its_params() {
        assert_eq!(ALL.len(), 14);
        for k in ALL {
            assert_declared(k);
        }
        assert_all_described(MODULE.ptx, ALL);
    }

    #[test]
    fn launch_covers_every_element_or_strides_over_them() {
        for n in [0usize, 1, 255, 256, 257, 1000, 1 << 20, (1 << 26) + 3] {
            let l = activation_launch(n).unwrap();
            let threads = l.grid.count() * l.block.count();
            assert!(l.grid.x >= 1 && l.grid.x <= MAX_GRID);
            // Either one thread per element, or the grid is capped and the
            // kernel's grid-stride loop covers the rest.
            assert!(threads >= n as u64 || l.grid.x == MAX_GRID, "n {n}");
        }
    }
}
