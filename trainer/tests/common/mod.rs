//! The finite-difference harness shared by the layer tests: every layer's
//! backward against central differences of its forward, for the input
//! gradient and every parameter's gradient.
//!
//! The scalar is `L = sum(y * r)` for a random `r`, so `dL/dy = r` is what
//! backward receives. Forward runs in `f32`; the loss is summed in `f64`, and
//! the step `h` is large enough that `f32` rounding stays well under the
//! tolerance `TOL * (1 + |numeric|)`. Buffers hold one spare sample (layers
//! must touch only `batch` samples) and `dx` starts as a sentinel (backward
//! must overwrite it).
#![allow(dead_code)]

use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::layers::{Ctx, Layer, Mode};
use lasagna_trainer::philox::{permutation, Stream};
use proptest::prelude::*;

/// Relative tolerance of the comparison: about 8x the worst mismatch seen
/// over 3000 cases of every test (4e-4, on the norms), so a gradient that is
/// off by a fraction of a percent still fails.
pub const TOL: f64 = 3e-3;

/// Default finite-difference step; smooth ops with curvature (norms) use 1e-3.
pub const H: f64 = 1e-2;

/// The norms' `eps` here. PyTorch's 1e-5 makes a normalization of two
/// nearly equal values a near step function that no finite difference can
/// follow; a larger `eps` keeps the function smooth and exercises the same
/// gradient formula.
pub const NORM_EPS: f32 = 0.1;

/// How the harness draws inputs.
#[derive(Clone, Copy, PartialEq)]
pub enum Inputs {
    /// Magnitudes in `[0.05, 2]` with random signs (never near ReLU's kink).
    Signed,
    /// A shuffle of distinct values `4h` apart: no ties for max pooling.
    Distinct,
    /// Token ids below the given count; they get no gradient (Embedding).
    Ids(usize),
}

/// What to run a layer on.
pub struct Spec {
    /// Per-sample input shape.
    pub input: Vec<usize>,
    pub batch: usize,
    pub mode: Mode,
    /// Seed of the inputs, `r`, the parameters and the dropout mask.
    pub seed: u64,
    /// Finite-difference step.
    pub h: f64,
    pub inputs: Inputs,
}

impl Spec {
    pub fn new(input: Vec<usize>, batch: usize, seed: u64) -> Spec {
        Spec {
            input,
            batch,
            mode: Mode::Train,
            seed,
            h: H,
            inputs: Inputs::Signed,
        }
    }
}

pub fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

pub fn ctx(mode: Mode, batch: usize, seed: u64) -> Ctx {
    Ctx {
        mode,
        batch,
        seed,
        offset: 11,
        index: 2,
    }
}

fn loss(
    layer: &mut dyn Layer<Cpu>,
    ctx: &Ctx,
    x: &Vec<f32>,
    y: &mut Vec<f32>,
    r: &[f32],
) -> Result<f64, TestCaseError> {
    layer.forward(&Cpu, ctx, x, y).map_err(fail)?;
    Ok(y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum())
}

/// Runs forward and backward once, then compares every input and parameter
/// gradient with `(L(v + h) - L(v - h)) / 2h`.
pub fn check_gradients(layer: &mut dyn Layer<Cpu>, s: &Spec) -> Result<(), TestCaseError> {
    let out_shape = layer.output_shape(&s.input).map_err(fail)?;
    // One spare sample: layers must act on the first `batch` samples only.
    let max_batch = s.batch + 1;
    let mut rng = Stream::new(s.seed, 0);
    layer
        .setup(&Cpu, &s.input, max_batch, &mut rng)
        .map_err(fail)?;
    for p in layer.params_mut() {
        p.value
            .iter_mut()
            .for_each(|v| *v = rng.uniform_range(-1.5, 1.5));
    }
    let in_numel: usize = s.input.iter().product();
    let out_numel: usize = out_shape.iter().product();
    let (n_in, n_out) = (s.batch * in_numel, s.batch * out_numel);
    let mut x = vec![0.0f32; max_batch * in_numel];
    match s.inputs {
        Inputs::Signed => {
            for v in &mut x[..n_in] {
                let m = rng.uniform_range(0.05, 2.0);
                *v = if rng.uniform() < 0.5 { -m } else { m };
            }
        }
        Inputs::Distinct => {
            let ranks = permutation(n_in, s.seed, 1);
            for (v, &k) in x.iter_mut().zip(&ranks) {
                *v = ((k as f64 - n_in as f64 / 2.0) * 4.0 * s.h) as f32;
            }
        }
        Inputs::Ids(num) => {
            for v in &mut x[..n_in] {
                *v = rng.below(num as u32) as f32;
            }
        }
    }
    let mut r = vec![0.0f32; max_batch * out_numel];
    r[..n_out]
        .iter_mut()
        .for_each(|v| *v = rng.uniform_range(-1.0, 1.0));
    let ctx = ctx(s.mode, s.batch, s.seed);
    let mut y = vec![0.0f32; max_batch * out_numel];
    loss(layer, &ctx, &x, &mut y, &r)?;
    // A sentinel: backward must overwrite dx, not add to it.
    let mut dx = vec![1e3f32; x.len()];
    layer
        .backward(&Cpu, &ctx, &x, &y, &r, Some(&mut dx))
        .map_err(fail)?;
    let grads: Vec<(&str, Vec<f32>)> = layer
        .params()
        .iter()
        .map(|p| (p.name, p.grad.clone()))
        .collect();

    let (mut worst, mut what) = (0.0f64, String::new());
    let mut see = |name: String, analytic: f32, numeric: f64| {
        let ratio = (analytic as f64 - numeric).abs() / (TOL * (1.0 + numeric.abs()));
        let ratio = if ratio.is_finite() {
            ratio
        } else {
            f64::INFINITY
        };
        if ratio > worst {
            worst = ratio;
            what = format!("{name}: backward {analytic}, finite difference {numeric}");
        }
    };
    let h = s.h;
    if let Inputs::Ids(_) = s.inputs {
        prop_assert!(
            dx[..n_in].iter().all(|&v| v == 0.0),
            "token ids must get a zero gradient: {:?}",
            &dx[..n_in]
        );
    }
    let differentiable = if let Inputs::Ids(_) = s.inputs {
        0
    } else {
        n_in
    };
    for i in 0..differentiable {
        let v = x[i];
        x[i] = (v as f64 + h) as f32;
        let plus = loss(layer, &ctx, &x, &mut y, &r)?;
        x[i] = (v as f64 - h) as f32;
        let minus = loss(layer, &ctx, &x, &mut y, &r)?;
        x[i] = v;
        see(
            format!("dx[{i}] (x = {v})"),
            dx[i],
            (plus - minus) / (2.0 * h),
        );
    }
    for (k, (name, grad)) in grads.iter().enumerate() {
        for (j, &g) in grad.iter().enumerate() {
            let v = layer.params()[k].value[j];
            layer.params_mut()[k].value[j] = (v as f64 + h) as f32;
            let plus = loss(layer, &ctx, &x, &mut y, &r)?;
            layer.params_mut()[k].value[j] = (v as f64 - h) as f32;
            let minus = loss(layer, &ctx, &x, &mut y, &r)?;
            layer.params_mut()[k].value[j] = v;
            see(format!("{name}.grad[{j}]"), g, (plus - minus) / (2.0 * h));
        }
    }
    prop_assert!(
        worst <= 1.0,
        "{} on input {:?} x batch {}: worst mismatch {:.2}x the tolerance at {}",
        layer.describe(),
        s.input,
        s.batch,
        worst,
        what
    );
    Ok(())
}
