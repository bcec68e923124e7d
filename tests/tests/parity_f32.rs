//! Property: for random stacks of every exportable op, the no_std engine's
//! output equals the trainer's eval forward within 1e-5 relative — on the
//! exported file as trained, and on the deployment file with BatchNorm folded.
//!
//! Tolerance: `|engine - trainer| <= 1e-5 * max(1, max |trainer output|)
//! + sensitivity` per sample, where `sensitivity` is 4 times how far the
//! trainer's own output moves when every input (or every parameter) is
//! nudged by up to 2^-18 of itself: a
//! LayerNorm over a row with a tiny spread amplifies rounding by |x| / std,
//! which no fixed tolerance covers (seed 15683927009398591550 failed on that). Both sides compute in f32 with the same formulas; the
//! differences are summation order (the trainer's GEMMs block and vectorize,
//! the engine loops) and, after folding, `(W*s)·x + b'` instead of
//! `s*(W·x + b - mean) + beta`.

use lasagna_format::AlignedModel;
use lasagna_infer::Engine;
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{Act, Memory};
use lasagna_trainer::export::{deploy, export_f32, ExportInfo, WeightType};
use lasagna_trainer::init::Init;
use lasagna_trainer::layers::*;
use lasagna_trainer::model::Model;
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;

const TOL: f32 = 1e-5;

/// A random chain of layers that fits `input`, and the input shape.
fn random_stack(seed: u64) -> (Vec<usize>, Layers<Cpu>) {
    let mut r = Stream::new(seed, 99);
    let mut pick = |n: u32| r.below(n) as usize;
    let mut layers: Layers<Cpu> = Vec::new();
    let act = |k: usize| -> Box<dyn Layer<Cpu>> {
        Box::new(Activation::new(match k % 7 {
            0 => Act::Relu,
            1 => Act::LeakyRelu(0.1),
            2 => Act::Gelu,
            3 => Act::GeluTanh,
            4 => Act::Silu,
            5 => Act::Sigmoid,
            _ => Act::Tanh,
        }))
    };
    // Layers are only kept when they fit the shape so far (small images
    // shrink quickly under pooling).
    fn push(layers: &mut Layers<Cpu>, shape: &mut Vec<usize>, l: Box<dyn Layer<Cpu>>) {
        if let Ok(s) = l.output_shape(shape) {
            *shape = s;
            layers.push(l);
        }
    }
    let input = match pick(3) {
        0 => {
            // Image: conv blocks, then a head.
            let c = 1 + pick(3);
            let (h, w) = (5 + pick(6), 5 + pick(6));
            let input = vec![c, h, w];
            let mut shape = input.clone();
            for _ in 0..1 + pick(2) {
                let ch = shape[0];
                let groups = if ch > 1 && pick(3) == 0 { ch } else { 1 };
                let out = groups * (1 + pick(3));
                let k = 1 + 2 * pick(2);
                let conv = Conv2d::new(
                    ch,
                    out,
                    (k, k),
                    (1 + pick(2), 1),
                    (pick(2), pick(2)),
                    (1, 1),
                    groups,
                    pick(2) == 0,
                    Init::Default,
                );
                if let Ok(conv) = conv {
                    push(&mut layers, &mut shape, Box::new(conv));
                }
                if pick(2) == 0 {
                    if let Ok(bn) = BatchNorm2d::new(shape[0], 1e-5, 0.1) {
                        push(&mut layers, &mut shape, Box::new(bn));
                    }
                }
                push(&mut layers, &mut shape, act(pick(7)));
                match pick(4) {
                    0 => push(
                        &mut layers,
                        &mut shape,
                        Box::new(MaxPool2d::new((2, 2), (2, 2), (0, 0)).expect("pool")),
                    ),
                    1 => push(
                        &mut layers,
                        &mut shape,
                        Box::new(
                            AvgPool2d::new((3, 3), (2, 2), (1, 1), pick(2) == 0).expect("pool"),
                        ),
                    ),
                    2 => push(
                        &mut layers,
                        &mut shape,
                        Box::new(AdaptiveAvgPool2d::new(2, 3).expect("pool")),
                    ),
                    _ => {}
                }
            }
            push(&mut layers, &mut shape, Box::new(Flatten::new()));
            input
        }
        1 => vec![1 + pick(12)],
        _ => {
            // Sequence: an LSTM first.
            let (t, i) = (1 + pick(4), 1 + pick(4));
            let lstm = Lstm::new(i, 1 + pick(5), 1 + pick(2), pick(2) == 0).expect("lstm");
            layers.push(Box::new(lstm));
            vec![t, i]
        }
    };
    // A head of vector ops; sizes come from the shape so far.
    let mut shape = input.clone();
    for l in &layers {
        shape = l.output_shape(&shape).expect("stack fits");
    }
    for _ in 0..1 + pick(3) {
        let last = *shape.last().unwrap_or(&1);
        let layer: Box<dyn Layer<Cpu>> = match pick(5) {
            0 | 1 => Box::new(Linear::new(last, 1 + pick(6), pick(3) != 0, Init::Default)),
            2 if shape.len() == 1 => Box::new(BatchNorm1d::new(shape[0], 1e-5, 0.1).expect("bn")),
            3 => Box::new(LayerNorm::new(last, 1e-5).expect("ln")),
            _ => act(pick(7)),
        };
        shape = layer.output_shape(&shape).expect("head fits");
        layers.push(layer);
    }
    if pick(3) == 0 {
        layers.push(Box::new(Softmax::new()));
    }
    (input, layers)
}

