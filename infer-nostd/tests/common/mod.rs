//! Shared by the integration tests: models described once as a list of
//! layers, built into files with `ModelBuilder` (scratch from
//! `lasagna_infer::scratch_bytes`), run by the engine, and run by a naive
//! f64 reference interpreter written here from PyTorch's definitions.
#![allow(dead_code, clippy::indexing_slicing)]

pub mod reference;
pub mod spec_int8;

use lasagna_format::{ModelBuilder, Op, OpSpec, Plan, Shape, TensorData, ValueType, Window};
use lasagna_infer::{scratch_bytes, Engine, Error};

/// One op with its tensors (values already representable in the storage dtype).
#[derive(Clone, Debug)]
pub struct Layer {
    pub op: Op,
    pub tensors: Vec<Vec<f32>>,
}

/// A model description: input shape and type, and the layers.
#[derive(Clone, Debug)]
pub struct Net {
    pub input: Vec<u32>,
    pub tokens: bool,
    pub layers: Vec<Layer>,
}

/// SplitMix64: a tiny deterministic generator.
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
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

/// Rounds through f16, so a reference sees exactly what an f16 file stores.
pub fn round_f16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// Random tensors for `op` in the format's order; running variances positive.
pub fn tensors_for(op: &Op, rng: &mut Rng) -> Vec<Vec<f32>> {
    (0..op.tensor_count())
        .map(|j| {
            let (name, _, shape) =
                op.tensor_spec(j)
                    .unwrap_or(("", lasagna_format::TensorRole::Bias, Shape::d1(1)));
            let v = rng.vec(shape.numel() as usize);
            if name == "running_var" {
                v.iter().map(|x| x.abs() + 0.1).collect()
            } else {
                v
            }
        })
        .collect()
}

impl Net {
    pub fn new(input: &[u32]) -> Net {
        Net {
            input: input.to_vec(),
            tokens: false,
            layers: Vec::new(),
        }
    }

    /// Appends `op` with random tensors.
    pub fn push(&mut self, op: Op, rng: &mut Rng) -> &mut Net {
        let tensors = tensors_for(&op, rng);
        self.layers.push(Layer { op, tensors });
        self
    }

    /// Every tensor rounded through f16 (for comparing an f16 file against
    /// the reference with the values it really holds).
    pub fn rounded_f16(&self) -> Net {
        let mut n = self.clone();
        for l in &mut n.layers {
            for t in &mut l.tensors {
                *t = round_f16(t);
            }
        }
        n
    }

    /// A builder for this net, with f16 or f32 tensors and the engine's scratch.
    pub fn builder(&self, f16: bool) -> ModelBuilder {
        let mut b = ModelBuilder::new(&self.input);
        if self.tokens {
            b.input_type(ValueType::I32);
        }
        let mut shape = Shape::new(&self.input).unwrap_or_default();
        for l in &self.layers {
            let tensors = l
                .tensors
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let dims = l.op.tensor_spec(j).map(|(_, _, s)| s).unwrap_or_default();
                    if f16 {
                        TensorData::f16(dims.dims(), v)
                    } else {
                        TensorData::f32(dims.dims(), v)
                    }
                })
                .collect();
            b.push(OpSpec {
                op: l.op,
                tensors,
                output: ValueType::F32,
                scratch_bytes: scratch_bytes(&l.op, &shape) as u32,
            });
            shape = l.op.infer_shape(shape).unwrap_or(shape);
        }
        b
    }

    pub fn build(&self, f16: bool) -> Aligned {
        Aligned::new(&self.builder(f16).build().expect("test model builds"))
    }

    /// The same model with every value in its own arena region and scratch
    /// after all of them: nothing runs in place.
    pub fn build_out_of_place(&self, f16: bool) -> Aligned {
        let mut b = self.builder(f16);
        let shapes = b.shapes().expect("shapes");
        let mut offsets = Vec::new();
        let mut end = 0u32;
        for (i, s) in shapes.iter().enumerate() {
            offsets.push(end);
            let _ = i;
            end += (s.numel() as u32 * 4).div_ceil(4) * 4;
        }
        let mut scratch = Vec::new();
        let mut most = 0u32;
        let mut shape = shapes[0];
        for l in &self.layers {
            let need = scratch_bytes(&l.op, &shape) as u32;
            scratch.push(if need == 0 { 0 } else { end });
            most = most.max(need.div_ceil(4) * 4);
            shape = l.op.infer_shape(shape).unwrap_or(shape);
        }
        b.with_plan(Plan {
            arena_bytes: end + most,
            value_offsets: offsets,
            scratch_offsets: scratch,
        });
        Aligned::new(&b.build().expect("out-of-place model builds"))
    }
}

/// A model file copied into 16-byte aligned memory, as `include_model!` gives.
pub struct Aligned {
    words: Vec<u128>,
    len: usize,
}

impl Aligned {
    pub fn new(bytes: &[u8]) -> Aligned {
        let mut words = vec![0u128; bytes.len().div_ceil(16)];
        bytemuck::cast_slice_mut::<u128, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Aligned {
            words,
            len: bytes.len(),
        }
    }
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u128, u8>(&self.words)[..self.len]
    }
    /// The same bytes starting `shift` bytes past an aligned address.
    pub fn shifted(&self, shift: usize) -> (Vec<u128>, usize) {
        let mut words = vec![0u128; (self.len + shift).div_ceil(16)];
        bytemuck::cast_slice_mut::<u128, u8>(&mut words)[shift..shift + self.len]
            .copy_from_slice(self.bytes());
        (words, self.len)
    }
}

/// A 4-byte aligned arena of at least `bytes` bytes.
pub fn arena(bytes: usize) -> Vec<u32> {
    vec![0u32; bytes.div_ceil(4)]
}

/// Runs `x` (f32 values, or ids as f32 for a token model) through the engine.
pub fn run_engine(file: &Aligned, x: &[f32]) -> Result<Vec<f32>, Error> {
    let e = Engine::new(file.bytes())?;
    let mut a = arena(e.arena_bytes());
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut a);
    let out = if e.input_dtype() == lasagna_format::DType::I32 {
        let ids: Vec<i32> = x.iter().map(|&v| v as i32).collect();
        e.run_tokens(bytes, &ids)?
    } else {
        e.run(bytes, x)?
    };
    Ok(out.to_vec())
}

/// Fails with the first element beyond `tol + |want| * tol`.
pub fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: output length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let d = (g as f64 - w).abs();
        assert!(
            d <= tol + w.abs() * tol,
            "{what}: element {i}: engine {g}, reference {w} (|diff| {d:e})"
        );
    }
}

/// A window with the same kernel, stride and padding on both axes.
pub fn square(k: u8, s: u8, p: u8, d: u8) -> Window {
    Window {
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
        dilation: [d, d],
    }
}

/// Recomputes a file's CRC-32 after a test damaged it, so the damage
/// reaches the checks behind the CRC.
pub fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() >= 16 {
        let crc = crc32fast::hash(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    }
}
