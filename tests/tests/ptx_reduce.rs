//! `kernels-ptx/ptx/reduce.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/clip.rs` through `Cpu`'s
//! `OptimOps::sum_squares`; for the plain sum, an f64 sum, which is what the
//! CPU's `sum_squares` does without the square).
//!
//! Tolerance: the kernel sums in f32 (each thread over its grid-stride
//! slice, then a 256-wide tree, then one f32 atomic per block into `out`),
//! the CPU in f64. Every f32 addition of non-negative-weight terms errs by at
//! most 2^-24 of the running magnitude, and a term passes through at most
//! `k = ceil(n / threads) + 8 (tree) + grid (atomics) + 1` of them, so
//! `|ptx - cpu| <= k * 2^-24 * sum |x|` (`sum x^2` for squares) plus one
//! rounding of the CPU's final f32 cast. The test uses exactly that bound,
//! so it is tight to the analysis rather than a guessed epsilon; the worst
//! observed ratio is printed by `worst_errors_over_sizes`.

mod ptx_common;

use lasagna_kernels::reduce::{self as kr, reduce_launch};
use lasagna_kernels::Kernel;
use lasagna_ptx_sim::{Arg, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::OptimOps;
use proptest::prelude::*;
use ptx_common::{download_f32, launch, sim_with, upload_f32};

/// Runs `k` over `x` with `out[0] = init`; returns (out[0], bound on the error
/// of the reduction) and asserts one read per element and one atomic per block.
fn run(sim: &mut Simulator, k: &Kernel, x: &[f32], init: f32, mag: f64) -> (f32, f64) {
    let n = x.len();
    let l = reduce_launch(n).unwrap();
    let bx = upload_f32(sim, x);
    let bo = upload_f32(sim, &[init]);
    let st = launch(sim, k, l, &[Arg::Ptr(bx), Arg::Ptr(bo), Arg::U64(n as u64)]);
    let blocks = l.grid.count();
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        (n as u64, 0, blocks),
        "{}, n {n}: global (loads, stores, atomics): one read per element, one atomic per block",
        k.name
    );
    assert_eq!(
        st.global_bytes_read,
        4 * n as u64 + 4 * blocks,
        "{}",
        k.name
    );
    let out = download_f32(sim, bo, 1)[0];
    let threads = (l.grid.count() * l.block.count()) as f64;
    let terms = (n as f64 / threads).ceil() + 8.0 + blocks as f64 + 1.0;
    let eps = f64::from(f32::EPSILON) / 2.0;
    (out, terms * eps * (mag + init.abs() as f64) + eps * mag)
}

/// (sum, bound, cpu sum) and (sum of squares, bound, cpu) for `x`.
fn check(x: &[f32], init: f32) -> Result<(), TestCaseError> {
    let mut sim = sim_with(&kr::MODULE);
    let abs_sum: f64 = x.iter().map(|&v| (v as f64).abs()).sum();
    let want_sum = init as f64 + x.iter().map(|&v| v as f64).sum::<f64>();
    let (got, bound) = run(&mut sim, &kr::REDUCE_SUM, x, init, abs_sum);
    let err = (got as f64 - want_sum).abs();
    prop_assert!(
        err <= bound,
        "sum n {}: got {got}, want {want_sum}, err {err:e} > {bound:e}",
        x.len()
    );

    let mut out = vec![init];
    Cpu.sum_squares(&x.to_vec(), x.len(), &mut out).unwrap();
    let sq: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    let (got, bound) = run(&mut sim, &kr::REDUCE_SUM_SQUARES, x, init, sq);
    let err = (got as f64 - out[0] as f64).abs();
    prop_assert!(
        err <= bound + f64::from(f32::EPSILON) * out[0].abs() as f64,
        "sum_squares n {}: got {got}, cpu {}, err {err:e} > {bound:e}",
        x.len(),
        out[0]
    );
    Ok(())
}

/// Sizes around the warp, the block, and past the grid cap (1024 * 256).
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 31, 32, 33, 255, 256, 257, 511, 8191]),
        1usize..5000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn sum_and_sum_squares_match_f64_within_the_rounding_bound(
        x in size().prop_flat_map(|n| prop::collection::vec(-100.0f32..100.0, n)),
        init in prop_oneof![Just(0.0f32), -10.0f32..10.0],
    ) {
        check(&x, init)?;
    }
}

/// Past the grid cap, so threads loop (and the atomics count is capped at 1024).
#[test]
fn a_grid_stride_size_reads_each_element_once_and_uses_1024_atomics() {
    let n = 1024 * 256 + 4097;
    let x: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 * 1e-3 - 1.0)
        .collect();
    assert_eq!(reduce_launch(n).unwrap().grid.x, kr::MAX_GRID);
    check(&x, 0.0).unwrap();
}

/// Prints the worst error relative to the bound over a few sizes.
#[test]
fn worst_errors_over_sizes() {
    let mut sim = sim_with(&kr::MODULE);
    for n in [1usize, 33, 257, 4099, 70_001] {
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 104_729) % 1999) as f32 * 0.01 - 9.99)
            .collect();
        let mut out = vec![0.0f32];
        Cpu.sum_squares(&x, n, &mut out).unwrap();
        let sq: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let (got, bound) = run(&mut sim, &kr::REDUCE_SUM_SQUARES, &x, 0.0, sq);
        let err = (got as f64 - sq).abs();
        println!(
            "sum_squares n {n:>6}: got {got:e}, cpu {:e}, f64 {sq:e}; err {err:.3e} ({:.3} of the bound, rel {:.3e})",
            out[0],
            err / bound,
            err / sq.max(f64::MIN_POSITIVE)
        );
        assert!(err <= bound);
    }
}
