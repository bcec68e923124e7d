//! The Cortex-M4 int8 kernels on the emulated device, against the host
//! engine, bit for bit (`lasagna deploy` fails when an output differs):
//! models built here so that every `global_asm!` loop and every kernel
//! layout runs on the device, whatever the committed models happen to
//! use. The host tests run the same loops with portable lane functions;
//! these run the real instructions.
//!
//! - a CNN whose convolutions take the rows kernel (`dsp::dot5_run`), the
//!   patches kernel with two widened patches (`dsp::dot2x2_all`, an odd
//!   channel count and an odd position count, stride 2, padding borders)
//!   and the bytes kernel (`kg % 4 != 0`), with the ReLU that is skipped
//!   and the two-word max-pool (`dsp::max8`);
//! - an LSTM whose gate rows take `dsp::dot3_wide` three at a time and a
//!   remainder row.
//!
//! Skipped, saying why, when `qemu-system-arm` is missing; a failure under
//! `CI=true` or `LASAGNA_REQUIRE_QEMU` (CI installs it).

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_format::{ModelBuilder, Op, OpSpec, Shape, TensorData, ValueType, Window};
use skip::have_qemu;
use std::path::PathBuf;
use std::process::Command;

/// Deterministic bytes (xorshift), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn i8s(&mut self, n: u32) -> Vec<i8> {
        (0..n).map(|_| (self.next() % 255) as i8).collect()
    }

    fn i32s(&mut self, n: u32, span: u64) -> Vec<i32> {
        (0..n)
            .map(|_| (self.next() % (2 * span + 1)) as i32 - span as i32)
            .collect()
    }
}

fn q(scale: f32, zero_point: i32) -> ValueType {
    ValueType::I8 { scale, zero_point }
}

fn square(k: u8, s: u8, p: u8) -> Window {
    Window {
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        dilation: [1, 1],
    }
}

/// Appends `op` with its tensors and output quantization, planning the
/// scratch the exporter plans, and advances `shape` to its output.
fn push(
    b: &mut ModelBuilder,
    shape: &mut Shape,
    op: Op,
    tensors: Vec<TensorData>,
    output: ValueType,
) {
    b.push(OpSpec {
        op,
        tensors,
        output,
        scratch_bytes: lasagna_infer::scratch_bytes_int8(&op, shape) as u32,
    });
    *shape = op.infer_shape(*shape).expect("a valid shape");
}

fn weights(rng: &mut Rng, dims: &[u32], scale: f32) -> TensorData {
    let rows = dims[0];
    let n: u32 = dims.iter().product();
    let scales = (0..rows).map(|r| scale * (1.0 + 0.05 * r as f32)).collect();
    TensorData::i8_per_channel(dims, &rng.i8s(n), scales)
}

fn conv(rng: &mut Rng, cin: u16, cout: u16, window: Window, scale: f32) -> (Op, Vec<TensorData>) {
    let op = Op::Conv2d {
        in_channels: cin,
        out_channels: cout,
        groups: 1,
        window,
        bias: true,
    };
    let [kh, kw] = window.kernel.map(u32::from);
    let w = weights(rng, &[u32::from(cout), u32::from(cin), kh, kw], scale);
    let bias = TensorData::i32(&[u32::from(cout)], &rng.i32s(u32::from(cout), 2000));
    (op, vec![w, bias])
}

fn deploy(name: &str, model: Vec<u8>) {
    let file = std::env::temp_dir().join(format!(
        "lasagna-deploy-kernels-{}-{name}.lsn",
        std::process::id()
    ));
    std::fs::write(&file, model).expect("write the model");
    let o = Command::new(env!("CARGO_BIN_EXE_lasagna"))
        .args([
            "deploy",
            "--board",
            "qemu-m4",
            "--images",
            "50",
            "--model-file",
        ])
        .arg(&file)
        .output()
        .expect("run lasagna");
    let _ = std::fs::remove_file(PathBuf::from(&file));
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{name}: {out}\n{err}");
    assert!(
        out.contains(
            "host check  predictions identical on 50/50 images; int8 outputs bit-identical"
        ),
        "{name}: {out}"
    );
}

