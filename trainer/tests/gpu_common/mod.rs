//! The CUDA backend against the CPU, shared by `gpu_sim.rs` (on the PTX
//! simulator) and `cuda_parity.rs` (on a real GPU): a small MLP and a small
//! CNN train for a few steps through `Gpu<D>` and through
//! the CPU backend from the same seed and batches, and after every step the
//! loss and every parameter must agree.
//!
//! Tolerances: both sides compute in f32; the GEMMs sum in different orders
//! (the CPU blocks and vectorizes, the PTX kernel tiles 64x64 with 8-wide
//! K-steps), and exp/log/tanh come from different libraries (libm vs
//! `ex2.approx`-based PTX, see each kernel's header). Per step the loss may
//! differ by 1e-5 relative and a parameter by 1e-5 relative to the largest
//! parameter of its tensor. The worst mismatch is printed. SGD with momentum
//! is used for the weight comparison because Adam divides by sqrt(v): a
//! gradient that is zero up to rounding can get either sign, which moves a
//! weight by a whole learning rate on one side only.

#![allow(dead_code)]

/// Which device errors skip a test on a real GPU, and which fail it.
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(feature = "cuda")]
#[path = "../../../tests/src/skip.rs"]
pub mod skip;

use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::Backend;
use lasagna_trainer::config::{LayerSpec, ModelSpec};
use lasagna_trainer::loss::{Loss, Targets};
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::Optimizer;
use lasagna_trainer::philox::Stream;

pub const MLP: &str = r#"
input = [1, 28, 28]
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 32
[[layers]]
type = "relu"
[[layers]]
type = "dropout"
p = DROPOUT
[[layers]]
type = "linear"
out = 10
[optimizer]
type = "sgd"
lr = 0.05
momentum = 0.9
"#;

pub const CNN: &str = r#"
input = [1, 12, 12]
[[layers]]
type = "conv2d"
out = 4
kernel = 3
padding = 1
[[layers]]
type = "batch_norm2d"
[[layers]]
type = "relu"
[[layers]]
type = "max_pool2d"
kernel = 2
[[layers]]
type = "conv2d"
out = 6
kernel = 3
groups = 2
[[layers]]
type = "gelu"
[[layers]]
type = "adaptive_avg_pool2d"
out = 3
[[layers]]
type = "avg_pool2d"
kernel = 2
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 10
[optimizer]
type = "sgd"
lr = 0.05
momentum = 0.9
"#;

/// Two stacked LSTMs (the first returning its sequence), LayerNorm, SiLU.
pub const RNN: &str = r#"
input = [5, 6]
[[layers]]
type = "lstm"
hidden = 8
layers = 2
return_sequences = true
[[layers]]
type = "layer_norm"
[[layers]]
type = "flatten"
[[layers]]
type = "silu"
[[layers]]
type = "linear"
out = 10
[optimizer]
type = "sgd"
lr = 0.05
momentum = 0.9
"#;

/// Losses and parameter snapshots after each of `steps` steps.
fn train<B: Backend>(
    b: &B,
    spec: &ModelSpec,
    x: &[f32],
    y: &[u32],
    batch: usize,
    steps: usize,
) -> Vec<(f32, Vec<Vec<f32>>)> {
    let seed = 7;
    let layers = spec.build_layers::<B>().expect("layers");
    let mut model = Model::build(b, layers, &spec.input, batch, seed).expect("model");
    let mut opt = Optimizer::new(
        b,
        spec.optimizer().expect("optimizer"),
        &model.param_sizes(),
    )
    .expect("optimizer");
    let loss = Loss::CrossEntropy {
        label_smoothing: 0.0,
    };
    let sample: usize = spec.input.iter().product();
    let mut dlogits = b.zeros(batch * 10).expect("dlogits");
    let mut stats = b.zeros(2).expect("stats");
    let mut targets = b.upload_idx(&vec![0; batch]).expect("targets");
    let mut out = Vec::new();
    model.train();
    for step in 0..steps {
        let r = step * batch..(step + 1) * batch;
        b.write(model.input_mut(), &x[r.start * sample..r.end * sample])
            .expect("write x");
        b.write_idx(&mut targets, &y[r]).expect("write y");
        b.fill(&mut stats, 0.0, 2).expect("fill");
        model.zero_grad(b).expect("zero_grad");
        let logits = model.forward(b, batch, seed, step as u64).expect("forward");
        loss.forward_backward(
            b,
            logits,
            Targets::Classes(&targets),
            batch,
            10,
            &mut dlogits,
            &mut stats,
        )
        .expect("loss");
        model
            .backward(b, batch, seed, step as u64, &dlogits)
            .expect("backward");
        opt.step(b, &mut model.params_mut(), 0.05).expect("step");
        let mut s = [0.0f32; 2];
        b.read(&stats, &mut s).expect("stats");
        out.push((s[0] / batch as f32, model.snapshot(b).expect("snapshot")));
    }
    out
}

