//! The op cases the benches time are real work on both backends: every case
//! runs on the CPU reference, and on the PTX simulator through the CUDA
//! backend, where the launches are recorded to check that the GPU bench
//! covers every kernel `lasagna-kernels` ships (a new kernel without a bench
//! case fails here). Tiny sizes: the simulator is an interpreter.

use std::collections::BTreeSet;

use lasagna_benches::ops::{self, Sizes};
use lasagna_kernels::{
    activation, amp, avgpool2d, batchnorm, bce, blas, clip, conv2d, convert, cross_entropy,
    dropout, embedding, gather, gemm, gemm_f16, layernorm, lstm, maxpool2d, mse, optim, reduce,
    softmax, Kernel,
};
use lasagna_ptx_sim::{Recording, SimOptions, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::gpu::Gpu;
use lasagna_trainer::backend::Memory;

/// Kernels the trainer's backend never launches, so no case can reach them.
const NOT_LAUNCHED: &[(&str, &str)] = &[
    (
        "f16_to_f32",
        "no backend op converts back from fp16 (tests/tests/ptx_convert.rs tests it alone)",
    ),
    (
        "reduce_sum",
        "no backend op launches it; sum_squares uses reduce_sum_squares (tests/tests/ptx_reduce.rs)",
    ),
    (
        "philox4x32_10",
        "the dropout kernels draw inline; the bare generator is tested alone (tests/tests/ptx_dropout.rs)",
    ),
    (
        "gather_batch_step",
        "launched only inside a captured training step (graph replay, trainer/tests/graph_replay.rs); the cases time eager ops",
    ),
];

fn every_kernel() -> BTreeSet<&'static str> {
    let modules: [&[&Kernel]; 22] = [
        activation::ALL,
        amp::ALL,
        avgpool2d::ALL,
        batchnorm::ALL,
        bce::ALL,
        blas::ALL,
        clip::ALL,
        conv2d::ALL,
        convert::ALL,
        cross_entropy::ALL,
        dropout::ALL,
        embedding::ALL,
        gather::ALL,
        gemm::ALL,
        gemm_f16::ALL,
        layernorm::ALL,
        lstm::ALL,
        maxpool2d::ALL,
        mse::ALL,
        optim::ALL,
        reduce::ALL,
        softmax::ALL,
    ];
    assert_eq!(
        modules.len(),
        lasagna_kernels::MODULES.len(),
        "a module was added to lasagna-kernels: list its ALL here"
    );
    modules
        .iter()
        .flat_map(|m| m.iter().map(|k| k.name))
        .collect()
}

#[test]
fn every_case_runs_on_the_cpu_reference() {
    let cpu = Cpu;
    let mut cases = ops::all(&cpu, &Sizes::tiny()).expect("cases build");
    for c in &mut cases {
        c.run()
            .unwrap_or_else(|e| panic!("{}/{}: {e}", c.group(), c.pass));
        assert!(c.bytes > 0, "{}/{}: no bytes counted", c.group(), c.pass);
    }
}

#[test]
fn the_gpu_cases_launch_every_kernel_the_crate_ships_but_the_listed_ones() {
    let g = Gpu::new(
        Recording::new(Simulator::with_options(SimOptions::default())),
        "recording sim",
    )
    .expect("simulator backend");
    let mut cases = ops::all(&g, &Sizes::tiny()).expect("cases build");
    for c in &mut cases {
        c.run()
            .unwrap_or_else(|e| panic!("{}/{}: {e}", c.group(), c.pass));
    }
    g.sync().expect("sync");
    let launched: BTreeSet<String> = g
        .device()
        .expect("device")
        .launches()
        .iter()
        .map(|l| l.kernel.clone())
        .collect();
    let all = every_kernel();
    let missing: Vec<_> = all
        .iter()
        .filter(|k| !launched.contains(**k) && !NOT_LAUNCHED.iter().any(|(n, _)| n == *k))
        .collect();
    assert!(
        missing.is_empty(),
        "kernels no bench case launches: {missing:?}"
    );
    for (k, why) in NOT_LAUNCHED {
        assert!(
            all.contains(k),
            "{k} is no longer a kernel: drop it from NOT_LAUNCHED"
        );
        assert!(
            !launched.contains(*k),
            "{k} is launched now ({why} no longer holds): drop it from NOT_LAUNCHED"
        );
    }
}
