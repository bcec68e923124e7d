//! `kernels-ptx/ptx/activation.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/activation.rs` through `Cpu`'s `ActivationOps`).
//!
//! Tolerances, `|ptx - cpu| <= abs + rel * |cpu|`, per op (see `TOLERANCES`):
//! - ReLU, LeakyReLU: 0 and 0. One compare/select and at most one IEEE
//!   `mul.rn`, the same operations the CPU does: bit-exact.
//! - Sigmoid, SiLU, Tanh: `exp` is `ex2.approx(x * log2 e)`. Rounding the
//!   argument to f32 costs up to 2^-24 |x log2 e| ulp-scaled, i.e. a relative
//!   error of about 6e-8 |x| in `exp`; the GPU's `ex2.approx` adds up to 2 ulp
//!   (PTX ISA, ex2: "maximum relative error 2^-22.5" ... about 2.4e-7) where the
//!   simulator rounds correctly. Where `exp` matters (|x| < ~16) that is
//!   < 1.5e-6 relative before the damping by `1 / (1 + e)`; where it no longer
//!   does the result is below 1e-6 and the absolute term covers it. Tanh is
//!   `1 - 2 / (exp(2|x|) + 1)`, which cancels near 0: an absolute error of a
//!   few ulp of 1 (1e-7), covered by the 1e-6 absolute term.
//! - GELU (erf) and GELU (tanh): the CPU evaluates the erf fit in f64 and
//!   rounds; the kernel evaluates the same fit in f32 (10 fused steps, each
//!   0.5 ulp) and its `1 + erf` / `1 + tanh` cancels for x < 0 on the CPU side,
//!   so agreement is a few 1e-7 absolute near the origin and a few ulp
//!   relative (scaled by |x|) elsewhere: 2e-6 absolute + 8e-6 relative.
//! - Every backward multiplies by `dy` (|dy| <= 4 here), which scales both.
//!
//! The worst errors of a dense sweep are printed by
//! `worst_errors_over_a_dense_sweep` (`cargo test -- --nocapture`).

mod ptx_common;

use lasagna_kernels::activation::{self as ka, activation_launch};
use lasagna_kernels::Kernel;
use lasagna_ptx_sim::{Arg, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{Act, ActivationOps};
use proptest::prelude::*;
use ptx_common::{compare, download_f32, filled_f32, launch, sim_with, upload_f32, Worst};

/// One activation: its CPU name, both entries and the (abs, rel) bounds.
struct Op {
    name: &'static str,
    fwd: &'static Kernel,
    bwd: &'static Kernel,
    fwd_tol: (f64, f64),
    bwd_tol: (f64, f64),
}

const EXACT: (f64, f64) = (0.0, 0.0);
const EXP: (f64, f64) = (1e-6, 4e-6);
const GELU: (f64, f64) = (2e-6, 8e-6);

const OPS: &[Op] = &[
    Op {
        name: "relu",
        fwd: &ka::RELU_FORWARD,
        bwd: &ka::RELU_BACKWARD,
        fwd_tol: EXACT,
        bwd_tol: EXACT,
    },
    Op {
        name: "leaky_relu",
        fwd: &ka::LEAKY_RELU_FORWARD,
        bwd: &ka::LEAKY_RELU_BACKWARD,
        fwd_tol: EXACT,
        bwd_tol: EXACT,
    },
    Op {
        name: "sigmoid",
        fwd: &ka::SIGMOID_FORWARD,
        bwd: &ka::SIGMOID_BACKWARD,
        fwd_tol: EXP,
        bwd_tol: EXP,
    },
    Op {
        name: "tanh",
        fwd: &ka::TANH_FORWARD,
        bwd: &ka::TANH_BACKWARD,
        fwd_tol: EXP,
        bwd_tol: EXP,
    },
    Op {
        name: "gelu",
        fwd: &ka::GELU_FORWARD,
        bwd: &ka::GELU_BACKWARD,
        fwd_tol: GELU,
        bwd_tol: GELU,
    },
    Op {
        name: "gelu_tanh",
        fwd: &ka::GELU_TANH_FORWARD,
        bwd: &ka::GELU_TANH_BACKWARD,
        fwd_tol: GELU,
        bwd_tol: GELU,
    },
    Op {
        name: "silu",
        fwd: &ka::SILU_FORWARD,
        bwd: &ka::SILU_BACKWARD,
        fwd_tol: EXP,
        bwd_tol: EXP,
    },
];

fn op(name: &str) -> &'static Op {
    OPS.iter().find(|o| o.name == name).unwrap()
}

fn act_of(name: &str, alpha: f32) -> Act {
    match name {
        "relu" => Act::Relu,
        "leaky_relu" => Act::LeakyRelu(alpha),
        "sigmoid" => Act::Sigmoid,
        "tanh" => Act::Tanh,
        "gelu" => Act::Gelu,
        "gelu_tanh" => Act::GeluTanh,
        "silu" => Act::Silu,
        _ => unreachable!("{name}"),
    }
}

