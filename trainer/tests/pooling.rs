//! MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d and Dropout2d:
//! backward against central finite differences of forward, forward against
//! naive references written from PyTorch's definitions, and output shapes
//! against sizes PyTorch reports.
//!
//! The finite-difference harness is the one of `layers_finite_differences.rs`
//! (`L = sum(y * r)`, so backward receives `dy = r`), with one addition: max
//! pooling is only differentiable away from ties, so its inputs are distinct
//! values spaced `4h` apart and no step can change a window's winner.

use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::Pool2dDims;
use lasagna_trainer::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Dropout2d, Layer, MaxPool2d, Mode,
};
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;

mod common;
use common::{check_gradients, ctx, fail, Inputs, Spec, NORM_EPS};

/// One axis of a pooling window that fits: `(kernel, stride, padding, len)`
/// with `padding <= kernel / 2` and `len + 2 * padding >= kernel`.
fn axis() -> impl Strategy<Value = (usize, usize, usize, usize)> {
    (1usize..=4, 1usize..=3)
        .prop_flat_map(|(k, s)| (Just(k), Just(s), 0..=k / 2, 0usize..6))
        .prop_map(|(k, s, p, extra)| (k, s, p, (k - 2 * p).max(1) + extra))
}

/// Runs a layer's forward on `batch` samples of `input` through the Layer API.
fn run_forward(
    layer: &mut dyn Layer<Cpu>,
    input: &[usize],
    batch: usize,
    x: &Vec<f32>,
    seed: u64,
) -> Result<Vec<f32>, TestCaseError> {
    let out: usize = layer.output_shape(input).map_err(fail)?.iter().product();
    layer
        .setup(&Cpu, input, batch, &mut Stream::new(0, 0))
        .map_err(fail)?;
    let mut y = vec![f32::NAN; batch * out];
    layer
        .forward(&Cpu, &ctx(Mode::Train, batch, seed), x, &mut y)
        .map_err(fail)?;
    Ok(y)
}

/// Naive max and average pooling of one plane, straight from the padded
/// picture: every window holds `kh * kw` padded positions, `None` outside the
/// input. Returns `(max, index of the first max, sum, real count)` per output.
fn naive_windows(d: &Pool2dDims, plane: &[f32]) -> Vec<(f32, Option<usize>, f64, usize)> {
    let mut out = Vec::new();
    for oy in 0..d.oh {
        for ox in 0..d.ow {
            let (mut best, mut at, mut sum, mut count) = (f32::NEG_INFINITY, None, 0.0, 0);
            for ky in 0..d.kh {
                for kx in 0..d.kw {
                    let iy = (oy * d.sh + ky) as isize - d.ph as isize;
                    let ix = (ox * d.sw + kx) as isize - d.pw as isize;
                    let inside = (0..d.h as isize).contains(&iy) && (0..d.w as isize).contains(&ix);
                    if !inside {
                        continue;
                    }
                    let i = iy as usize * d.w + ix as usize;
                    if plane[i] > best {
                        (best, at) = (plane[i], Some(i));
                    }
                    sum += plane[i] as f64;
                    count += 1;
                }
            }
            out.push((best, at, sum, count));
        }
    }
    out
}

