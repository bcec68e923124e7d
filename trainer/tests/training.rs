//! Training-loop properties on small MNIST subsets: determinism, exact
//! checkpoint resume, the NaN guard, and the classic-mistake warnings.

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::config::ModelSpec;
use lasagna_trainer::data::{
    load_mnist, resolve_data_dir, split_validation, Dataset, Normalization,
};
use lasagna_trainer::error::Error;
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::Optimizer;
use lasagna_trainer::train::{fit, DeviceData, Progress, Quiet, RunState, TrainConfig};
use std::sync::OnceLock;

fn mnist_subset() -> &'static (Dataset, Dataset) {
    static DATA: OnceLock<(Dataset, Dataset)> = OnceLock::new();
    DATA.get_or_init(|| {
        let m = load_mnist(&resolve_data_dir(None), Normalization::default())
            .expect("MNIST in data/mnist");
        let train = m.train.subset(1200);
        split_validation(&train, 200, 0).expect("split")
    })
}

const SMALL_MLP: &str = r#"
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 32
[[layers]]
type = "relu"
[[layers]]
type = "dropout"
p = 0.2
[[layers]]
type = "linear"
out = 10
"#;

fn fresh_state() -> RunState {
    RunState::new()
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        ..TrainConfig::mnist_default()
    }
}

/// Trains `toml` for `epochs` and returns the weights and the run state.
fn train(
    toml: &str,
    c: &TrainConfig,
    progress: &mut dyn Progress,
) -> Result<(Vec<Vec<f32>>, RunState), Error> {
    let b = Cpu;
    let (tr, va) = mnist_subset();
    let spec = ModelSpec::parse(toml, "test")?;
    let mut model = Model::build(&b, spec.build_layers()?, &spec.input, 1000, c.seed)?;
    let mut opt = Optimizer::new(&b, c.optimizer, &model.param_sizes())?;
    let (td, vd) = (DeviceData::upload(&b, tr)?, DeviceData::upload(&b, va)?);
    let mut state = fresh_state();
    fit(
        &b,
        &mut model,
        &mut opt,
        &td,
        Some(&vd),
        c,
        &mut state,
        progress,
        &mut |_, _, _| Ok(true),
    )?;
    Ok((model.snapshot(&b)?, state))
}

#[test]
fn the_same_seed_gives_bit_identical_weights() {
    let a = train(SMALL_MLP, &cfg(2), &mut Quiet).expect("train");
    let b = train(SMALL_MLP, &cfg(2), &mut Quiet).expect("train");
    assert_eq!(a.0, b.0);
    let other = TrainConfig { seed: 1, ..cfg(2) };
    let c = train(SMALL_MLP, &other, &mut Quiet).expect("train");
    assert_ne!(a.0, c.0);
}