/// Runs both entries of `op` on the simulator and the CPU reference; returns
/// the forward and backward comparisons. Also asserts the memory traffic:
/// each input element is read from global memory once and each output
/// element written once (a memory-bound op cannot do better).
fn run(sim: &mut Simulator, op: &Op, alpha: f32, x: &[f32], dy: &[f32]) -> (Worst, Worst) {
    let n = x.len();
    let act = act_of(op.name, alpha);
    let l = activation_launch(n).unwrap();
    let tail = |args: &mut Vec<Arg>| {
        args.push(Arg::U64(n as u64));
        if matches!(act, Act::LeakyRelu(_)) {
            args.push(Arg::F32(alpha));
        }
    };
    // Outputs start as NaN so an element the kernel skips cannot pass.
    let bx = upload_f32(sim, x);
    let by = filled_f32(sim, n, f32::NAN);
    let mut args = vec![Arg::Ptr(bx), Arg::Ptr(by)];
    tail(&mut args);
    let st = launch(sim, op.fwd, l, &args);
    let n4 = 4 * n as u64;
    assert_eq!(
        (st.global_bytes_read, st.global_bytes_written),
        (n4, n4),
        "{} forward, n {n}: global bytes (read, written)",
        op.name
    );
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        (n as u64, n as u64, 0),
        "{} forward: global (loads, stores, atomics)",
        op.name
    );
    let y = download_f32(sim, by, n);

    let bdy = upload_f32(sim, dy);
    let bdx = filled_f32(sim, n, f32::NAN);
    let mut args = vec![Arg::Ptr(bx), Arg::Ptr(bdy), Arg::Ptr(bdx)];
    tail(&mut args);
    let st = launch(sim, op.bwd, l, &args);
    assert_eq!(
        (st.global_bytes_read, st.global_bytes_written),
        (2 * n4, n4),
        "{} backward, n {n}: global bytes (read, written)",
        op.name
    );
    let dx = download_f32(sim, bdx, n);

    let cpu = Cpu;
    let (xv, dyv) = (x.to_vec(), dy.to_vec());
    let mut y_ref = vec![0.0; n];
    let mut dx_ref = vec![0.0; n];
    cpu.act_forward(act, &xv, &mut y_ref, n).unwrap();
    cpu.act_backward(act, &xv, &dyv, &mut dx_ref, n).unwrap();
    let (fa, fr) = op.fwd_tol;
    let (ba, br) = op.bwd_tol;
    (
        compare(x, &y, &y_ref, fa, fr),
        compare(x, &dx, &dx_ref, ba, br),
    )
}

/// Sizes around the warp (32), the block (256) and a few blocks.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 31, 32, 33, 255, 256, 257]),
        1000usize..4000,
    ]
}

/// Mostly the interesting range, plus saturation (|x| up to 100, where exp
/// under/overflows in f32 beyond ~88), large magnitudes and exact zeros.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -8.0f32..8.0,
        2 => -100.0f32..100.0,
        1 => -1e4f32..1e4,
        1 => prop::sample::select(vec![0.0f32, -0.0, 1e-30, -1e-30, 88.0, -88.0, 1e-3, -1e-3]),
    ]
}

fn case() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, f32)> {
    size().prop_flat_map(|n| {
        (
            prop::collection::vec(value(), n),
            prop::collection::vec(-4.0f32..4.0, n),
            prop_oneof![Just(0.01f32), 0.0f32..1.0],
        )
    })
}

fn check(name: &str, x: &[f32], dy: &[f32], alpha: f32) -> Result<(), TestCaseError> {
    let op = op(name);
    let mut sim = sim_with(&ka::MODULE);
    let (f, b) = run(&mut sim, op, alpha, x, dy);
    prop_assert!(f.failures == 0, "{} forward, n {}: {f}", name, x.len());
    prop_assert!(b.failures == 0, "{} backward, n {}: {b}", name, x.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn relu_is_bit_exact_and_reads_each_element_once((x, dy, a) in case()) {
        check("relu", &x, &dy, a)?;
    }

    #[test]
    fn leaky_relu_is_bit_exact_for_any_alpha((x, dy, a) in case()) {
        check("leaky_relu", &x, &dy, a)?;
    }

    #[test]
    fn sigmoid_matches_cpu_within_exp_tolerance((x, dy, a) in case()) {
        check("sigmoid", &x, &dy, a)?;
    }

    #[test]
    fn tanh_matches_cpu_within_exp_tolerance((x, dy, a) in case()) {
        check("tanh", &x, &dy, a)?;
    }

    #[test]
    fn gelu_matches_cpu_within_fit_tolerance((x, dy, a) in case()) {
        check("gelu", &x, &dy, a)?;
    }

    #[test]
    fn gelu_tanh_matches_cpu_within_fit_tolerance((x, dy, a) in case()) {
        check("gelu_tanh", &x, &dy, a)?;
    }

    #[test]
    fn silu_matches_cpu_within_exp_tolerance((x, dy, a) in case()) {
        check("silu", &x, &dy, a)?;
    }
}

/// Every op over a dense grid of [-30, 30] (plus saturating and special
/// values) with dy = 1, printing the worst error: the numbers behind the
/// tolerances above.
#[test]
fn worst_errors_over_a_dense_sweep() {
    let mut x: Vec<f32> = (0..=12_000).map(|i| -30.0 + i as f32 * 0.005).collect();
    x.extend([
        0.0, -0.0, 1e-30, -1e-30, 1e-6, -1e-6, 88.0, -88.0, 100.0, -100.0, 1e4, -1e4,
    ]);
    let dy = vec![1.0f32; x.len()];
    let mut sim = sim_with(&ka::MODULE);
    let mut bad = Vec::new();
    for op in OPS {
        let (f, b) = run(&mut sim, op, 0.01, &x, &dy);
        println!("{:<11} forward : {f}", op.name);
        println!("{:<11} backward: {b}", op.name);
        if f.failures + b.failures > 0 {
            bad.push(op.name);
        }
    }
    assert!(bad.is_empty(), "over the bound: {bad:?}");
}

/// Every entry of the module is covered by `OPS`.
#[test]
fn every_activation_entry_is_tested() {
    for k in ka::ALL {
        assert!(
            OPS.iter()
                .any(|o| o.fwd.name == k.name || o.bwd.name == k.name),
            "{} untested",
            k.name
        );
    }
}
