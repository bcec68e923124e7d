//! The CUDA backend's orchestration on the PTX simulator, against the CPU
//! (the comparison and its tolerances: `gpu_common/mod.rs`).

mod gpu_common;

use gpu_common::{parity, CNN, MLP, RNN, TOKENS};
use lasagna_ptx_sim::{Recording, Simulator};
use lasagna_trainer::backend::gpu::Gpu;
use lasagna_trainer::backend::{Location, Memory};

fn sim() -> Gpu<Simulator> {
    Gpu::new(Simulator::new(), "sim").expect("simulator backend")
}

#[test]
fn the_simulated_gpu_says_its_buffers_are_on_the_device() {
    // The training loop reads the loss back less often there (train.rs).
    assert_eq!(sim().location(), Location::Device);
}

#[test]
fn mlp_trains_the_same_on_the_simulated_gpu_as_on_the_cpu() {
    parity(&sim(), &MLP.replace("DROPOUT", "0.0"), 16, 3);
}

#[test]
fn mlp_with_dropout_draws_the_same_philox_masks_on_both_backends() {
    parity(&sim(), &MLP.replace("DROPOUT", "0.5"), 16, 3);
}

#[test]
fn cnn_trains_the_same_on_the_simulated_gpu_as_on_the_cpu() {
    parity(&sim(), CNN, 8, 3);
}

#[test]
fn embedding_trains_the_same_on_the_simulated_gpu_as_on_the_cpu() {
    parity(&sim(), TOKENS, 8, 3);
}

#[test]
fn lstm_and_layernorm_train_the_same_on_the_simulated_gpu_as_on_the_cpu() {
    parity(&sim(), RNN, 8, 3);
}

/// The worst `|cpu - other|` over every parameter, relative to the largest
/// `|cpu|` of its tensor (1e-3 at least, as in `gpu_common::parity`); prints
/// each tensor's.
fn worst_relative(cpu: &[Vec<f32>], other: &[Vec<f32>]) -> f32 {
    assert_eq!(cpu.len(), other.len(), "tensor count");
    let mut worst = 0.0f32;
    for (t, (a, b)) in cpu.iter().zip(other).enumerate() {
        assert_eq!(a.len(), b.len(), "tensor {t} length");
        let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let d = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
        println!(
            "  tensor {t}: worst |diff| {d:.2e}, max |value| {scale:.3e}, relative {:.2e}",
            d / scale
        );
        worst = worst.max(d / scale);
    }
    worst
}

/// The whole `fit` loop (device-resident dataset, batches gathered by index
/// on the device, loss statistics read back every 50 steps, validation,
/// `evaluate`) through the simulated GPU, on 96 MNIST images for 1 epoch:
/// the epoch's train loss, validation loss and accuracy, and the weights
/// agree with the CPU's run (Adam, dropout on). Weights: within 1e-6 of each
/// tensor's largest |value| (measured 4.5e-7 after the 6 steps; the run is
/// deterministic on both sides, at any thread count). Not `2 lr` per step,
/// the most Adam moves a weight, which would pass almost any bug.
#[test]
fn fit_on_the_simulated_gpu_matches_the_cpu() {
    use lasagna_trainer::backend::Backend;
    use lasagna_trainer::data::{load_mnist, resolve_data_dir, split_validation, Normalization};
    use lasagna_trainer::model::Model;
    use lasagna_trainer::optim::Optimizer;
    use lasagna_trainer::train::{fit, DeviceData, Quiet, RunState, TrainConfig};

    let m = load_mnist(&resolve_data_dir(None), Normalization::default()).expect("MNIST");
    let (tr, va) = split_validation(&m.train.subset(128), 32, 0).expect("split");
    let spec = lasagna_trainer::config::ModelSpec::parse(&MLP.replace("DROPOUT", "0.3"), "t")
        .expect("spec");
    let c = TrainConfig {
        epochs: 1,
        batch_size: 16,
        ..TrainConfig::mnist_default()
    };
    fn run<B: Backend>(
        b: &B,
        spec: &lasagna_trainer::config::ModelSpec,
        c: &TrainConfig,
        tr: &lasagna_trainer::data::Dataset,
        va: &lasagna_trainer::data::Dataset,
    ) -> (Vec<Vec<f32>>, RunState) {
        let layers = spec.build_layers::<B>().expect("layers");
        let mut model = Model::build(b, layers, &spec.input, 32, c.seed).expect("model");
        let mut opt = Optimizer::new(b, c.optimizer, &model.param_sizes()).expect("opt");
        let td = DeviceData::upload(b, tr).expect("upload");
        let vd = DeviceData::upload(b, va).expect("upload");
        let mut state = RunState::new();
        fit(
            b,
            &mut model,
            &mut opt,
            &td,
            Some(&vd),
            c,
            &mut state,
            &mut Quiet,
            &mut |_, _, _| Ok(true),
        )
        .expect("fit");
        (model.snapshot(b).expect("snapshot"), state)
    }
    let (wc, sc) = run(&lasagna_trainer::backend::cpu::Cpu, &spec, &c, &tr, &va);
    let (wg, sg) = run(&sim(), &spec, &c, &tr, &va);
    let (ec, eg) = (&sc.history[0], &sg.history[0]);
    println!("cpu {ec:?}\nsim {eg:?}");
    assert_eq!(sc.step, sg.step);
    assert!((ec.train_loss - eg.train_loss).abs() <= 1e-4 * ec.train_loss.abs());
    assert_eq!(ec.train_acc, eg.train_acc);
    let (vc, vg) = (ec.val_loss.expect("val"), eg.val_loss.expect("val"));
    assert!((vc - vg).abs() <= 1e-3 * vc.abs(), "val loss {vc} vs {vg}");
    let worst = worst_relative(&wc, &wg);
    println!(
        "worst weight |diff| after {} Adam steps: {worst:.2e} of its tensor's max |value|",
        sc.step
    );
    assert!(worst <= 1e-6, "{worst}");
}

