//! `Softmax` over the last dimension (PyTorch's `nn.Softmax(dim=-1)`).
//! Backward reads the forward's output `y`, which is all softmax needs.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layers::{Ctx, ExportOp, Layer};
use crate::philox::Stream;
use lasagna_format::Op;

/// Softmax over the last dimension.
#[derive(Clone, Debug, Default)]
pub struct Softmax {
    rows_per_sample: usize,
    cols: usize,
}

impl Softmax {
    /// A softmax over the last dimension.
    pub fn new() -> Softmax {
        Softmax::default()
    }
}

impl<B: Backend> Layer<B> for Softmax {
    fn kind(&self) -> &'static str {
        "Softmax"
    }

    fn describe(&self) -> String {
        "Softmax(dim=-1)".into()
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match input.last() {
            Some(&n) if n > 0 => Ok(input.to_vec()),
            _ => Err(format!("expected [..., n] with n > 0, got {input:?}")),
        }
    }

    fn setup(
        &mut self,
        _b: &B,
        input: &[usize],
        _max_batch: usize,
        _rng: &mut Stream,
    ) -> Result<()> {
        Layer::<B>::output_shape(self, input).map_err(|r| Error::config("Softmax", r))?;
        self.cols = input.last().copied().unwrap_or(1);
        self.rows_per_sample = input.iter().product::<usize>() / self.cols;
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        b.softmax_forward(x, y, ctx.batch * self.rows_per_sample, self.cols)
    }

    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        _x: &B::Buf,
        y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&mut B::Buf>,
    ) -> Result<()> {
        match dx {
            Some(dx) => b.softmax_backward(y, dy, dx, ctx.batch * self.rows_per_sample, self.cols),
            None => Ok(()),
        }
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        Ok(vec![(Op::Softmax, Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::layers::Mode;

    #[test]
    fn every_row_of_the_last_dimension_sums_to_one() -> Result<()> {
        let mut s = Softmax::new();
        Layer::<Cpu>::setup(&mut s, &Cpu, &[2, 3], 2, &mut Stream::new(0, 0))?;
        let x: Vec<f32> = (0..12).map(|v| v as f32 * 0.7 - 3.0).collect();
        let mut y = vec![0.0; 12];
        let ctx = Ctx {
            mode: Mode::Eval,
            batch: 2,
            seed: 0,
            offset: 0,
            index: 0,
        };
        s.forward(&Cpu, &ctx, &x, &mut y)?;
        for row in y.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        assert!(Layer::<Cpu>::output_shape(&s, &[4, 0]).is_err());
        Ok(())
    }
}
