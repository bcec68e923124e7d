//! Element-wise activation layers (`ReLU`, `LeakyReLU`, `GELU`, `SiLU`,
//! `Sigmoid`, `Tanh`): one layer type over [`Act`]. Backward reads the
//! forward's input `x`.

use crate::backend::{Act, Backend};
use crate::error::{Error, Result};
use crate::layers::{Ctx, ExportOp, Layer};
use crate::philox::Stream;
use lasagna_format::Op;

/// An element-wise activation.
#[derive(Clone, Debug)]
pub struct Activation {
    act: Act,
    numel: usize,
}

impl Activation {
    /// A layer applying `act` to every element.
    pub fn new(act: Act) -> Activation {
        Activation { act, numel: 0 }
    }

    /// The activation.
    pub fn act(&self) -> Act {
        self.act
    }
}

impl<B: Backend> Layer<B> for Activation {
    fn kind(&self) -> &'static str {
        match self.act {
            Act::Relu => "ReLU",
            Act::LeakyRelu(_) => "LeakyReLU",
            Act::Gelu | Act::GeluTanh => "GELU",
            Act::Silu => "SiLU",
            Act::Sigmoid => "Sigmoid",
            Act::Tanh => "Tanh",
        }
    }

    fn describe(&self) -> String {
        match self.act {
            Act::LeakyRelu(a) => format!("LeakyReLU(negative_slope={a})"),
            Act::GeluTanh => "GELU(approximate='tanh')".into(),
            _ => Layer::<B>::kind(self).into(),
        }
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn setup(
        &mut self,
        _b: &B,
        input: &[usize],
        _max_batch: usize,
        _rng: &mut Stream,
    ) -> Result<()> {
        if let Act::LeakyRelu(a) = self.act {
            if !a.is_finite() {
                return Err(Error::config(
                    "LeakyReLU negative_slope",
                    format!("{a} is not finite"),
                ));
            }
        }
        self.numel = input.iter().product();
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        b.act_forward(self.act, x, y, ctx.batch * self.numel)
    }

    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        x: &B::Buf,
        _y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&mut B::Buf>,
    ) -> Result<()> {
        match dx {
            Some(dx) => b.act_backward(self.act, x, dy, dx, ctx.batch * self.numel),
            None => Ok(()),
        }
    }

    fn is_relu(&self) -> bool {
        self.act == Act::Relu
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        let op = match self.act {
            Act::Relu => Op::Relu,
            Act::LeakyRelu(alpha) => Op::LeakyRelu { alpha },
            Act::Gelu => Op::Gelu { tanh: false },
            Act::GeluTanh => Op::Gelu { tanh: true },
            Act::Silu => Op::Silu,
            Act::Sigmoid => Op::Sigmoid,
            Act::Tanh => Op::Tanh,
        };
        Ok(vec![(op, Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn kinds_are_pytorch_class_names_and_export_matches_them() -> Result<()> {
        let cases = [
            (Act::Relu, "ReLU"),
            (Act::LeakyRelu(0.2), "LeakyReLU"),
            (Act::Gelu, "GELU"),
            (Act::GeluTanh, "GELU"),
            (Act::Silu, "SiLU"),
            (Act::Sigmoid, "Sigmoid"),
            (Act::Tanh, "Tanh"),
        ];
        for (act, name) in cases {
            let a = Activation::new(act);
            assert_eq!(Layer::<Cpu>::kind(&a), name);
            let ops = Layer::<Cpu>::export(&a, &Cpu)?;
            assert_eq!(ops[0].0.kind().name(), name);
        }
        let gelu = Layer::<Cpu>::export(&Activation::new(Act::GeluTanh), &Cpu)?;
        assert_eq!(gelu[0].0, Op::Gelu { tanh: true });
        Ok(())
    }
}