#[test]
fn a_checkpointed_and_resumed_run_equals_an_uninterrupted_one() {
    use lasagna_trainer::checkpoint::{Checkpoint, Recipe};
    let b = Cpu;
    let (tr, va) = mnist_subset();
    let c = cfg(3);
    let (whole, whole_state) = train(SMALL_MLP, &c, &mut Quiet).expect("train");

    // Run 1 epoch, checkpoint to disk, then resume in a fresh model for the rest.
    let spec = ModelSpec::parse(SMALL_MLP, "test").expect("spec");
    let build = || -> (Model<Cpu>, Optimizer<Cpu>) {
        let model = Model::build(
            &b,
            spec.build_layers().expect("layers"),
            &spec.input,
            1000,
            c.seed,
        )
        .expect("model");
        let opt = Optimizer::new(&b, c.optimizer, &model.param_sizes()).expect("opt");
        (model, opt)
    };
    let (td, vd) = (
        DeviceData::upload(&b, tr).expect("up"),
        DeviceData::upload(&b, va).expect("up"),
    );
    let path = std::env::temp_dir().join(format!("lasagna-resume-{}.ckpt", std::process::id()));
    let recipe = Recipe {
        model: "test".into(),
        model_toml: SMALL_MLP.into(),
        normalization: Normalization::default(),
        train: c.clone(),
        val: 200,
        subset: Some(1200),
        train_crc32: lasagna_trainer::checkpoint::data_crc32(tr),
    };
    let (mut m1, mut o1) = build();
    let mut s1 = fresh_state();
    let first = TrainConfig {
        epochs: 1,
        ..c.clone()
    };
    fit(
        &b,
        &mut m1,
        &mut o1,
        &td,
        Some(&vd),
        &first,
        &mut s1,
        &mut Quiet,
        &mut |m, o, s| {
            Checkpoint::capture(&b, m, o, &recipe, s)?.save(&path)?;
            Ok(true)
        },
    )
    .expect("first epoch");

    let ck = Checkpoint::load(&path).expect("load");
    let (mut m2, mut o2) = build();
    ck.restore_into(&b, &mut m2, &mut o2).expect("restore");
    let mut s2 = ck.state.clone();
    fit(
        &b,
        &mut m2,
        &mut o2,
        &td,
        Some(&vd),
        &c,
        &mut s2,
        &mut Quiet,
        &mut |_, _, _| Ok(true),
    )
    .expect("resume");
    let _ = std::fs::remove_file(&path);
    assert_eq!(
        m2.snapshot(&b).expect("snap"),
        whole,
        "resumed weights differ"
    );
    assert_eq!(s2.step, whole_state.step);
    assert_eq!(s2.history.len(), 3);
    for (a, b) in s2.history.iter().zip(&whole_state.history) {
        assert_eq!(
            (a.train_loss, a.val_loss, a.val_acc),
            (b.train_loss, b.val_loss, b.val_acc)
        );
    }
}

#[test]
fn a_diverging_run_stops_with_an_error_naming_the_step() {
    let c = TrainConfig {
        lr: 1e6,
        optimizer: lasagna_trainer::optim::OptimConfig::sgd(),
        ..cfg(1)
    };
    match train(SMALL_MLP, &c, &mut Quiet) {
        Err(e @ Error::NonFiniteLoss { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("step") && msg.contains("--lr"), "{msg}");
        }
        other => panic!(
            "expected NonFiniteLoss, got {:?}",
            other.map(|r| r.1.history)
        ),
    }
}

#[derive(Default)]
struct Warnings(Vec<String>);
impl Progress for Warnings {
    fn warn(&mut self, msg: &str) {
        self.0.push(msg.to_string());
    }
}

#[test]
fn a_softmax_before_cross_entropy_is_reported_as_a_double_softmax() {
    let toml = format!("{SMALL_MLP}\n[[layers]]\ntype = \"softmax\"\n");
    let mut w = Warnings::default();
    train(&toml, &cfg(1), &mut w).expect("train");
    assert!(
        w.0.iter().any(|m| m.contains("double softmax")),
        "{:?}",
        w.0
    );
}

#[test]
fn dropout_on_the_output_is_reported_when_the_model_is_built() {
    let toml = format!("{SMALL_MLP}\n[[layers]]\ntype = \"dropout\"\np = 0.5\n");
    let mut w = Warnings::default();
    train(&toml, &cfg(1), &mut w).expect("train");
    assert!(
        w.0.iter().any(|m| m.contains("last layer is Dropout")),
        "{:?}",
        w.0
    );
}

#[test]
fn shape_mismatches_are_reported_when_the_model_is_built_naming_the_layer() {
    // No Flatten: Linear receives [1, 28, 28] and infers in = 28, so the
    // mistake shows as a LayerNorm on the wrong size instead; build a clear
    // mismatch by asking BatchNorm1d for 3-D input.
    let toml = "[[layers]]\ntype = \"linear\"\nout = 8\n[[layers]]\ntype = \"batch_norm1d\"\n[[layers]]\ntype = \"flatten\"\n";
    let spec = ModelSpec::parse(toml, "test").expect("spec");
    match spec.build_layers::<Cpu>() {
        Err(e @ Error::Shape { .. }) => assert!(e.to_string().contains("layer 1"), "{e}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a 3-D input to BatchNorm1d must be rejected"),
    }
}