/// Training steps allocate nothing on the device: a run of 4 steps makes
/// exactly as many allocations as a run of 1 (all of them when the model,
/// optimizer and step buffers are built).
#[test]
fn training_steps_allocate_nothing_on_the_device() {
    let allocs = |steps: usize| {
        let g = Gpu::new(Recording::new(Simulator::new()), "recording sim").expect("backend");
        gpu_common::train_random(&g, CNN, 4, steps);
        let n = g.device().expect("device").transfers().allocs;
        n
    };
    let (one, four) = (allocs(1), allocs(4));
    println!("device allocations: {one} for 1 step, {four} for 4 steps");
    assert_eq!(one, four);
}

/// `fit` with AMP through the simulated GPU against the CPU's AMP run: the
/// GPU's `gemm_f16` (round_f16 of A and B, then the f32 gemm kernel) and
/// `amp_unscale_check` give the same training up to summation order, and a
/// run whose scale overflows skips every step on both, weights untouched.
/// Weights: within 1e-4 of each tensor's largest |value| (measured 5.0e-5),
/// not fp32's 1e-6: an operand that differs in its last f32 bit and sits on
/// an f16 rounding boundary can round to a neighbouring f16 (2^-11 apart,
/// relative) on one side only.
#[test]
fn fit_with_amp_on_the_simulated_gpu_matches_the_cpu_amp_run() {
    use lasagna_trainer::amp::GradScaler;
    use lasagna_trainer::backend::Backend;
    use lasagna_trainer::data::{load_mnist, resolve_data_dir, Normalization};
    use lasagna_trainer::model::Model;
    use lasagna_trainer::optim::Optimizer;
    use lasagna_trainer::train::{fit, DeviceData, Quiet, RunState, TrainConfig};

    let m = load_mnist(&resolve_data_dir(None), Normalization::default()).expect("MNIST");
    let tr = m.train.subset(96);
    let spec = lasagna_trainer::config::ModelSpec::parse(&MLP.replace("DROPOUT", "0.0"), "t")
        .expect("spec");
    let c = TrainConfig {
        epochs: 1,
        batch_size: 16,
        amp: true,
        clip_grad_norm: Some(5.0),
        ..TrainConfig::mnist_default()
    };
    fn run<B: Backend>(
        b: &B,
        spec: &lasagna_trainer::config::ModelSpec,
        c: &TrainConfig,
        tr: &lasagna_trainer::data::Dataset,
        scale: f32,
    ) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, RunState) {
        let layers = spec.build_layers::<B>().expect("layers");
        let mut model = Model::build(b, layers, &spec.input, 16, c.seed).expect("model");
        let before = model.snapshot(b).expect("snapshot");
        let mut opt = Optimizer::new(b, c.optimizer, &model.param_sizes()).expect("opt");
        let td = DeviceData::upload(b, tr).expect("upload");
        let mut state = RunState::new();
        state.scaler = GradScaler::with_scale(scale);
        fit(
            b,
            &mut model,
            &mut opt,
            &td,
            None,
            c,
            &mut state,
            &mut Quiet,
            &mut |_, _, _| Ok(true),
        )
        .expect("fit");
        (before, model.snapshot(b).expect("snapshot"), state)
    }
    let (_, wc, sc) = run(&lasagna_trainer::backend::cpu::Cpu, &spec, &c, &tr, 65536.0);
    let (_, wg, sg) = run(&sim(), &spec, &c, &tr, 65536.0);
    println!("cpu {:?}\nsim {:?}", sc.history[0], sg.history[0]);
    assert_eq!(sc.scaler, sg.scaler);
    assert_eq!(sc.scaler.skipped_steps, 0);
    let (ec, eg) = (&sc.history[0], &sg.history[0]);
    assert!((ec.train_loss - eg.train_loss).abs() <= 1e-4 * ec.train_loss.abs());
    let worst = worst_relative(&wc, &wg);
    println!(
        "AMP: worst weight |diff| after {} Adam steps: {worst:.2e} of its tensor's max |value|",
        sc.step
    );
    assert!(worst <= 1e-4, "{worst}");

    // Overflow: every step skipped on both backends, weights bit for bit.
    let (b0, w1, s1) = run(&sim(), &spec, &c, &tr, 3e38);
    assert_eq!(s1.scaler.skipped_steps, 6);
    assert_eq!(s1.scaler.scale, 3e38 / 64.0);
    assert!(b0
        .iter()
        .flatten()
        .zip(w1.iter().flatten())
        .all(|(x, y)| x.to_bits() == y.to_bits()));
}