proptest! {
    #[test]
    fn maxpool2d_input_gradient_matches_finite_differences_away_from_ties(
        (kh, sh, ph, h) in axis(), (kw, sw, pw, w) in axis(),
        c in 1usize..4, batch in 1usize..=3, seed: u64,
    ) {
        let mut m = MaxPool2d::<Cpu>::new((kh, kw), (sh, sw), (ph, pw)).map_err(fail)?;
        let mut s = Spec::new(vec![c, h, w], batch, seed);
        s.inputs = Inputs::Distinct;
        check_gradients(&mut m, &s)?;
    }

    #[test]
    fn avgpool2d_input_gradient_matches_finite_differences(
        (kh, sh, ph, h) in axis(), (kw, sw, pw, w) in axis(), include_pad: bool,
        c in 1usize..4, batch in 1usize..=3, seed: u64,
    ) {
        let mut a = AvgPool2d::new((kh, kw), (sh, sw), (ph, pw), include_pad).map_err(fail)?;
        check_gradients(&mut a, &Spec::new(vec![c, h, w], batch, seed))?;
    }

    #[test]
    fn adaptive_avgpool2d_input_gradient_matches_finite_differences(
        h in 1usize..9, w in 1usize..9, oh in 1usize..6, ow in 1usize..6,
        c in 1usize..4, batch in 1usize..=3, seed: u64,
    ) {
        let mut a = AdaptiveAvgPool2d::new(oh, ow).map_err(fail)?;
        check_gradients(&mut a, &Spec::new(vec![c, h, w], batch, seed))?;
    }

    #[test]
    fn batchnorm2d_train_gradients_match_finite_differences(
        c in 1usize..4, h in 1usize..4, w in 1usize..4, batch in 2usize..=4, seed: u64,
    ) {
        let mut bn = BatchNorm2d::<Cpu>::new(c, NORM_EPS, 0.1).map_err(fail)?;
        let mut s = Spec::new(vec![c, h, w], batch, seed);
        // As for BatchNorm1d: a smaller step when the spread may be small.
        s.h = 1e-3;
        check_gradients(&mut bn, &s)?;
    }

    #[test]
    fn dropout2d_input_gradient_matches_finite_differences_in_train_and_eval(
        p in prop_oneof![Just(0.0f32), Just(0.3), Just(0.5), Just(0.9)], train: bool,
        c in 1usize..5, h in 1usize..4, w in 1usize..4, batch in 1usize..=3, seed: u64,
    ) {
        let mut d = Dropout2d::new(p).map_err(fail)?;
        let mut s = Spec::new(vec![c, h, w], batch, seed);
        s.mode = if train { Mode::Train } else { Mode::Eval };
        check_gradients(&mut d, &s)?;
    }

    #[test]
    fn maxpool2d_forward_matches_a_naive_reference_including_first_max_on_ties(
        (kh, sh, ph, h) in axis(), (kw, sw, pw, w) in axis(),
        c in 1usize..4, batch in 1usize..=3, seed: u64,
    ) {
        // Values from {-2, ..., 2}: windows are full of ties.
        let mut rng = Stream::new(seed, 0);
        let x: Vec<f32> = (0..batch * c * h * w).map(|_| rng.below(5) as f32 - 2.0).collect();
        let mut m = MaxPool2d::<Cpu>::new((kh, kw), (sh, sw), (ph, pw)).map_err(fail)?;
        let y = run_forward(&mut m, &[c, h, w], batch, &x, seed)?;
        let d = Pool2dDims::new(batch, c, (h, w), (kh, kw), (sh, sw), (ph, pw)).map_err(fail)?;
        // The winners, seen through backward: dy = 1 + output index.
        let dy: Vec<f32> = (0..y.len()).map(|i| 1.0 + i as f32).collect();
        let mut dx = vec![f32::NAN; x.len()];
        m.backward(&Cpu, &ctx(Mode::Train, batch, seed), &x, &y, &dy, Some(&mut dx)).map_err(fail)?;
        let mut want_dx = vec![0.0f32; x.len()];
        let plane_out = d.oh * d.ow;
        for (p, plane) in x.chunks(h * w).enumerate() {
            for (o, (best, at, _, _)) in naive_windows(&d, plane).into_iter().enumerate() {
                let k = p * plane_out + o;
                prop_assert_eq!(y[k], best, "output {}", k);
                let at = at.ok_or_else(|| fail("a window with no real element"))?;
                want_dx[p * h * w + at] += dy[k];
            }
        }
        prop_assert_eq!(dx, want_dx);
    }

    #[test]
    fn avgpool2d_forward_matches_a_naive_reference_with_and_without_padding_in_the_divisor(
        (kh, sh, ph, h) in axis(), (kw, sw, pw, w) in axis(), include_pad: bool,
        c in 1usize..4, batch in 1usize..=3, seed: u64,
    ) {
        let mut rng = Stream::new(seed, 0);
        let x: Vec<f32> = (0..batch * c * h * w).map(|_| rng.uniform_range(-3.0, 3.0)).collect();
        let mut a = AvgPool2d::new((kh, kw), (sh, sw), (ph, pw), include_pad).map_err(fail)?;
        let y = run_forward(&mut a, &[c, h, w], batch, &x, seed)?;
        let d = Pool2dDims::new(batch, c, (h, w), (kh, kw), (sh, sw), (ph, pw)).map_err(fail)?;
        let plane_out = d.oh * d.ow;
        for (p, plane) in x.chunks(h * w).enumerate() {
            for (o, (_, _, sum, count)) in naive_windows(&d, plane).into_iter().enumerate() {
                // ceil_mode=False: every window lies inside the padded input.
                let divisor = if include_pad { kh * kw } else { count };
                let want = sum / divisor as f64;
                let got = y[p * plane_out + o] as f64;
                prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "output {}: {} vs {}", o, got, want);
            }
        }
    }

    #[test]
    fn adaptive_avgpool2d_forward_averages_pytorchs_floor_ceil_bins(
        h in 1usize..12, w in 1usize..12, oh in 1usize..8, ow in 1usize..8,
        c in 1usize..3, batch in 1usize..=2, seed: u64,
    ) {
        let mut rng = Stream::new(seed, 0);
        let x: Vec<f32> = (0..batch * c * h * w).map(|_| rng.uniform_range(-3.0, 3.0)).collect();
        let mut a = AdaptiveAvgPool2d::new(oh, ow).map_err(fail)?;
        let y = run_forward(&mut a, &[c, h, w], batch, &x, seed)?;
        // PyTorch's start_index / end_index, in floating point.
        let bin = |i: usize, len: usize, out: usize| {
            let start = (i as f64 * len as f64 / out as f64).floor() as usize;
            let end = ((i + 1) as f64 * len as f64 / out as f64).ceil() as usize;
            start..end
        };
        for (p, plane) in x.chunks(h * w).enumerate() {
            for i in 0..oh {
                for j in 0..ow {
                    let (rows, cols) = (bin(i, h, oh), bin(j, w, ow));
                    let count = rows.len() * cols.len();
                    let sum: f64 = rows
                        .flat_map(|iy| cols.clone().map(move |ix| iy * w + ix))
                        .map(|k| plane[k] as f64)
                        .sum();
                    let want = sum / count as f64;
                    let got = y[(p * oh + i) * ow + j] as f64;
                    prop_assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "({}, {}): {} vs {}", i, j, got, want);
                }
            }
        }
    }

    #[test]
    fn batchnorm2d_running_statistics_take_the_unbiased_variance_over_n_h_w(
        c in 1usize..4, h in 1usize..5, w in 1usize..5, batch in 2usize..=4, seed: u64,
    ) {
        let mut rng = Stream::new(seed, 0);
        let x: Vec<f32> = (0..batch * c * h * w).map(|_| rng.uniform_range(-3.0, 3.0)).collect();
        let mut bn = BatchNorm2d::<Cpu>::new(c, 1e-5, 0.1).map_err(fail)?;
        run_forward(&mut bn, &[c, h, w], batch, &x, seed)?;
        let stats: Vec<Vec<f32>> = bn.buffers().iter().map(|(_, b)| b.to_vec()).collect();
        let s = h * w;
        for ch in 0..c {
            let values: Vec<f64> = (0..batch)
                .flat_map(|n| x[(n * c + ch) * s..(n * c + ch + 1) * s].iter().map(|&v| v as f64))
                .collect();
            let count = values.len() as f64;
            let mean = values.iter().sum::<f64>() / count;
            let unbiased = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (count - 1.0);
            // PyTorch's update from mean 0, variance 1 with momentum 0.1.
            let (want_mean, want_var) = (0.1 * mean, 0.9 + 0.1 * unbiased);
            prop_assert!((stats[0][ch] as f64 - want_mean).abs() < 1e-5, "mean {}: {} vs {}", ch, stats[0][ch], want_mean);
            prop_assert!((stats[1][ch] as f64 - want_var).abs() < 1e-5, "var {}: {} vs {}", ch, stats[1][ch], want_var);
        }
    }

    #[test]
    fn dropout2d_zeroes_whole_channels_keeps_a_binomial_fraction_and_backward_reuses_the_mask(
        p in prop_oneof![Just(0.1f32), Just(0.5), Just(0.8)], seed: u64,
    ) {
        // 4 samples of [100, 3, 2]: 400 channel draws.
        let (batch, c, plane) = (4usize, 100usize, 6usize);
        let mut rng = Stream::new(seed, 0);
        let x: Vec<f32> = (0..batch * c * plane).map(|_| rng.uniform_range(0.5, 2.0)).collect();
        let mut d = Dropout2d::new(p).map_err(fail)?;
        let y = run_forward(&mut d, &[c, 3, 2], batch, &x, seed)?;
        let ctx = ctx(Mode::Train, batch, seed);
        let dy: Vec<f32> = (0..x.len()).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
        let mut dx = vec![f32::NAN; x.len()];
        d.backward(&Cpu, &ctx, &x, &y, &dy, Some(&mut dx)).map_err(fail)?;
        let scale = 1.0 / (1.0 - p);
        let mut kept = 0usize;
        for g in 0..batch * c {
            let at = g * plane..(g + 1) * plane;
            let keep = y[at.start] != 0.0;
            kept += keep as usize;
            let k = if keep { scale } else { 0.0 };
            for i in at {
                prop_assert_eq!(y[i], x[i] * k, "element {} of channel {}", i, g);
                prop_assert_eq!(dx[i], dy[i] * k, "gradient {} of channel {}", i, g);
            }
        }
        // Binomial(400, 1 - p): within 5 standard deviations of its mean.
        let (n, q) = ((batch * c) as f64, 1.0 - p as f64);
        let bound = 5.0 * (n * q * (1.0 - q)).sqrt();
        prop_assert!((kept as f64 - n * q).abs() <= bound, "kept {} of {} at p = {}", kept, n, p);
    }
}

