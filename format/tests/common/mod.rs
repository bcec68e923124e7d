//! Random valid models for the property tests: a chain of ops that fit the
//! shapes they receive, with random dtypes, quantization, metadata and labels.
#![allow(dead_code)]

use lasagna_format::{
    DType, ModelBuilder, Op, OpSpec, QuantData, Shape, TensorData, TensorRole, ValueType, Window,
};

/// SplitMix64: a tiny deterministic generator, seeded by proptest.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % (hi - lo + 1) as u64) as u32
    }
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

fn tensor(rng: &mut Rng, role: TensorRole, shape: Shape) -> TensorData {
    let n = shape.numel() as usize;
    let dims = shape.dims();
    let vals: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    let q: Vec<i8> = (0..n).map(|_| rng.next() as i8).collect();
    match (role, rng.range(0, 3)) {
        (_, 0) => TensorData::f32(dims, &vals),
        (_, 1) => TensorData::f16(dims, &vals),
        (TensorRole::Weight, 2) => {
            let scales = (0..dims[0]).map(|_| rng.f32().abs() + 1e-3).collect();
            TensorData::i8_per_channel(dims, &q, scales)
        }
        (TensorRole::Weight, _) => TensorData::i8_per_tensor(
            dims,
            &q,
            rng.f32().abs() + 1e-3,
            rng.range(0, 255) as i32 - 128,
        ),
        (TensorRole::Bias, _) => {
            let ints: Vec<i32> = (0..n).map(|_| rng.next() as i32).collect();
            TensorData::i32(dims, &ints)
        }
    }
}

fn window(rng: &mut Rng, h: u32, w: u32, pool: bool) -> Option<Window> {
    let k = [rng.range(1, 3) as u8, rng.range(1, 3) as u8];
    let d = if pool {
        [1, 1]
    } else {
        [rng.range(1, 2) as u8, rng.range(1, 2) as u8]
    };
    let p = if pool {
        [
            rng.range(0, (k[0] / 2) as u32) as u8,
            rng.range(0, (k[1] / 2) as u32) as u8,
        ]
    } else {
        [rng.range(0, 2) as u8, rng.range(0, 2) as u8]
    };
    let win = Window {
        kernel: k,
        stride: [rng.range(1, 2) as u8, rng.range(1, 2) as u8],
        padding: p,
        dilation: d,
    };
    (win.out_len(0, h).is_some() && win.out_len(1, w).is_some()).then_some(win)
}

/// An op that accepts `x`, or an activation if the random choice does not fit.
fn random_op(rng: &mut Rng, x: Shape) -> Op {
    let d = x.dims();
    let activation = |rng: &mut Rng| match rng.range(0, 6) {
        0 => Op::Relu,
        1 => Op::LeakyRelu {
            alpha: rng.f32().abs(),
        },
        2 => Op::Gelu { tanh: rng.coin() },
        3 => Op::Silu,
        4 => Op::Sigmoid,
        5 => Op::Tanh,
        _ => Op::Softmax,
    };
    let candidate = match rng.range(0, 9) {
        0 | 1 => Op::Linear {
            in_features: x.last(),
            out_features: rng.range(1, 12),
            bias: rng.coin(),
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        2 if d.len() == 3 && d[0] <= 8 => {
            let g = rng.pick(&[1u16, d[0] as u16]);
            let out = g * rng.range(1, 3) as u16;
            match window(rng, d[1], d[2], false) {
                Some(window) => Op::Conv2d {
                    in_channels: d[0] as u16,
                    out_channels: out,
                    groups: g,
                    window,
                    bias: rng.coin(),
                },
                None => activation(rng),
            }
        }
        3 if d.len() == 3 => match window(rng, d[1], d[2], true) {
            Some(window) if rng.coin() => Op::MaxPool2d { window },
            Some(window) => Op::AvgPool2d {
                window,
                count_include_pad: rng.coin(),
            },
            None => activation(rng),
        },
        4 if d.len() == 3 => Op::AdaptiveAvgPool2d {
            out_h: rng.range(1, 3) as u16,
            out_w: rng.range(1, 3) as u16,
        },
        5 => Op::BatchNorm {
            features: d[0],
            eps: 1e-5,
        },
        6 => Op::LayerNorm {
            size: x.last(),
            eps: rng.f32().abs() + 1e-6,
        },
        7 if d.len() == 2 => Op::Lstm {
            input_size: d[1],
            hidden_size: rng.range(1, 6),
            layers: rng.range(1, 2) as u8,
            return_sequences: rng.coin(),
            cell_shift: 0,
        },
        8 => Op::Flatten,
        _ => activation(rng),
    };
    if candidate.infer_shape(x).is_ok() {
        candidate
    } else {
        activation(rng)
    }
}

fn value_type(rng: &mut Rng) -> ValueType {
    if rng.coin() {
        ValueType::F32
    } else {
        ValueType::I8 {
            scale: rng.f32().abs() + 1e-4,
            zero_point: rng.range(0, 255) as i32 - 128,
        }
    }
}

/// A random valid model description and its final output shape.
pub fn random_builder(seed: u64) -> ModelBuilder {
    let rng = &mut Rng(seed);
    let (mut b, mut x) = match rng.range(0, 3) {
        0 => {
            let s = Shape::d3(rng.range(1, 4), rng.range(1, 10), rng.range(1, 10));
            (ModelBuilder::new(s.dims()), s)
        }
        1 => (ModelBuilder::new(&[rng.range(1, 40)]), Shape::d1(0)),
        2 => {
            let s = Shape::d2(rng.range(1, 6), rng.range(1, 8));
            (ModelBuilder::new(s.dims()), s)
        }
        _ => (ModelBuilder::new(&[rng.range(1, 8)]), Shape::d1(0)),
    };
    let mut first: Option<Op> = None;
    if x == Shape::d1(0) {
        // Rank-1 input: either a feature vector or token ids for an Embedding.
        let n = b.shapes().map(|s| s[0]).unwrap_or(Shape::d1(1));
        if rng.coin() {
            b.input_type(ValueType::I32);
            first = Some(Op::Embedding {
                num: rng.range(1, 50),
                dim: rng.range(1, 6),
            });
        } else {
            b.input_type(value_type(rng));
        }
        x = n;
    } else {
        b.input_type(value_type(rng));
    }
    b.normalization(rng.f32(), rng.f32().abs() + 0.01);
    let n_ops = rng.range(1, 7);
    for i in 0..n_ops {
        let op = match (i, first) {
            (0, Some(op)) => op,
            _ => random_op(rng, x),
        };
        let tensors = (0..op.tensor_count())
            .filter_map(|j| op.tensor_spec(j))
            .map(|(_, role, shape)| tensor(rng, role, shape))
            .collect();
        b.push(OpSpec {
            op,
            tensors,
            output: value_type(rng),
            scratch_bytes: if rng.coin() { 0 } else { rng.range(1, 64) },
        });
        x = op.infer_shape(x).unwrap_or(x);
    }
    if x.numel() <= 12 && rng.coin() {
        b.labels((0..x.numel()).map(|i| format!("class-{i}")));
    }
    for _ in 0..rng.range(0, 4) {
        let key = format!("test.k{}", rng.range(0, 99));
        let val: String = (0..rng.range(0, 12))
            .map(|_| rng.pick(&['a', 'é', '7', ' ', '→']))
            .collect();
        b.meta(key, val);
    }
    b
}

/// Checks that quantization data round-trips and returns a compact description.
pub fn dtype_of(q: &QuantData, d: DType) -> String {
    format!("{d:?}/{q:?}")
}
