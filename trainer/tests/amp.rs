//! Mixed precision through `fit` on the CPU: an overflowing step is skipped
//! and leaves the weights untouched bit for bit, checkpoints of old runs
//! still load, and AMP training lands within 0.3 points of fp32.

use lasagna_trainer::amp::GradScaler;
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::config::ModelSpec;
use lasagna_trainer::data::{load_mnist, resolve_data_dir, Normalization};
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::Optimizer;
use lasagna_trainer::train::{evaluate, fit, DeviceData, Quiet, RunState, TrainConfig};

const MLP: &str = r#"
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 64
[[layers]]
type = "relu"
[[layers]]
type = "linear"
out = 10
"#;

const CNN: &str = r#"
input = [1, 28, 28]
[[layers]]
type = "conv2d"
out = 4
kernel = 3
padding = 1
[[layers]]
type = "relu"
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 10
"#;

#[test]
fn an_overflowing_step_is_skipped_weights_unchanged_and_the_scale_halves() {
    let b = Cpu;
    let m = load_mnist(&resolve_data_dir(None), Normalization::default()).expect("MNIST");
    for toml in [MLP, CNN] {
        let spec = ModelSpec::parse(toml, "t").expect("spec");
        let c = TrainConfig {
            epochs: 1,
            batch_size: 16,
            amp: true,
            clip_grad_norm: Some(1.0),
            ..TrainConfig::mnist_default()
        };
        // Exactly one step: 16 images, batch 16.
        let tr = m.train.subset(16);
        let mut model = Model::build(&b, spec.build_layers().expect("layers"), &spec.input, 16, 0)
            .expect("model");
        let mut opt = Optimizer::new(&b, c.optimizer, &model.param_sizes()).expect("opt");
        let before = model.snapshot(&b).expect("snapshot");
        let opt_before = opt.state(&b).expect("opt state");
        let td = DeviceData::upload(&b, &tr).expect("upload");
        let mut state = RunState::new();
        // A scale near f32::MAX: the scaled loss gradient overflows fp16 (and f32).
        state.scaler = GradScaler::with_scale(3e38);
        fit(
            &b,
            &mut model,
            &mut opt,
            &td,
            None,
            &c,
            &mut state,
            &mut Quiet,
            &mut |_, _, _| Ok(true),
        )
        .expect("fit");
        let after = model.snapshot(&b).expect("snapshot");
        assert_eq!(state.step, 1);
        assert!(
            before
                .iter()
                .flatten()
                .zip(after.iter().flatten())
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "a skipped step changed the weights"
        );
        assert_eq!(
            opt.state(&b).expect("opt state"),
            opt_before,
            "optimizer state moved"
        );
        assert_eq!(state.scaler.scale, 1.5e38);
        assert_eq!(
            (state.scaler.skipped_steps, state.scaler.growth_tracker),
            (1, 0)
        );
        assert_eq!(state.history[0].skipped_steps, 1);
        assert_eq!(state.history[0].loss_scale, Some(1.5e38));

        // With PyTorch's initial scale the same step is taken.
        let mut state = RunState::new();
        fit(
            &b,
            &mut model,
            &mut opt,
            &td,
            None,
            &c,
            &mut state,
            &mut Quiet,
            &mut |_, _, _| Ok(true),
        )
        .expect("fit");
        assert_ne!(model.snapshot(&b).expect("snapshot"), before);
        assert_eq!(
            state.scaler,
            GradScaler {
                scale: 65536.0,
                growth_tracker: 1,
                skipped_steps: 0
            }
        );
    }
}

#[test]
fn run_states_and_configs_written_before_amp_still_load() {
    let s: RunState =
        serde_json::from_str(r#"{"epochs_done":2,"step":40,"history":[],"best":null}"#)
            .expect("state");
    assert_eq!(s.scaler, GradScaler::default());
    let mut c = serde_json::to_value(TrainConfig::mnist_default()).expect("json");
    c.as_object_mut().expect("object").remove("amp");
    let c: TrainConfig = serde_json::from_value(c).expect("config");
    assert!(!c.amp);
}

#[test]
fn amp_training_on_the_cpu_reaches_fp32_accuracy_within_0_3_points() {
    let b = Cpu;
    let m = load_mnist(&resolve_data_dir(None), Normalization::default()).expect("MNIST");
    let tr = m.train.subset(10_000);
    let test = m.test.subset(5000);
    let spec = ModelSpec::parse(MLP, "t").expect("spec");
    let run = |amp: bool| {
        let c = TrainConfig {
            epochs: 3,
            batch_size: 32,
            amp,
            ..TrainConfig::mnist_default()
        };
        let mut model = Model::build(
            &b,
            spec.build_layers().expect("layers"),
            &spec.input,
            1000,
            0,
        )
        .expect("model");
        let mut opt = Optimizer::new(&b, c.optimizer, &model.param_sizes()).expect("opt");
        let td = DeviceData::upload(&b, &tr).expect("upload");
        let mut state = RunState::new();
        fit(
            &b,
            &mut model,
            &mut opt,
            &td,
            None,
            &c,
            &mut state,
            &mut Quiet,
            &mut |_, _, _| Ok(true),
        )
        .expect("fit");
        let e = evaluate(
            &b,
            &mut model,
            &DeviceData::upload(&b, &test).expect("upload"),
            &c.loss,
            1000,
        )
        .expect("evaluate");
        (e.accuracy, state)
    };
    let (f32_acc, _) = run(false);
    let (amp_acc, s) = run(true);
    println!(
        "MLP 784-64-10, 10,000 train images, 3 epochs, seed 0, 5,000 test images: \
         fp32 {:.2}%, AMP {:.2}% ({} skipped steps, final scale {})",
        100.0 * f32_acc,
        100.0 * amp_acc,
        s.scaler.skipped_steps,
        s.scaler.scale
    );
    assert!(f32_acc > 0.88, "fp32 baseline {f32_acc}");
    assert!(
        (amp_acc - f32_acc).abs() <= 0.003,
        "AMP {amp_acc} vs fp32 {f32_acc}"
    );
}
