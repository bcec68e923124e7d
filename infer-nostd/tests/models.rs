//! Whole models built with `ModelBuilder`, run by the engine and by the f64
//! reference in `common/reference.rs`: shapes, values, and what the engine
//! reports about them.
mod common;

use common::{arena, assert_close, reference, run_engine, square, Net, Rng};
use lasagna_format::Op;
use lasagna_infer::Engine;

/// Tolerance against the f64 reference (`tol + |want| * tol`): f32 rounding
/// over a few layers by default; with `fast-math`, exp's 2.4e-3 relative
/// error passed through a few layers.
fn tol() -> f64 {
    if cfg!(feature = "fast-math") {
        2e-2
    } else {
        2e-5
    }
}

/// Runs `net` from f32 and from f16 files and checks both against the
/// reference (the f16 file against its rounded values); returns the f32 output.
fn check(net: &Net, x: &[f32], what: &str) -> Vec<f32> {
    let got = run_engine(&net.build(false), x).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_close(&got, &reference::forward(net, x), tol(), what);
    let got16 = run_engine(&net.build(true), x).unwrap_or_else(|e| panic!("{what} (f16): {e}"));
    assert_close(
        &got16,
        &reference::forward(&net.rounded_f16(), x),
        tol(),
        what,
    );
    got
}

fn linear(i: u32, o: u32, bias: bool) -> Op {
    Op::Linear {
        in_features: i,
        out_features: o,
        bias,
        layout: lasagna_format::WeightLayout::RowMajor,
    }
}

