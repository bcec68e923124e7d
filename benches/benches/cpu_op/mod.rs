//! What every CPU op bench (`gemm.rs`, `conv2d.rs`, ...) does with its cases:
//! one criterion group `cpu/<op>/<shape>` per shape, one function per pass,
//! and after each a line with GFLOP/s and GB/s from the mean time of the
//! measured samples (criterion prints one throughput; the napkin math wants both).
//!
//! Short runs on purpose: 10 samples over about a second each, so a whole
//! `cargo bench -p lasagna-benches` stays at a few minutes on 2 cores.

use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use lasagna_benches::ops::{Bound, Case};
use lasagna_benches::report::throughput;

const SAMPLES: usize = 10;

/// Benchmarks `cases` (all on the CPU backend) in their order.
pub fn run(c: &mut Criterion, cases: Vec<Case<'_>>) {
    let mut cases = cases.into_iter().peekable();
    while let Some(first) = cases.next() {
        let mut g = c.benchmark_group(format!("cpu/{}", first.group()));
        g.sample_size(SAMPLES)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1))
            // Flat: every sample runs the same number of iterations, which
            // criterion recommends for runs of milliseconds.
            .sampling_mode(SamplingMode::Flat);
        let group = first.group();
        one(&mut g, first);
        while let Some(case) = cases.next_if(|c| c.group() == group) {
            one(&mut g, case);
        }
        g.finish();
    }
}

fn one(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, mut case: Case<'_>) {
    g.throughput(match case.bound {
        // Criterion's "elem/s" here are FLOP/s.
        Bound::Fp32 | Bound::Tensor => Throughput::Elements(case.flops),
        Bound::Memory => Throughput::BytesDecimal(case.bytes),
    });
    // (iterations, time) of every call: warm-up first, the measured samples last.
    let mut calls: Vec<(u64, Duration)> = Vec::new();
    let name = format!("cpu/{}/{}", case.group(), case.pass);
    g.bench_function(case.pass, |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                case.run().expect("the op runs at its bench shape");
            }
            let spent = t.elapsed();
            calls.push((iters, spent));
            spent
        })
    });
    let measured = &calls[calls.len().saturating_sub(SAMPLES)..];
    let iters: u64 = measured.iter().map(|c| c.0).sum();
    if iters == 0 {
        // Filtered out: criterion did not run it.
        return;
    }
    let secs = measured.iter().map(|c| c.1.as_secs_f64()).sum::<f64>() / iters as f64;
    println!(
        "{name} ({}): {:.3} ms, {}",
        case.from,
        secs * 1e3,
        throughput(case.flops, case.bytes, secs)
    );
}
