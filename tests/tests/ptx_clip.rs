//! `kernels-ptx/ptx/clip.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/clip.rs` `scale_to_norm`, through `Cpu`'s
//! `OptimOps::clip_by_norm`).
//!
//! Tolerance: none. The coefficient is the CPU's f32 expression with the
//! same correctly rounded operations in the same order (sqrt, + 1e-6, /),
//! and each element gets one multiplication, so the outputs are compared as
//! bits (any NaN matches any NaN: the GPU's NaN payloads are canonical).

mod ptx_common;

use lasagna_kernels::clip::{self as kc, clip_launch};
use lasagna_kernels::reduce::{self as kr, reduce_launch};
use lasagna_ptx_sim::{Arg, Device, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::OptimOps;
use proptest::prelude::*;
use ptx_common::{download_f32, launch, sim_with, upload_f32};

/// Bit-for-bit equality, except that any NaN matches any NaN.
fn same_bits(got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(),
            "[{}] of {}: got {:e}, want {:e}",
            i,
            got.len(),
            g,
            w
        );
    }
    Ok(())
}

/// The CPU's coefficient, to predict the traffic.
fn coef(sumsq: f32, max_norm: f32) -> f32 {
    max_norm / (sumsq.sqrt() + 1e-6)
}

/// Runs clip_by_norm with `sumsq[0]` already in the buffer `bs`; asserts the
/// traffic: every thread with an element reads sumsq[0] once, and x is read
/// and written once, or not at all when the coefficient is at least 1 (the
/// CPU leaves it untouched then too).
fn run(
    sim: &mut Simulator,
    x: &[f32],
    bs: lasagna_ptx_sim::BufId,
    max_norm: f32,
    sumsq: f32,
) -> Vec<f32> {
    let n = x.len();
    let l = clip_launch(n).unwrap();
    let bx = upload_f32(sim, x);
    let args = [
        Arg::Ptr(bx),
        Arg::Ptr(bs),
        Arg::U64(n as u64),
        Arg::F32(max_norm),
    ];
    let st = launch(sim, &kc::CLIP_BY_NORM, l, &args);
    let threads = (n as u64).min(l.grid.count() * l.block.count());
    let c = coef(sumsq, max_norm);
    let touched = if c < 1.0 || c.is_nan() { n as u64 } else { 0 };
    assert_eq!(
        (
            st.global_load,
            st.global_store,
            st.atomic,
            st.global_bytes_read,
            st.global_bytes_written
        ),
        (
            threads + touched,
            touched,
            0,
            4 * (threads + touched),
            4 * touched
        ),
        "clip_by_norm, n {n}, coef {c:e}: global (loads, stores, atomics, bytes read, written)"
    );
    download_f32(sim, bx, n)
}

fn check(x: &[f32], sumsq: f32, max_norm: f32) -> Result<(), TestCaseError> {
    let mut sim = sim_with(&kc::MODULE);
    let bs = upload_f32(&mut sim, &[sumsq]);
    let got = run(&mut sim, x, bs, max_norm, sumsq);
    let mut want = x.to_vec();
    Cpu.clip_by_norm(&mut want, x.len(), &vec![sumsq], max_norm)
        .unwrap();
    same_bits(&got, &want)
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 31, 32, 33, 255, 256, 257, 511]),
        1usize..3000,
    ]
}

/// Squared norms around max_norm^2 (so both branches run), tiny, huge and
/// non-finite ones.
fn sumsq() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => 0.0f32..10.0,
        2 => 0.0f32..1e6,
        1 => prop::sample::select(vec![0.0f32, 1e-30, 1e-14, 1.0, 1e38, f32::MAX, f32::INFINITY, f32::NAN, -1.0]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn clip_by_norm_is_bit_exact_with_the_cpu(
        x in size().prop_flat_map(|n| prop::collection::vec(
            prop_oneof![4 => -10.0f32..10.0, 1 => any::<u32>().prop_map(f32::from_bits)], n)),
        sumsq in sumsq(),
        max_norm in prop_oneof![3 => 0.1f32..5.0, 1 => prop::sample::select(vec![0.0f32, 1.0, 1e-6, 3e-7, 1e30])],
    ) {
        check(&x, sumsq, max_norm)?;
    }
}

/// The coefficient's edge: squared norms a few ulp either side of
/// `(max_norm - 1e-6)^2`, where `coef` crosses 1, take both branches (scaled
/// and untouched) exactly where the CPU does; a zero or tiny norm makes the
/// 1e-6 the whole denominator.
#[test]
fn coefficient_at_one_is_handled_as_the_cpu() {
    let x: Vec<f32> = (0..300).map(|i| i as f32 * 0.37 - 50.0).collect();
    for max_norm in [1.0f32, 3.0, 0.5] {
        let edge = ((max_norm as f64 - 1e-6) * (max_norm as f64 - 1e-6)) as f32;
        let mut seen = [false; 2];
        for k in -40i32..=40 {
            let sumsq = f32::from_bits((edge.to_bits() as i32 + k) as u32);
            seen[usize::from(coef(sumsq, max_norm) < 1.0)] = true;
            check(&x, sumsq, max_norm).unwrap();
        }
        assert_eq!(seen, [true, true], "max_norm {max_norm}: both branches");
    }
    // A zero or tiny norm, where the 1e-6 is the whole denominator.
    for sumsq in [0.0f32, 1e-14, 1e-13] {
        check(&x, sumsq, 3e-7).unwrap();
    }
}

/// The journey the backend runs: reduce_sum_squares into a device buffer,
/// then clip_by_norm reading that same buffer, with no host read between.
/// Given the norm the device computed, the clip matches the CPU bit for bit.
#[test]
fn clipping_reads_the_norm_reduce_left_on_the_device() {
    let n = 5000;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 * 1e-2 - 10.0)
        .collect();
    let mut sim = sim_with(&kc::MODULE);
    sim.load_module(kr::MODULE.ptx).unwrap();
    let bx = upload_f32(&mut sim, &x);
    let bs = upload_f32(&mut sim, &[0.0]);
    launch(
        &mut sim,
        &kr::REDUCE_SUM_SQUARES,
        reduce_launch(n).unwrap(),
        &[Arg::Ptr(bx), Arg::Ptr(bs), Arg::U64(n as u64)],
    );
    let max_norm = 1.0;
    let l = clip_launch(n).unwrap();
    let args = [
        Arg::Ptr(bx),
        Arg::Ptr(bs),
        Arg::U64(n as u64),
        Arg::F32(max_norm),
    ];
    launch(&mut sim, &kc::CLIP_BY_NORM, l, &args);
    let got = download_f32(&mut sim, bx, n);
    let sumsq = download_f32(&mut sim, bs, 1);
    let mut cpu_sumsq = vec![0.0];
    Cpu.sum_squares(&x, n, &mut cpu_sumsq).unwrap();
    let rel = ((sumsq[0] - cpu_sumsq[0]) / cpu_sumsq[0]).abs();
    assert!(
        rel < 1e-5,
        "device sumsq {} vs cpu {}",
        sumsq[0],
        cpu_sumsq[0]
    );
    let mut want = x.clone();
    Cpu.clip_by_norm(&mut want, n, &sumsq, max_norm).unwrap();
    same_bits(&got, &want).unwrap();
    let norm: f64 = got
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>()
        .sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "clipped norm {norm}");
}
