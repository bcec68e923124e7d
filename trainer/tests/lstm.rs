//! `Lstm` against a plain step-by-step reference in `f64`, against central
//! finite differences of its own forward, and against a case worked by hand;
//! plus its shape errors. Run the timing of the MNIST row-LSTM with
//! `cargo test --release -p lasagna-trainer --test lstm -- --ignored --nocapture`.

use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::layers::{Ctx, Layer, Lstm, Mode};
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;

fn ctx(batch: usize, mode: Mode) -> Ctx {
    Ctx {
        mode,
        batch,
        seed: 0,
        offset: 0,
        index: 0,
    }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// A random LSTM with parameters from `U(-1, 1)` (wider than the init, so
/// the gates leave their linear region) and `max_batch` one more than used:
/// the layer must act on the first `batch` samples only.
struct Case {
    layer: Lstm<Cpu>,
    x: Vec<f32>,
    steps: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    seq: bool,
    batch: usize,
}

fn case(
    steps: usize,
    input: usize,
    hidden: usize,
    layers: usize,
    seq: bool,
    batch: usize,
    seed: u64,
) -> Case {
    let mut layer = Lstm::<Cpu>::new(input, hidden, layers, seq).unwrap();
    let mut rng = Stream::new(seed, 0);
    layer
        .setup(&Cpu, &[steps, input], batch + 1, &mut rng)
        .unwrap();
    for p in layer.params_mut() {
        p.value
            .iter_mut()
            .for_each(|v| *v = rng.uniform_range(-1.0, 1.0));
    }
    let mut x = vec![0.0f32; (batch + 1) * steps * input];
    x[..batch * steps * input]
        .iter_mut()
        .for_each(|v| *v = rng.uniform_range(-2.0, 2.0));
    Case {
        layer,
        x,
        steps,
        input,
        hidden,
        layers,
        seq,
        batch,
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// PyTorch's LSTM equations, one sample, step and unit at a time, in `f64`.
fn reference(c: &Case) -> Vec<f64> {
    let (t_n, h_n) = (c.steps, c.hidden);
    let p: Vec<Vec<f64>> = c
        .layer
        .params()
        .iter()
        .map(|p| p.value.iter().map(|&v| v as f64).collect())
        .collect();
    let mut out = Vec::new();
    for s in 0..c.batch {
        // The sequence entering the current layer, [T][features].
        let mut seq: Vec<Vec<f64>> = (0..t_n)
            .map(|t| {
                let at = (s * t_n + t) * c.input;
                c.x[at..at + c.input].iter().map(|&v| v as f64).collect()
            })
            .collect();
        for l in 0..c.layers {
            let (w_ih, w_hh, b_ih, b_hh) = (&p[4 * l], &p[4 * l + 1], &p[4 * l + 2], &p[4 * l + 3]);
            let feat = seq[0].len();
            let (mut h, mut cell) = (vec![0.0; h_n], vec![0.0; h_n]);
            let mut next = Vec::new();
            for x_t in &seq {
                let mut a = vec![0.0; 4 * h_n];
                for (r, a) in a.iter_mut().enumerate() {
                    *a = b_ih[r] + b_hh[r];
                    for k in 0..feat {
                        *a += w_ih[r * feat + k] * x_t[k];
                    }
                    for k in 0..h_n {
                        *a += w_hh[r * h_n + k] * h[k];
                    }
                }
                for j in 0..h_n {
                    let i = sigmoid(a[j]);
                    let f = sigmoid(a[h_n + j]);
                    let g = a[2 * h_n + j].tanh();
                    let o = sigmoid(a[3 * h_n + j]);
                    cell[j] = f * cell[j] + i * g;
                    h[j] = o * cell[j].tanh();
                }
                next.push(h.clone());
            }
            seq = next;
        }
        if c.seq {
            seq.iter().for_each(|h| out.extend(h));
        } else {
            out.extend(&seq[t_n - 1]);
        }
    }
    out
}

fn out_len(c: &Case) -> usize {
    let per = if c.seq { c.steps * c.hidden } else { c.hidden };
    (c.batch + 1) * per
}

/// `sum(y * r)` in `f64` after a forward of `c.x`.
fn loss(c: &mut Case, y: &mut Vec<f32>, r: &[f32]) -> Result<f64, TestCaseError> {
    c.layer
        .forward(&Cpu, &ctx(c.batch, Mode::Train), &c.x, y)
        .map_err(fail)?;
    Ok(y.iter().zip(r).map(|(&y, &r)| y as f64 * r as f64).sum())
}

/// Worst `|analytic - numeric| / (TOL (1 + |numeric|))` over every input and
/// parameter, with a description of where.
fn worst_gradient_mismatch(c: &mut Case, seed: u64) -> Result<(f64, String), TestCaseError> {
    // The layers harness's tolerance; over 3000 random cases the worst
    // mismatch here was 0.27x of it, and a 1% error in dc_{t-1} fails.
    // The step was 1e-2 until seed 11646518335920562132 (2 layers, 5 steps,
    // batch 3): central differences' h^2 truncation put layer 1's
    // bias_ih.grad[9] 3.5% off (1.06x TOL) while backward was right; at
    // 3e-3 (and 1e-3) it passes, and 10,000 random cases do too. The
    // f32 forward's rounding over 2h stays far below TOL.
    const TOL: f64 = 3e-3;
    let h = 3e-3;
    let mut rng = Stream::new(seed, 1);
    let n_out = out_len(c) - out_len(c) / (c.batch + 1);
    let mut r = vec![0.0f32; out_len(c)];
    r[..n_out]
        .iter_mut()
        .for_each(|v| *v = rng.uniform_range(-1.0, 1.0));
    let mut y = vec![0.0f32; out_len(c)];
    loss(c, &mut y, &r)?;
    let mut dx = vec![1e3f32; c.x.len()]; // backward must overwrite, not add
    c.layer
        .backward(
            &Cpu,
            &ctx(c.batch, Mode::Train),
            &c.x,
            &y,
            &r,
            Some(&mut dx),
        )
        .map_err(fail)?;
    let mut worst = (0.0f64, String::new());
    let mut see = |what: String, analytic: f32, numeric: f64| {
        let ratio = (analytic as f64 - numeric).abs() / (TOL * (1.0 + numeric.abs()));
        // A NaN ratio (a NaN gradient) must count as the worst.
        if ratio > worst.0 || ratio.is_nan() {
            worst = (
                ratio,
                format!("{what}: backward {analytic}, finite difference {numeric}"),
            );
        }
    };
    for (i, &analytic) in dx[..c.batch * c.steps * c.input].iter().enumerate() {
        let v = c.x[i];
        c.x[i] = v + h as f32;
        let plus = loss(c, &mut y, &r)?;
        c.x[i] = v - h as f32;
        let minus = loss(c, &mut y, &r)?;
        c.x[i] = v;
        see(format!("dx[{i}]"), analytic, (plus - minus) / (2.0 * h));
    }
    let grads: Vec<Vec<f32>> = c.layer.params().iter().map(|p| p.grad.clone()).collect();
    for (k, grad) in grads.iter().enumerate() {
        for (j, &g) in grad.iter().enumerate() {
            let v = c.layer.params()[k].value[j];
            c.layer.params_mut()[k].value[j] = v + h as f32;
            let plus = loss(c, &mut y, &r)?;
            c.layer.params_mut()[k].value[j] = v - h as f32;
            let minus = loss(c, &mut y, &r)?;
            c.layer.params_mut()[k].value[j] = v;
            let name = c.layer.params()[k].name;
            see(
                format!("layer {} {name}.grad[{j}]", k / 4),
                g,
                (plus - minus) / (2.0 * h),
            );
        }
    }
    Ok(worst)
}

proptest! {
    #[test]
    fn forward_matches_a_step_by_step_f64_reference(
        steps in 1usize..=5, input in 1usize..=4, hidden in 1usize..=4, layers in 1usize..=2,
        seq: bool, batch in 1usize..=3, seed: u64, eval: bool,
    ) {
        let mut c = case(steps, input, hidden, layers, seq, batch, seed);
        let mut y = vec![f32::NAN; out_len(&c)];
        let mode = if eval { Mode::Eval } else { Mode::Train };
        c.layer.forward(&Cpu, &ctx(batch, mode), &c.x, &mut y).map_err(fail)?;
        let want = reference(&c);
        // |h| < 1; the worst difference over 3000 random cases was 2.5e-7
        // (~4 ulps of 1), so 2e-6 leaves 8x headroom and still catches any
        // wrong term.
        let (worst, at) = want.iter().zip(&y).enumerate()
            .map(|(k, (&w, &g))| ((w - g as f64).abs(), k))
            .fold((0.0f64, 0), |a, b| if b.0 > a.0 { b } else { a });
        prop_assert!(worst <= 2e-6, "{}: worst |diff| {worst:e} at output {at} (reference {}, got {})",
            c.layer.describe(), want[at], y[at]);
    }

    #[test]
    fn input_and_every_parameter_gradient_match_finite_differences(
        steps in 1usize..=5, input in 1usize..=4, hidden in 1usize..=4, layers in 1usize..=2,
        seq: bool, batch in 1usize..=3, seed: u64,
    ) {
        let mut c = case(steps, input, hidden, layers, seq, batch, seed);
        let (worst, what) = worst_gradient_mismatch(&mut c, seed)?;
        prop_assert!(worst <= 1.0, "{} on [{steps}, {input}] x batch {batch}: worst mismatch {worst:.2}x the tolerance at {what}",
            c.layer.describe());
    }

    #[test]
    fn parameter_gradients_accumulate_across_backward_calls(
        steps in 1usize..=4, layers in 1usize..=2, seq: bool, batch in 1usize..=3, seed: u64,
    ) {
        let mut c = case(steps, 3, 2, layers, seq, batch, seed);
        let mut y = vec![0.0f32; out_len(&c)];
        let dy: Vec<f32> = (0..y.len()).map(|k| (k as f32 * 0.37).sin()).collect();
        let cx = ctx(batch, Mode::Train);
        c.layer.forward(&Cpu, &cx, &c.x, &mut y).map_err(fail)?;
        c.layer.backward(&Cpu, &cx, &c.x, &y, &dy, None).map_err(fail)?;
        let once: Vec<Vec<f32>> = c.layer.params().iter().map(|p| p.grad.clone()).collect();
        c.layer.backward(&Cpu, &cx, &c.x, &y, &dy, None).map_err(fail)?;
        for (p, g1) in c.layer.params().iter().zip(&once) {
            for (j, (&g2, &g1)) in p.grad.iter().zip(g1).enumerate() {
                prop_assert!((g2 - 2.0 * g1).abs() <= 1e-5 * (1.0 + g1.abs()),
                    "{}.grad[{j}]: {g2} after two calls, {g1} after one", p.name);
            }
        }
    }
}

#[test]
fn one_step_one_unit_matches_the_values_worked_by_hand() {
    // x = 1, W_ih = [1, -1, 0.5, 2] (rows i, f, g, o), b_ih = 0,
    // b_hh = [0, 0, 0.5, 0], W_hh = 9 everywhere (h_0 = 0, so it must not matter):
    //   a = [1, -1, 1, 2]
    //   i = sigmoid(1) = 0.7310585786, g = tanh(1) = 0.7615941560,
    //   o = sigmoid(2) = 0.8807970780, f multiplies c_0 = 0
    //   c = i g = 0.5567699411, tanh(c) = 0.5055769315
    //   h = o tanh(c) = 0.4453106840
    // Backward with dL/dh = 1:
    //   dL/dc = o (1 - tanh(c)^2)         = 0.6556582688
    //   dL/da_i = dc g i (1 - i)          = 0.0981772853
    //   dL/da_f = dc c_0 f (1 - f)        = 0
    //   dL/da_g = dc i (1 - g^2)          = 0.2013040342
    //   dL/da_o = tanh(c) o (1 - o)       = 0.0530823347
    //   dL/dx = W_ih . dL/da              = 0.3049939718
    // dW_ih = dL/da * x, db_ih = db_hh = dL/da, dW_hh = dL/da * h_0 = 0.
    let mut l = Lstm::<Cpu>::new(1, 1, 1, false).unwrap();
    l.setup(&Cpu, &[1, 1], 1, &mut Stream::new(0, 0)).unwrap();
    let values = [
        vec![1.0, -1.0, 0.5, 2.0],
        vec![9.0; 4],
        vec![0.0; 4],
        vec![0.0, 0.0, 0.5, 0.0],
    ];
    for (p, v) in l.params_mut().iter_mut().zip(values) {
        p.value = v;
    }
    let x = vec![1.0f32];
    let mut y = vec![0.0f32];
    let cx = ctx(1, Mode::Train);
    l.forward(&Cpu, &cx, &x, &mut y).unwrap();
    assert!((y[0] - 0.445_310_68).abs() < 1e-6, "h = {}", y[0]);
    let mut dx = vec![0.0f32];
    l.backward(&Cpu, &cx, &x, &y, &vec![1.0], Some(&mut dx))
        .unwrap();
    assert!((dx[0] - 0.304_993_97).abs() < 1e-6, "dx = {}", dx[0]);
    let da = [0.098_177_285, 0.0, 0.201_304_03, 0.053_082_335];
    let p = l.params();
    for (k, &want) in da.iter().enumerate() {
        for (name, got) in [
            ("weight_ih", p[0].grad[k]),
            ("bias_ih", p[2].grad[k]),
            ("bias_hh", p[3].grad[k]),
        ] {
            assert!(
                (got - want).abs() < 1e-6,
                "{name}.grad[{k}] = {got}, want {want}"
            );
        }
        assert_eq!(p[1].grad[k], 0.0, "weight_hh.grad[{k}]");
    }
}

#[test]
fn shape_errors_name_the_expected_and_received_shapes() {
    let l = Lstm::<Cpu>::new(28, 128, 1, false).unwrap();
    assert_eq!(l.output_shape(&[28, 28]), Ok(vec![128]));
    let s = Lstm::<Cpu>::new(28, 128, 2, true).unwrap();
    assert_eq!(s.output_shape(&[7, 28]), Ok(vec![7, 128]));
    for bad in [vec![784], vec![28, 27], vec![1, 28, 28], vec![]] {
        let err = l.output_shape(&bad).err().unwrap_or_default();
        assert!(
            err.contains("[steps, 28]") && err.contains(&format!("{bad:?}")),
            "{bad:?}: {err}"
        );
    }
    let err = l.output_shape(&[0, 28]).err().unwrap_or_default();
    assert!(err.contains("at least one step"), "{err}");
    let mut l = l;
    let e = l.setup(&Cpu, &[28, 27], 4, &mut Stream::new(0, 0));
    assert!(e.is_err());
    let (x, mut y) = (vec![0.0; 28 * 28], vec![0.0; 128]);
    let err = l.forward(&Cpu, &ctx(1, Mode::Eval), &x, &mut y);
    assert!(err.is_err(), "forward before setup must fail");
}
