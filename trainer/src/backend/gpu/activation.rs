//! Activations, softmax and dropout on the GPU (`activation.ptx`,
//! `softmax.ptx`, `dropout.ptx`).

use lasagna_kernels::activation::{self as ka, activation_launch};
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::dropout::{self as kd, dropout_launch};
use lasagna_kernels::softmax::{self as ks, softmax_launch};
use lasagna_kernels::Kernel;

use super::graph::dropout_offset;
use super::{u32_arg, u64_arg, Gpu};
use crate::backend::{need, Act, ActivationOps};
use crate::error::Result;

/// Forward and backward kernels of `act`, and its extra scalar (LeakyReLU's slope).
fn kernels(act: Act) -> (&'static Kernel, &'static Kernel, Option<f32>) {
    match act {
        Act::Relu => (&ka::RELU_FORWARD, &ka::RELU_BACKWARD, None),
        Act::LeakyRelu(a) => (&ka::LEAKY_RELU_FORWARD, &ka::LEAKY_RELU_BACKWARD, Some(a)),
        Act::Gelu => (&ka::GELU_FORWARD, &ka::GELU_BACKWARD, None),
        Act::GeluTanh => (&ka::GELU_TANH_FORWARD, &ka::GELU_TANH_BACKWARD, None),
        Act::Silu => (&ka::SILU_FORWARD, &ka::SILU_BACKWARD, None),
        Act::Sigmoid => (&ka::SIGMOID_FORWARD, &ka::SIGMOID_BACKWARD, None),
        Act::Tanh => (&ka::TANH_FORWARD, &ka::TANH_BACKWARD, None),
    }
}

impl<D: Device + Send + 'static> ActivationOps for Gpu<D> {
    fn act_forward(&self, act: Act, x: &Self::Buf, y: &mut Self::Buf, n: usize) -> Result<()> {
        need(self, "act_forward", n, &[x.len, y.len])?;
        let (fwd, _, alpha) = kernels(act);
        let mut args = vec![x.arg(), y.arg(), u64_arg(n)];
        args.extend(alpha.map(Arg::F32));
        self.launch(fwd, activation_launch(n), &args)
    }
    fn act_backward(
        &self,
        act: Act,
        x: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        n: usize,
    ) -> Result<()> {
        need(self, "act_backward", n, &[x.len, dy.len, dx.len])?;
        let (_, bwd, alpha) = kernels(act);
        let mut args = vec![x.arg(), dy.arg(), dx.arg(), u64_arg(n)];
        args.extend(alpha.map(Arg::F32));
        self.launch(bwd, activation_launch(n), &args)
    }
    fn softmax_forward(
        &self,
        x: &Self::Buf,
        y: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need(self, "softmax_forward", rows * cols, &[x.len, y.len])?;
        let args = [
            x.arg(),
            y.arg(),
            u32_arg("rows", rows)?,
            u32_arg("cols", cols)?,
        ];
        self.launch(&ks::SOFTMAX_FORWARD, softmax_launch(rows, cols), &args)
    }
    fn softmax_backward(
        &self,
        y: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        need(
            self,
            "softmax_backward",
            rows * cols,
            &[y.len, dy.len, dx.len],
        )?;
        let args = [
            y.arg(),
            dy.arg(),
            dx.arg(),
            u32_arg("rows", rows)?,
            u32_arg("cols", cols)?,
        ];
        self.launch(&ks::SOFTMAX_BACKWARD, softmax_launch(rows, cols), &args)
    }
    fn dropout_forward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        x: &Self::Buf,
        y: &mut Self::Buf,
        n: usize,
    ) -> Result<()> {
        need(self, "dropout_forward", n, &[x.len, y.len])?;
        let [off, base] = dropout_offset(self.captured()?, offset);
        let args = [
            x.arg(),
            y.arg(),
            u64_arg(n),
            Arg::F32(p),
            Arg::U64(seed),
            off,
            u64_arg(group),
            base,
        ];
        self.launch(&kd::DROPOUT_FORWARD, dropout_launch(n), &args)
    }
    fn dropout_backward(
        &self,
        p: f32,
        seed: u64,
        offset: u64,
        group: usize,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        n: usize,
    ) -> Result<()> {
        need(self, "dropout_backward", n, &[dy.len, dx.len])?;
        let [off, base] = dropout_offset(self.captured()?, offset);
        let args = [
            dy.arg(),
            dx.arg(),
            u64_arg(n),
            Arg::F32(p),
            Arg::U64(seed),
            off,
            u64_arg(group),
            base,
        ];
        self.launch(&kd::DROPOUT_BACKWARD, dropout_launch(n), &args)
    }
}
