//! Optimizers, learning-rate schedules and gradient clipping.
//!
//! An [`Optimizer`] keeps its state (momentum, Adam moments) on the device
//! next to the parameters and updates them with the backend's fused ops, so a
//! step never reads parameters back to the host. Hyper-parameters and update
//! rules are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`); the learning rate
//! is passed to each step so a [`Schedule`] can drive it.

mod clip;
mod config;
mod schedule;

pub use clip::clip_grad_norm;
pub use config::OptimConfig;
pub use schedule::Schedule;

use serde::{Deserialize, Serialize};

use crate::backend::{AdamStep, AdamTensor, Backend, SgdStep};
use crate::error::{Error, Result};
use crate::layers::Param;

/// An optimizer's state on the host, for checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimState {
    /// [`OptimConfig::name`] of the optimizer that saved it.
    pub kind: String,
    /// Steps taken.
    pub step: u64,
    /// Per-parameter state in parameter order, each parameter's buffers
    /// together: `[mom_0, mom_1, ..]` for SGD with momentum (nothing without),
    /// `[m_0, v_0, m_1, v_1, ..]` for Adam and AdamW.
    pub buffers: Vec<Vec<f32>>,
}

/// An optimizer for a fixed list of parameters.
pub struct Optimizer<B: Backend> {
    cfg: OptimConfig,
    step: u64,
    /// Element counts of the parameters it was built for, in order.
    sizes: Vec<usize>,
    /// `cfg.slots()` buffers per parameter, laid out as in [`OptimState::buffers`].
    state: Vec<B::Buf>,
    /// Stands in for the momentum buffer when SGD has none (the op ignores it).
    no_momentum: B::Buf,
}