/// Runs every sample through the engine and compares with `want`: at most
/// `TOL` of the sample's largest output (at least 1), plus the sample's
/// `sensitivity` to input rounding.
fn compare(
    file: &[u8],
    x: &[f32],
    want: &[f32],
    sensitivity: &[f32],
    what: &str,
) -> Result<(), TestCaseError> {
    let batch = sensitivity.len();
    let model = AlignedModel::new(file);
    let engine = Engine::new(&model)
        .map_err(|e| TestCaseError::fail(format!("{what}: engine rejects the file: {e}")))?;
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let (ni, no) = (x.len() / batch, want.len() / batch);
    for s in 0..batch {
        let got = engine
            .run(arena, &x[s * ni..(s + 1) * ni])
            .map_err(|e| TestCaseError::fail(format!("{what}: run: {e}")))?;
        let w = &want[s * no..(s + 1) * no];
        let scale = w.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let (k, diff) = got
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold(
                (0, 0.0f32),
                |(bk, bd), (k, d)| if d > bd { (k, d) } else { (bk, bd) },
            );
        let allowed = TOL * scale + sensitivity[s];
        prop_assert!(
            diff <= allowed,
            "{what}, sample {s}: worst |diff| {diff:e} at output {k} (engine {}, trainer {}), allowed {allowed:e} (sensitivity {:e})",
            got.get(k).copied().unwrap_or(f32::NAN),
            w[k],
            sensitivity[s]
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_engine_matches_the_trainer_on_random_stacks_before_and_after_folding(seed in any::<u64>(), batch in 1usize..4) {
        let b = Cpu;
        let (input, layers) = random_stack(seed);
        let mut model = Model::build(&b, layers, &input, batch, seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Non-trivial running statistics, so BatchNorm and its folding matter.
        let mut r = Stream::new(seed, 7);
        let mut snap = model.snapshot(&b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for t in &mut snap {
            for v in t.iter_mut() {
                *v += r.uniform_range(-0.2, 0.2);
                *v = v.abs().max(0.05) * v.signum();
            }
        }
        model.restore(&b, &snap).map_err(|e| TestCaseError::fail(e.to_string()))?;
        model.eval();
        let n_in: usize = input.iter().product();
        let x: Vec<f32> = (0..batch * n_in).map(|_| r.uniform_range(-1.5, 1.5)).collect();
        b.write(model.input_mut(), &x).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let n_out: usize = model.output_shape().iter().product();
        let mut want = vec![0.0f32; batch * n_out];
        let y = model.forward(&b, batch, 0, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
        b.read(y, &mut want).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // The stack's own sensitivity to rounding: how far the trainer's
        // output moves when every input, and separately every parameter, is
        // nudged by up to 2^-18 of itself (about 32 ulps). A LayerNorm over a
        // row with a tiny spread amplifies any rounding difference by
        // |x| / std, whatever the summation order, and a saturated layer in
        // front of it can hide the input nudge (seed 16127623095738243839:
        // LSTM -> LayerNorm -> LayerNorm, input nudge moved nothing, engine
        // off by 1e-4, parameter nudge 5.8e-5): the engine is allowed 4 times
        // the larger move on top of TOL, because one random nudge direction
        // underestimates the worst direction rounding can take. The nudge
        // was 2^-20 until seed 6723397410590106490 (Conv2d -> Sigmoid ->
        // AvgPool2d -> Conv2d -> Sigmoid -> MaxPool2d -> Flatten -> LayerNorm
        // -> Linear; engine off by 1.41e-5, allowed 1.20e-5): there the
        // rounding that differs enters at every layer (each exp, each conv
        // sum), while a nudge of the input is squeezed by two sigmoids
        // first, so about 1 case in 8,000 failed. With 2^-18, 100,000 cases
        // pass; a planted padding bug exceeded the old bound 700 times
        // (issue 23's mutation test), so this one still catches it.
        let mut nudge = |v: f32| v * (1.0 + r.uniform_range(-1.0, 1.0) / 262_144.0);
        let mut moves = Vec::new();
        for what in ["inputs", "parameters"] {
            let xs: Vec<f32> = if what == "inputs" { x.iter().map(|&v| nudge(v)).collect() } else { x.clone() };
            let nudged_params: Vec<Vec<f32>> = snap.iter().map(|t| t.iter().map(|&v| if what == "parameters" { nudge(v) } else { v }).collect()).collect();
            model.restore(&b, &nudged_params).map_err(|e| TestCaseError::fail(e.to_string()))?;
            b.write(model.input_mut(), &xs).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let y = model.forward(&b, batch, 0, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut moved = vec![0.0f32; batch * n_out];
            b.read(y, &mut moved).map_err(|e| TestCaseError::fail(e.to_string()))?;
            moves.push(moved);
        }
        model.restore(&b, &snap).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let sensitivity: Vec<f32> = (0..batch)
            .map(|s| {
                let w = &want[s * n_out..(s + 1) * n_out];
                4.0 * moves.iter().fold(0.0f32, |a, m| {
                    w.iter().zip(&m[s * n_out..(s + 1) * n_out]).fold(a, |a, (p, q)| a.max((p - q).abs()))
                })
            })
            .collect();

        let file = export_f32(&b, &model, &ExportInfo { normalization: (0.0, 1.0), ..Default::default() })
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        compare(&file, &x, &want, &sensitivity, "exported f32")?;
        let (folded, _) = deploy(&file, WeightType::F32).map_err(|e| TestCaseError::fail(e.to_string()))?;
        compare(&folded, &x, &want, &sensitivity, "deployed f32, BatchNorm folded")?;
    }
}
