//! `kernels-ptx/ptx/batchnorm.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/batchnorm.rs` through `Cpu`'s `NormOps`).
//!
//! Tolerances are derived per channel from where the two sides differ: the
//! CPU sums in f64, the kernels sum `M = N * S` values in f32, each thread
//! of a block of `T` (up to 1024) a strided slice of `ceil(M / T)` terms, then
//! a 10-level shuffle/shared tree (5 butterfly levels per warp, 5 over the
//! warp sums). Recursive summation of depth `D = ceil(M / T) + 10` has a
//! first-order error of at most `D u sum|t|` (Higham, *Accuracy and
//! Stability of Numerical Algorithms*, 4.2), `u = 2^-24`. So:
//! - mean: `Bm = D u sum|x| / M + u |mean|` (one more rounding in the divide).
//! - var: the centered sum's own `D u var` (the mean's error enters only at
//!   second order, since `sum(x - mean) = 0`); invstd therefore carries
//!   `r = (D / 2 + 3) u` relative error (sqrt halves it; add, sqrt, rcp round).
//! - y = (x - mean) gamma invstd + beta: `|gamma| invstd Bm + |y - beta| r` plus
//!   the three roundings, `<= 2 (|gamma| invstd Bm + |beta| r) + 2 r |y|`.
//! - running stats: momentum times the above, plus the f32 update's own
//!   roundings (3-4 u of its terms; the CPU rounds an f64 expression once).
//! - backward, given the same saved mean/invstd on both sides (so xh and
//!   `k = gamma invstd` are bit-identical): `mean(dy)` and `mean(dy xh)` carry
//!   `D u mean|t| + u |mean t|`; dx is `|k| (d_mdy + max|xh| d_mdyxh)` off, plus
//!   a rounding per step; dgamma and dbeta are off by `D u sum|t| + u |result|`.
//!
//! Every bound is doubled for margin; `cargo test -- --nocapture` prints the
//! worst error of each output against its bound (`worst_errors_over_fixed_shapes`).
//! Eval forward does the CPU's f32 operations in order: bit-exact.

mod ptx_common;

use lasagna_kernels::batchnorm::{self as kbn, channel_launch, eval_launch};
use lasagna_ptx_sim::Arg;
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{NormDims, NormOps};
use proptest::prelude::*;
use ptx_common::{compare, download_f32, filled_f32, launch, sim_with, upload_f32, Worst};

const U: f64 = 1.0 / (1u64 << 24) as f64;

/// One problem: x, dy, per-channel gamma/beta and the running stats before.
#[derive(Clone, Debug)]
struct Case {
    d: NormDims,
    x: Vec<f32>,
    dy: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    rm: Vec<f32>,
    rv: Vec<f32>,
    momentum: f32,
}

const EPS: f32 = 1e-5;

/// The worst comparison of each output, for the report.
#[derive(Default)]
struct Report {
    rows: Vec<(&'static str, Worst)>,
}

impl Report {
    /// Merges one comparison into the row for `name` (kept: the worst ratio).
    fn add(&mut self, name: &'static str, w: Worst) {
        match self.rows.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => {
                old.failures += w.failures;
                old.max_abs = old.max_abs.max(w.max_abs);
                old.max_rel = old.max_rel.max(w.max_rel);
                if w.ratio > old.ratio {
                    let f = old.failures;
                    *old = Worst {
                        failures: f,
                        max_abs: old.max_abs,
                        max_rel: old.max_rel,
                        ..w
                    };
                }
            }
            None => self.rows.push((name, w)),
        }
    }

    fn failures(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|(_, w)| w.failures > 0)
            .map(|(n, w)| format!("{n}: {w}"))
            .collect()
    }
}

fn channel<'a>(d: NormDims, v: &'a [f32], c: usize) -> impl Iterator<Item = (usize, f32)> + 'a {
    (0..d.n).flat_map(move |n| {
        let at = (n * d.c + c) * d.s;
        (at..at + d.s).map(move |i| (i, v[i]))
    })
}

fn pick(v: &[f32], idx: &[usize]) -> Vec<f32> {
    idx.iter().map(|&i| v[i]).collect()
}

/// `got` vs `want` on the elements `idx`, under `abs + rel |want|`.
fn cmp(got: &[f32], want: &[f32], idx: &[usize], abs: f64, rel: f64) -> Worst {
    let w = pick(want, idx);
    compare(&w, &pick(got, idx), &w, abs, rel)
}

