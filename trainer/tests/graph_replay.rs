//! Training steps replayed from a captured graph against eager ones, on the
//! PTX simulator through `fit` and the GPU backend: every parameter and
//! every optimizer buffer must be bit-identical after several epochs (the
//! step table gives each replay its batch, dropout offsets and Adam's bias
//! corrections), and a replayed step must launch what an eager one does.
//! The simulator runs strict (blocks in shuffled order, race and
//! initialization checks), which exercises `gather_batch_step`'s last-block
//! advance of the table.

use lasagna_ptx_sim::{LaunchRecord, Recording, SimOptions, Simulator};
use lasagna_trainer::backend::gpu::Gpu;
use lasagna_trainer::config::ModelSpec;
use lasagna_trainer::data::Dataset;
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::{OptimConfig, Optimizer};
use lasagna_trainer::philox::Stream;
use lasagna_trainer::train::{fit, DeviceData, Quiet, RunState, TrainConfig};

const MLP: &str = r#"
input = [1, 6, 6]
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 16
[[layers]]
type = "relu"
[[layers]]
type = "dropout"
p = 0.3
[[layers]]
type = "linear"
out = 10
"#;

const CNN: &str = r#"
input = [1, 8, 8]
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
type = "flatten"
[[layers]]
type = "dropout"
p = 0.2
[[layers]]
type = "linear"
out = 10
"#;

/// What a run leaves: parameters, optimizer state, and every launch.
struct Run {
    params: Vec<Vec<f32>>,
    opt: Vec<Vec<f32>>,
    steps: u64,
    launches: Vec<LaunchRecord>,
}

fn data(shape: &[usize], n: usize) -> Dataset {
    let mut r = Stream::new(11, 0);
    let len: usize = shape.iter().product();
    Dataset {
        x: (0..n * len).map(|_| r.uniform_range(-1.0, 1.0)).collect(),
        y: (0..n).map(|_| r.below(10)).collect(),
        sample_shape: shape.to_vec(),
        classes: 10,
    }
}

/// `epochs` epochs of `spec` on `n` random samples in batches of `batch`.
fn run(spec: &str, optimizer: OptimConfig, graphs: bool, n: usize, batch: usize) -> Run {
    let spec = ModelSpec::parse(spec, "test").expect("spec");
    let sim = Simulator::with_options(SimOptions::strict(7));
    let g = Gpu::new(Recording::new(sim), "recording sim").expect("simulator backend");
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: batch,
        lr: 0.01,
        optimizer,
        graphs,
        ..TrainConfig::mnist_default()
    };
    let layers = spec.build_layers::<Gpu<Recording>>().expect("layers");
    let mut model = Model::build(&g, layers, &spec.input, batch, cfg.seed).expect("model");
    let mut opt = Optimizer::new(&g, cfg.optimizer, &model.param_sizes()).expect("optimizer");
    let train = DeviceData::upload(&g, &data(&spec.input, n)).expect("upload");
    let mut state = RunState::new();
    fit(
        &g,
        &mut model,
        &mut opt,
        &train,
        None,
        &cfg,
        &mut state,
        &mut Quiet,
        &mut |_, _, _| Ok(true),
    )
    .expect("fit");
    let s = opt.state(&g).expect("optimizer state");
    assert_eq!(s.step, state.step, "the optimizer counted every step");
    let launches = g.device().expect("device").launches().to_vec();
    Run {
        params: model.snapshot(&g).expect("snapshot"),
        opt: s.buffers,
        steps: state.step,
        launches,
    }
}

fn replayed(r: &Run) -> usize {
    r.launches
        .iter()
        .filter(|l| l.kernel == "gather_batch_step")
        .count()
}

fn same_bits(what: &str, a: &[Vec<f32>], b: &[Vec<f32>]) {
    assert_eq!(a.len(), b.len(), "{what}: tensor count");
    for (t, (x, y)) in a.iter().zip(b).enumerate() {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        if let Some(i) = (0..x.len()).find(|&i| x[i].to_bits() != y[i].to_bits()) {
            panic!("{what} tensor {t}[{i}]: eager {} replayed {}", x[i], y[i]);
        }
        assert_eq!(bits(x), bits(y), "{what} tensor {t}");
    }
}

/// Eager and replayed runs of `spec`: bit-identical, and the replayed one
/// really replayed (all full batches but each epoch's first).
fn check(spec: &str, optimizer: OptimConfig, n: usize, batch: usize) -> (Run, Run) {
    let eager = run(spec, optimizer, false, n, batch);
    let graph = run(spec, optimizer, true, n, batch);
    assert_eq!(replayed(&eager), 0, "graphs off: nothing replayed");
    let full = n / batch;
    assert_eq!(
        replayed(&graph),
        2 * (full - 1),
        "one replay per full batch after the first, 2 epochs"
    );
    assert_eq!(eager.steps, graph.steps);
    same_bits("parameter", &eager.params, &graph.params);
    same_bits("optimizer state", &eager.opt, &graph.opt);
    (eager, graph)
}

#[test]
fn an_mlp_with_dropout_and_adam_replays_bit_identically_to_eager_steps() {
    // 5 full batches and a partial one (eager) per epoch.
    check(MLP, OptimConfig::adam(), 43, 8);
}

#[test]
fn sgd_with_momentum_replays_bit_identically_to_eager_steps() {
    let sgd = OptimConfig::Sgd {
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
        weight_decay: 1e-3,
    };
    check(MLP, sgd, 32, 8);
}

#[test]
fn a_cnn_with_batchnorm_and_adamw_replays_bit_identically_to_eager_steps() {
    let adamw = OptimConfig::AdamW {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    check(CNN, adamw, 20, 4);
}

#[test]
fn a_replayed_step_launches_what_an_eager_step_launches() {
    let (eager, graph) = check(MLP, OptimConfig::adam(), 43, 8);
    assert_eq!(
        eager.launches.len(),
        graph.launches.len(),
        "launches in all"
    );
    let shape = |l: &LaunchRecord| {
        // The replayed gather reads its batch start from the step table.
        let k = if l.kernel == "gather_batch_step" {
            "gather_batch"
        } else {
            &l.kernel
        };
        (k.to_owned(), l.grid, l.block, l.shared_bytes)
    };
    for (i, (a, b)) in eager.launches.iter().zip(&graph.launches).enumerate() {
        assert_eq!(shape(a), shape(b), "launch {i}");
    }
}
