//! Every layer's backward against central finite differences of its forward,
//! on random shapes, batches and inputs, for the input gradient and for every
//! parameter's gradient.
//!
//! The scalar is `L = sum(y * r)` for a random `r`, so `dL/dy = r` is what
//! backward receives. Forward runs in `f32`; the loss is summed in `f64`, and
//! the step `h` is large enough that `f32` rounding stays well under the
//! tolerance `TOL * (1 + |numeric|)`. Inputs stay at least 0.05 away from 0
//! so no difference straddles ReLU's kink.

use lasagna_trainer::backend::Act;
use lasagna_trainer::cpu::Cpu;
use lasagna_trainer::init::Init;
use lasagna_trainer::layers::{
    Activation, BatchNorm1d, Ctx, Dropout, Embedding, Flatten, Layer, LayerNorm, Linear, Mode,
    Softmax,
};
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;

/// Relative tolerance of the comparison: about 8x the worst mismatch seen
/// over 3000 cases of every test (4e-4, on the norms), so a gradient that is
/// off by a fraction of a percent still fails.
const TOL: f64 = 3e-3;

/// What to run a layer on.
struct Spec {
    /// Per-sample input shape.
    input: Vec<usize>,
    batch: usize,
    mode: Mode,
    /// Seed of the inputs, `r`, the parameters and the dropout mask.
    seed: u64,
    /// Finite-difference step.
    h: f64,
    /// `Some(num)`: inputs are token ids below `num`, which have no gradient.
    ids: Option<usize>,
}

impl Spec {
    fn new(input: Vec<usize>, batch: usize, seed: u64) -> Spec {
        Spec {
            input,
            batch,
            mode: Mode::Train,
            seed,
            h: 1e-2,
            ids: None,
        }
    }
}

/// The largest mismatch seen, relative to its tolerance.
#[derive(Default)]
struct Worst {
    ratio: f64,
    what: String,
}

impl Worst {
    fn see(&mut self, what: impl FnOnce() -> String, analytic: f32, numeric: f64) {
        let ratio = (analytic as f64 - numeric).abs() / (TOL * (1.0 + numeric.abs()));
        if ratio > self.ratio || !ratio.is_finite() {
            self.ratio = if ratio.is_finite() {
                ratio
            } else {
                f64::INFINITY
            };
            self.what = format!(
                "{}: backward {analytic}, finite difference {numeric}",
                what()
            );
        }
    }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
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
fn check_gradients(layer: &mut dyn Layer<Cpu>, s: &Spec) -> Result<(), TestCaseError> {
    let out_shape = layer.output_shape(&s.input).map_err(fail)?;
    // One spare sample: layers must act on the first `batch` samples only.
    let max_batch = s.batch + 1;
    let mut rng = Stream::new(s.seed, 0);
    layer
        .setup(&Cpu, &s.input, max_batch, &mut rng)
        .map_err(fail)?;
    // Random parameters, not the (often symmetric) initial ones.
    for p in layer.params_mut() {
        p.value
            .iter_mut()
            .for_each(|v| *v = rng.uniform_range(-1.5, 1.5));
    }
    let (in_numel, out_numel) = (
        s.input.iter().product::<usize>(),
        out_shape.iter().product::<usize>(),
    );
    let (n_in, n_out) = (s.batch * in_numel, s.batch * out_numel);
    let mut x = vec![0.0f32; max_batch * in_numel];
    for v in &mut x[..n_in] {
        *v = match s.ids {
            Some(num) => rng.below(num as u32) as f32,
            None => {
                let m = rng.uniform_range(0.05, 2.0);
                if rng.uniform() < 0.5 {
                    -m
                } else {
                    m
                }
            }
        };
    }
    let mut r = vec![0.0f32; max_batch * out_numel];
    r[..n_out]
        .iter_mut()
        .for_each(|v| *v = rng.uniform_range(-1.0, 1.0));
    let ctx = Ctx {
        mode: s.mode,
        batch: s.batch,
        seed: s.seed,
        offset: 11,
        index: 2,
    };
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

    let mut worst = Worst::default();
    let h = s.h;
    if s.ids.is_some() {
        prop_assert!(
            dx[..n_in].iter().all(|&v| v == 0.0),
            "token ids must get a zero gradient: {:?}",
            &dx[..n_in]
        );
    } else {
        for i in 0..n_in {
            let v = x[i];
            x[i] = (v as f64 + h) as f32;
            let plus = loss(layer, &ctx, &x, &mut y, &r)?;
            x[i] = (v as f64 - h) as f32;
            let minus = loss(layer, &ctx, &x, &mut y, &r)?;
            x[i] = v;
            worst.see(
                || format!("dx[{i}] (x = {v})"),
                dx[i],
                (plus - minus) / (2.0 * h),
            );
        }
    }
    for (k, (name, grad)) in grads.iter().enumerate() {
        for (j, &g) in grad.iter().enumerate() {
            let v = layer.params()[k].value[j];
            layer.params_mut()[k].value[j] = (v as f64 + h) as f32;
            let plus = loss(layer, &ctx, &x, &mut y, &r)?;
            layer.params_mut()[k].value[j] = (v as f64 - h) as f32;
            let minus = loss(layer, &ctx, &x, &mut y, &r)?;
            layer.params_mut()[k].value[j] = v;
            worst.see(
                || format!("{name}.grad[{j}]"),
                g,
                (plus - minus) / (2.0 * h),
            );
        }
    }
    prop_assert!(
        worst.ratio <= 1.0,
        "{} on input {:?} x batch {}: worst mismatch {:.2}x the tolerance at {}",
        layer.describe(),
        s.input,
        s.batch,
        worst.ratio,
        worst.what
    );
    Ok(())
}

/// A per-sample shape of rank 1 to 3 with small dimensions.
fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 1..=3)
}

