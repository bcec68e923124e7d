//! `kernels-ptx/ptx/layernorm.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/layernorm.rs` through `Cpu`'s `NormOps`).
//!
//! Tolerances, `|ptx - cpu| <= abs + rel * |cpu|`:
//! - mean, rstd, y: the kernel sums a row in f32 (each lane over cols / 32
//!   values, then a 5-step butterfly), the CPU in f64. For |x| <= 8 and cols
//!   <= 700 that sum errs by at most (700 / 32 + 6) * 2^-24 * 8 * cols, so
//!   the mean by at most ~28 ulp of |x|max = 1.3e-5 (observed: 1 ulp); rstd
//!   by a few ulp relative (sqrt.rn and rcp.rn add one ulp each). y multiplies the mean's
//!   error by rstd * gamma (rstd <= ~2 here, the rows being uniform on a
//!   width >= 2, |gamma| <= 2): abs 2e-5, rel 1e-5 covers it with margin.
//!   Rows whose values are all equal have var 0 and rstd = 1 / sqrt(eps);
//!   there x - mean is exactly 0 on both sides.
//! - dx: both sides get the CPU forward's mean and rstd, so the only
//!   difference is again the f32 row sums of g and g * xh (|g| <= 8,
//!   |xh| <= ~3), scaled by rstd: abs 2e-5, rel 1e-5.
//! - dgamma, dbeta: the kernel adds row by row in the CPU's order, with the
//!   same f32 roundings: bit-exact (0, 0).
//!
//! The worst errors are printed by `worst_errors_over_shapes`.

mod ptx_common;

