//! Activations ([`Act`]), softmax and dropout: the element-wise and
//! row-wise ops between the layers with parameters.

use super::Memory;
use crate::error::Result;

/// Element-wise activations (PyTorch's definitions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `max(x, 0)`; the gradient at 0 is 0, as in PyTorch.
    Relu,
    /// `x > 0 ? x : alpha * x`.
    LeakyRelu(f32),
    /// `x * Phi(x)` with the exact erf.
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    GeluTanh,
    /// `x * sigmoid(x)`.
    Silu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

/// Activations, softmax and dropout.
pub trait ActivationOps: Memory {
    /// `y[..n] = act(x[..n])`.
    fn act_forward(&self, act: Act, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()>;
    /// `dx[..n] = dy[..n] * act'(x[..n])`, with `x` the forward input.
    fn act_backward(
        &self,
        act: Act,
        x: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// Row-wise softmax over `cols`.
    fn softmax_forward(
        &self,
        x: &Self::Buf,
        y: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// `dx = y * (dy - sum(dy * y))` row-wise, with `y` the forward output.
    fn softmax_backward(
        &self,
        y: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()>;
    /// Inverted dropout: element `i` is kept iff `to_unit(random_u32(seed, offset, i)) >= p`,
    /// and kept elements are scaled by `1 / (1 - p)`. `group` elements share one draw
    /// (1 for Dropout; H*W for Dropout2d, which drops whole channels).
    fn dropout_forward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        x: &Self::Buf,
        y: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
    /// The backward of `dropout_forward`, regenerating the same mask from `(seed, offset)`.
    fn dropout_backward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        n: usize,
    ) -> Result<()>;
}
