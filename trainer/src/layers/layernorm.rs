//! Layer normalization over the last dimension, with affine parameters
//! (PyTorch's `nn.LayerNorm(size)`): each row is normalized by its own mean
//! and biased variance, so train and eval behave the same.

use crate::alloc::{product, Footprint};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layers::linear::{export_dim, not_set_up};
use crate::layers::{Ctx, ExportOp, Layer, Param};
use crate::philox::Stream;
use lasagna_format::Op;

/// PyTorch's default `eps`.
pub const DEFAULT_EPS: f32 = 1e-5;

/// LayerNorm over the last dimension.
pub struct LayerNorm<B: Backend> {
    size: usize,
    eps: f32,
    rows_per_sample: usize,
    /// `weight [size]` (gamma), `bias [size]` (beta); empty before `setup`.
    params: Vec<Param<B>>,
    state: Option<State<B>>,
}

/// Per-row statistics saved by forward, and an input-gradient scratch for
/// when the caller wants no `dx` (the backend op always writes one).
struct State<B: Backend> {
    save_mean: B::Buf,
    save_rstd: B::Buf,
    scratch_dx: B::Buf,
}

impl<B: Backend> LayerNorm<B> {
    /// PyTorch's `LayerNorm(size, eps)` (default eps [`DEFAULT_EPS`]),
    /// always with elementwise affine parameters.
    pub fn new(size: usize, eps: f32) -> Result<LayerNorm<B>> {
        if size == 0 {
            return Err(Error::config(
                "LayerNorm",
                "normalized size must be positive",
            ));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::config(
                "LayerNorm",
                format!("eps = {eps}, expected a positive number"),
            ));
        }
        Ok(LayerNorm {
            size,
            eps,
            rows_per_sample: 0,
            params: Vec::new(),
            state: None,
        })
    }
}

impl<B: Backend> Layer<B> for LayerNorm<B> {
    fn kind(&self) -> &'static str {
        "LayerNorm"
    }

    fn describe(&self) -> String {
        format!("LayerNorm({}, eps={})", self.size, self.eps)
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match input.last() {
            Some(&n) if n == self.size => Ok(input.to_vec()),
            _ => Err(format!(
                "expected [..., {}] (last dimension = normalized size), got {input:?}",
                self.size
            )),
        }
    }

    fn footprint(&self, input: &[usize], max_batch: usize) -> Option<Footprint> {
        let c = self.size as u64;
        let numel = product(input)?.checked_mul(max_batch as u64)?;
        let rows = numel / c.max(1);
        Footprint::new(&[c, c], rows.checked_mul(2)?.checked_add(numel)?)
    }

    fn setup(&mut self, b: &B, input: &[usize], max_batch: usize, _rng: &mut Stream) -> Result<()> {
        self.output_shape(input)
            .map_err(|r| Error::config("LayerNorm", r))?;
        let numel: usize = input.iter().product();
        self.rows_per_sample = numel / self.size;
        let rows = max_batch * self.rows_per_sample;
        // PyTorch's reset_parameters: gamma 1, beta 0.
        self.params = vec![
            Param::new(b, "weight", vec![self.size], &vec![1.0; self.size])?,
            Param::new(b, "bias", vec![self.size], &vec![0.0; self.size])?,
        ];
        self.state = Some(State {
            save_mean: b.zeros(rows)?,
            save_rstd: b.zeros(rows)?,
            scratch_dx: b.zeros(max_batch * numel)?,
        });
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let rows = ctx.batch * self.rows_per_sample;
        let (Some(s), [gamma, beta]) = (self.state.as_mut(), self.params.as_slice()) else {
            return Err(not_set_up("LayerNorm"));
        };
        b.layernorm_forward(
            rows,
            self.size,
            self.eps,
            x,
            &gamma.value,
            &beta.value,
            &mut s.save_mean,
            &mut s.save_rstd,
            y,
        )
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
        let rows = ctx.batch * self.rows_per_sample;
        let (Some(s), [gamma, beta]) = (self.state.as_mut(), self.params.as_mut_slice()) else {
            return Err(not_set_up("LayerNorm"));
        };
        let dx = match dx {
            Some(dx) => dx,
            None => &mut s.scratch_dx,
        };
        b.layernorm_backward(
            rows,
            self.size,
            x,
            &gamma.value,
            &s.save_mean,
            &s.save_rstd,
            dy,
            dx,
            &mut gamma.grad,
            &mut beta.grad,
        )
    }

    fn params(&self) -> &[Param<B>] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut self.params
    }

    fn export(&self, b: &B) -> Result<Vec<ExportOp>> {
        let [gamma, beta] = self.params.as_slice() else {
            return Err(not_set_up("LayerNorm"));
        };
        let op = Op::LayerNorm {
            size: export_dim(self.size, "normalized size")?,
            eps: self.eps,
        };
        Ok(vec![(
            op,
            vec![b.to_vec(&gamma.value)?, b.to_vec(&beta.value)?],
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::layers::Mode;

    #[test]
    fn each_row_of_each_sample_is_normalized_on_its_own() -> Result<()> {
        let mut ln = LayerNorm::<Cpu>::new(4, DEFAULT_EPS)?;
        ln.setup(&Cpu, &[2, 4], 3, &mut Stream::new(0, 0))?;
        // Rows: a ramp, the same ramp shifted by 100, and two more.
        let x: Vec<f32> = [
            [0.0, 1.0, 2.0, 3.0],
            [100.0, 101.0, 102.0, 103.0],
            [5.0, 5.0, 5.0, 9.0],
            [-1.0, 1.0, -1.0, 1.0],
        ]
        .concat();
        let mut y = vec![0.0; 16];
        let ctx = Ctx {
            mode: Mode::Eval,
            batch: 2,
            seed: 0,
            offset: 0,
            index: 0,
        };
        ln.forward(&Cpu, &ctx, &x, &mut y)?;
        for (a, b) in y[0..4].iter().zip(&y[4..8]) {
            assert!(
                (a - b).abs() < 1e-4,
                "a shift must not change the output: {y:?}"
            );
        }
        assert!(
            y[12..].iter().all(|v| (v.abs() - 1.0).abs() < 1e-4),
            "{y:?}"
        );
        let err = ln.output_shape(&[4, 3]).err().unwrap_or_default();
        assert!(err.contains("[4, 3]") && err.contains("4]"), "{err}");
        assert!(LayerNorm::<Cpu>::new(4, -1.0).is_err());
        Ok(())
    }
}