fn any_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        Just(Act::Relu),
        Just(Act::LeakyRelu(0.1)),
        Just(Act::Gelu),
        Just(Act::GeluTanh),
        Just(Act::Silu),
        Just(Act::Sigmoid),
        Just(Act::Tanh),
    ]
}

/// The norms' `eps` here. PyTorch's 1e-5 makes a normalization of two
/// nearly equal values a near step function that no finite difference can
/// follow; a larger `eps` keeps the function smooth and exercises the same
/// gradient formula.
const NORM_EPS: f32 = 0.1;

proptest! {
    #[test]
    fn linear_gradients_match_finite_differences(
        in_f in 1usize..7, out_f in 1usize..6, rows in 1usize..3, bias: bool,
        batch in 1usize..=5, seed: u64,
    ) {
        let mut l = Linear::<Cpu>::new(in_f, out_f, bias, Init::Default);
        let input = if rows == 1 { vec![in_f] } else { vec![rows, in_f] };
        check_gradients(&mut l, &Spec::new(input, batch, seed))?;
    }

    #[test]
    fn activation_input_gradient_matches_finite_differences(
        act in any_act(), input in small_shape(), batch in 1usize..=5, seed: u64,
    ) {
        check_gradients(&mut Activation::new(act), &Spec::new(input, batch, seed))?;
    }

    #[test]
    fn softmax_input_gradient_matches_finite_differences(input in small_shape(), batch in 1usize..=5, seed: u64) {
        check_gradients(&mut Softmax::new(), &Spec::new(input, batch, seed))?;
    }

    #[test]
    fn flatten_input_gradient_matches_finite_differences(input in small_shape(), batch in 1usize..=5, seed: u64) {
        check_gradients(&mut Flatten::new(), &Spec::new(input, batch, seed))?;
    }

    #[test]
    fn dropout_input_gradient_matches_finite_differences_in_train_and_eval(
        p in prop_oneof![Just(0.0f32), Just(0.3), Just(0.5), Just(0.9)],
        train: bool, input in small_shape(), batch in 1usize..=5, seed: u64,
    ) {
        let mut d = Dropout::new(p).map_err(fail)?;
        let mut s = Spec::new(input, batch, seed);
        s.mode = if train { Mode::Train } else { Mode::Eval };
        check_gradients(&mut d, &s)?;
    }

    #[test]
    fn batchnorm1d_train_gradients_match_finite_differences(
        c in 1usize..5, l in 0usize..4, batch in 2usize..=5, seed: u64,
    ) {
        let mut bn = BatchNorm1d::<Cpu>::new(c, NORM_EPS, 0.1).map_err(fail)?;
        let input = if l == 0 { vec![c] } else { vec![c, l] };
        let mut s = Spec::new(input, batch, seed);
        // Normalization divides by the spread of a few values; a smaller step
        // keeps the truncation error down when that spread is small.
        s.h = 1e-3;
        check_gradients(&mut bn, &s)?;
    }

    #[test]
    fn layernorm_gradients_match_finite_differences(
        size in 1usize..8, rows in 1usize..3, batch in 1usize..=5, seed: u64,
    ) {
        let mut ln = LayerNorm::<Cpu>::new(size, NORM_EPS).map_err(fail)?;
        let input = if rows == 1 { vec![size] } else { vec![rows, size] };
        let mut s = Spec::new(input, batch, seed);
        s.h = 1e-3;
        check_gradients(&mut ln, &s)?;
    }

    #[test]
    fn embedding_table_gradient_matches_finite_differences_and_ids_get_none(
        num in 1usize..7, dim in 1usize..5, tokens in 1usize..5, batch in 1usize..=5, seed: u64,
    ) {
        let mut e = Embedding::<Cpu>::new(num, dim);
        let mut s = Spec::new(vec![tokens], batch, seed);
        s.ids = Some(num);
        check_gradients(&mut e, &s)?;
    }

    #[test]
    fn parameter_gradients_accumulate_across_backward_calls(which in 0usize..4, batch in 2usize..=4, seed: u64) {
        let (mut layer, input, ids): (Box<dyn Layer<Cpu>>, Vec<usize>, bool) = match which {
            0 => (Box::new(Linear::<Cpu>::new(4, 3, true, Init::Default)), vec![4], false),
            1 => (Box::new(BatchNorm1d::<Cpu>::new(3, 1e-5, 0.1).map_err(fail)?), vec![3, 2], false),
            2 => (Box::new(LayerNorm::<Cpu>::new(5, 1e-5).map_err(fail)?), vec![2, 5], false),
            _ => (Box::new(Embedding::<Cpu>::new(6, 3)), vec![4], true),
        };
        let mut rng = Stream::new(seed, 0);
        layer.setup(&Cpu, &input, batch, &mut rng).map_err(fail)?;
        let out: usize = layer.output_shape(&input).map_err(fail)?.iter().product();
        let numel: usize = input.iter().product();
        let x: Vec<f32> = (0..batch * numel)
            .map(|_| if ids { rng.below(6) as f32 } else { rng.uniform_range(-2.0, 2.0) })
            .collect();
        let dy: Vec<f32> = (0..batch * out).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
        let ctx = Ctx { mode: Mode::Train, batch, seed, offset: 0, index: 0 };
        let mut y = vec![0.0; batch * out];
        layer.forward(&Cpu, &ctx, &x, &mut y).map_err(fail)?;
        layer.backward(&Cpu, &ctx, &x, &y, &dy, None).map_err(fail)?;
        let once: Vec<Vec<f32>> = layer.params().iter().map(|p| p.grad.clone()).collect();
        layer.backward(&Cpu, &ctx, &x, &y, &dy, None).map_err(fail)?;
        for (p, g1) in layer.params().iter().zip(&once) {
            for (j, (&g2, &g1)) in p.grad.iter().zip(g1).enumerate() {
                prop_assert!((g2 - 2.0 * g1).abs() <= 1e-5 * (1.0 + g1.abs()), "{}.grad[{j}]: {g2} after two calls, {g1} after one", p.name);
            }
        }
    }
}
