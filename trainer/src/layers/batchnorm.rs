//! Batch normalization (PyTorch's `nn.BatchNorm1d` and `nn.BatchNorm2d`), written over
//! [`NormDims`] `(N, C, S)` so every variant shares it: a variant only says
//! how a per-sample shape splits into channels `C` and positions `S`.
//!
//! Train mode normalizes with the batch's statistics and moves the running
//! statistics towards them; eval mode uses the running statistics. Backward
//! is the train-mode gradient through the batch statistics.

use crate::alloc::{product, Footprint};
use crate::backend::{Backend, NormDims};
use crate::error::{Error, Result};
use crate::layers::linear::{export_dim, not_set_up};
use crate::layers::{Ctx, ExportOp, Layer, Mode, Param};
use crate::philox::Stream;
use lasagna_format::Op;
use std::marker::PhantomData;

/// PyTorch's default `eps`.
pub const DEFAULT_EPS: f32 = 1e-5;
/// PyTorch's default `momentum`.
pub const DEFAULT_MOMENTUM: f32 = 0.1;

/// The input layout of a BatchNorm variant.
pub trait Variant: Send + Sync + 'static {
    /// PyTorch's class name.
    const KIND: &'static str;
    /// Positions per channel `S` of a per-sample `input` with `features`
    /// channels, or why the input does not fit.
    fn positions(input: &[usize], features: usize) -> std::result::Result<usize, String>;
}

/// BatchNorm1d: per-sample `[C]` or `[C, L]`.
pub struct OneD;

impl Variant for OneD {
    const KIND: &'static str = "BatchNorm1d";
    fn positions(input: &[usize], features: usize) -> std::result::Result<usize, String> {
        match *input {
            [c] if c == features => Ok(1),
            [c, l] if c == features => Ok(l),
            _ => Err(format!(
                "expected [{features}] or [{features}, L] (C = num_features), got {input:?}"
            )),
        }
    }
}

/// BatchNorm2d: per-sample `[C, H, W]`, statistics over `N`, `H` and `W`.
pub struct TwoD;

impl Variant for TwoD {
    const KIND: &'static str = "BatchNorm2d";
    fn positions(input: &[usize], features: usize) -> std::result::Result<usize, String> {
        match *input {
            [c, h, w] if c == features => Ok(h * w),
            _ => Err(format!(
                "expected [{features}, H, W] (C = num_features), got {input:?}"
            )),
        }
    }
}

/// Batch normalization over the channels of a [`Variant`]'s layout.
pub struct BatchNorm<B: Backend, V: Variant> {
    features: usize,
    eps: f32,
    momentum: f32,
    positions: usize,
    /// Applies the ReLU that follows it to its output (`Layer::fuse_relu`),
    /// in train and eval mode alike.
    relu: bool,
    /// `weight [C]` (gamma), `bias [C]` (beta); empty before `setup`.
    params: Vec<Param<B>>,
    state: Option<State<B>>,
    variant: PhantomData<V>,
}

/// Running statistics, what forward saves for backward, and an input-gradient
/// scratch for when the caller wants no `dx` (the backend op always writes one).
struct State<B: Backend> {
    running_mean: B::Buf,
    running_var: B::Buf,
    save_mean: B::Buf,
    save_invstd: B::Buf,
    scratch_dx: B::Buf,
}

/// BatchNorm1d on `[C]` or `[C, L]`.
pub type BatchNorm1d<B> = BatchNorm<B, OneD>;

impl<B: Backend> BatchNorm<B, OneD> {
    /// PyTorch's `BatchNorm1d(features, eps, momentum)` (defaults
    /// [`DEFAULT_EPS`], [`DEFAULT_MOMENTUM`]), always affine and tracking
    /// running statistics.
    pub fn new(features: usize, eps: f32, momentum: f32) -> Result<BatchNorm1d<B>> {
        BatchNorm::with_variant(features, eps, momentum)
    }
}

/// BatchNorm2d on `[C, H, W]`.
pub type BatchNorm2d<B> = BatchNorm<B, TwoD>;

impl<B: Backend> BatchNorm<B, TwoD> {
    /// PyTorch's `BatchNorm2d(features, eps, momentum)` (defaults
    /// [`DEFAULT_EPS`], [`DEFAULT_MOMENTUM`]), always affine and tracking
    /// running statistics. Exports as the format's `BatchNorm`, which covers
    /// both layouts.
    pub fn new(features: usize, eps: f32, momentum: f32) -> Result<BatchNorm2d<B>> {
        BatchNorm::with_variant(features, eps, momentum)
    }
}

