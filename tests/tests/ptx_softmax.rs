//! `kernels-ptx/ptx/softmax.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/softmax.rs` through `Cpu`'s `ActivationOps`).
//!
//! Tolerances (`|ptx - cpu| <= abs + rel |cpu|` per element):
//! - forward: `abs = 1e-7`, `rel = 1e-5`. Both sides compute
//!   `exp(x - max) * (1 / sum)` in f32. The kernel's exp is `ex2.approx`
//!   (2 ulp, PTX ISA) of `(x - max) log2 e`, whose rounding gives a relative
//!   error of about `2^-24 |x - max|`; as `y <= exp(-|x - max|)`, that is
//!   below `2^-24 max_d(d e^-d) = 2.2e-8` absolute, under `abs`. What is
//!   left is relative: the two sums (the CPU's left-to-right f32 sum, the
//!   kernel's per-lane online sum with rescales, then a butterfly) each err
//!   by about `sqrt(cols) 2^-24` typically (`cols 2^-24` at worst), 4e-6 at
//!   the widest rows tested (5000), plus a few ulp of exp, rcp and the
//!   product: `rel` leaves a factor ~2 over the typical widest case.
//! - backward: `abs = 4e-7 max|dy|`, `rel = 4e-7`. The same operations
//!   `y * (dy - dot)` on the same inputs, except `dot = <y, dy>`: the CPU
//!   rounds each product and sums left to right, the kernel fuses (fma) and
//!   sums per lane then by butterfly. Since `sum y = 1`, every partial sum is
//!   at most `max|dy|` and the two dots differ by a few `2^-24 max|dy|`;
//!   that error is scaled by `y <= 1` (the `abs` term), and the two roundings
//!   of `dx` give the `rel` term (~6 ulp).
//!
//! Infinities and NaN propagate as the CPU's (the cases `special_values_*`).
//!
//! Performance, asserted on every case: no atomics, no bank conflicts, and
//! each element read once per pass: forward reads 8 bytes (2 passes of x)
//! and writes 4 per element; backward reads 16 (2 passes of y and dy) and
//! writes 4.

mod ptx_common;

use lasagna_kernels::softmax::{softmax_launch, MODULE, SOFTMAX_BACKWARD, SOFTMAX_FORWARD};
use lasagna_kernels::{Dim3, Launch};
use lasagna_ptx_sim::{Arg, LaunchStats};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::ActivationOps;
use proptest::prelude::*;
use ptx_common::{compare, download_f32, filled_f32, launch, sim_with, upload_f32, Worst};

const FWD_ABS: f64 = 1e-7;
const FWD_REL: f64 = 1e-5;
const BWD_ABS: f64 = 4e-7;
const BWD_REL: f64 = 4e-7;

/// Forward and backward with launch `l` next to the CPU: (forward, backward,
/// their counters). The backward runs on the CPU's `y`, so a forward error
/// cannot hide in it.
fn run(
    x: &[f32],
    dy: &[f32],
    rows: usize,
    cols: usize,
    l: Launch,
) -> (Worst, Worst, LaunchStats, LaunchStats) {
    let n = rows * cols;
    let mut y_ref = vec![0.0f32; n];
    Cpu.softmax_forward(&x.to_vec(), &mut y_ref, rows, cols)
        .unwrap();
    let mut dx_ref = vec![0.0f32; n];
    Cpu.softmax_backward(&y_ref, &dy.to_vec(), &mut dx_ref, rows, cols)
        .unwrap();

    let mut sim = sim_with(&MODULE);
    let dims = [Arg::U32(rows as u32), Arg::U32(cols as u32)];
    let bx = upload_f32(&mut sim, x);
    let by = filled_f32(&mut sim, n, f32::NAN);
    let mut args = vec![Arg::Ptr(bx), Arg::Ptr(by)];
    args.extend(dims);
    let sf = launch(&mut sim, &SOFTMAX_FORWARD, l, &args);
    let y = download_f32(&mut sim, by, n);

    let byr = upload_f32(&mut sim, &y_ref);
    let bdy = upload_f32(&mut sim, dy);
    let bdx = filled_f32(&mut sim, n, f32::NAN);
    let mut args = vec![Arg::Ptr(byr), Arg::Ptr(bdy), Arg::Ptr(bdx)];
    args.extend(dims);
    let sb = launch(&mut sim, &SOFTMAX_BACKWARD, l, &args);
    let dx = download_f32(&mut sim, bdx, n);

    let max_dy = dy.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    (
        compare(x, &y, &y_ref, FWD_ABS, FWD_REL),
        compare(dy, &dx, &dx_ref, BWD_ABS * max_dy, BWD_REL),
        sf,
        sb,
    )
}

/// The checks of one case with the launch rule's shape.
fn check(x: &[f32], dy: &[f32], rows: usize, cols: usize) -> Result<(), TestCaseError> {
    let l = softmax_launch(rows, cols).unwrap();
    let (f, b, sf, sb) = run(x, dy, rows, cols, l);
    let shape = format!("rows {rows}, cols {cols}, block {:?}", l.block);
    prop_assert!(f.failures == 0, "forward ({shape}): {f}");
    prop_assert!(b.failures == 0, "backward ({shape}): {b}");
    let n = (rows * cols) as u64;
    for (name, s, read) in [("forward", sf, 8 * n), ("backward", sb, 16 * n)] {
        prop_assert_eq!(s.atomic, 0, "{} atomics ({})", name, shape);
        prop_assert_eq!(s.bank_conflicts, 0, "{} bank conflicts ({})", name, shape);
        prop_assert_eq!(
            (s.global_bytes_read, s.global_bytes_written),
            (read, 4 * n),
            "{} global bytes (read, written) ({})",
            name,
            shape
        );
    }
    Ok(())
}