#[test]
fn output_shapes_match_what_pytorch_reports() {
    let shape = |l: &dyn Layer<Cpu>, input: &[usize]| l.output_shape(input);
    let max2 = MaxPool2d::<Cpu>::new((2, 2), (2, 2), (0, 0)).unwrap();
    // nn.MaxPool2d(2) on 28x28 and on 7x7.
    assert_eq!(shape(&max2, &[1, 28, 28]), Ok(vec![1, 14, 14]));
    assert_eq!(shape(&max2, &[16, 7, 7]), Ok(vec![16, 3, 3]));
    // nn.AvgPool2d(3, stride=2, padding=1) on 28x28.
    let avg = AvgPool2d::new((3, 3), (2, 2), (1, 1), true).unwrap();
    assert_eq!(shape(&avg, &[4, 28, 28]), Ok(vec![4, 14, 14]));
    // nn.MaxPool2d(3, stride=2, padding=1) on ResNet's 112x112 stem.
    let stem = MaxPool2d::<Cpu>::new((3, 3), (2, 2), (1, 1)).unwrap();
    assert_eq!(shape(&stem, &[64, 112, 112]), Ok(vec![64, 56, 56]));
    // nn.AdaptiveAvgPool2d((3, 1)) on 7x5.
    let adaptive = AdaptiveAvgPool2d::new(3, 1).unwrap();
    assert_eq!(shape(&adaptive, &[2, 7, 5]), Ok(vec![2, 3, 1]));
    // PyTorch: "Output size is too small" for a 2x2 window on a 1-pixel input.
    let err = shape(&max2, &[1, 1, 28]).unwrap_err();
    assert!(err.contains("height"), "{err}");
}

