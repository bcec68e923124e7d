//! GEMM throughput of the project's PTX kernels on a real GPU, one JSON line
//! per shape (`scripts/gpu-bundle.sh` runs it next to `torch.matmul`):
//! `cuda_bench --ignored --nocapture`. Skips, saying why, without a device
//! (fails instead when `LASAGNA_REQUIRE_CUDA` is set).
#![cfg(feature = "cuda")]

#[path = "../../tests/src/skip.rs"]
mod skip;

use std::time::Instant;

use lasagna_trainer::backend::gpu::{driver::CudaDevice, Gpu};
use lasagna_trainer::backend::{AmpOps, Blas, Gemm, Memory};

/// `(label, m, n, k, trans_a, trans_b)`: squares, then the MLP's training
/// GEMMs at batch 64 (forward NT, input gradient NN, weight gradient TN).
const SHAPES: [(&str, usize, usize, usize, bool, bool); 10] = [
    ("square", 512, 512, 512, false, false),
    ("square", 1024, 1024, 1024, false, false),
    ("square", 2048, 2048, 2048, false, false),
    ("square", 4096, 4096, 4096, false, false),
    ("mlp fc1 forward", 64, 256, 784, false, true),
    ("mlp fc1 dW", 256, 784, 64, true, false),
    ("mlp fc2 forward", 64, 64, 256, false, true),
    ("mlp fc2 dX", 64, 256, 64, false, false),
    ("mlp fc2 dW", 64, 256, 64, true, false),
    ("mlp fc3 forward", 64, 10, 64, false, true),
];

/// The CUDA backend on device 0, or `None` after saying why.
fn gpu() -> Option<Gpu<CudaDevice>> {
    match CudaDevice::new(0) {
        Ok(d) => Some(Gpu::new(d, "cuda:0").expect("kernels load")),
        Err(e) => {
            assert!(
                std::env::var_os("LASAGNA_REQUIRE_CUDA").is_none(),
                "LASAGNA_REQUIRE_CUDA is set but there is no CUDA device ({e})"
            );
            skip::skipped(&format!("no CUDA device ({e})"));
            None
        }
    }
}

/// A device buffer of the CUDA backend.
type Buf = <Gpu<CudaDevice> as Memory>::Buf;

/// Seconds per product of `m x k` 0.5s by `k x n` 0.25s through `run`
/// (one warm-up, then enough repetitions for ~0.2 s at `peak` FLOP/s),
/// after checking the result.
fn time(
    g: &Gpu<CudaDevice>,
    shape: &Gemm,
    peak: f64,
    run: impl Fn(&Gemm, &Buf, &Buf, &mut Buf),
) -> f64 {
    let (m, n, k) = (shape.m, shape.n, shape.k);
    let a = g.upload(&vec![0.5; m * k]).expect("a");
    let b = g.upload(&vec![0.25; k * n]).expect("b");
    let mut c = g.zeros(m * n).expect("c");
    run(shape, &a, &b, &mut c);
    g.sync().expect("sync");
    let flops = 2.0 * (m * n * k) as f64;
    let reps = ((peak * 0.2 / flops) as usize).clamp(3, 2000);
    let t = Instant::now();
    for _ in 0..reps {
        run(shape, &a, &b, &mut c);
    }
    g.sync().expect("sync");
    let secs = t.elapsed().as_secs_f64() / reps as f64;
    let mut check = vec![0.0f32; 1];
    g.read(&c, &mut check).expect("read");
    assert_eq!(check[0], 0.125 * k as f32, "{m}x{n}x{k}: wrong result");
    secs
}

fn shape(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Gemm {
    Gemm {
        m,
        n,
        k,
        trans_a,
        trans_b,
        alpha: 1.0,
        beta: 0.0,
    }
}

#[test]
#[ignore = "GPU benchmark: run with --ignored --nocapture on a machine with a GPU"]
fn gemm_throughput() {
    let Some(g) = gpu() else { return };
    for (label, m, n, k, ta, tb) in SHAPES {
        let s = shape(m, n, k, ta, tb);
        let secs = time(&g, &s, 2e12, |s, a, b, c| g.gemm(s, a, b, c).expect("gemm"));
        println!(
            "{{\"what\": \"lasagna-gemm\", \"label\": \"{label}\", \"m\": {m}, \"n\": {n}, \"k\": {k}, \"trans_a\": {ta}, \"trans_b\": {tb}, \"us\": {:.2}, \"gflops\": {:.1}}}",
            secs * 1e6,
            2.0 * (m * n * k) as f64 / secs / 1e9
        );
    }
}

/// fp16 tensor-core GEMM (`AmpOps::gemm_f16`: A and B converted from f32
/// to fp16 on the device, then `gemm_f16.ptx`) at 1024-8192 square, the
/// sizes the issue compares with `torch.matmul` in fp16. The conversion is
/// included in the time, as `--amp` pays it.
#[test]
#[ignore = "GPU benchmark: run with --ignored --nocapture on a machine with a GPU"]
fn gemm_f16_throughput() {
    let Some(g) = gpu() else { return };
    for n in [1024usize, 2048, 4096, 8192] {
        let s = shape(n, n, n, false, false);
        let secs = time(&g, &s, 2e13, |s, a, b, c| {
            g.gemm_f16(s, a, b, c).expect("gemm_f16")
        });
        println!(
            "{{\"what\": \"lasagna-gemm-f16\", \"m\": {n}, \"n\": {n}, \"k\": {n}, \"us\": {:.2}, \"tflops\": {:.2}}}",
            secs * 1e6,
            2.0 * (n * n * n) as f64 / secs / 1e12
        );
    }
}