impl<B: Backend> Optimizer<B> {
    /// Validates `cfg` and allocates zeroed state for parameters of
    /// `param_sizes` elements, in the order [`step`](Self::step) will see them.
    pub fn new(b: &B, cfg: OptimConfig, param_sizes: &[usize]) -> Result<Self> {
        cfg.validate()?;
        let slots = cfg.slots();
        let mut state = Vec::with_capacity(param_sizes.len() * slots);
        for &n in param_sizes {
            for _ in 0..slots {
                state.push(b.zeros(n)?);
            }
        }
        Ok(Optimizer {
            cfg,
            step: 0,
            sizes: param_sizes.to_vec(),
            state,
            no_momentum: b.zeros(0)?,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &OptimConfig {
        &self.cfg
    }

    /// Steps taken (Adam's bias correction uses `steps() + 1` on the next one).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter from its gradient, with learning rate `lr`.
    /// Nothing is updated if `params` is not the list the optimizer was built for.
    pub fn step(&mut self, b: &B, params: &mut [&mut Param<B>], lr: f32) -> Result<()> {
        self.check_params(params)?;
        if !(lr >= 0.0 && lr.is_finite()) {
            return Err(Error::config(
                "learning rate",
                format!("{lr} must be finite and >= 0"),
            ));
        }
        match self.cfg {
            OptimConfig::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                let h = SgdStep {
                    lr,
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay,
                    // PyTorch creates the buffer from the first gradient.
                    first: self.step == 0,
                };
                if self.state.is_empty() {
                    for p in params.iter_mut() {
                        let p = &mut **p;
                        let n = p.numel();
                        b.sgd_step(&h, &mut p.value, &p.grad, &mut self.no_momentum, n)?;
                    }
                } else {
                    for (p, mom) in params.iter_mut().zip(self.state.iter_mut()) {
                        let p = &mut **p;
                        let n = p.numel();
                        b.sgd_step(&h, &mut p.value, &p.grad, mom, n)?;
                    }
                }
            }
            OptimConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | OptimConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let h = AdamStep {
                    lr,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    decoupled: matches!(self.cfg, OptimConfig::AdamW { .. }),
                    step: self.step + 1,
                };
                // All tensors in one call: one launch per step on the GPU.
                let mut tensors: Vec<AdamTensor<'_, B::Buf>> = params
                    .iter_mut()
                    .zip(self.state.chunks_exact_mut(2))
                    .filter_map(|(p, mv)| {
                        let p = &mut **p;
                        let n = p.numel();
                        let [m, v] = mv else { return None };
                        Some(AdamTensor {
                            param: &mut p.value,
                            grad: &p.grad,
                            m,
                            v,
                            n,
                        })
                    })
                    .collect();
                b.adam_step_many(&h, &mut tensors)?;
            }
        }
        self.step += 1;
        Ok(())
    }

    /// Adam's bias corrections for the step `ahead` steps after the next
    /// one, with learning rate `lr`, as [`step`](Self::step) will compute
    /// them; `None` for SGD. The rows of a step table (graph replay, `fit`).
    pub fn adam_scalars(&self, lr: f32, ahead: u64) -> Option<crate::backend::AdamScalars> {
        match self.cfg {
            OptimConfig::Adam {
                beta1,
                beta2,
                weight_decay,
                ..
            }
            | OptimConfig::AdamW {
                beta1,
                beta2,
                weight_decay,
                ..
            } => Some(crate::backend::AdamScalars::new(
                lr,
                beta1,
                beta2,
                weight_decay,
                self.step + 1 + ahead,
            )),
            OptimConfig::Sgd { .. } => None,
        }
    }

    /// Counts `n` steps the device took without [`step`](Self::step) being
    /// called: replays of a captured step, which read their scalars from
    /// the step table.
    pub fn replayed(&mut self, n: u64) {
        self.step += n;
    }

    fn check_params(&self, params: &[&mut Param<B>]) -> Result<()> {
        if params.len() != self.sizes.len() {
            return Err(Error::config(
                "optimizer parameters",
                format!(
                    "the optimizer was built for {} parameters, {} given",
                    self.sizes.len(),
                    params.len()
                ),
            ));
        }
        for (i, (p, &n)) in params.iter().zip(&self.sizes).enumerate() {
            if p.numel() != n {
                return Err(Error::config(
                    "optimizer parameters",
                    format!(
                        "parameter {i} (`{}`, shape {:?}) has {} elements, the optimizer was built for {n}",
                        p.name,
                        p.shape,
                        p.numel()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Copies the step count and state buffers to the host.
    pub fn state(&self, b: &B) -> Result<OptimState> {
        Ok(OptimState {
            kind: self.cfg.name().to_string(),
            step: self.step,
            buffers: self
                .state
                .iter()
                .map(|buf| b.to_vec(buf))
                .collect::<Result<_>>()?,
        })
    }

    /// Restores a [`state`](Self::state) saved by an optimizer of the same kind
    /// built for the same parameter sizes. Nothing changes if it does not fit.
    pub fn load_state(&mut self, b: &B, s: &OptimState) -> Result<()> {
        let what = "optimizer state";
        if s.kind != self.cfg.name() {
            return Err(Error::config(
                what,
                format!(
                    "it was saved by `{}`, this optimizer is `{}`",
                    s.kind,
                    self.cfg.name()
                ),
            ));
        }
        if s.buffers.len() != self.state.len() {
            return Err(Error::config(
                what,
                format!(
                    "{} buffers saved, {} expected ({} parameters x {} per parameter for {})",
                    s.buffers.len(),
                    self.state.len(),
                    self.sizes.len(),
                    self.cfg.slots(),
                    self.cfg
                ),
            ));
        }
        // max(1): SGD without momentum has no buffers, and chunks(0) panics.
        let per_param = s.buffers.chunks(self.cfg.slots().max(1));
        for (i, (bufs, &n)) in per_param.zip(&self.sizes).enumerate() {
            if let Some(buf) = bufs.iter().find(|buf| buf.len() != n) {
                return Err(Error::config(
                    what,
                    format!(
                        "a buffer of parameter {i} has {} elements, {n} expected",
                        buf.len()
                    ),
                ));
            }
        }
        for (dst, src) in self.state.iter_mut().zip(&s.buffers) {
            b.write(dst, src)?;
        }
        self.step = s.step;
        Ok(())
    }
}

#[cfg(test)]
// A failed expect is a failed test; the crate-wide deny is for library code.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    fn param(values: &[f32]) -> Param<Cpu> {
        Param::new(&Cpu, "weight", vec![values.len()], values).expect("param")
    }

    fn close(got: f32, want: f64) {
        assert!(
            (got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn sgd_momentum_starts_its_buffer_from_the_first_gradient() {
        let cfg = OptimConfig::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        let mut opt = Optimizer::new(&Cpu, cfg, &[1]).expect("optimizer");
        let mut p = param(&[1.0]);
        p.grad = vec![0.5];
        opt.step(&Cpu, &mut [&mut p], 0.1).expect("step");
        // buf = 0.5; p = 1 - 0.1 * 0.5 = 0.95
        close(p.value[0], 0.95);
        opt.step(&Cpu, &mut [&mut p], 0.1).expect("step");
        // buf = 0.9 * 0.5 + 0.5 = 0.95; p = 0.95 - 0.095 = 0.855
        close(p.value[0], 0.855);
        assert_eq!(opt.steps(), 2);
        assert_eq!(opt.state(&Cpu).expect("state").buffers, vec![vec![0.95f32]]);
    }

    #[test]
    fn plain_sgd_keeps_no_state_and_follows_the_learning_rate_given() {
        let mut opt = Optimizer::new(&Cpu, OptimConfig::sgd(), &[2, 1]).expect("optimizer");
        let (mut w, mut bias) = (param(&[1.0, 2.0]), param(&[0.0]));
        w.grad = vec![1.0, -1.0];
        bias.grad = vec![4.0];
        opt.step(&Cpu, &mut [&mut w, &mut bias], 0.5).expect("step");
        // 1 - 0.5 * 1 = 0.5; 2 + 0.5 * 1 = 2.5; 0 - 0.5 * 4 = -2
        assert_eq!(w.value, vec![0.5, 2.5]);
        assert_eq!(bias.value, vec![-2.0]);
        opt.step(&Cpu, &mut [&mut w, &mut bias], 0.25)
            .expect("step");
        // 0.5 - 0.25 = 0.25; 2.5 + 0.25 = 2.75; -2 - 0.25 * 4 = -3
        assert_eq!(w.value, vec![0.25, 2.75]);
        assert_eq!(bias.value, vec![-3.0]);
        assert!(opt.state(&Cpu).expect("state").buffers.is_empty());
    }

    #[test]
    fn adam_bias_correction_uses_the_step_count() {
        let mut opt = Optimizer::new(&Cpu, OptimConfig::adam(), &[1]).expect("optimizer");
        let mut p = param(&[1.0]);
        p.grad = vec![0.5];
        opt.step(&Cpu, &mut [&mut p], 0.1).expect("step");
        // t=1: m_hat = 0.5, sqrt(v_hat) = 0.5 -> p = 1 - 0.1 * 0.5 / (0.5 + 1e-8) = 0.900000002
        close(p.value[0], 0.900000002);
        p.grad = vec![0.25];
        opt.step(&Cpu, &mut [&mut p], 0.1).expect("step");
        // t=2: m = 0.07, v = 0.00031225; m_hat = 0.07 / 0.19 = 0.368421052632,
        // sqrt(v_hat) = sqrt(0.00031225 / 0.001999) = 0.395225380702
        // p = 0.900000002 - 0.1 * 0.368421052632 / 0.395225380702 = 0.806782040477
        close(p.value[0], 0.806782040477);
        let s = opt.state(&Cpu).expect("state");
        assert_eq!((s.kind.as_str(), s.step), ("adam", 2));
        close(s.buffers[0][0], 0.07);
        close(s.buffers[1][0], 0.00031225);
    }

    #[test]
    fn a_parameter_list_that_does_not_match_changes_nothing() {
        let mut opt = Optimizer::new(&Cpu, OptimConfig::adam(), &[2, 3]).expect("optimizer");
        let (mut a, mut b) = (param(&[1.0, 1.0]), param(&[1.0, 1.0]));
        a.grad = vec![1.0, 1.0];
        let err = opt
            .step(&Cpu, &mut [&mut a], 0.1)
            .expect_err("one parameter missing");
        assert!(
            err.to_string().contains("built for 2 parameters, 1 given"),
            "{err}"
        );
        let err = opt
            .step(&Cpu, &mut [&mut a, &mut b], 0.1)
            .expect_err("wrong size");
        assert!(
            err.to_string()
                .contains("parameter 1 (`weight`, shape [2]) has 2 elements"),
            "{err}"
        );
        assert_eq!(a.value, vec![1.0, 1.0]);
        assert_eq!(opt.steps(), 0);
        let mut c = param(&[1.0, 1.0, 1.0]);
        let err = opt
            .step(&Cpu, &mut [&mut a, &mut c], -0.1)
            .expect_err("negative lr");
        assert!(matches!(err, Error::Config { .. }), "{err}");
        assert!(Optimizer::<Cpu>::new(
            &Cpu,
            OptimConfig::Adam {
                beta1: 1.0,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.0
            },
            &[1]
        )
        .is_err());
    }

    /// Deterministic gradients that depend on the parameters, as real ones do.
    fn set_grads(params: &mut [Param<Cpu>], t: usize) {
        for (j, p) in params.iter_mut().enumerate() {
            for (i, (g, &v)) in p.grad.iter_mut().zip(&p.value).enumerate() {
                *g = 0.3 * v + ((t * 7 + i * 3 + j) as f32 * 0.37).sin();
            }
        }
    }

    fn train(opt: &mut Optimizer<Cpu>, params: &mut [Param<Cpu>], steps: std::ops::Range<usize>) {
        for t in steps {
            set_grads(params, t);
            let mut refs: Vec<&mut Param<Cpu>> = params.iter_mut().collect();
            opt.step(&Cpu, &mut refs, 0.05).expect("step");
        }
    }

    #[test]
    fn restored_state_continues_bit_identically() {
        let configs = [
            OptimConfig::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
                weight_decay: 1e-3,
            },
            OptimConfig::Sgd {
                momentum: 0.8,
                dampening: 0.1,
                nesterov: false,
                weight_decay: 0.0,
            },
            OptimConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 1e-2,
            },
            OptimConfig::adamw(),
        ];
        let sizes = [5, 3, 1];
        let init = || -> Vec<Param<Cpu>> {
            sizes
                .iter()
                .map(|&n| param(&(0..n).map(|i| i as f32 * 0.1 - 0.2).collect::<Vec<_>>()))
                .collect()
        };
        for cfg in configs {
            // Straight through: 6 steps.
            let mut straight = init();
            let mut opt = Optimizer::new(&Cpu, cfg, &sizes).expect("optimizer");
            train(&mut opt, &mut straight, 0..6);
            // Interrupted: 3 steps, state through JSON into a fresh optimizer, 3 more.
            let mut resumed = init();
            let mut first = Optimizer::new(&Cpu, cfg, &sizes).expect("optimizer");
            train(&mut first, &mut resumed, 0..3);
            let json =
                serde_json::to_string(&first.state(&Cpu).expect("state")).expect("serializes");
            drop(first);
            let saved: OptimState = serde_json::from_str(&json).expect("parses");
            let mut second = Optimizer::new(&Cpu, cfg, &sizes).expect("optimizer");
            second.load_state(&Cpu, &saved).expect("loads");
            assert_eq!(second.steps(), 3);
            train(&mut second, &mut resumed, 3..6);
            for (a, b) in straight.iter().zip(&resumed) {
                let (a, b): (Vec<u32>, Vec<u32>) = (
                    a.value.iter().map(|v| v.to_bits()).collect(),
                    b.value.iter().map(|v| v.to_bits()).collect(),
                );
                assert_eq!(a, b, "{cfg}");
            }
            assert_eq!(
                opt.state(&Cpu).expect("state"),
                second.state(&Cpu).expect("state"),
                "{cfg}"
            );
        }
    }

    #[test]
    fn state_that_does_not_fit_is_rejected_and_changes_nothing() {
        let mut opt = Optimizer::new(&Cpu, OptimConfig::adam(), &[2, 1]).expect("optimizer");
        let good = OptimState {
            kind: "adam".into(),
            step: 4,
            buffers: vec![vec![1.0; 2], vec![1.0; 2], vec![1.0], vec![1.0]],
        };
        let cases = [
            (
                OptimState {
                    kind: "adamw".into(),
                    ..good.clone()
                },
                "saved by `adamw`",
            ),
            (
                OptimState {
                    buffers: good.buffers[..2].to_vec(),
                    ..good.clone()
                },
                "2 buffers saved, 4 expected",
            ),
            (
                OptimState {
                    buffers: vec![vec![1.0; 2], vec![1.0; 2], vec![1.0; 2], vec![1.0]],
                    ..good.clone()
                },
                "a buffer of parameter 1 has 2 elements, 1 expected",
            ),
        ];
        for (bad, msg) in cases {
            let err = opt.load_state(&Cpu, &bad).expect_err("must not load");
            assert!(err.to_string().contains(msg), "{err}");
        }
        assert_eq!(opt.steps(), 0);
        assert_eq!(
            opt.state(&Cpu).expect("state").buffers,
            vec![vec![0.0; 2], vec![0.0; 2], vec![0.0], vec![0.0]]
        );
        opt.load_state(&Cpu, &good).expect("fits");
        assert_eq!(opt.state(&Cpu).expect("state"), good);
    }
}
