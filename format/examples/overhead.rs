//! Prints the format's overhead (file bytes minus raw tensor bytes W: data
//! plus quantization scales) for the
//! MNIST MLP in f32, f16 and int8, against the budget W + 512 + 64 * ops.
//!
//! `cargo run -p lasagna-format --example overhead`
use lasagna_format::{Model, ModelBuilder, Op, TensorData};

fn mlp(dtype: &str) -> Vec<u8> {
    let mut b = ModelBuilder::new(&[1, 28, 28]);
    b.normalization(0.1307, 0.3081).op(Op::Flatten, vec![]);
    let dims = [(784u32, 256u32), (256, 64), (64, 10)];
    for (i, &(fi, fo)) in dims.iter().enumerate() {
        let n = (fi * fo) as usize;
        let w: Vec<f32> = (0..n).map(|k| ((k % 13) as f32 - 6.0) * 0.01).collect();
        let op = Op::Linear {
            in_features: fi,
            out_features: fo,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        };
        let tensors = match dtype {
            "f16" => vec![
                TensorData::f16(&[fo, fi], &w),
                TensorData::f16(&[fo], &vec![0.0; fo as usize]),
            ],
            "int8" => vec![
                TensorData::i8_per_channel(&[fo, fi], &vec![3; n], vec![0.01; fo as usize]),
                TensorData::i32(&[fo], &vec![0; fo as usize]),
            ],
            _ => vec![
                TensorData::f32(&[fo, fi], &w),
                TensorData::f32(&[fo], &vec![0.0; fo as usize]),
            ],
        };
        b.op(op, tensors);
        if i + 1 < dims.len() {
            b.op(Op::Relu, vec![]);
        }
    }
    b.labels((0..10).map(|d| d.to_string()))
        .meta("lasagna.tool.version", env!("CARGO_PKG_VERSION"))
        .meta("lasagna.train.test_accuracy", "0.9781")
        .meta("lasagna.train.date", "2026-11-28");
    match b.build() {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("cannot build the sample model: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    println!(
        "{:<6} {:>4} {:>10} {:>10} {:>9} {:>9}",
        "dtype", "ops", "tensors W", "file", "overhead", "budget"
    );
    for dtype in ["f32", "f16", "int8"] {
        let bytes = mlp(dtype);
        let Ok(m) = Model::parse(&bytes) else {
            eprintln!("the sample model does not read back");
            std::process::exit(1);
        };
        let w = m.tensor_bytes();
        let budget = 512 + 64 * m.op_count() as u64;
        println!(
            "{:<6} {:>4} {:>10} {:>10} {:>9} {:>9}",
            dtype,
            m.op_count(),
            w,
            bytes.len(),
            bytes.len() as u64 - w,
            budget
        );
    }
}