#[test]
fn batchnorm_with_a_final_batch_of_one_is_handled_and_batch_one_training_is_an_error() {
    let toml = "[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout = 16\n[[layers]]\ntype = \"batch_norm1d\"\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"linear\"\nout = 10\n";
    // 1000 training samples with batch 333 leave a final batch of 1: it is dropped.
    let c = TrainConfig {
        batch_size: 333,
        ..cfg(1)
    };
    train(toml, &c, &mut Quiet).expect("a trailing batch of 1 must not crash");
    let c1 = TrainConfig {
        batch_size: 1,
        ..cfg(1)
    };
    match train(toml, &c1, &mut Quiet) {
        Err(e @ Error::BatchNormBatchOne { .. }) => {
            assert!(e.to_string().contains("LayerNorm"), "{e}")
        }
        other => panic!(
            "expected BatchNormBatchOne, got {:?}",
            other.map(|r| r.1.epochs_done)
        ),
    }
}

#[test]
fn early_stopping_restores_the_best_weights() {
    let c = TrainConfig {
        early_stopping: Some(1),
        lr: 0.05,
        ..cfg(6)
    };
    let (_, state) = train(SMALL_MLP, &c, &mut Quiet).expect("train");
    let best = state.best.expect("a best epoch");
    let best_loss = state
        .history
        .iter()
        .filter_map(|m| m.val_loss)
        .fold(f32::INFINITY, f32::min);
    assert_eq!(best.0, best_loss);
    assert!(state.epochs_done <= 6);
}

#[test]
fn early_stopping_keeps_the_weights_of_the_best_epoch_bit_for_bit() {
    // A learning rate high enough that the validation loss turns up.
    let c = TrainConfig {
        early_stopping: Some(1),
        lr: 0.05,
        ..cfg(6)
    };
    let (kept, state) = train(SMALL_MLP, &c, &mut Quiet).expect("train");
    let (best_loss, best_epoch) = state.best.expect("a best epoch");
    // Training is deterministic, so a plain run of `best_epoch` epochs ends
    // with exactly the weights early stopping must have restored.
    let plain = TrainConfig {
        early_stopping: None,
        ..cfg(best_epoch)
    };
    let plain = TrainConfig { lr: 0.05, ..plain };
    let (at_best, s) = train(SMALL_MLP, &plain, &mut Quiet).expect("train");
    assert_eq!(s.history[best_epoch - 1].val_loss, Some(best_loss));
    if state.epochs_done > best_epoch {
        assert_eq!(
            kept, at_best,
            "the kept weights are not epoch {best_epoch}'s"
        );
    } else {
        eprintln!("note: the best epoch was the last ({best_epoch}); restoring was a no-op");
        assert_eq!(kept, at_best);
    }
}

#[test]
fn early_stopping_resumed_at_the_best_epoch_still_restores_it() {
    let c = TrainConfig {
        early_stopping: Some(1),
        lr: 0.05,
        ..cfg(6)
    };
    let (kept, state) = train(SMALL_MLP, &c, &mut Quiet).expect("train");
    let best_epoch = state.best.expect("a best epoch").1;
    if state.epochs_done == best_epoch {
        skip::skipped("the best epoch was the last, nothing to restore");
        return;
    }
    // The same run cut after its best epoch and continued by a second `fit`
    // (what --resume does, with the state from the checkpoint).
    let b = Cpu;
    let (tr, va) = mnist_subset();
    let spec = ModelSpec::parse(SMALL_MLP, "test").expect("spec");
    let layers = spec.build_layers().expect("layers");
    let mut model = Model::build(&b, layers, &spec.input, 1000, c.seed).expect("model");
    let mut opt = Optimizer::new(&b, c.optimizer, &model.param_sizes()).expect("opt");
    let (td, vd) = (
        DeviceData::upload(&b, tr).expect("up"),
        DeviceData::upload(&b, va).expect("up"),
    );
    let mut state2 = fresh_state();
    for epochs in [best_epoch, 6] {
        let part = TrainConfig {
            epochs,
            ..c.clone()
        };
        fit(
            &b,
            &mut model,
            &mut opt,
            &td,
            Some(&vd),
            &part,
            &mut state2,
            &mut Quiet,
            &mut |_, _, _| Ok(true),
        )
        .expect("fit");
    }
    assert_eq!(state2.best, state.best);
    assert_eq!(model.snapshot(&b).expect("snapshot"), kept);
}
