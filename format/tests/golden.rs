//! The golden file pins the format's bytes: any change to the layout, the
//! encoding of an op, the planner or the CRC fails here. If the change is
//! intended (and the version bumped where the layout changed), regenerate with
//! `LASAGNA_BLESS=1 cargo test -p lasagna-format --test golden` and update the
//! pinned length and CRC below in the same commit.

use lasagna_format::{
    DType, Model, ModelBuilder, Op, OpKind, OpSpec, Quant, TensorData, ValueType, Window,
};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/tiny_cnn.lsn");
const GOLDEN_LEN: usize = 1176;
const GOLDEN_CRC: u32 = 0x3ff6_02cd;

/// A tiny CNN touching every dtype and quantization kind, built from fixed numbers.
fn golden_builder() -> ModelBuilder {
    let ramp = |n: usize, k: f32| -> Vec<f32> {
        (0..n).map(|i| (i as f32 - n as f32 / 2.0) * k).collect()
    };
    let w3 = Window {
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
    };
    let pool = Window {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
    };
    let mut b = ModelBuilder::new(&[1, 6, 6]);
    b.normalization(0.1307, 0.3081)
        .op(
            Op::Conv2d {
                in_channels: 1,
                out_channels: 2,
                groups: 1,
                window: w3,
                bias: true,
            },
            vec![
                TensorData::f32(&[2, 1, 3, 3], &ramp(18, 0.1)),
                TensorData::f32(&[2], &[0.5, -0.5]),
            ],
        )
        .op(
            Op::BatchNorm {
                features: 2,
                eps: 1e-5,
            },
            vec![
                TensorData::f16(&[2], &[1.0, 0.5]),
                TensorData::f16(&[2], &[0.0, 0.25]),
                TensorData::f32(&[2], &[0.1, -0.1]),
                TensorData::f32(&[2], &[1.0, 2.0]),
            ],
        )
        .op(Op::Relu, vec![])
        .op(Op::MaxPool2d { window: pool }, vec![])
        .op(Op::Flatten, vec![])
        .push(OpSpec {
            op: Op::Linear {
                in_features: 18,
                out_features: 4,
                bias: true,
                layout: lasagna_format::WeightLayout::RowMajor,
            },
            tensors: vec![
                TensorData::i8_per_channel(
                    &[4, 18],
                    &(0..72).map(|i| (i * 7 % 255) as i8).collect::<Vec<_>>(),
                    vec![0.01, 0.02, 0.03, 0.04],
                ),
                TensorData::i32(&[4], &[100, -100, 0, 7]),
            ],
            output: ValueType::I8 {
                scale: 0.05,
                zero_point: -3,
            },
            scratch_bytes: 0,
        })
        .op(
            Op::Linear {
                in_features: 4,
                out_features: 3,
                bias: false,
                layout: lasagna_format::WeightLayout::RowMajor,
            },
            vec![TensorData::i8_per_tensor(
                &[3, 4],
                &[1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12],
                0.1,
                2,
            )],
        )
        .op(Op::LeakyRelu { alpha: 0.01 }, vec![])
        .op(Op::Softmax, vec![])
        .labels(["zero", "one", "two"])
        .meta("lasagna.tool.version", "0.1.0")
        .meta("lasagna.train.test_accuracy", "0.5");
    b
}

#[test]
fn golden_file_bytes_are_pinned() {
    let built = golden_builder().build();
    assert!(built.is_ok(), "{built:?}");
    let built = built.unwrap_or_default();
    if std::env::var_os("LASAGNA_BLESS").is_some() {
        std::fs::write(GOLDEN, &built).unwrap_or_else(|e| panic!("cannot write {GOLDEN}: {e}"));
        println!(
            "blessed {GOLDEN}: {} bytes, crc {:#010x}",
            built.len(),
            crc(&built)
        );
    }
    let golden = std::fs::read(GOLDEN).unwrap_or_else(|e| panic!("cannot read {GOLDEN}: {e}"));
    assert_eq!(golden.len(), GOLDEN_LEN, "golden file length changed");
    assert_eq!(crc(&golden), GOLDEN_CRC, "golden file CRC changed");
    if let Some(i) = golden.iter().zip(&built).position(|(a, b)| a != b) {
        panic!("the writer's output differs from the golden file at byte {i}");
    }
    assert_eq!(golden.len(), built.len());
}

fn crc(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[12], b[13], b[14], b[15]])
}

#[test]
fn golden_file_reads_back_with_the_expected_contents() {
    let golden = std::fs::read(GOLDEN).unwrap_or_else(|e| panic!("cannot read {GOLDEN}: {e}"));
    let m = match Model::parse(&golden) {
        Ok(m) => m,
        Err(e) => panic!("golden file rejected: {e}"),
    };
    let kinds: Vec<OpKind> = m.ops().map(|e| e.op.kind()).collect();
    assert_eq!(
        kinds,
        [
            OpKind::Conv2d,
            OpKind::BatchNorm,
            OpKind::Relu,
            OpKind::MaxPool2d,
            OpKind::Flatten,
            OpKind::Linear,
            OpKind::Linear,
            OpKind::LeakyRelu,
            OpKind::Softmax
        ]
    );
    let shapes: Vec<String> = m.ops().map(|e| e.output.shape.to_string()).collect();
    assert_eq!(
        shapes,
        [
            "[2, 6, 6]",
            "[2, 6, 6]",
            "[2, 6, 6]",
            "[2, 3, 3]",
            "[18]",
            "[4]",
            "[3]",
            "[3]",
            "[3]"
        ]
    );
    assert_eq!(m.labels().collect::<Vec<_>>(), ["zero", "one", "two"]);
    assert_eq!(m.meta_get("lasagna.train.test_accuracy"), Some("0.5"));
    assert_eq!(m.meta_get("lasagna.missing"), None);
    assert_eq!(m.normalization(), (0.1307, 0.3081));
    // The widest moment is the conv: its f32 input [1, 6, 6] and output
    // [2, 6, 6] live together; BN and ReLU then run in place.
    assert_eq!(m.arena_bytes(), (36 + 2 * 36) * 4);
    let fc = m.op(5).map(|e| e.output);
    assert_eq!(
        fc.map(|v| (v.dtype, v.quant)),
        Some((DType::I8, Some((0.05, -3))))
    );
    let w = m.tensor(6);
    assert!(
        matches!(w.map(|t| t.quant), Some(Quant::PerChannel(s)) if s.iter().eq([0.01, 0.02, 0.03, 0.04]) )
    );
    assert_eq!(m.tensor(7).and_then(|t| t.value_f32(3)), Some(7.0));
    assert_eq!(
        m.tensor(0).and_then(|t| t.value_f32(0)),
        Some((0.0 - 9.0) * 0.1)
    );
    assert_eq!(m.tensor(1).and_then(|t| t.value_f32(1)), Some(-0.5));
}
