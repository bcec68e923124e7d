//! `lasagna info`: what this build can run on, here.

use lasagna_trainer::error::Result;

/// Prints the build, the CPU and the CUDA device (or why there is none).
/// Always succeeds: "no GPU" is an answer, not an error.
pub fn run() -> Result<()> {
    let features = if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "cpu only"
    };
    println!("lasagna {} ({features})", env!("CARGO_PKG_VERSION"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = lasagna_trainer::backend::cpu::threads::threads();
    println!(
        "cpu:  {cores} cores, {}{}; training uses {threads} thread(s) (--threads, LASAGNA_NUM_THREADS)",
        std::env::consts::ARCH,
        simd()
    );
    println!("cuda: {}", cuda());
    Ok(())
}

/// Which of the CPU kernels' `multiversion` targets this CPU takes.
fn simd() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
    {
        return " (AVX-512 kernels; GEMM: the gemm crate's AVX2+FMA, its AVX-512 needs a nightly compiler)";
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return " (AVX2+FMA kernels)";
    }
    ""
}

#[cfg(feature = "cuda")]
fn cuda() -> String {
    lasagna_trainer::backend::gpu::driver::probe().unwrap_or_else(|e| e.to_string())
}

#[cfg(not(feature = "cuda"))]
fn cuda() -> String {
    "this build has no CUDA support; rebuild with --features cuda".into()
}