#[test]
fn adaptive_avgpool2d_of_seven_into_three_uses_the_bins_0_3_then_2_5_then_4_7() {
    // Rows are one-hot: output i is 1/3 exactly where row r lies in bin i.
    for r in 0..7 {
        let mut x = vec![0.0f32; 7];
        x[r] = 3.0;
        let mut a = AdaptiveAvgPool2d::new(3, 1).unwrap();
        let y = run_forward(&mut a, &[1, 7, 1], 1, &x, 0).unwrap();
        let bins = [0..3, 2..5, 4..7];
        let want: Vec<f32> = bins
            .iter()
            .map(|b| if b.contains(&r) { 1.0 } else { 0.0 })
            .collect();
        assert_eq!(y, want, "row {r}");
    }
}

/// Conv2d -> BatchNorm2d -> ReLU [-> Dropout] -> MaxPool2d -> Linear, where the
/// model folds the ReLU's forward into the BatchNorm (`fuse_relu`) and its
/// backward (with the Dropout's) into the pool (`absorb_backward`), against
/// the same net with LeakyReLU(0), which is neither fused nor absorbed:
/// logits and every gradient agree over two steps (as numbers: LeakyReLU(0)
/// writes -0.0 where ReLU writes 0), and so do the eval-mode logits, where
/// the BatchNorm applies the ReLU with the running statistics.
#[test]
fn a_relu_fused_into_batchnorm_and_absorbed_by_maxpool_trains_like_separate_layers() {
    use lasagna_trainer::backend::Act;
    use lasagna_trainer::init::Init;
    use lasagna_trainer::layers::{Activation, Conv2d, Dropout, Flatten, Layers, Linear};
    use lasagna_trainer::model::Model;

    type Run = (Vec<Vec<f32>>, Vec<Vec<Vec<f32>>>, Vec<f32>);
    let run = |act: Act, dropout: bool| -> Run {
        let mut layers: Layers<Cpu> = vec![
            Box::new(
                Conv2d::new(1, 3, (3, 3), (1, 1), (1, 1), (1, 1), 1, true, Init::Default)
                    .expect("conv"),
            ),
            Box::new(BatchNorm2d::<Cpu>::new(3, 1e-5, 0.1).expect("bn")),
            Box::new(Activation::new(act)),
        ];
        if dropout {
            layers.push(Box::new(Dropout::new(0.3).expect("dropout")));
        }
        layers.push(Box::new(
            MaxPool2d::<Cpu>::new((2, 2), (2, 2), (0, 0)).expect("pool"),
        ));
        layers.push(Box::new(Flatten::new()));
        layers.push(Box::new(Linear::<Cpu>::new(27, 4, true, Init::Default)));
        let mut m = Model::build(&Cpu, layers, &[1, 6, 6], 3, 11).expect("model");
        let (mut logits, mut grads) = (Vec::new(), Vec::new());
        for step in 0..2u64 {
            let x: Vec<f32> = (0..108)
                .map(|i| ((i as f32 + step as f32 * 0.5) * 0.83).sin() * 2.0 - 0.3)
                .collect();
            m.input_mut()[..108].copy_from_slice(&x);
            m.train();
            logits.push(m.forward(&Cpu, 3, 5, step).expect("forward")[..12].to_vec());
            m.zero_grad(&Cpu).expect("zero_grad");
            let dy: Vec<f32> = (0..12).map(|i| (i as f32 * 0.41).cos()).collect();
            m.backward(&Cpu, 3, 5, step, &dy).expect("backward");
            grads.push(m.params_mut().iter().map(|p| p.grad.clone()).collect());
        }
        m.eval();
        let eval = m.forward(&Cpu, 3, 5, 2).expect("eval")[..12].to_vec();
        (logits, grads, eval)
    };
    for dropout in [false, true] {
        let (l, g, e) = run(Act::Relu, dropout);
        let (wl, wg, we) = run(Act::LeakyRelu(0.0), dropout);
        assert_eq!(l, wl, "train logits, dropout {dropout}");
        assert_eq!(g, wg, "gradients, dropout {dropout}");
        assert_eq!(e, we, "eval logits, dropout {dropout}");
        // Not vacuous: the ReLU cut something and the BatchNorm learned.
        assert!(g[1][2].iter().any(|&v| v != 0.0) && e.iter().any(|&v| v != 0.0));
    }
}
