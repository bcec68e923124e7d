//! Every op the exporter writes reads back to the same `.lsn` bytes,
//! including the ones the PyTorch fixtures lack: GELU in both forms, SiLU,
//! LayerNorm, LeakyReLU, average pooling, Softmax, Embedding, an LSTM
//! returning every step, and a Linear over `[T, F]` (MatMul + Add).

use lasagna_format::{Op, WeightLayout, Window};
use lasagna_onnx::{export, import, ImportOptions};
use lasagna_trainer::export::{write_model, ExportInfo, WeightType};

/// Deterministic, varied weights (no two alike, no zeros).
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 997.0 - 0.49
        })
        .collect()
}

fn round_trip(input: &[usize], ops: Vec<(Op, Vec<Vec<f32>>)>) -> Vec<String> {
    let info = ExportInfo {
        normalization: (0.25, 0.5),
        labels: vec!["a".into(), "b".into(), "c".into()],
        meta: vec![("lasagna.train.note".into(), "round trip".into())],
    };
    let kinds: Vec<String> = ops
        .iter()
        .map(|(op, _)| op.kind().name().to_string())
        .collect();
    let lsn = write_model(input, ops, &info, WeightType::F32).unwrap_or_else(|e| panic!("{e}"));
    // The first import adds `lasagna.import.*` keys; from then on the
    // bytes are a fixed point.
    let a = import(
        &export(&lsn).unwrap_or_else(|e| panic!("export: {e}")),
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("import: {e}"));
    let b = import(
        &export(&a.lsn).unwrap_or_else(|e| panic!("export: {e}")),
        &ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("import: {e}"));
    assert!(
        a.lsn == b.lsn,
        "the re-imported .lsn differs ({} vs {} bytes)",
        a.lsn.len(),
        b.lsn.len()
    );
    let m = lasagna_format::Model::parse(&a.lsn).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.meta_get("lasagna.train.note"), Some("round trip"));
    assert_eq!(m.labels().collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(b.normalization_from, "metadata");
    assert_eq!(a.ops, kinds);
    b.ops
}

fn win(k: u8, s: u8, p: u8) -> Window {
    Window {
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        dilation: [1, 1],
    }
}

#[test]
fn a_convolutional_model_with_every_activation_round_trips() {
    let ops = vec![
        (
            Op::Conv2d {
                in_channels: 2,
                out_channels: 4,
                groups: 2,
                window: Window {
                    dilation: [2, 1],
                    ..win(3, 1, 2)
                },
                bias: true,
            },
            vec![values(4 * 9, 1), values(4, 2)],
        ),
        (Op::LeakyRelu { alpha: 0.125 }, vec![]),
        (
            Op::AvgPool2d {
                window: win(2, 2, 1),
                count_include_pad: true,
            },
            vec![],
        ),
        (
            Op::MaxPool2d {
                window: win(2, 1, 0),
            },
            vec![],
        ),
        (Op::Gelu { tanh: false }, vec![]),
        (Op::AdaptiveAvgPool2d { out_h: 1, out_w: 1 }, vec![]),
        (Op::Flatten, vec![]),
        (
            Op::Linear {
                in_features: 4,
                out_features: 6,
                bias: false,
                layout: WeightLayout::RowMajor,
            },
            vec![values(24, 3)],
        ),
        (Op::Silu, vec![]),
        (
            Op::LayerNorm { size: 6, eps: 1e-3 },
            vec![values(6, 4), values(6, 5)],
        ),
        (Op::Gelu { tanh: true }, vec![]),
        (Op::Sigmoid, vec![]),
        (
            Op::Linear {
                in_features: 6,
                out_features: 3,
                bias: true,
                layout: WeightLayout::RowMajor,
            },
            vec![values(18, 6), values(3, 7)],
        ),
        (Op::Softmax, vec![]),
    ];
    let names = round_trip(&[2, 6, 6], ops);
    assert_eq!(names.len(), 14, "{names:?}");
}

#[test]
fn an_embedding_and_sequence_lstm_model_round_trips() {
    let (t, dim, h) = (5usize, 3usize, 4usize);
    let ops = vec![
        (
            Op::Embedding {
                num: 7,
                dim: dim as u32,
            },
            vec![values(7 * dim, 8)],
        ),
        (
            Op::Lstm {
                input_size: dim as u32,
                hidden_size: h as u32,
                layers: 1,
                return_sequences: true,
                cell_shift: 0,
            },
            vec![
                values(4 * h * dim, 9),
                values(4 * h * h, 10),
                values(4 * h, 11),
                values(4 * h, 12),
            ],
        ),
        (
            Op::Linear {
                in_features: h as u32,
                out_features: 2,
                bias: true,
                layout: WeightLayout::RowMajor,
            },
            vec![values(2 * h, 13), values(2, 14)],
        ),
        (Op::Tanh, vec![]),
        (Op::Flatten, vec![]),
        (Op::Relu, vec![]),
        (
            Op::Linear {
                in_features: (2 * t) as u32,
                out_features: 3,
                bias: true,
                layout: WeightLayout::RowMajor,
            },
            vec![values(6 * t, 15), values(3, 16)],
        ),
    ];
    let names = round_trip(&[t], ops);
    assert_eq!(
        names,
        [
            "Embedding",
            "LSTM",
            "Linear",
            "Tanh",
            "Flatten",
            "ReLU",
            "Linear"
        ]
    );
}
