//! `Embedding` (PyTorch's `nn.Embedding(num, dim)`): each sample is `[T]`
//! token ids carried as `f32` values, converted on the device to an index
//! buffer, then rows of the `[num, dim]` table are gathered into `[T, dim]`.
//! Token ids are not differentiable, so the input gradient is zero.

use crate::alloc::{product, Footprint};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::init::{Dist, Init};
use crate::layers::linear::{export_dim, not_set_up};
use crate::layers::{Ctx, ExportOp, Layer, Param};
use crate::philox::Stream;
use lasagna_format::Op;

/// A lookup table of `num` vectors of `dim` values.
pub struct Embedding<B: Backend> {
    num: usize,
    dim: usize,
    init: Init,
    tokens: usize,
    /// `weight [num, dim]`; empty before `setup`.
    params: Vec<Param<B>>,
    /// Token ids of the current batch (`max_batch * tokens`).
    idx: Option<B::Idx>,
}

impl<B: Backend> Embedding<B> {
    /// A table of `num` embeddings of size `dim`, initialized `N(0, 1)` as PyTorch does.
    pub fn new(num: usize, dim: usize) -> Embedding<B> {
        Embedding {
            num,
            dim,
            init: Init::Default,
            tokens: 0,
            params: Vec::new(),
            idx: None,
        }
    }

    /// The same layer with another initialization of the table (fans as
    /// PyTorch computes them for a `[num, dim]` weight: `fan_in = dim`).
    pub fn with_init(mut self, init: Init) -> Embedding<B> {
        self.init = init;
        self
    }
}

impl<B: Backend> Layer<B> for Embedding<B> {
    fn kind(&self) -> &'static str {
        "Embedding"
    }

    fn describe(&self) -> String {
        format!("Embedding({}, {})", self.num, self.dim)
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        if self.num == 0 || self.dim == 0 {
            return Err("num_embeddings and embedding_dim must be positive".into());
        }
        match *input {
            [t] => Ok(vec![t, self.dim]),
            _ => Err(format!("expected [T] token ids per sample, got {input:?}")),
        }
    }

    fn footprint(&self, input: &[usize], max_batch: usize) -> Option<Footprint> {
        let idx = (*input.first()? as u64).checked_mul(max_batch as u64)?;
        Footprint::new(&[product(&[self.num, self.dim])?], idx)
    }

    fn setup(&mut self, b: &B, input: &[usize], max_batch: usize, rng: &mut Stream) -> Result<()> {
        self.output_shape(input)
            .map_err(|r| Error::config("Embedding", r))?;
        self.tokens = input[0];
        let shape = [self.num, self.dim];
        let table = self.init.weight(&shape, Dist::Normal(1.0), rng)?;
        self.params = vec![Param::new(b, "weight", shape.to_vec(), &table)?];
        self.idx = Some(b.upload_idx(&vec![0; max_batch * self.tokens])?);
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let n = ctx.batch * self.tokens;
        let (Some(idx), [table]) = (self.idx.as_mut(), self.params.as_slice()) else {
            return Err(not_set_up("Embedding"));
        };
        b.to_index(x, idx, n)?;
        b.embedding_forward(idx, &table.value, y, n, self.dim)
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
        let n = ctx.batch * self.tokens;
        let (Some(idx), [table]) = (self.idx.as_mut(), self.params.as_mut_slice()) else {
            return Err(not_set_up("Embedding"));
        };
        // Converted again rather than trusted from forward: an eval forward
        // (say, a validation batch) may have run in between.
        b.to_index(x, idx, n)?;
        b.embedding_backward(idx, dy, &mut table.grad, n, self.dim)?;
        if let Some(dx) = dx {
            b.fill(dx, 0.0, n)?;
        }
        Ok(())
    }

    fn params(&self) -> &[Param<B>] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut self.params
    }

    fn export(&self, b: &B) -> Result<Vec<ExportOp>> {
        let [table] = self.params.as_slice() else {
            return Err(not_set_up("Embedding"));
        };
        let op = Op::Embedding {
            num: export_dim(self.num, "num_embeddings")?,
            dim: export_dim(self.dim, "embedding_dim")?,
        };
        Ok(vec![(op, vec![b.to_vec(&table.value)?])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::layers::Mode;

    fn ctx(batch: usize) -> Ctx {
        Ctx {
            mode: Mode::Train,
            batch,
            seed: 0,
            offset: 0,
            index: 0,
        }
    }

    #[test]
    fn forward_gathers_rows_and_backward_scatter_adds_with_a_zero_input_gradient() -> Result<()> {
        let mut e = Embedding::<Cpu>::new(5, 2);
        e.setup(&Cpu, &[3], 2, &mut Stream::new(0, 0))?;
        e.params[0].value = (0..10).map(|v| v as f32).collect();
        let x = vec![4.0, 0.0, 4.0, 1.0, 2.0, 3.0];
        let mut y = vec![0.0; 12];
        e.forward(&Cpu, &ctx(2), &x, &mut y)?;
        assert_eq!(
            y,
            [8.0, 9.0, 0.0, 1.0, 8.0, 9.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        );
        let mut dx = vec![9.0; 6];
        e.backward(&Cpu, &ctx(2), &x, &y, &vec![1.0; 12], Some(&mut dx))?;
        assert_eq!(dx, vec![0.0; 6]);
        assert_eq!(
            e.params()[0].grad,
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]
        );
        Ok(())
    }

    #[test]
    fn ids_outside_the_table_or_not_integers_are_errors() -> Result<()> {
        let mut e = Embedding::<Cpu>::new(5, 2);
        e.setup(&Cpu, &[1], 1, &mut Stream::new(0, 0))?;
        let mut y = vec![0.0; 2];
        for bad in [5.0, -1.0, 1.5] {
            assert!(
                e.forward(&Cpu, &ctx(1), &vec![bad], &mut y).is_err(),
                "id {bad}"
            );
        }
        assert!(e.output_shape(&[2, 3]).is_err());
        Ok(())
    }

    #[test]
    fn default_table_is_standard_normal() -> Result<()> {
        let mut e = Embedding::<Cpu>::new(1000, 100);
        e.setup(&Cpu, &[1], 1, &mut Stream::new(5, 0))?;
        let w = &e.params()[0].value;
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "mean {mean}, var {var}"
        );
        Ok(())
    }
}
