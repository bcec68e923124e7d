//! Every layer's backward against central finite differences of its forward,
//! on random shapes, batches and inputs, for the input gradient and for every
//! parameter's gradient.
//!
//! The scalar is `L = sum(y * r)` for a random `r`, so `dL/dy = r` is what
//! backward receives. Forward runs in `f32`; the loss is summed in `f64`, and
//! the step `h` is large enough that `f32` rounding stays well under the
//! tolerance `TOL * (1 + |numeric|)`. Inputs stay at least 0.05 away from 0
//! so no difference straddles ReLU's kink.

use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::Act;
use lasagna_trainer::init::Init;
use lasagna_trainer::layers::{
    Activation, BatchNorm1d, Ctx, Dropout, Embedding, Flatten, Layer, LayerNorm, Linear, Mode,
    Softmax,
};
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;

mod common;
use common::{check_gradients, fail, Inputs, Spec, NORM_EPS};

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
        s.inputs = Inputs::Ids(num);
        check_gradients(&mut e, &s)?;
    }

    #[test]
    fn parameter_gradients_accumulate_across_backward_calls_unless_the_layer_overwrites_them(which in 0usize..4, batch in 2usize..=4, seed: u64) {
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
        // A layer that overwrites (Linear with beta = 0, BatchNorm writing its
        // sums) gives the same gradient twice, bit for bit.
        let calls = if layer.overwrites_grads() { 1.0 } else { 2.0 };
        prop_assert_eq!(layer.overwrites_grads(), which <= 1);
        for (p, g1) in layer.params().iter().zip(&once) {
            for (j, (&g2, &g1)) in p.grad.iter().zip(g1).enumerate() {
                prop_assert!((g2 - calls * g1).abs() <= 1e-5 * (1.0 + g1.abs()), "{}.grad[{j}]: {g2} after two calls, {g1} after one", p.name);
            }
        }
    }
}