use lasagna_kernels::layernorm::{self as kl, layernorm_launch, layernorm_params_launch};
use lasagna_ptx_sim::{Arg, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::NormOps;
use proptest::prelude::*;
use ptx_common::{compare, download_f32, filled_f32, launch, sim_with, upload_f32, Worst};

const TOL: (f64, f64) = (2e-5, 1e-5);

#[derive(Clone, Debug)]
struct Case {
    rows: usize,
    cols: usize,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    dy: Vec<f32>,
    dgamma0: Vec<f32>,
}

/// (mean, rstd, y, dx, dgamma, dbeta) comparisons.
fn run(sim: &mut Simulator, c: &Case) -> [Worst; 6] {
    let (rows, cols) = (c.rows, c.cols);
    let n = rows * cols;
    let (r, co) = (Arg::U32(rows as u32), Arg::U32(cols as u32));
    let eps = 1e-5f32;
    let bx = upload_f32(sim, &c.x);
    let bg = upload_f32(sim, &c.gamma);
    let bb = upload_f32(sim, &c.beta);
    let bm = filled_f32(sim, rows, f32::NAN);
    let bs = filled_f32(sim, rows, f32::NAN);
    let by = filled_f32(sim, n, f32::NAN);
    let l = layernorm_launch(rows, cols).unwrap();
    let args = [bx, bg, bb, bm, bs, by].map(Arg::Ptr);
    let mut args = args.to_vec();
    args.extend([r, co, Arg::F32(eps)]);
    let st = launch(sim, &kl::LAYERNORM_FORWARD, l, &args);
    // Three passes over x, gamma and beta once per element, one write per
    // output element plus the two statistics per row.
    assert_eq!(
        st.global_load,
        5 * n as u64,
        "forward loads, {rows} x {cols}"
    );
    assert_eq!(st.global_store, (n + 2 * rows) as u64, "forward stores");
    let (mean, rstd, y) = (
        download_f32(sim, bm, rows),
        download_f32(sim, bs, rows),
        download_f32(sim, by, n),
    );

    let cpu = Cpu;
    let v = |s: &[f32]| s.to_vec();
    let (mut m_ref, mut s_ref, mut y_ref) = (vec![0.0; rows], vec![0.0; rows], vec![0.0; n]);
    cpu.layernorm_forward(
        rows,
        cols,
        eps,
        &v(&c.x),
        &v(&c.gamma),
        &v(&c.beta),
        &mut m_ref,
        &mut s_ref,
        &mut y_ref,
    )
    .unwrap();

    // Backward from the CPU's statistics, so dgamma/dbeta can be bit-exact.
    let bm = upload_f32(sim, &m_ref);
    let bs = upload_f32(sim, &s_ref);
    let bdy = upload_f32(sim, &c.dy);
    let bdx = filled_f32(sim, n, f32::NAN);
    let mut args = [bx, bg, bm, bs, bdy, bdx].map(Arg::Ptr).to_vec();
    args.extend([r, co]);
    launch(sim, &kl::LAYERNORM_BACKWARD_INPUT, l, &args);
    let dx = download_f32(sim, bdx, n);
    let bdg = upload_f32(sim, &c.dgamma0);
    let bdb = upload_f32(sim, &c.dgamma0);
    let mut args = [bx, bm, bs, bdy, bdg, bdb].map(Arg::Ptr).to_vec();
    args.extend([r, co]);
    let st = launch(
        sim,
        &kl::LAYERNORM_BACKWARD_PARAMS,
        layernorm_params_launch(rows, cols).unwrap(),
        &args,
    );
    assert_eq!(st.atomic, 0);
    assert_eq!(
        st.global_store,
        2 * cols as u64,
        "one store per dgamma/dbeta element"
    );
    let (dg, db) = (download_f32(sim, bdg, cols), download_f32(sim, bdb, cols));

    let (mut dx_ref, mut dg_ref, mut db_ref) = (vec![0.0; n], c.dgamma0.clone(), c.dgamma0.clone());
    cpu.layernorm_backward(
        rows,
        cols,
        &v(&c.x),
        &v(&c.gamma),
        &m_ref,
        &s_ref,
        &v(&c.dy),
        &mut dx_ref,
        &mut dg_ref,
        &mut db_ref,
    )
    .unwrap();
    let (a, rl) = TOL;
    [
        compare(&m_ref, &mean, &m_ref, a, rl),
        compare(&s_ref, &rstd, &s_ref, a, rl),
        compare(&c.x, &y, &y_ref, a, rl),
        compare(&c.x, &dx, &dx_ref, a, rl),
        compare(&dg_ref, &dg, &dg_ref, 0.0, 0.0),
        compare(&db_ref, &db, &db_ref, 0.0, 0.0),
    ]
}

const NAMES: [&str; 6] = ["mean", "rstd", "y", "dx", "dgamma", "dbeta"];

fn case() -> impl Strategy<Value = Case> {
    let dim = || {
        prop_oneof![
            prop::sample::select(vec![1usize, 2, 31, 32, 33, 255, 257]),
            1usize..700
        ]
    };
    (prop_oneof![Just(1usize), 1usize..20], dim()).prop_flat_map(|(rows, cols)| {
        let n = rows * cols;
        (
            prop::collection::vec(-4.0f32..4.0, n),
            prop::collection::vec(-4.0f32..4.0, rows),
            prop::collection::vec(-2.0f32..2.0, cols),
            prop::collection::vec(-2.0f32..2.0, cols),
            prop::collection::vec(-2.0f32..2.0, n),
            prop::collection::vec(-1.0f32..1.0, cols),
        )
            .prop_map(move |(x, off, gamma, beta, dy, dgamma0)| Case {
                rows,
                cols,
                x: x.iter()
                    .enumerate()
                    .map(|(i, v)| v + off[i / cols])
                    .collect(),
                gamma,
                beta,
                dy,
                dgamma0,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn layernorm_matches_cpu_within_f32_row_sum_tolerance_and_param_grads_are_bit_exact(c in case()) {
        let mut sim = sim_with(&kl::MODULE);
        for (w, name) in run(&mut sim, &c).iter().zip(NAMES) {
            prop_assert!(w.failures == 0, "{name}, {} x {}: {w}", c.rows, c.cols);
        }
    }
}

/// A few fixed shapes, printing the worst error of each output.
#[test]
fn worst_errors_over_shapes() {
    let mut sim = sim_with(&kl::MODULE);
    for (rows, cols) in [(1usize, 1usize), (3, 33), (17, 257), (5, 700)] {
        let n = rows * cols;
        let f = |i: usize, k: usize| ((i * k) % 1009) as f32 / 1009.0 * 8.0 - 4.0;
        let c = Case {
            rows,
            cols,
            x: (0..n).map(|i| f(i, 7919) + (i / cols) as f32).collect(),
            gamma: (0..cols).map(|i| f(i, 31) / 2.0).collect(),
            beta: (0..cols).map(|i| f(i, 37) / 2.0).collect(),
            dy: (0..n).map(|i| f(i, 101) / 2.0).collect(),
            dgamma0: vec![0.5; cols],
        };
        for (w, name) in run(&mut sim, &c).iter().zip(NAMES) {
            println!("{rows:>2} x {cols:>3} {name:<6}: {w}");
            assert_eq!(w.failures, 0, "{name}");
        }
    }
}
