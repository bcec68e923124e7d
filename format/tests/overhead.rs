//! The format's overhead stays within W + 512 + 64 bytes per op for the MNIST
//! MLP and CNN shapes, in every dtype (W = tensor data plus scales).
use lasagna_format::{Model, ModelBuilder, Op, TensorData, Window};

fn linear(b: &mut ModelBuilder, fi: u32, fo: u32, dtype: &str) {
    let n = (fi * fo) as usize;
    let w = vec![0.01f32; n];
    let op = Op::Linear {
        in_features: fi,
        out_features: fo,
        bias: true,
        layout: lasagna_format::WeightLayout::RowMajor,
    };
    b.op(op, tensors(dtype, &[fo, fi], &w, fo));
}

fn tensors(dtype: &str, wdims: &[u32], w: &[f32], out: u32) -> Vec<TensorData> {
    let bias = vec![0.0f32; out as usize];
    match dtype {
        "f16" => vec![TensorData::f16(wdims, w), TensorData::f16(&[out], &bias)],
        "int8" => vec![
            TensorData::i8_per_channel(wdims, &vec![1; w.len()], vec![0.01; out as usize]),
            TensorData::i32(&[out], &vec![0; out as usize]),
        ],
        _ => vec![TensorData::f32(wdims, w), TensorData::f32(&[out], &bias)],
    }
}

fn meta(b: &mut ModelBuilder) {
    b.labels((0..10).map(|d| d.to_string()))
        .meta("lasagna.tool.version", "0.1.0")
        .meta("lasagna.train.test_accuracy", "0.9781")
        .meta("lasagna.train.date", "2026-11-28");
}

fn mlp(dtype: &str) -> Vec<u8> {
    let mut b = ModelBuilder::new(&[1, 28, 28]);
    b.op(Op::Flatten, vec![]);
    linear(&mut b, 784, 256, dtype);
    b.op(Op::Relu, vec![]);
    linear(&mut b, 256, 64, dtype);
    b.op(Op::Relu, vec![]);
    linear(&mut b, 64, 10, dtype);
    meta(&mut b);
    b.build().unwrap_or_default()
}

fn cnn(dtype: &str) -> Vec<u8> {
    let conv = |ic: u16, oc: u16| Op::Conv2d {
        in_channels: ic,
        out_channels: oc,
        groups: 1,
        window: Window {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        },
        bias: true,
    };
    let pool = Op::MaxPool2d {
        window: Window {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [1, 1],
        },
    };
    let mut b = ModelBuilder::new(&[1, 28, 28]);
    for (ic, oc) in [(1u16, 16u16), (16, 32)] {
        let w = vec![0.01f32; oc as usize * ic as usize * 9];
        b.op(
            conv(ic, oc),
            tensors(dtype, &[oc as u32, ic as u32, 3, 3], &w, oc as u32),
        );
        b.op(Op::Relu, vec![]).op(pool, vec![]);
    }
    b.op(Op::Flatten, vec![]);
    linear(&mut b, 32 * 7 * 7, 10, dtype);
    meta(&mut b);
    b.build().unwrap_or_default()
}

#[test]
fn overhead_is_within_w_plus_512_plus_64_per_op() {
    println!(
        "{:<10} {:>4} {:>10} {:>10} {:>9} {:>7}",
        "model", "ops", "W", "file", "overhead", "budget"
    );
    for (name, f) in [("mlp", mlp as fn(&str) -> Vec<u8>), ("cnn", cnn)] {
        for dtype in ["f32", "f16", "int8"] {
            let bytes = f(dtype);
            let m = Model::parse(&bytes);
            assert!(m.is_ok(), "{name} {dtype}: {m:?}");
            let Ok(m) = m else { return };
            let w = m.tensor_bytes();
            let overhead = bytes.len() as u64 - w;
            let budget = 512 + 64 * m.op_count() as u64;
            println!(
                "{:<10} {:>4} {:>10} {:>10} {:>9} {:>7}",
                format!("{name}/{dtype}"),
                m.op_count(),
                w,
                bytes.len(),
                overhead,
                budget
            );
            assert!(
                overhead <= budget,
                "{name} {dtype}: overhead {overhead} > budget {budget}"
            );
        }
    }
}
