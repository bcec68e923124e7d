//! Criterion benchmarks live in `benches/`; run them with `cargo bench -p lasagna-benches`.
//! This library holds what the benchmarks share: model fixtures (here), the
//! op cases written once over the trainer's backend trait ([`ops`]: the CPU
//! op benches and the GPU kernel bench run the same shapes) and the GPU
//! report ([`report`]: peaks, JSON lines).

pub mod ops;
pub mod report;

use lasagna_format::{ModelBuilder, Op, TensorData, Window};

/// The 784-256-64-10 MNIST MLP with deterministic f32 weights, as a model file.
pub fn mnist_mlp_f32() -> Vec<u8> {
    mnist_mlp(false)
}

/// The same MLP with f16 weights.
pub fn mnist_mlp_f16() -> Vec<u8> {
    mnist_mlp(true)
}

/// The `cnn` preset as deployed (BatchNorm folded into the convolutions):
/// three conv(3x3, pad 1)-ReLU-maxpool(2) blocks of 16, 32 and 64
/// channels, then Linear 576 -> 10, with deterministic f32 weights.
pub fn mnist_cnn_f32() -> Vec<u8> {
    let mut b = ModelBuilder::new(&[1, 28, 28]);
    b.normalization(0.1307, 0.3081);
    let det = |n: u32, salt: u32| -> Vec<f32> {
        (0..n)
            .map(|k| (((k * 31 + salt) % 97) as f32 - 48.0) / 500.0)
            .collect()
    };
    let mut cin = 1u16;
    for (i, cout) in [16u16, 32, 64].into_iter().enumerate() {
        let window = Window {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        let n = u32::from(cout) * u32::from(cin) * 9;
        b.op(
            Op::Conv2d {
                in_channels: cin,
                out_channels: cout,
                groups: 1,
                window,
                bias: true,
            },
            vec![
                TensorData::f32(&[cout.into(), cin.into(), 3, 3], &det(n, i as u32)),
                TensorData::f32(&[cout.into()], &det(cout.into(), 7)),
            ],
        )
        .op(Op::Relu, vec![])
        .op(
            Op::MaxPool2d {
                window: Window {
                    kernel: [2, 2],
                    stride: [2, 2],
                    padding: [0, 0],
                    dilation: [1, 1],
                },
            },
            vec![],
        );
        cin = cout;
    }
    b.op(Op::Flatten, vec![]).op(
        Op::Linear {
            in_features: 576,
            out_features: 10,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        vec![
            TensorData::f32(&[10, 576], &det(5760, 3)),
            TensorData::f32(&[10], &det(10, 5)),
        ],
    );
    b.labels((0..10).map(|d| d.to_string()));
    b.build().unwrap_or_default()
}

/// `f32_file` quantized to int8 by the exporter (`lasagna export --quantize
/// int8`), calibrated on 64 deterministic images in the normalized MNIST
/// range. Weights are synthetic, so only the timing means anything.
pub fn int8_of(f32_file: &[u8]) -> Vec<u8> {
    let x: Vec<f32> = (0..64 * 784)
        .map(|k| ((k * 7 % 256) as f32 / 255.0 - 0.1307) / 0.3081)
        .collect();
    lasagna_trainer::data::Dataset::new(x, vec![0; 64], vec![1, 28, 28], 10)
        .and_then(|calib| lasagna_trainer::quantize::deploy_int8(f32_file, &calib))
        .map(|(bytes, _)| bytes)
        .unwrap_or_default()
}

fn mnist_mlp(f16: bool) -> Vec<u8> {
    let mut b = ModelBuilder::new(&[1, 28, 28]);
    b.normalization(0.1307, 0.3081).op(Op::Flatten, vec![]);
    let dims = [(784u32, 256u32), (256, 64), (64, 10)];
    for (i, &(fan_in, fan_out)) in dims.iter().enumerate() {
        let w: Vec<f32> = (0..fan_in * fan_out)
            .map(|k| ((k % 97) as f32 - 48.0) / 1000.0)
            .collect();
        let bias = vec![0.01; fan_out as usize];
        b.op(
            Op::Linear {
                in_features: fan_in,
                out_features: fan_out,
                bias: true,
                layout: lasagna_format::WeightLayout::RowMajor,
            },
            if f16 {
                vec![
                    TensorData::f16(&[fan_out, fan_in], &w),
                    TensorData::f16(&[fan_out], &bias),
                ]
            } else {
                vec![
                    TensorData::f32(&[fan_out, fan_in], &w),
                    TensorData::f32(&[fan_out], &bias),
                ]
            },
        );
        if i + 1 < dims.len() {
            b.op(Op::Relu, vec![]);
        }
    }
    b.labels((0..10).map(|d| d.to_string()));
    // The fixture is valid by construction; an empty file would fail the bench loudly.
    b.build().unwrap_or_default()
}