/// Row lengths around the warp, up to the one-warp limit (1024) and past it.
fn cols() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 2, 10, 31, 32, 33, 100, 255, 1000, 1024, 1025]),
        33usize..1024,
        1025usize..5000,
    ]
}

/// Row counts around a block of 8 rows, capped near 12k elements per case.
fn rows(cols: usize) -> impl Strategy<Value = usize> {
    let cap = (12_000 / cols).max(1);
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 7, 8, 9, 17, 33]),
        1usize..400,
    ]
    .prop_map(move |r| r.min(cap))
}

/// Logits at three scales, small integers (tied maxima), and the odd -inf
/// (a masked position).
fn case() -> impl Strategy<Value = (Vec<f32>, Vec<f32>, usize, usize)> {
    cols()
        .prop_flat_map(|c| (Just(c), rows(c)))
        .prop_flat_map(|(c, r)| {
            let x = prop_oneof![
                30 => -3.0f32..3.0,
                20 => -30.0f32..30.0,
                10 => -100.0f32..100.0,
                20 => (-2i32..=2).prop_map(|v| v as f32),
                1 => Just(f32::NEG_INFINITY),
            ];
            (
                prop::collection::vec(x, r * c),
                prop::collection::vec(-2.0f32..2.0, r * c),
                Just(r),
                Just(c),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn matches_cpu_reading_each_element_once_per_pass((x, dy, rows, cols) in case()) {
        check(&x, &dy, rows, cols)?;
    }
}

/// The PTX takes any block of whole warps per row (the header's claim), not
/// only the launch rule's two shapes: several warps per row with several
/// rows per block, a full 1024-thread row, and a warp per row for wide rows.
#[test]
fn any_block_of_whole_warps_per_row_gives_the_same_result() {
    let (rows, cols) = (13usize, 1500usize);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7919) % 1013) as f32 * 0.03 - 15.0)
        .collect();
    let dy: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin()).collect();
    for (bx, by) in [
        (64u32, 4u32),
        (1024, 1),
        (32, 1),
        (96, 2),
        (32, 8),
        (256, 1),
    ] {
        let l = Launch {
            grid: Dim3::x((rows as u32).div_ceil(by)),
            block: Dim3 { x: bx, y: by, z: 1 },
            shared_bytes: 0,
        };
        let (f, b, _, _) = run(&x, &dy, rows, cols, l);
        println!("block {bx}x{by}: forward {f}; backward {b}");
        assert_eq!(f.failures + b.failures, 0, "block {bx}x{by}");
    }
}

/// NaN, +inf and all -inf rows give NaN rows, as the CPU; -inf beside finite
/// values gives 0. Compared with the CPU (NaN matches NaN).
#[test]
fn special_values_propagate_as_the_cpu() {
    let ninf = f32::NEG_INFINITY;
    for cols in [3usize, 40, 1100] {
        let mut x = Vec::new();
        for special in [f32::NAN, f32::INFINITY, ninf, 0.0] {
            let mut row: Vec<f32> = (0..cols).map(|i| (i % 7) as f32 - 3.0).collect();
            row[cols / 2] = special;
            x.extend(row);
        }
        x.extend(vec![ninf; cols]);
        let rows = x.len() / cols;
        let dy: Vec<f32> = (0..x.len()).map(|i| (i % 5) as f32 - 2.0).collect();
        check(&x, &dy, rows, cols).unwrap();
    }
}

/// cols = 0 is a no-op (the CPU's `chunks_exact(0)` would panic, so this one
/// checks the kernel alone): nothing read, nothing written.
#[test]
fn zero_columns_touch_nothing() {
    let mut sim = sim_with(&MODULE);
    let bx = upload_f32(&mut sim, &[]);
    let by = filled_f32(&mut sim, 1, f32::NAN);
    let l = softmax_launch(5, 0).unwrap();
    let args = [Arg::Ptr(bx), Arg::Ptr(by), Arg::U32(5), Arg::U32(0)];
    let s = launch(&mut sim, &SOFTMAX_FORWARD, l, &args);
    assert!(download_f32(&mut sim, by, 1)[0].is_nan());
    assert_eq!((s.global_bytes_read, s.global_bytes_written), (0, 0));
}

/// The worst errors over fixed shapes (`--nocapture`): MNIST's 64x10, rows
/// around the one-warp limit, and wide rows with one block each.
#[test]
fn worst_errors_over_fixed_shapes() {
    for (rows, cols, scale) in [
        (64usize, 10usize, 3.0f32),
        (16, 1024, 10.0),
        (8, 1025, 10.0),
        (3, 5000, 30.0),
        (257, 33, 100.0),
    ] {
        let mut seed = 0x9e37_79b9_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32 * 2.0 - 1.0
        };
        let x: Vec<f32> = (0..rows * cols).map(|_| scale * next()).collect();
        let dy: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
        let l = softmax_launch(rows, cols).unwrap();
        let (f, b, _, _) = run(&x, &dy, rows, cols, l);
        println!("softmax {rows}x{cols} scale {scale}: forward {f}");
        println!("softmax {rows}x{cols} scale {scale}: backward {b}");
        check(&x, &dy, rows, cols).unwrap();
    }
}