/// Bad token ids are refused on the GPU with the CPU's message (the kernel
/// raises a device flag; the host names the first bad value), and good ones
/// after a refusal convert again (the flag is cleared).
#[test]
fn to_index_refuses_a_bad_token_id_like_the_cpu() {
    use lasagna_trainer::backend::{DataOps, Memory};
    let g = sim();
    let x = g.upload(&[3.0, 7.0, 2.5, 1.0]).expect("upload");
    let mut idx = g.upload_idx(&[0; 4]).expect("upload");
    let e = g
        .to_index(&x, &mut idx, 4)
        .expect_err("2.5 is not a token id");
    assert!(e.to_string().contains("2.5 is not a token id"), "{e}");
    let cpu = lasagna_trainer::backend::cpu::Cpu
        .to_index(&vec![3.0, 7.0, 2.5, 1.0], &mut vec![0; 4], 4)
        .expect_err("cpu refuses too");
    assert!(cpu.to_string().contains("2.5 is not a token id"), "{cpu}");
    let ok = g.upload(&[3.0, 7.0, 0.0, 1.0]).expect("upload");
    g.to_index(&ok, &mut idx, 4).expect("good ids convert");
}

/// Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d on the simulated GPU: the ReLU
/// launches nothing in a training step (its forward rides in
/// `batchnorm_forward_train`, its backward in `maxpool2d_backward`) nor in
/// eval (`batchnorm_forward_eval`), and the eval logits after a training
/// step match the CPU's (the running statistics come from f32 sums on the
/// GPU and f64 on the CPU: 1e-5 relative).
#[test]
fn a_relu_between_batchnorm_and_maxpool_launches_nothing_and_eval_matches_the_cpu() {
    use lasagna_trainer::backend::Backend;
    use lasagna_trainer::config::ModelSpec;
    use lasagna_trainer::model::Model;
    const SPEC: &str = r#"
input = [1, 8, 8]
[[layers]]
type = "conv2d"
out = 3
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
type = "flatten"
[[layers]]
type = "linear"
out = 5
"#;
    fn run<B: Backend>(b: &B) -> Vec<f32> {
        let spec = ModelSpec::parse(SPEC, "t").expect("spec");
        let layers = spec.build_layers::<B>().expect("layers");
        let mut m = Model::build(b, layers, &spec.input, 4, 3).expect("model");
        let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin() + 0.2).collect();
        b.write(m.input_mut(), &x).expect("write");
        m.train();
        m.zero_grad(b).expect("zero_grad");
        m.forward(b, 4, 1, 0).expect("forward");
        let dy = b
            .upload(&(0..20).map(|i| (i as f32).cos()).collect::<Vec<_>>())
            .expect("dy");
        m.backward(b, 4, 1, 0, &dy).expect("backward");
        m.eval();
        let logits = m.forward(b, 4, 1, 1).expect("eval forward");
        let mut out = vec![0.0; 20];
        b.read(logits, &mut out).expect("read");
        out
    }
    let g = Gpu::new(Recording::new(Simulator::new()), "recording sim").expect("backend");
    let got = run(&g);
    let want = run(&lasagna_trainer::backend::cpu::Cpu);
    let dev = g.device().expect("device");
    let names: Vec<&str> = dev.launches().iter().map(|r| r.kernel.as_str()).collect();
    assert!(
        !names.iter().any(|k| k.starts_with("relu_")),
        "a ReLU launched: {names:?}"
    );
    for k in [
        "batchnorm_forward_train",
        "maxpool2d_backward",
        "batchnorm_forward_eval",
    ] {
        assert!(names.contains(&k), "{k} not launched: {names:?}");
    }
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in want.iter().zip(&got).enumerate() {
        assert!((a - b).abs() <= 1e-5 * scale, "logit {i}: cpu {a} gpu {b}");
    }
    assert!(want.iter().any(|&v| v != 0.0));
}