/// Block-reduction launch counters: no atomics; per reduction level the
/// butterfly's 5 shuffles per value, for every thread (level 1) and for warp
/// 0 (level 2); two barriers per reduction.
fn assert_reduction_stats(
    st: &lasagna_ptx_sim::LaunchStats,
    c: usize,
    block: u32,
    values: u64,
    reductions: u64,
) {
    let threads = c as u64 * block as u64;
    assert_eq!(st.atomic, 0, "one block per channel: no atomics");
    assert_eq!(st.barrier, 2 * reductions * threads, "barriers");
    assert_eq!(
        st.shuffle,
        5 * values * reductions * (threads + 32 * c as u64),
        "shuffles"
    );
}

/// Runs all three kernels and the CPU; compares every output under the
/// bounds in the module comment. `relu`: both forwards with the fused ReLU
/// (`max(y, 0)` is 1-Lipschitz, so y's bound stands; eval stays bit-exact).
fn run(k: &Case, relu: bool) -> Report {
    let d = k.d;
    let len = d.n * d.c * d.s;
    let m = d.n * d.s;
    let l = channel_launch(d.n, d.c, d.s).unwrap();
    let depth = m.div_ceil(l.block.x as usize) as f64 + 10.0;
    let r = (depth / 2.0 + 3.0) * U;
    let cpu = Cpu;
    let mut rep = Report::default();
    let dims = [
        Arg::U32(d.n as u32),
        Arg::U32(d.c as u32),
        Arg::U32(d.s as u32),
    ];

    // Train forward.
    let mut sim = sim_with(&kbn::MODULE);
    let bx = upload_f32(&mut sim, &k.x);
    let bg = upload_f32(&mut sim, &k.gamma);
    let bb = upload_f32(&mut sim, &k.beta);
    let brm = upload_f32(&mut sim, &k.rm);
    let brv = upload_f32(&mut sim, &k.rv);
    let bsm = filled_f32(&mut sim, d.c, f32::NAN);
    let bsi = filled_f32(&mut sim, d.c, f32::NAN);
    let by = filled_f32(&mut sim, len, f32::NAN);
    let mut args: Vec<Arg> = [bx, bg, bb, brm, brv, bsm, bsi, by]
        .into_iter()
        .map(Arg::Ptr)
        .collect();
    args.extend(dims);
    args.extend([Arg::F32(EPS), Arg::F32(k.momentum), Arg::U32(relu.into())]);
    let st = launch(&mut sim, &kbn::BATCHNORM_FORWARD_TRAIN, l, &args);
    assert_reduction_stats(&st, d.c, l.block.x, 1, 2);
    let y = download_f32(&mut sim, by, len);
    let sm = download_f32(&mut sim, bsm, d.c);
    let si = download_f32(&mut sim, bsi, d.c);
    let rm = download_f32(&mut sim, brm, d.c);
    let rv = download_f32(&mut sim, brv, d.c);

    let (mut rm_ref, mut rv_ref) = (k.rm.clone(), k.rv.clone());
    let (mut sm_ref, mut si_ref, mut y_ref) = (vec![0.0; d.c], vec![0.0; d.c], vec![0.0; len]);
    cpu.batchnorm_forward_train(
        d,
        EPS,
        k.momentum,
        relu,
        &k.x,
        &k.gamma,
        &k.beta,
        &mut rm_ref,
        &mut rv_ref,
        &mut sm_ref,
        &mut si_ref,
        &mut y_ref,
    )
    .unwrap();

    let mf = k.momentum as f64;
    let unbias = if m > 1 {
        m as f64 / (m - 1) as f64
    } else {
        1.0
    };
    for c in 0..d.c {
        let idx: Vec<usize> = channel(d, &k.x, c).map(|(i, _)| i).collect();
        let sum_abs: f64 = channel(d, &k.x, c).map(|(_, v)| v.abs() as f64).sum();
        let mean = sm_ref[c] as f64;
        let invstd = si_ref[c] as f64;
        let var = 1.0 / (invstd * invstd) - EPS as f64;
        let bm = depth * U * sum_abs / m as f64 + U * mean.abs();
        let (g, b) = (k.gamma[c].abs() as f64, k.beta[c].abs() as f64);
        rep.add("save_mean", cmp(&sm, &sm_ref, &[c], 2.0 * bm, 0.0));
        rep.add("save_invstd", cmp(&si, &si_ref, &[c], 0.0, 2.0 * r));
        // The f32 update rounds (1 - m), each product and the sum: 3 u of
        // the terms, which may cancel for the mean.
        let rm_terms = (1.0 - mf) * (k.rm[c] as f64).abs() + mf * mean.abs();
        rep.add(
            "running_mean",
            cmp(
                &rm,
                &rm_ref,
                &[c],
                2.0 * (mf * bm + 3.0 * U * rm_terms),
                0.0,
            ),
        );
        let rv_terms = (1.0 - mf) * k.rv[c] as f64 + mf * unbias * var;
        rep.add(
            "running_var",
            cmp(
                &rv,
                &rv_ref,
                &[c],
                2.0 * (mf * unbias * var * (depth + 3.0) * U + 4.0 * U * rv_terms),
                0.0,
            ),
        );
        rep.add(
            "y",
            cmp(&y, &y_ref, &idx, 2.0 * (g * invstd * bm + b * r), 2.0 * r),
        );
    }

    // Eval forward, with the running statistics from before the step.
    let brm0 = upload_f32(&mut sim, &k.rm);
    let brv0 = upload_f32(&mut sim, &k.rv);
    let bye = filled_f32(&mut sim, len, f32::NAN);
    let mut args: Vec<Arg> = [bx, bg, bb, brm0, brv0, bye]
        .into_iter()
        .map(Arg::Ptr)
        .collect();
    args.extend(dims);
    args.extend([Arg::F32(EPS), Arg::U32(relu.into())]);
    let st = launch(
        &mut sim,
        &kbn::BATCHNORM_FORWARD_EVAL,
        eval_launch(d.n, d.c, d.s).unwrap(),
        &args,
    );
    assert_eq!((st.atomic, st.global_store), (0, len as u64));
    let ye = download_f32(&mut sim, bye, len);
    let mut ye_ref = vec![0.0; len];
    cpu.batchnorm_forward_eval(
        d,
        EPS,
        relu,
        &k.x,
        &k.gamma,
        &k.beta,
        &k.rm,
        &k.rv,
        &mut ye_ref,
    )
    .unwrap();
    if relu {
        assert!(
            ye.iter().chain(&y).all(|&v| v >= 0.0 || v.is_nan()),
            "fused ReLU"
        );
    }
    rep.add("eval y", compare(&k.x, &ye, &ye_ref, 0.0, 0.0));

    // Backward from the CPU's saved statistics, so both sides see the same
    // xh; dgamma/dbeta start as NaN on both sides to check they are
    // overwritten (an accumulation would keep the NaN).
    let dg0 = vec![f32::NAN; d.c];
    let db0 = vec![f32::NAN; d.c];
    let bsm = upload_f32(&mut sim, &sm_ref);
    let bsi = upload_f32(&mut sim, &si_ref);
    let bdy = upload_f32(&mut sim, &k.dy);
    let bdx = filled_f32(&mut sim, len, f32::NAN);
    let bdg = upload_f32(&mut sim, &dg0);
    let bdb = upload_f32(&mut sim, &db0);
    let mut args: Vec<Arg> = [bx, bg, bsm, bsi, bdy, bdx, bdg, bdb]
        .into_iter()
        .map(Arg::Ptr)
        .collect();
    args.extend(dims);
    let st = launch(&mut sim, &kbn::BATCHNORM_BACKWARD, l, &args);
    assert_reduction_stats(&st, d.c, l.block.x, 2, 1);
    let dx = download_f32(&mut sim, bdx, len);
    let dg = download_f32(&mut sim, bdg, d.c);
    let db = download_f32(&mut sim, bdb, d.c);
    assert!(
        dg.iter().chain(&db).all(|v| v.is_finite()),
        "dgamma/dbeta overwritten"
    );
    let (mut dx_ref, mut dg_ref, mut db_ref) = (vec![0.0; len], dg0.clone(), db0.clone());
    cpu.batchnorm_backward(
        d,
        &k.x,
        &k.gamma,
        &sm_ref,
        &si_ref,
        &k.dy,
        &mut dx_ref,
        &mut dg_ref,
        &mut db_ref,
    )
    .unwrap();
    assert!(dg_ref.iter().chain(&db_ref).all(|v| v.is_finite()));
    for c in 0..d.c {
        let idx: Vec<usize> = channel(d, &k.x, c).map(|(i, _)| i).collect();
        let (mean, invstd) = (sm_ref[c], si_ref[c]);
        let xh: Vec<f64> = idx
            .iter()
            .map(|&i| ((k.x[i] - mean) * invstd) as f64)
            .collect();
        let g: Vec<f64> = idx.iter().map(|&i| k.dy[i] as f64).collect();
        let s_dy: f64 = g.iter().sum();
        let s_dyxh: f64 = g.iter().zip(&xh).map(|(a, b)| a * b).sum();
        let a_dy: f64 = g.iter().map(|v| v.abs()).sum();
        let a_dyxh: f64 = g.iter().zip(&xh).map(|(a, b)| (a * b).abs()).sum();
        let mf = m as f64;
        let d_mdy = depth * U * a_dy / mf + U * (s_dy / mf).abs();
        let d_mdyxh = depth * U * a_dyxh / mf + U * (s_dyxh / mf).abs();
        let kk = (k.gamma[c] * invstd).abs() as f64;
        let max_xh = xh.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let max_g = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        // Propagated sum error, plus a rounding of each intermediate.
        let step = U * kk * (max_g + (s_dy / mf).abs() + max_xh * (s_dyxh / mf).abs());
        rep.add(
            "dx",
            cmp(
                &dx,
                &dx_ref,
                &idx,
                2.0 * (kk * (d_mdy + max_xh * d_mdyxh) + step),
                4.0 * U,
            ),
        );
        rep.add(
            "dgamma",
            cmp(&dg, &dg_ref, &[c], 2.0 * depth * U * a_dyxh, 2.0 * U),
        );
        rep.add(
            "dbeta",
            cmp(&db, &db_ref, &[c], 2.0 * depth * U * a_dy, 2.0 * U),
        );
    }
    rep
}