#[test]
fn mlp_with_flatten_linear_relu_softmax_matches_the_reference() {
    let rng = &mut Rng(1);
    let mut net = Net::new(&[1, 6, 6]);
    net.push(Op::Flatten, rng)
        .push(linear(36, 16, true), rng)
        .push(Op::Relu, rng)
        .push(linear(16, 8, false), rng)
        .push(Op::Relu, rng)
        .push(linear(8, 4, true), rng)
        .push(Op::Softmax, rng);
    let x = rng.vec(36);
    let y = check(&net, &x, "MLP");
    assert_eq!(y.len(), 4);
    assert!((y.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    let file = net.build(false);
    let e = Engine::new(file.bytes()).expect("engine");
    assert_eq!((e.input_len(), e.output_len()), (36, 4));
    // The writer's plan: Flatten in place, then 36 + 16 floats during the first Linear.
    assert_eq!(e.arena_bytes(), 4 * (36 + 16));
}

#[test]
fn cnn_with_conv_batchnorm_pools_and_linear_matches_the_reference() {
    let rng = &mut Rng(2);
    let mut net = Net::new(&[2, 9, 9]);
    net.push(
        Op::Conv2d {
            in_channels: 2,
            out_channels: 4,
            groups: 1,
            window: square(3, 1, 1, 1),
            bias: true,
        },
        rng,
    )
    .push(
        Op::BatchNorm {
            features: 4,
            eps: 1e-5,
        },
        rng,
    )
    .push(Op::Relu, rng)
    .push(
        Op::MaxPool2d {
            window: square(2, 2, 0, 1),
        },
        rng,
    )
    .push(
        Op::Conv2d {
            in_channels: 4,
            out_channels: 6,
            groups: 2,
            window: square(3, 1, 2, 2),
            bias: false,
        },
        rng,
    )
    .push(Op::LeakyRelu { alpha: 0.1 }, rng)
    .push(
        Op::AvgPool2d {
            window: square(3, 1, 1, 1),
            count_include_pad: false,
        },
        rng,
    )
    .push(
        Op::AvgPool2d {
            window: square(2, 1, 1, 1),
            count_include_pad: true,
        },
        rng,
    )
    .push(Op::AdaptiveAvgPool2d { out_h: 2, out_w: 3 }, rng)
    .push(Op::Silu, rng)
    .push(Op::Flatten, rng)
    .push(linear(36, 5, true), rng)
    .push(Op::Sigmoid, rng);
    let x = rng.vec(2 * 9 * 9);
    let y = check(&net, &x, "CNN");
    assert_eq!(y.len(), 5);
}

fn lstm_net(seed: u64, layers: u8, return_sequences: bool) -> Net {
    let rng = &mut Rng(seed);
    let mut net = Net::new(&[7, 3]);
    net.push(
        Op::Lstm {
            input_size: 3,
            hidden_size: 5,
            layers,
            return_sequences,
            cell_shift: 0,
        },
        rng,
    )
    .push(linear(5, 2, true), rng)
    .push(Op::Tanh, rng);
    net
}

#[test]
fn lstm_with_and_without_return_sequences_one_and_two_layers_matches_the_reference() {
    for layers in [1, 2] {
        for seq in [false, true] {
            let net = lstm_net(3 + layers as u64, layers, seq);
            let x: Vec<f32> = Rng(9).vec(21).iter().map(|v| v * 3.0).collect();
            let y = check(&net, &x, &format!("LSTM layers {layers} seq {seq}"));
            assert_eq!(y.len(), if seq { 7 * 2 } else { 2 });
        }
    }
}

#[test]
fn lstm_last_step_equals_the_last_row_of_its_sequence_output() {
    let (last, seq) = (lstm_net(5, 2, false), lstm_net(5, 2, true));
    let x = Rng(10).vec(21);
    let a = run_engine(&last.build(false), &x).expect("last step");
    let b = run_engine(&seq.build(false), &x).expect("sequence");
    assert_eq!(a[..], b[12..]);
}

#[test]
fn layernorm_and_both_gelu_forms_match_the_reference() {
    let rng = &mut Rng(6);
    let mut net = Net::new(&[3, 8]);
    net.push(linear(8, 8, true), rng)
        .push(Op::LayerNorm { size: 8, eps: 1e-5 }, rng)
        .push(Op::Gelu { tanh: false }, rng)
        .push(linear(8, 6, true), rng)
        .push(Op::LayerNorm { size: 6, eps: 1e-3 }, rng)
        .push(Op::Gelu { tanh: true }, rng)
        .push(Op::Softmax, rng);
    let x: Vec<f32> = rng.vec(24).iter().map(|v| v * 4.0).collect();
    let y = check(&net, &x, "LayerNorm/GELU");
    assert_eq!(y.len(), 3 * 6);
    for row in y.chunks(6) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
}

#[test]
fn embedding_lstm_classifier_runs_on_token_ids() {
    let rng = &mut Rng(7);
    let mut net = Net::new(&[5]);
    net.tokens = true;
    net.push(Op::Embedding { num: 10, dim: 4 }, rng)
        .push(
            Op::Lstm {
                input_size: 4,
                hidden_size: 6,
                layers: 1,
                return_sequences: false,
                cell_shift: 0,
            },
            rng,
        )
        .push(linear(6, 3, true), rng)
        .push(Op::Softmax, rng);
    let ids = [3.0, 0.0, 9.0, 9.0, 1.0];
    let y = check(&net, &ids, "Embedding+LSTM");
    assert_eq!(y.len(), 3);
}

#[test]
fn f16_weights_stay_within_f16_rounding_of_the_f32_model() {
    let rng = &mut Rng(8);
    let mut net = Net::new(&[16]);
    net.push(linear(16, 12, true), rng)
        .push(Op::Relu, rng)
        .push(linear(12, 4, true), rng);
    let x = rng.vec(16);
    let f32_out = run_engine(&net.build(false), &x).expect("f32");
    let f16_out = run_engine(&net.build(true), &x).expect("f16");
    // f16 keeps 11 significant bits: each weight moves by up to 2^-12 relative.
    for (a, b) in f32_out.iter().zip(&f16_out) {
        assert!((a - b).abs() < 2e-2, "{a} vs {b}");
    }
    assert_ne!(f32_out, f16_out, "f16 file should hold rounded weights");
}

#[test]
fn the_engine_reports_shapes_normalization_and_labels() {
    let rng = &mut Rng(11);
    let mut net = Net::new(&[2, 3]);
    net.push(linear(3, 2, true), rng).push(Op::Softmax, rng);
    let mut b = net.builder(false);
    b.normalization(0.5, 2.0).labels(["a", "b", "c", "d"]);
    let file = common::Aligned::new(&b.build().expect("builds"));
    let e = Engine::new(file.bytes()).expect("engine");
    assert_eq!((e.input_len(), e.output_len()), (6, 4));
    assert_eq!(e.normalization(), (0.5, 2.0));
    assert_eq!(e.model().labels().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    assert_eq!(e.input_dtype(), lasagna_format::DType::F32);
}

#[test]
fn one_engine_runs_many_samples_and_a_larger_arena_is_fine() {
    let rng = &mut Rng(12);
    let mut net = Net::new(&[4]);
    net.push(linear(4, 3, true), rng)
        .push(Op::Gelu { tanh: false }, rng);
    let file = net.build(false);
    let e = Engine::new(file.bytes()).expect("engine");
    let mut a = arena(e.arena_bytes() + 64);
    for s in 0..5 {
        let x = Rng(100 + s).vec(4);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut a);
        let y = e.run(bytes, &x).expect("runs").to_vec();
        assert_close(&y, &reference::forward(&net, &x), tol(), "repeat");
    }
}
