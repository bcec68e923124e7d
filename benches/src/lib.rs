//! Criterion benchmarks live in `benches/`; run them with `cargo bench -p lasagna-benches`.
//! This library only holds model fixtures the benchmarks share.

use lasagna_format::{ModelBuilder, Op, TensorData};

/// The 784-256-64-10 MNIST MLP with deterministic f32 weights, as a model file.
pub fn mnist_mlp_f32() -> Vec<u8> {
    mnist_mlp(false)
}

/// The same MLP with f16 weights.
pub fn mnist_mlp_f16() -> Vec<u8> {
    mnist_mlp(true)
}

/// A copy of `bytes` in a 16-byte-aligned buffer (what `include_model!`
/// gives a device), so the engine can borrow the weights in place.
pub fn aligned(bytes: &[u8]) -> Vec<u128> {
    let mut v = vec![0u128; bytes.len().div_ceil(16)];
    bytemuck::cast_slice_mut::<u128, u8>(&mut v)[..bytes.len()].copy_from_slice(bytes);
    v
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