/// Channel offsets up to 20 (so the mean is not ~0 and the variance pass
/// cancels) and spreads from 0.01 to 3; channels of fewer values than the
/// largest block (1024: the block shrinks to whole warps) and of more (the
/// strided loops run up to 4 times), odd planes (7x7, 13x13) and
/// BatchNorm1d (1).
fn case() -> impl Strategy<Value = Case> {
    let s = prop_oneof![
        prop::sample::select(vec![1usize, 2, 3, 5, 9, 25, 49, 169]),
        80usize..300,
        350usize..1300,
    ];
    (1usize..=3, 1usize..=5, s).prop_flat_map(|(n, c, s)| {
        let len = n * c * s;
        (
            prop::collection::vec(-1.0f32..1.0, len),
            prop::collection::vec(-2.0f32..2.0, len),
            prop::collection::vec((-20.0f32..20.0, 0.01f32..3.0), c),
            prop::collection::vec((-2.0f32..2.0, -1.0f32..1.0), c),
            prop::collection::vec((-1.0f32..1.0, 0.1f32..2.0), c),
            prop_oneof![Just(0.1f32), 0.0f32..1.0],
        )
            .prop_map(move |(u, dy, spread, affine, running, momentum)| {
                let d = NormDims { n, c, s };
                let x = (0..len)
                    .map(|i| {
                        let (off, sc) = spread[(i / s) % c];
                        off + sc * u[i]
                    })
                    .collect();
                Case {
                    d,
                    x,
                    dy,
                    gamma: affine.iter().map(|a| a.0).collect(),
                    beta: affine.iter().map(|a| a.1).collect(),
                    rm: running.iter().map(|a| a.0).collect(),
                    rv: running.iter().map(|a| a.1).collect(),
                    momentum,
                }
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn batchnorm_matches_cpu_within_summation_bounds_and_eval_is_bit_exact(k in case(), relu: bool) {
        let rep = run(&k, relu);
        let bad = rep.failures();
        prop_assert!(bad.is_empty(), "{:?} relu {}: {}", k.d, relu, bad.join("; "));
    }
}

/// Fixed shapes, printing each output's worst error against its bound.
#[test]
fn worst_errors_over_fixed_shapes() {
    let shapes = [
        (3, 5, 49),
        (2, 4, 169),
        (3, 2, 300),
        (1, 3, 1),
        (3, 1, 1),
        (4, 3, 784),
    ];
    let mut bad = Vec::new();
    for (n, c, s) in shapes {
        let d = NormDims { n, c, s };
        let len = n * c * s;
        let k = Case {
            d,
            x: (0..len)
                .map(|i| ((i * 7919) % 101) as f32 * 0.05 + 10.0 * ((i / s) % c) as f32 - 7.0)
                .collect(),
            dy: (0..len).map(|i| (i as f32 * 0.37).sin()).collect(),
            gamma: (0..c).map(|c| 1.5 - 0.5 * c as f32).collect(),
            beta: (0..c).map(|c| 0.1 * c as f32).collect(),
            rm: vec![0.0; c],
            rv: vec![1.0; c],
            momentum: 0.1,
        };
        for relu in [false, true] {
            let rep = run(&k, relu);
            for (name, w) in &rep.rows {
                println!("{n}x{c}x{s} relu {relu:<5} {name:<12}: {w}");
            }
            bad.extend(rep.failures());
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}