#[test]
fn every_int8_conv_kernel_and_the_max_pool_match_the_host_on_the_m4() {
    if !have_qemu() {
        return;
    }
    let rng = &mut Rng(0x9e37_79b9_7f4a_7c15);
    let mut b = ModelBuilder::new(&[1, 28, 28]);
    // MNIST pixels as levels p - 128 (FORMAT.md 6.1).
    b.input_type(q(1.0 / 255.0, -128));
    let mut s = Shape::d3(1, 28, 28);
    // Rows kernel: one input channel, 3 x 3, padding 1.
    let (op, t) = conv(rng, 1, 8, square(3, 1, 1), 0.004);
    push(&mut b, &mut s, op, t, q(0.05, -128));
    // Zero point -128: the identity, skipped.
    push(&mut b, &mut s, Op::Relu, vec![], q(0.05, -128));
    // 2 x 2 max-pool over rows of 28: three two-word steps and a rest.
    push(
        &mut b,
        &mut s,
        Op::MaxPool2d {
            window: square(2, 2, 0),
        },
        vec![],
        q(0.05, -128),
    );
    // Patches kernel: kg = 72, 7 channels (odd), stride 2 on 14 x 14:
    // 7 x 7 = 49 positions (odd), borders on every side.
    let (op, t) = conv(rng, 8, 7, square(3, 2, 1), 0.003);
    push(&mut b, &mut s, op, t, q(0.08, -10));
    // A ReLU that is not the identity (zero point inside the range).
    push(&mut b, &mut s, Op::Relu, vec![], q(0.08, -10));
    // Bytes kernel: kg = 63.
    let (op, t) = conv(rng, 7, 6, square(3, 1, 1), 0.003);
    push(&mut b, &mut s, op, t, q(0.1, 5));
    push(&mut b, &mut s, Op::Flatten, vec![], q(0.1, 5));
    let linear = Op::Linear {
        in_features: 294,
        out_features: 10,
        bias: true,
        layout: lasagna_format::WeightLayout::RowMajor,
    };
    let t = vec![
        weights(rng, &[10, 294], 0.002),
        TensorData::i32(&[10], &rng.i32s(10, 500)),
    ];
    push(&mut b, &mut s, linear, t, q(0.2, 0));
    b.labels((0..10).map(|d| d.to_string()));
    deploy("cnn", b.build().expect("a valid model"));
}

#[test]
fn the_int8_lstm_gate_sums_match_the_host_on_the_m4() {
    if !have_qemu() {
        return;
    }
    let rng = &mut Rng(0x2545_f491_4f6c_dd1d);
    let (steps, inputs, hidden) = (28u32, 28u32, 16u32);
    let mut b = ModelBuilder::new(&[steps, inputs]);
    b.input_type(q(1.0 / 255.0, -128));
    let mut s = Shape::d2(steps, inputs);
    let lstm = Op::Lstm {
        input_size: inputs,
        hidden_size: hidden,
        layers: 1,
        return_sequences: false,
        cell_shift: 11,
    };
    // 64 gate rows: 21 passes of three and a remainder of one.
    let t = vec![
        weights(rng, &[4 * hidden, inputs], 0.0005),
        weights(rng, &[4 * hidden, hidden], 0.002),
        TensorData::i32(&[4 * hidden], &rng.i32s(4 * hidden, 3000)),
        TensorData::i32(&[4 * hidden], &rng.i32s(4 * hidden, 3000)),
    ];
    push(&mut b, &mut s, lstm, t, q(1.0 / 128.0, 0));
    let linear = Op::Linear {
        in_features: hidden,
        out_features: 10,
        bias: true,
        layout: lasagna_format::WeightLayout::RowMajor,
    };
    let t = vec![
        weights(rng, &[10, hidden], 0.01),
        TensorData::i32(&[10], &rng.i32s(10, 200)),
    ];
    push(&mut b, &mut s, linear, t, q(0.1, 0));
    b.labels((0..10).map(|d| d.to_string()));
    deploy("lstm", b.build().expect("a valid model"));
}
