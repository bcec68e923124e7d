//! The no_std engine on the real MNIST test set: an MLP whose activations
//! use every `fast-math` function (GELU: erf; Tanh; SiLU: exp), trained here
//! on a subset (one epoch on 10,000 images, seconds), exported, and every one of
//! the 10,000 test images run through `lasagna-infer` one at a time and
//! through the trainer's batched eval forward. The argmax must agree on at
//! least 99.9% of images: with the default math that is the f32 parity
//! contract on real data; with `--features fast-math` (CI runs both) it is
//! the accuracy `fast-math` is allowed to cost.

use lasagna_format::AlignedModel;
use lasagna_infer::Engine;
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::Memory;
use lasagna_trainer::config::ModelSpec;
use lasagna_trainer::data::{load_mnist, resolve_data_dir, Dataset, Normalization};
use lasagna_trainer::export::{export_f32, ExportInfo};
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::Optimizer;
use lasagna_trainer::train::{fit, DeviceData, Quiet, RunState, TrainConfig};

const EVAL_BATCH: usize = 1000;

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| {
            if x > bv {
                (i, x)
            } else {
                (bi, bv)
            }
        })
        .0
}

const SMOOTH_MLP: &str = r#"
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 128
[[layers]]
type = "gelu"
[[layers]]
type = "linear"
out = 64
[[layers]]
type = "tanh"
[[layers]]
type = "linear"
out = 32
[[layers]]
type = "silu"
[[layers]]
type = "linear"
out = 10
"#;

/// [`SMOOTH_MLP`] trained for one epoch on the first 10,000 images.
fn trained_mlp(train: &Dataset) -> Model<Cpu> {
    let b = Cpu;
    let spec = ModelSpec::parse(SMOOTH_MLP, "smooth mlp").expect("spec");
    let cfg = TrainConfig {
        epochs: 1,
        ..TrainConfig::mnist_default()
    };
    let mut model = Model::build(
        &b,
        spec.build_layers().expect("layers"),
        &spec.input,
        EVAL_BATCH,
        0,
    )
    .expect("model");
    let mut opt = Optimizer::new(&b, cfg.optimizer, &model.param_sizes()).expect("optimizer");
    let data = DeviceData::upload(&b, &train.subset(10_000)).expect("upload");
    let mut state = RunState::new();
    fit(
        &b,
        &mut model,
        &mut opt,
        &data,
        None,
        &cfg,
        &mut state,
        &mut Quiet,
        &mut |_, _, _| Ok(true),
    )
    .expect("training");
    model.eval();
    model
}

/// The trainer's logits for every test image, batched.
fn trainer_logits(model: &mut Model<Cpu>, test: &Dataset) -> Vec<f32> {
    let b = Cpu;
    let mut out = vec![0.0f32; test.len() * 10];
    let n_in = test.sample_len();
    for start in (0..test.len()).step_by(EVAL_BATCH) {
        let n = EVAL_BATCH.min(test.len() - start);
        let x: Vec<f32> = (start..start + n)
            .flat_map(|i| test.sample(i).expect("sample").iter().copied())
            .collect();
        assert_eq!(x.len(), n * n_in);
        b.write(model.input_mut(), &x).expect("write");
        let y = model.forward(&b, n, 0, 0).expect("forward");
        b.read(y, &mut out[start * 10..(start + n) * 10])
            .expect("read");
    }
    out
}

#[test]
fn engine_argmax_agrees_with_the_trainer_on_the_mnist_test_set() {
    let m =
        load_mnist(&resolve_data_dir(None), Normalization::default()).expect("MNIST in data/mnist");
    let mut model = trained_mlp(&m.train);
    let want = trainer_logits(&mut model, &m.test);
    let file = export_f32(
        &Cpu,
        &model,
        &ExportInfo {
            normalization: (0.1307, 0.3081),
            ..Default::default()
        },
    )
    .expect("export");
    let model = AlignedModel::new(&file);
    let engine = Engine::new(&model).expect("engine");
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let (mut agree, mut correct, mut worst) = (0usize, 0usize, 0.0f32);
    for (i, &label) in m.test.y.iter().enumerate() {
        let got = engine
            .run(arena, m.test.sample(i).expect("sample"))
            .expect("run");
        let w = &want[i * 10..(i + 1) * 10];
        for (a, b) in got.iter().zip(w) {
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
        agree += usize::from(argmax(got) == argmax(w));
        correct += usize::from(argmax(got) == label as usize);
    }
    let n = m.test.len();
    let rate = agree as f64 / n as f64;
    println!(
        "fast-math {}: argmax agrees on {agree}/{n} ({:.2}%), engine accuracy {:.2}%, worst |diff| {worst:.2e} (relative to max(1, |logit|))",
        cfg!(feature = "fast-math"),
        100.0 * rate,
        100.0 * correct as f64 / n as f64
    );
    assert!(rate >= 0.999, "argmax agreement {agree}/{n} is below 99.9%");
    if !cfg!(feature = "fast-math") {
        assert!(
            worst <= 1e-5,
            "default math: worst difference {worst:e} above 1e-5"
        );
    }
}
