//! `kernels-ptx/ptx/mse.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/mse.rs` through `Cpu`'s `LossOps::mse`, which
//! adds the batch's SUMMED squared error to `stats[0]` and writes the
//! gradient of the MEAN).
//!
//! Tolerances:
//! - grad: none (bit-exact). The kernel performs the CPU's f32 operations:
//!   `d = pred - target`, `scale = 2 / (n as f32)`, `scale * d`, all `.rn`.
//! - stats[0]: the CPU squares the same f32 `d` in f64 and adds its sum,
//!   cast to f32, to `stats[0]`. The kernel adds `d^2` by fma into a per-thread
//!   f32 partial (`ceil(n / threads)` terms), then 5 + 5 butterfly steps,
//!   then one f32 atomic per block onto `stats[0]`. All terms are >= 0, so
//!   each addition errs by at most 2^-24 of the running total and
//!   `|ptx - cpu| <= (ceil(n / threads) + 10 + blocks + 2) 2^-24 (sum + |stats0|)`
//!   (the +2: the CPU's f32 cast and its own add). The test uses that bound.
//! - stats[1]: untouched, as the CPU's.
//!
//! Performance, asserted on every case: one atomic per block (never per
//! element), each input element read once and each gradient written once.

mod ptx_common;

use lasagna_kernels::mse::{mse_launch, MODULE, MSE};
use lasagna_ptx_sim::{Arg, LaunchStats};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::LossOps;
use proptest::prelude::*;
use ptx_common::{compare, download_f32, filled_f32, launch, sim_with, upload_f32, Worst};

const STATS0: [f32; 2] = [1.5, 2.0];

/// What one launch produced next to the reference.
struct Outcome {
    grad: Worst,
    /// (kernel, cpu, bound on |kernel - cpu|).
    loss: (f32, f32, f64),
    stats1: (f32, f32),
    stats: LaunchStats,
    blocks: u64,
}

fn run(pred: &[f32], target: &[f32]) -> Outcome {
    let n = pred.len();
    let l = mse_launch(n).unwrap();
    let mut sim = sim_with(&MODULE);
    let bp = upload_f32(&mut sim, pred);
    let bt = upload_f32(&mut sim, target);
    let bg = filled_f32(&mut sim, n, f32::NAN);
    let bs = upload_f32(&mut sim, &STATS0);
    let args = [
        Arg::Ptr(bp),
        Arg::Ptr(bt),
        Arg::Ptr(bg),
        Arg::Ptr(bs),
        Arg::U64(n as u64),
    ];
    let stats = launch(&mut sim, &MSE, l, &args);
    let grad = download_f32(&mut sim, bg, n);
    let st = download_f32(&mut sim, bs, 2);

    let (mut g_ref, mut st_ref) = (vec![0.0f32; n], STATS0.to_vec());
    Cpu.mse(&pred.to_vec(), &target.to_vec(), n, &mut g_ref, &mut st_ref)
        .unwrap();
    let sum: f64 = pred
        .iter()
        .zip(target)
        .map(|(&p, &t)| ((p - t) as f64).powi(2))
        .sum();
    let threads = (l.grid.count() * l.block.count()) as f64;
    let blocks = l.grid.count();
    let terms = (n as f64 / threads).ceil() + 10.0 + blocks as f64 + 2.0;
    let bound = terms * 2f64.powi(-24) * (sum + STATS0[0] as f64);
    Outcome {
        grad: compare(pred, &grad, &g_ref, 0.0, 0.0),
        loss: (st[0], st_ref[0], bound),
        stats1: (st[1], st_ref[1]),
        stats,
        blocks,
    }
}

fn check(pred: &[f32], target: &[f32]) -> Result<(), TestCaseError> {
    let n = pred.len();
    let o = run(pred, target);
    prop_assert!(o.grad.failures == 0, "grad (n {n}): {}", o.grad);
    let (got, want, bound) = o.loss;
    let err = (got as f64 - want as f64).abs();
    prop_assert!(
        err <= bound,
        "stats[0] (n {n}): got {got}, want {want}, |err| {err:.3e} > {bound:.3e}"
    );
    prop_assert_eq!(o.stats1.0, o.stats1.1, "stats[1] untouched (n {})", n);
    let s = o.stats;
    prop_assert_eq!(s.atomic, o.blocks, "one atomic per block (n {})", n);
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn grad_is_bit_exact_and_the_summed_loss_within_the_rounding_bound(
        v in size().prop_flat_map(|n| prop::collection::vec(
            prop_oneof![3 => (-3.0f32..3.0, -3.0f32..3.0), 1 => (-1000.0f32..1000.0, -1000.0f32..1000.0)],
            n,
        )),
    ) {
        let (p, t): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
        check(&p, &t)?;
    }
}

/// Past the grid cap (1024 blocks of 256), so threads loop and the atomics
/// stay at 1024.
#[test]
fn a_grid_stride_size_uses_1024_atomics() {
    let n = 1024 * 256 + 777;
    assert_eq!(
        mse_launch(n).unwrap().grid.x,
        lasagna_kernels::mse::MAX_GRID
    );
    let p: Vec<f32> = (0..n).map(|i| ((i * 7919) % 2001) as f32 * 1e-3).collect();
    let t: Vec<f32> = (0..n)
        .map(|i| ((i * 104_729) % 997) as f32 * 2e-3)
        .collect();
    check(&p, &t).unwrap();
}

/// The worst errors over a few sizes (`--nocapture`).
#[test]
fn worst_errors_over_sizes() {
    for n in [1usize, 10, 640, 8192, 70_001] {
        let p: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let t: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let o = run(&p, &t);
        let (got, want, bound) = o.loss;
        let err = (got as f64 - want as f64).abs();
        println!(
            "mse n {n:>6}: grad {}; stats[0] got {got:e}, want {want:e}, err {err:.3e} ({:.3} of the bound)",
            o.grad,
            err / bound
        );
        check(&p, &t).unwrap();
    }
}
