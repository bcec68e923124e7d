//! `kernels-ptx/ptx/bce.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/bce.rs` through `Cpu`'s
//! `LossOps::bce_with_logits`: gradient of the mean loss, stats[0] += summed
//! loss, stats[1] += count of `(x > 0) == (t > 0.5)`).
//!
//! Tolerances (the CPU works in f64 and rounds once; `u = 2^-24`):
//! - grad: `|ptx - cpu| <= 1.5e-7 / n + 3e-7 |cpu|`. `e = exp(-|x|)` is
//!   `ex2.approx` (2 ulp, PTX ISA) of `-|x| log2 e` rounded (and log2 e's own
//!   rounding): a relative error of at most `2.4e-7 + 5e-8 |x|`. The kernel
//!   forms `sigmoid - t` as `((1 - t) - t e) / (1 + e)` (x >= 0) or
//!   `(e (1 - t) - t) / (1 + e)` (x < 0), whose derivative in `e` is
//!   `-1 / (1 + e)^2`, so e's error moves it by `e (2.4e-7 + 5e-8 |x|) /
//!   (1 + e)^2 <= 6e-8` absolute; rounding `1 - t` (inexact only for t < 0.5)
//!   adds at most 2^-25 `max(t, e) / (1 + e)`: together under `1.5e-7`
//!   before the `/ n`. The fma, the division, `rcp(n)`, the product and the
//!   CPU's one f32 cast are 0.5 ulp each of the result: `rel`, ~5 ulp.
//! - stats[0]: per element `max(x, 0) - x t` (one fma, 0.5 ulp of it,
//!   bounded by `u (|x| + 1)` here) plus `ln2 lg2.approx(1 + e)`: 2^-22.6
//!   absolute from lg2 (PTX ISA; the simulator is exact, the hardware is
//!   not), the rounding of `1 + e` and e's error, about 4e-7 in all. Then the
//!   f32 sum (all terms >= 0) over at most
//!   `ceil(n / threads) + 10 + blocks + 2` additions of 2^-24 of the total:
//!   `|ptx - cpu| <= sum_i (4e-7 + u |x_i|) + k u (loss + |stats0|)`.
//! - stats[1]: exact (an integer count per block, added as f32 below 2^24).
//!
//! Performance, asserted on every case: two atomics per block (one per stat,
//! never per element), each input read once, each gradient written once.

mod ptx_common;

use lasagna_kernels::bce::{bce_launch, BCE_WITH_LOGITS, MODULE};
use lasagna_ptx_sim::{Arg, LaunchStats};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::LossOps;
use proptest::prelude::*;
use ptx_common::{compare, download_f32, filled_f32, launch, sim_with, upload_f32, Worst};

const STATS0: [f32; 2] = [1.5, 2.0];
const U: f64 = 1.0 / (1u64 << 24) as f64;

/// What one launch produced next to the reference.
struct Outcome {
    grad: Worst,
    /// (kernel, cpu, bound on |kernel - cpu|).
    loss: (f32, f32, f64),
    correct: (f32, f32),
    stats: LaunchStats,
    blocks: u64,
}

fn run(x: &[f32], t: &[f32]) -> Outcome {
    let n = x.len();
    let l = bce_launch(n).unwrap();
    let mut sim = sim_with(&MODULE);
    let bx = upload_f32(&mut sim, x);
    let bt = upload_f32(&mut sim, t);
    let bg = filled_f32(&mut sim, n, f32::NAN);
    let bs = upload_f32(&mut sim, &STATS0);
    let args = [
        Arg::Ptr(bx),
        Arg::Ptr(bt),
        Arg::Ptr(bg),
        Arg::Ptr(bs),
        Arg::U64(n as u64),
    ];
    let stats = launch(&mut sim, &BCE_WITH_LOGITS, l, &args);
    let grad = download_f32(&mut sim, bg, n);
    let st = download_f32(&mut sim, bs, 2);

    let (mut g_ref, mut st_ref) = (vec![0.0f32; n], STATS0.to_vec());
    Cpu.bce_with_logits(&x.to_vec(), &t.to_vec(), n, &mut g_ref, &mut st_ref)
        .unwrap();
    let loss = (st_ref[0] - STATS0[0]) as f64;
    let per_element: f64 = x.iter().map(|&v| 4e-7 + U * (v as f64).abs()).sum();
    let threads = (l.grid.count() * l.block.count()) as f64;
    let blocks = l.grid.count();
    let k = (n as f64 / threads).ceil() + 10.0 + blocks as f64 + 2.0;
    let bound = per_element + k * U * (loss.abs() + STATS0[0] as f64);
    let nf = n.max(1) as f64;
    Outcome {
        grad: compare(x, &grad, &g_ref, 1.5e-7 / nf, 3e-7),
        loss: (st[0], st_ref[0], bound),
        correct: (st[1], st_ref[1]),
        stats,
        blocks,
    }
}

