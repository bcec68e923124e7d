//! The op benchmarks, written once over the trainer's [`Backend`] trait: the
//! CPU criterion benches (`benches/benches/<op>.rs`) and the GPU kernel bench
//! (`benches/benches/gpu_kernels.rs`) run the same [`Case`]s, so a shape or a
//! FLOP count is stated in one place.
//!
//! Shapes are the presets' training shapes (`trainer/presets/*.toml`), at the
//! batch [`Sizes::batch`] (64 in the presets; tests use a tiny one so the PTX
//! simulator can run every case). Each op file builds its cases: buffers are
//! allocated and filled once, and [`Case::run`] only calls the op.
//!
//! FLOPs and bytes are napkin math, stated next to each case: FLOPs count a
//! multiply-add as 2; bytes count every tensor the op must read or write once
//! (a lower bound: scratch traffic such as im2col's column matrix, and
//! re-reads a kernel makes, are not counted). Throughput derived from them
//! is therefore "useful" throughput, comparable between backends.

pub mod activation;
pub mod amp;
pub mod avgpool2d;
pub mod batchnorm;
pub mod blas;
pub mod conv2d;
pub mod data;
pub mod gemm;
pub mod loss;
pub mod lstm;
pub mod maxpool2d;
pub mod norm;
pub mod optim;

use lasagna_trainer::backend::Backend;
use lasagna_trainer::error::Result;

/// Sizes of one benchmark run.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Samples per batch (the presets train at 64).
    pub batch: usize,
    /// Edges of the square GEMMs (the issue compares 1024-8192 with cuBLAS).
    pub squares: Vec<usize>,
    /// Rows of the device dataset the gathers read (MNIST's training set has 60,000).
    pub dataset_rows: usize,
}

impl Sizes {
    /// The presets' training shapes, with no square GEMMs.
    pub fn training() -> Sizes {
        Sizes {
            batch: 64,
            squares: Vec::new(),
            dataset_rows: 60_000,
        }
    }

    /// Training shapes plus the square GEMMs the GPU bench compares with cuBLAS.
    pub fn gpu() -> Sizes {
        Sizes {
            squares: vec![1024, 2048, 4096, 8192],
            ..Sizes::training()
        }
    }

    /// Shapes small enough for the PTX simulator (tests).
    pub fn tiny() -> Sizes {
        Sizes {
            batch: 2,
            squares: vec![64],
            dataset_rows: 16,
        }
    }
}

/// What bounds an op on paper: which peak its "% of peak" is taken against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// FP32 arithmetic (GEMM, convolution).
    Fp32,
    /// FP16 tensor cores with f32 accumulation (`gemm_f16`).
    Tensor,
    /// Memory bandwidth (element-wise ops, reductions, pooling).
    Memory,
}

/// One op at one shape, ready to run.
pub struct Case<'a> {
    /// The op's name, as everywhere in the tree (`conv2d`, `maxpool2d`).
    pub op: &'static str,
    /// The shape, for the `<backend>/<op>/<shape>` group name.
    pub shape: String,
    /// Which pass or variant (`forward`, `backward`, `nt`, ...).
    pub pass: &'static str,
    /// Where the shape comes from (`mlp fc1`, `cnn conv2`, `square`).
    pub from: &'static str,
    /// Element type of the op's arithmetic (`f32`, or `f16` for tensor-core GEMM).
    pub dtype: &'static str,
    /// GEMM dimensions `[m, n, k]`, for joining with cuBLAS's numbers.
    pub mnk: Option<[usize; 3]>,
    /// Floating-point operations of one run.
    pub flops: u64,
    /// Bytes one run must move at least.
    pub bytes: u64,
    /// The peak it is measured against.
    pub bound: Bound,
    run: Box<dyn FnMut() -> Result<()> + 'a>,
}

impl<'a> Case<'a> {
    /// A case whose every run calls `run`.
    pub fn new(
        op: &'static str,
        shape: String,
        pass: &'static str,
        from: &'static str,
        (flops, bytes, bound): (u64, u64, Bound),
        run: impl FnMut() -> Result<()> + 'a,
    ) -> Case<'a> {
        Case {
            op,
            shape,
            pass,
            from,
            dtype: "f32",
            mnk: None,
            flops,
            bytes,
            bound,
            run: Box::new(run),
        }
    }

    /// Runs the op once (queues it, on a GPU: the caller synchronizes).
    pub fn run(&mut self) -> Result<()> {
        (self.run)()
    }

    /// `<op>/<shape>`, the group name without the backend.
    pub fn group(&self) -> String {
        format!("{}/{}", self.op, self.shape)
    }
}

/// Every case of every op, for the GPU bench and the coverage test.
pub fn all<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let mut out = gemm::cases(b, s)?;
    out.extend(amp::cases(b, s)?);
    out.extend(conv2d::cases(b, s)?);
    out.extend(batchnorm::cases(b, s)?);
    out.extend(maxpool2d::cases(b, s)?);
    out.extend(avgpool2d::cases(b, s)?);
    out.extend(lstm::cases(b, s)?);
    out.extend(activation::cases(b, s)?);
    out.extend(loss::cases(b, s)?);
    out.extend(norm::cases(b, s)?);
    out.extend(optim::cases(b, s)?);
    out.extend(data::cases(b, s)?);
    out.extend(blas::cases(b, s)?);
    Ok(out)
}

/// `len` deterministic values in about [-1, 1] (no RNG: the same inputs on
/// every backend and run; varied, so no op takes a shortcut on constants).
pub fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i.wrapping_mul(31).wrapping_add(salt * 17)) % 199) as f32 / 99.0 - 1.0)
        .collect()
}

/// A buffer of [`values`] on `b`.
pub fn buf<B: Backend>(b: &B, len: usize, salt: usize) -> Result<B::Buf> {
    b.upload(&values(len, salt))
}

/// Bytes of `elements` f32 (or u32) values.
pub const fn f32s(elements: usize) -> u64 {
    elements as u64 * 4
}
