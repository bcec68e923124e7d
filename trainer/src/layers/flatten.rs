//! `Flatten`: each sample to rank 1 (PyTorch's `nn.Flatten()`, `start_dim = 1`).
//! The data is already contiguous and batch-major, so both passes are copies.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layers::{Ctx, ExportOp, Layer};
use crate::philox::Stream;
use lasagna_format::Op;

/// Flattens each sample to `[numel]`.
#[derive(Clone, Debug, Default)]
pub struct Flatten {
    numel: usize,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Flatten {
        Flatten::default()
    }
}

impl<B: Backend> Layer<B> for Flatten {
    fn reshapes_only(&self) -> bool {
        true
    }
    fn kind(&self) -> &'static str {
        "Flatten"
    }

    fn describe(&self) -> String {
        "Flatten".into()
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        if input.is_empty() {
            return Err("expected at least one dimension per sample, got a scalar []".into());
        }
        Ok(vec![input.iter().product()])
    }

    fn setup(
        &mut self,
        _b: &B,
        input: &[usize],
        _max_batch: usize,
        _rng: &mut Stream,
    ) -> Result<()> {
        Layer::<B>::output_shape(self, input).map_err(|r| Error::config("Flatten", r))?;
        self.numel = input.iter().product();
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        b.copy(x, y, ctx.batch * self.numel)
    }

    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        _x: &B::Buf,
        _y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&mut B::Buf>,
    ) -> Result<()> {
        match dx {
            Some(dx) => b.copy(dy, dx, ctx.batch * self.numel),
            None => Ok(()),
        }
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        Ok(vec![(Op::Flatten, Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn flattens_any_sample_shape_and_refuses_scalars() {
        let f = Flatten::new();
        assert_eq!(Layer::<Cpu>::output_shape(&f, &[1, 28, 28]), Ok(vec![784]));
        assert!(Layer::<Cpu>::output_shape(&f, &[]).is_err());
    }
}