/// Token ids through an Embedding into an LSTM (the last step) and a head.
pub const TOKENS: &str = r#"
input = [6]
[[layers]]
type = "embedding"
num = 20
dim = 4
[[layers]]
type = "lstm"
hidden = 8
[[layers]]
type = "linear"
out = 10
[optimizer]
type = "sgd"
lr = 0.05
momentum = 0.9
"#;

/// Random inputs and labels for `steps` batches of `spec`.
fn random_data(spec: &ModelSpec, batch: usize, steps: usize) -> (Vec<f32>, Vec<u32>) {
    let sample: usize = spec.input.iter().product();
    let mut r = Stream::new(3, 0);
    let n = batch * steps;
    // Token ids for a model that starts with an Embedding, values otherwise.
    let vocab = match spec.layers.first() {
        Some(LayerSpec::Embedding { num, .. }) => Some(*num as u32),
        _ => None,
    };
    let x: Vec<f32> = (0..n * sample)
        .map(|_| match vocab {
            Some(v) => r.below(v) as f32,
            None => r.uniform_range(-1.0, 2.0),
        })
        .collect();
    let y: Vec<u32> = (0..n).map(|_| r.below(10)).collect();
    (x, y)
}

/// `steps` training steps of `spec_text` on `b`, on random data.
pub fn train_random<B: Backend>(b: &B, spec_text: &str, batch: usize, steps: usize) {
    let spec = ModelSpec::parse(spec_text, "test").expect("spec");
    let (x, y) = random_data(&spec, batch, steps);
    train(b, &spec, &x, &y, batch, steps);
}

/// Trains `spec` on the CPU and on `other` and checks every step.
pub fn parity<B: Backend>(other: &B, spec_text: &str, batch: usize, steps: usize) {
    let spec = ModelSpec::parse(spec_text, "test").expect("spec");
    let (x, y) = random_data(&spec, batch, steps);
    let cpu = train(&Cpu, &spec, &x, &y, batch, steps);
    let sim = train(other, &spec, &x, &y, batch, steps);
    for (step, ((lc, wc), (lg, wg))) in cpu.iter().zip(&sim).enumerate() {
        let dl = (lc - lg).abs() / lc.abs().max(1e-3);
        println!(
            "step {step}: loss cpu {lc:.6} {} {lg:.6} (rel diff {dl:.2e})",
            other.name()
        );
        assert!(dl <= 1e-5, "step {step}: loss {lc} vs {lg}");
        for (t, (a, b)) in wc.iter().zip(wg).enumerate() {
            let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let (i, worst) = a
                .iter()
                .zip(b)
                .map(|(p, q)| (p - q).abs())
                .enumerate()
                .fold((0, 0.0f32), |w, (i, d)| if d > w.1 { (i, d) } else { w });
            println!("  tensor {t}: worst |diff| {worst:.2e} at {i} (scale {scale:.3})");
            assert!(
                worst <= 1e-5 * scale,
                "step {step}, tensor {t}[{i}]: cpu {} other {}",
                a[i],
                b[i]
            );
        }
    }
}
