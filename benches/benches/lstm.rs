//! The CPU backend's LSTM cell (one step's fused element-wise forward and
//! backward) at the `lstm` preset's 128 hidden units, batch 64; and the
//! preset's whole LSTM layer over the 28 rows of an MNIST image (input and
//! recurrent GEMMs with the cells), forward and a training step.
//! Groups `cpu/lstm/<shape>`; the cell cases are `lasagna_benches::ops::lstm`'s,
//! the same the GPU kernel bench runs.
use criterion::{criterion_group, criterion_main, Criterion};
use lasagna_benches::ops::{lstm, Bound, Case, Sizes};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::layers::{Ctx, Layer, Lstm, Mode};
use lasagna_trainer::philox::Stream;

mod cpu_op;

/// `(batch, steps, inputs, hidden)` of the `lstm` preset's layer in training.
const LAYER: (usize, usize, usize, usize) = (64, 28, 28, 128);

/// One `lstm` preset layer, set up for a training batch, with its input and
/// the output gradient (deterministic draws).
fn layer() -> (Lstm<Cpu>, Vec<f32>, Vec<f32>) {
    let (n, t, i, h) = LAYER;
    let mut l = Lstm::<Cpu>::new(i, h, 1, false).expect("the preset's LSTM");
    let mut rng = Stream::new(1, 0);
    l.setup(&Cpu, &[t, i], n, &mut rng).expect("setup");
    let x: Vec<f32> = (0..n * t * i).map(|_| rng.uniform()).collect();
    let dy: Vec<f32> = (0..n * h).map(|_| rng.uniform_range(-0.1, 0.1)).collect();
    (l, x, dy)
}

/// The layer forward, and forward then backward without the input gradient
/// (the first layer of the preset has nothing below it). FLOPs: forward is
/// `N T 4H (I + H)` multiply-adds; backward twice the recurrent part plus
/// the input weights' gradient, `N T 4H (I + 2H)`.
fn layer_cases() -> Vec<Case<'static>> {
    let (n, t, i, h) = LAYER;
    let shape = format!("{n}x{t}x{i}_{h}_layer");
    let ctx = Ctx {
        mode: Mode::Train,
        batch: n,
        seed: 0,
        offset: 0,
        index: 0,
    };
    let fwd = (2 * n * t * 4 * h * (i + h)) as u64;
    let bwd = (2 * n * t * 4 * h * (i + 2 * h)) as u64;
    // Weights and the input read, the output written (and for backward the
    // weight gradients): a lower bound, the gates stay in cache or not.
    let weights = 4 * h * (i + h) + 8 * h;
    let f32s = |k: usize| (4 * k) as u64;
    let (mut lf, xf, _) = layer();
    let mut yf = vec![0.0; n * h];
    let (mut ls, xs, dys) = layer();
    let mut ys = vec![0.0; n * h];
    vec![
        Case::new(
            "lstm",
            shape.clone(),
            "layer_forward",
            "lstm preset",
            (fwd, f32s(weights + n * t * i + n * h), Bound::Fp32),
            move || lf.forward(&Cpu, &ctx, &xf, &mut yf),
        ),
        Case::new(
            "lstm",
            shape,
            "layer_step",
            "lstm preset",
            (
                fwd + bwd,
                f32s(2 * weights + n * t * i + 2 * n * h),
                Bound::Fp32,
            ),
            move || {
                ls.forward(&Cpu, &ctx, &xs, &mut ys)?;
                ls.backward(&Cpu, &ctx, &xs, &ys, &dys, None)
            },
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let cpu = Cpu;
    let sizes = Sizes::training();
    let cases = lstm::cases(&cpu, &sizes).expect("the lstm cases build on the CPU");
    cpu_op::run(c, cases);
    cpu_op::run(c, layer_cases());
}

criterion_group!(benches, bench);
criterion_main!(benches);