impl<B: Backend, V: Variant> BatchNorm<B, V> {
    fn with_variant(features: usize, eps: f32, momentum: f32) -> Result<BatchNorm<B, V>> {
        let what = V::KIND;
        if features == 0 {
            return Err(Error::config(what, "num_features must be positive"));
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::config(
                what,
                format!("eps = {eps}, expected a positive number"),
            ));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(Error::config(
                what,
                format!("momentum = {momentum}, expected 0 <= momentum <= 1"),
            ));
        }
        Ok(BatchNorm {
            features,
            eps,
            momentum,
            positions: 0,
            relu: false,
            params: Vec::new(),
            state: None,
            variant: PhantomData,
        })
    }

    fn dims(&self, batch: usize) -> NormDims {
        NormDims {
            n: batch,
            c: self.features,
            s: self.positions,
        }
    }
}

impl<B: Backend, V: Variant> Layer<B> for BatchNorm<B, V> {
    fn kind(&self) -> &'static str {
        V::KIND
    }

    fn is_batch_norm(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!(
            "{}({}, eps={}, momentum={})",
            V::KIND,
            self.features,
            self.eps,
            self.momentum
        )
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        V::positions(input, self.features).map(|_| input.to_vec())
    }

    fn footprint(&self, input: &[usize], max_batch: usize) -> Option<Footprint> {
        let c = self.features as u64;
        // Running mean and variance, saved mean and inverse std, and dx scratch.
        let scratch = product(input)?.checked_mul(max_batch as u64)?;
        Footprint::new(&[c, c], c.checked_mul(4)?.checked_add(scratch)?)
    }

    fn setup(&mut self, b: &B, input: &[usize], max_batch: usize, _rng: &mut Stream) -> Result<()> {
        self.positions =
            V::positions(input, self.features).map_err(|r| Error::config(V::KIND, r))?;
        let c = self.features;
        // PyTorch's reset_parameters: gamma 1, beta 0, running mean 0, variance 1.
        self.params = vec![
            Param::new(b, "weight", vec![c], &vec![1.0; c])?,
            Param::new(b, "bias", vec![c], &vec![0.0; c])?,
        ];
        self.state = Some(State {
            running_mean: b.zeros(c)?,
            running_var: b.upload(&vec![1.0; c])?,
            save_mean: b.zeros(c)?,
            save_invstd: b.zeros(c)?,
            scratch_dx: b.zeros(max_batch * c * self.positions)?,
        });
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let d = self.dims(ctx.batch);
        let (Some(s), [gamma, beta]) = (self.state.as_mut(), self.params.as_slice()) else {
            return Err(not_set_up(V::KIND));
        };
        match ctx.mode {
            Mode::Train => {
                // PyTorch refuses a batch of one too: its variance is 0 and the
                // unbiased running estimate divides by zero.
                if ctx.batch == 1 {
                    return Err(Error::BatchNormBatchOne { index: ctx.index });
                }
                b.batchnorm_forward_train(
                    d,
                    self.eps,
                    self.momentum,
                    self.relu,
                    x,
                    &gamma.value,
                    &beta.value,
                    &mut s.running_mean,
                    &mut s.running_var,
                    &mut s.save_mean,
                    &mut s.save_invstd,
                    y,
                )
            }
            Mode::Eval => b.batchnorm_forward_eval(
                d,
                self.eps,
                self.relu,
                x,
                &gamma.value,
                &beta.value,
                &s.running_mean,
                &s.running_var,
                y,
            ),
        }
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
        if ctx.mode == Mode::Eval {
            // The backend only has the batch-statistics gradient; eval-mode
            // training (frozen statistics) is not supported yet.
            return Err(Error::config(
                V::KIND,
                "backward in eval mode is not supported: gradients flow through the batch statistics of train mode",
            ));
        }
        let d = self.dims(ctx.batch);
        let (Some(s), [gamma, beta]) = (self.state.as_mut(), self.params.as_mut_slice()) else {
            return Err(not_set_up(V::KIND));
        };
        let dx = match dx {
            Some(dx) => dx,
            None => &mut s.scratch_dx,
        };
        b.batchnorm_backward(
            d,
            x,
            &gamma.value,
            &s.save_mean,
            &s.save_invstd,
            dy,
            dx,
            &mut gamma.grad,
            &mut beta.grad,
        )
    }

    fn params(&self) -> &[Param<B>] {
        &self.params
    }

    /// Backward writes `dgamma = sum(dy xh)` and `dbeta = sum(dy)`: gamma and
    /// beta get gradient from this layer's backward alone, once per step.
    fn overwrites_grads(&self) -> bool {
        true
    }

    /// Always accepted: the ReLU costs one `max` in the normalize pass, in
    /// both modes and under AMP (BatchNorm stays f32). Backward is
    /// unaffected: it recomputes `xh` from `x` and the saved statistics and
    /// never reads the (now post-ReLU) output.
    fn fuse_relu(&mut self, on: bool) -> bool {
        self.relu = on;
        on
    }

    fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut self.params
    }

    fn buffers(&self) -> Vec<(&'static str, &B::Buf)> {
        match &self.state {
            Some(s) => vec![
                ("running_mean", &s.running_mean),
                ("running_var", &s.running_var),
            ],
            None => Vec::new(),
        }
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut B::Buf)> {
        match &mut self.state {
            Some(s) => vec![
                ("running_mean", &mut s.running_mean),
                ("running_var", &mut s.running_var),
            ],
            None => Vec::new(),
        }
    }

    fn export(&self, b: &B) -> Result<Vec<ExportOp>> {
        let (Some(s), [gamma, beta]) = (self.state.as_ref(), self.params.as_slice()) else {
            return Err(not_set_up(V::KIND));
        };
        let op = Op::BatchNorm {
            features: export_dim(self.features, "num_features")?,
            eps: self.eps,
        };
        let tensors = vec![
            b.to_vec(&gamma.value)?,
            b.to_vec(&beta.value)?,
            b.to_vec(&s.running_mean)?,
            b.to_vec(&s.running_var)?,
        ];
        Ok(vec![(op, tensors)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    fn ctx(mode: Mode, batch: usize) -> Ctx {
        Ctx {
            mode,
            batch,
            seed: 0,
            offset: 0,
            index: 7,
        }
    }

    fn layer(features: usize, input: &[usize]) -> Result<BatchNorm1d<Cpu>> {
        let mut bn = BatchNorm1d::new(features, DEFAULT_EPS, DEFAULT_MOMENTUM)?;
        bn.setup(&Cpu, input, 4, &mut Stream::new(0, 0))?;
        Ok(bn)
    }

    #[test]
    fn running_statistics_follow_pytorchs_update_with_the_unbiased_variance() -> Result<()> {
        let mut bn = layer(2, &[2])?;
        // Channel 0 sees 1, 2, 3, 6; channel 1 sees -1, -1, 1, 1.
        let x = vec![1.0, -1.0, 2.0, -1.0, 3.0, 1.0, 6.0, 1.0];
        let mut y = vec![0.0; 8];
        bn.forward(&Cpu, &ctx(Mode::Train, 4), &x, &mut y)?;
        bn.forward(&Cpu, &ctx(Mode::Train, 4), &x, &mut y)?;
        // By hand: mean 3 and 0; unbiased variance 14/3 and 4/3.
        let step = |r: f64, v: f64| 0.9 * r + 0.1 * v;
        let want_mean = [step(step(0.0, 3.0), 3.0), 0.0];
        let want_var = [
            step(step(1.0, 14.0 / 3.0), 14.0 / 3.0),
            step(step(1.0, 4.0 / 3.0), 4.0 / 3.0),
        ];
        let s = bn.state.as_ref().ok_or_else(|| not_set_up("test"))?;
        for c in 0..2 {
            assert!(
                (s.running_mean[c] as f64 - want_mean[c]).abs() < 1e-6,
                "mean {c}: {:?}",
                s.running_mean
            );
            assert!(
                (s.running_var[c] as f64 - want_var[c]).abs() < 1e-6,
                "var {c}: {:?}",
                s.running_var
            );
        }
        // Normalization itself uses the biased variance: channel 1 is exactly +-1.
        let want_y1 = 1.0 / (1.0f64 + 1e-5).sqrt();
        assert!((y[7] as f64 - want_y1).abs() < 1e-6 && (y[1] as f64 + want_y1).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn eval_mode_normalizes_with_the_running_statistics() -> Result<()> {
        let mut bn = layer(1, &[1, 3])?;
        let s = bn.state.as_mut().ok_or_else(|| not_set_up("test"))?;
        s.running_mean = vec![2.0];
        s.running_var = vec![4.0];
        let x = vec![0.0, 2.0, 4.0];
        let mut y = vec![0.0; 3];
        bn.forward(&Cpu, &ctx(Mode::Eval, 1), &x, &mut y)?;
        let k = 1.0 / (4.0f32 + 1e-5).sqrt();
        assert_eq!(y, vec![-2.0 * k, 0.0, 2.0 * k]);
        Ok(())
    }

    #[test]
    fn a_train_batch_of_one_is_an_error_naming_the_layer() -> Result<()> {
        let mut bn = layer(3, &[3])?;
        let mut y = vec![0.0; 3];
        let err = bn.forward(&Cpu, &ctx(Mode::Train, 1), &vec![1.0, 2.0, 3.0], &mut y);
        assert!(
            matches!(err, Err(Error::BatchNormBatchOne { index: 7 })),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn shapes_other_than_c_or_c_by_l_are_refused_with_both_shapes_named() -> Result<()> {
        let bn = layer(4, &[4, 5])?;
        assert_eq!(bn.output_shape(&[4, 5]), Ok(vec![4, 5]));
        let err = bn.output_shape(&[5]).err().unwrap_or_default();
        assert!(err.contains("[4]") && err.contains("[5]"), "{err}");
        assert!(bn.output_shape(&[4, 2, 2]).is_err());
        assert!(BatchNorm1d::<Cpu>::new(4, 0.0, 0.1).is_err());
        assert!(BatchNorm1d::<Cpu>::new(4, 1e-5, 1.5).is_err());
        Ok(())
    }

    #[test]
    fn export_lists_weight_bias_running_mean_running_var() -> Result<()> {
        let bn = layer(3, &[3])?;
        let ops = bn.export(&Cpu)?;
        let (op, t) = &ops[0];
        assert_eq!(
            *op,
            Op::BatchNorm {
                features: 3,
                eps: 1e-5
            }
        );
        assert_eq!(
            t,
            &vec![vec![1.0; 3], vec![0.0; 3], vec![0.0; 3], vec![1.0; 3]]
        );
        let names: Vec<_> = bn.buffers().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["running_mean", "running_var"]);
        Ok(())
    }

    fn layer2d(features: usize, input: &[usize]) -> Result<BatchNorm2d<Cpu>> {
        let mut bn = BatchNorm2d::new(features, DEFAULT_EPS, DEFAULT_MOMENTUM)?;
        bn.setup(&Cpu, input, 4, &mut Stream::new(0, 0))?;
        Ok(bn)
    }

    #[test]
    fn batchnorm2d_running_statistics_use_the_unbiased_variance_over_n_h_w() -> Result<()> {
        let mut bn = layer2d(2, &[2, 1, 2])?;
        // Two samples of [C=2, H=1, W=2]: channel 0 sees 1, 2 then 3, 6;
        // channel 1 sees -1, -1 then 1, 1 (four values each, over N, H, W).
        let x = vec![1.0, 2.0, -1.0, -1.0, 3.0, 6.0, 1.0, 1.0];
        let mut y = vec![0.0; 8];
        bn.forward(&Cpu, &ctx(Mode::Train, 2), &x, &mut y)?;
        // By hand: mean 3 and 0; unbiased variance (4 values) 14/3 and 4/3.
        let want_mean = [0.1 * 3.0, 0.0];
        let want_var = [0.9 + 0.1 * 14.0 / 3.0, 0.9 + 0.1 * 4.0 / 3.0];
        let s = bn.state.as_ref().ok_or_else(|| not_set_up("test"))?;
        for c in 0..2 {
            assert!(
                (s.running_mean[c] as f64 - want_mean[c]).abs() < 1e-6,
                "mean {c}: {:?}",
                s.running_mean
            );
            assert!(
                (s.running_var[c] as f64 - want_var[c]).abs() < 1e-6,
                "var {c}: {:?}",
                s.running_var
            );
        }
        // Normalization uses the biased variance: channel 1 is exactly +-1.
        let want_y1 = 1.0 / (1.0f64 + 1e-5).sqrt();
        assert!((y[7] as f64 - want_y1).abs() < 1e-6 && (y[2] as f64 + want_y1).abs() < 1e-6);
        // Channel 0, sample 1, position 1: (6 - 3) / sqrt(14/4 + eps).
        let want = 3.0 / (3.5f64 + 1e-5).sqrt();
        assert!((y[5] as f64 - want).abs() < 1e-6, "{y:?}");
        Ok(())
    }

    #[test]
    fn batchnorm2d_takes_c_h_w_refuses_a_train_batch_of_one_and_exports_as_batchnorm() -> Result<()>
    {
        let mut bn = layer2d(3, &[3, 2, 2])?;
        assert_eq!(Layer::<Cpu>::kind(&bn), "BatchNorm2d");
        assert_eq!(bn.output_shape(&[3, 2, 2]), Ok(vec![3, 2, 2]));
        let err = bn.output_shape(&[3, 4]).err().unwrap_or_default();
        assert!(err.contains("[3, H, W]") && err.contains("[3, 4]"), "{err}");
        assert!(bn.output_shape(&[4, 2, 2]).is_err());
        // The rule shared with BatchNorm1d: a train batch of one is refused.
        let x = vec![0.5; 12];
        let mut y = vec![0.0; 12];
        let err = bn.forward(&Cpu, &ctx(Mode::Train, 1), &x, &mut y);
        assert!(
            matches!(err, Err(Error::BatchNormBatchOne { index: 7 })),
            "{err:?}"
        );
        bn.forward(&Cpu, &ctx(Mode::Eval, 1), &x, &mut y)?;
        let (op, t) = &bn.export(&Cpu)?[0];
        assert_eq!(
            *op,
            Op::BatchNorm {
                features: 3,
                eps: 1e-5
            }
        );
        assert_eq!(t.len(), 4);
        Ok(())
    }
}
