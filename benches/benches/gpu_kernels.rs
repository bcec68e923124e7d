//! Every PTX kernel the trainer launches, timed on a real GPU through the
//! trainer's own CUDA backend (`Gpu<CudaDevice>`, feature `cuda`), at the
//! presets' training shapes, plus the f32 GEMM and the fp16 tensor-core GEMM
//! (`gemm_f16`) at 1024-8192 square for the comparison with cuBLAS
//! (`benches/peers/torch_gemm.py`, joined by `benches/peers/gemm_ratio.py`).
//! The cases are `lasagna_benches::ops::all`'s: the same shapes and FLOP and
//! byte counts as the CPU op benches.
//!
//! Per case: one warm-up run, then the repetitions that fill about 50 ms,
//! three times, the fastest kept; the clock stops after the device is
//! synchronized (the backend exposes no CUDA events). Runs are queued
//! back to back on one stream, so the time per run is the kernel's or the
//! launch's, whichever is longer: at training shapes many kernels are
//! launch-bound, and that is what a step pays. Prints a line and a JSON
//! line per case, "% of peak" against the cost model's table (H100 SXM or
//! H200, chosen by the device's name).
//!
//! `cargo bench -p lasagna-benches --features cuda --bench gpu_kernels [FILTER]`
//! (FILTER: a substring of `<op>/<shape>/<pass>`). Under `cargo test` (no
//! `--bench` argument) every case runs once, untimed.
//!
//! Without the `cuda` feature, without a device, or when the driver that
//! answers is LASAGNA's simulator (`kernels-ptx/sim-driver`, an interpreter
//! whose times mean nothing), it prints one line saying why and exits 0; 1
//! when `LASAGNA_REQUIRE_CUDA` is set (the GPU bundle sets it).

/// The variable that turns a skip into a failure (as in the trainer's GPU tests).
const REQUIRE: &str = "LASAGNA_REQUIRE_CUDA";

/// Prints why the benches do not run; the exit status.
fn skip(why: &str) -> i32 {
    println!("GPU benches skipped: {why}");
    if std::env::var_os(REQUIRE).is_some() {
        eprintln!("{REQUIRE} is set: a skip is a failure");
        1
    } else {
        0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let timed = args.iter().any(|a| a == "--bench");
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    std::process::exit(run(timed, &filters));
}

#[cfg(not(feature = "cuda"))]
fn run(_timed: bool, _filters: &[&str]) -> i32 {
    skip(
        "built without the cuda feature; on a GPU machine run \
         cargo bench -p lasagna-benches --features cuda --bench gpu_kernels",
    )
}

#[cfg(feature = "cuda")]
fn run(timed: bool, filters: &[&str]) -> i32 {
    cuda::run(timed, filters)
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::time::Instant;

    use lasagna_benches::ops::{self, Case, Sizes};
    use lasagna_benches::report::{
        json_line, peak_for, peak_of, percent_of_peak, throughput, Peak,
    };
    use lasagna_trainer::backend::gpu::driver::{probe, CudaDevice};
    use lasagna_trainer::backend::gpu::Gpu;
    use lasagna_trainer::backend::Memory;

    use super::skip;

    /// Seconds of repetitions per timed round: long next to the clock and
    /// the synchronization, short enough for ~100 cases in under a minute.
    const ROUND_S: f64 = 0.05;
    const ROUNDS: usize = 3;

    pub fn run(timed: bool, filters: &[&str]) -> i32 {
        // Described before any context is made, so the simulator driver is
        // recognised before it loads the kernels.
        let description = match probe() {
            Ok(d) => d,
            // The driver error says what is missing ("no device (cuInit: ...)").
            Err(e) => return skip(&e.to_string()),
        };
        let gpu_spec = match peak_for(&description) {
            Peak::Simulator => {
                return skip(&format!(
                    "the CUDA driver that answered is LASAGNA's PTX simulator ({description}); \
                     its times are an interpreter's, not a GPU's"
                ))
            }
            Peak::Known(spec) => Some(spec),
            Peak::Unknown => None,
        };
        let g = match CudaDevice::new(0)
            .map_err(|e| e.to_string())
            .and_then(|d| Gpu::new(d, "cuda:0").map_err(|e| e.to_string()))
        {
            Ok(g) => g,
            Err(e) => return skip(&format!("the CUDA device did not open ({e})")),
        };
        match gpu_spec {
            Some(s) => println!(
                "GPU kernel benches on {description}; % of peak against the {} entry of \
                 lasagna_ptx_sim::cost::GPUS ({:.2} TB/s, {:.1} TFLOP/s fp32, {:.1} TFLOP/s fp16 tensor)",
                s.name,
                s.bandwidth / 1e12,
                s.fp32_peak / 1e12,
                s.tensor_peak / 1e12
            ),
            None => println!(
                "GPU kernel benches on {description}; the peak table (lasagna_ptx_sim::cost::GPUS: \
                 H100 SXM, H200) has no entry for it, so no % of peak"
            ),
        }
        let mut cases = match ops::all(&g, &Sizes::gpu()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("GPU benches: building the cases failed: {e}");
                return 1;
            }
        };
        let mut failed = 0;
        for case in cases.iter_mut() {
            let id = format!("cuda/{}/{}", case.group(), case.pass);
            if !filters.is_empty() && !filters.iter().any(|f| id.contains(f)) {
                continue;
            }
            match time(&g, case, timed) {
                Ok(None) => println!("{id}: ran once (untimed: no --bench argument)"),
                Ok(Some(secs)) => {
                    let pct = gpu_spec.map_or_else(String::new, |s| {
                        format!(
                            ", {:.1}% of {} peak",
                            percent_of_peak(case, s, secs),
                            peak_of(s, case.bound).1
                        )
                    });
                    println!(
                        "{id} ({}): {:.2} us, {}{pct}",
                        case.from,
                        secs * 1e6,
                        throughput(case.flops, case.bytes, secs)
                    );
                    println!("{}", json_line(case, &description, gpu_spec, secs));
                }
                Err(e) => {
                    eprintln!("{id}: {e}");
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            eprintln!("GPU benches: {failed} case(s) failed");
            1
        } else {
            0
        }
    }

    /// Seconds per run of `case` (the fastest of [`ROUNDS`]), or `None`
    /// after one untimed run when `timed` is false.
    fn time<M: Memory>(
        g: &M,
        case: &mut Case<'_>,
        timed: bool,
    ) -> lasagna_trainer::error::Result<Option<f64>> {
        // Warm-up: first-launch costs (module JIT already done at load,
        // the GEMM_F16 workspaces' allocation) stay out of the numbers.
        case.run()?;
        g.sync()?;
        if !timed {
            return Ok(None);
        }
        let t = Instant::now();
        case.run()?;
        g.sync()?;
        let one = t.elapsed().as_secs_f64().max(1e-7);
        let reps = ((ROUND_S / one) as usize).clamp(3, 20_000);
        let mut best = f64::INFINITY;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..reps {
                case.run()?;
            }
            g.sync()?;
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        Ok(Some(best))
    }
}