fn check(x: &[f32], t: &[f32]) -> Result<(), TestCaseError> {
    let n = x.len();
    let o = run(x, t);
    prop_assert!(o.grad.failures == 0, "grad (n {n}): {}", o.grad);
    let (got, want, bound) = o.loss;
    let err = (got as f64 - want as f64).abs();
    prop_assert!(
        err <= bound,
        "stats[0] (n {n}): got {got}, want {want}, |err| {err:.3e} > {bound:.3e}"
    );
    prop_assert_eq!(o.correct.0, o.correct.1, "correct count (n {})", n);
    let s = o.stats;
    prop_assert_eq!(
        s.atomic,
        2 * o.blocks,
        "one atomic per block per stat (n {})",
        n
    );
    prop_assert_eq!(
        (s.global_load, s.global_store),
        (2 * n as u64, n as u64),
        "one read per input, one write per gradient (n {})",
        n
    );
    prop_assert_eq!(
        (s.global_bytes_read, s.global_bytes_written),
        (8 * n as u64 + 4 * s.atomic, 4 * n as u64 + 4 * s.atomic),
        "global bytes (n {})",
        n
    );
    Ok(())
}

/// Sizes around the warp and the block, and a few thousand.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 31, 32, 33, 255, 256, 257, 1000]),
        1usize..20_000,
    ]
}

/// Logits at three scales (to +-100, where exp(-|x|) is subnormal or 0) and
/// exact zeros; targets 0 and 1 (labels) or soft in [0, 1], with 0.5 itself
/// (the count's threshold).
fn pair() -> impl Strategy<Value = (f32, f32)> {
    let x = prop_oneof![
        4 => -4.0f32..4.0,
        2 => -20.0f32..20.0,
        1 => -100.0f32..100.0,
        1 => Just(0.0f32),
    ];
    let t = prop_oneof![
        3 => prop::sample::select(vec![0.0f32, 1.0]),
        2 => 0.0f32..=1.0,
        1 => Just(0.5f32),
    ];
    (x, t)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matches_cpu_with_one_atomic_per_block_per_stat(
        v in size().prop_flat_map(|n| prop::collection::vec(pair(), n)),
    ) {
        let (x, t): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
        check(&x, &t)?;
    }
}

/// The CPU's own extreme case: logits of +-1000 stay finite.
#[test]
fn extreme_logits_stay_finite() {
    check(&[1000.0, -1000.0, 1000.0, -1000.0], &[1.0, 0.0, 0.0, 1.0]).unwrap();
}

/// Past the grid cap (1024 blocks of 256), so threads loop and the atomics
/// stay at 2 x 1024.
#[test]
fn a_grid_stride_size_uses_two_atomics_per_block() {
    let n = 1024 * 256 + 777;
    assert_eq!(
        bce_launch(n).unwrap().grid.x,
        lasagna_kernels::bce::MAX_GRID
    );
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 * 1e-2 - 10.0)
        .collect();
    let t: Vec<f32> = (0..n).map(|i| (i % 2) as f32).collect();
    check(&x, &t).unwrap();
}

/// The worst errors over a few sizes and logit scales (`--nocapture`).
#[test]
fn worst_errors_over_sizes() {
    for (n, scale) in [
        (1usize, 3.0f32),
        (10, 3.0),
        (640, 8.0),
        (8192, 20.0),
        (70_001, 5.0),
    ] {
        let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * scale).collect();
        let t: Vec<f32> = (0..n).map(|i| ((i * 7) % 3) as f32 * 0.5).collect();
        let o = run(&x, &t);
        let (got, want, bound) = o.loss;
        let err = (got as f64 - want as f64).abs();
        println!(
            "bce n {n:>6} scale {scale}: grad {}; stats[0] got {got:e}, want {want:e}, err {err:.3e} ({:.3} of the bound); correct {} / {}",
            o.grad,
            err / bound,
            o.correct.0,
            o.correct.1
        );
        check(&x, &t).unwrap();
    }
}
