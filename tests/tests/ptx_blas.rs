//! `kernels-ptx/ptx/blas.ptx` run on the PTX simulator against the CPU
//! reference (`Blas for Cpu` in `trainer/src/backend/cpu/blas.rs`, `Memory::fill`
//! in `memory.rs`; for `positions > 1`, the NCHW bias of
//! `trainer/src/backend/cpu/conv2d.rs`).
//!
//! Tolerances:
//! - `fill`, `axpy`, `scale`, `add_bias`: none. One IEEE operation per step,
//!   the same ones as the CPU (`axpy` rounds the product, then the sum, as
//!   Rust's `*y += alpha * x`), so outputs are compared as bits (any NaN
//!   matches any NaN: the GPU's NaN payloads are canonical).
//! - `sum_rows`: both sides add in f32, in different orders. An f32 addition
//!   errs by at most 2^-24 of its result, and a term passes through at most
//!   `k` of them: on the GPU `ceil(rows / 8) + 8` (positions = 1: a row lane,
//!   the 8 lanes in order, `out[c] +`) or `ceil(rows * positions / 256) + 9`
//!   (a thread's stride, a 256-wide tree, `out[c] +`); on the CPU `rows`
//!   (`Cpu::sum_rows` adds row after row) or `rows + 1` (conv2d's bias
//!   gradient rounds each sample's f64 sum to f32 and adds it). So
//!   `|ptx - cpu| <= (k_ptx + k_cpu) * 2^-24 * (sum |x| + |out[c]|)`, with a
//!   0.1% margin for second-order terms; the test uses exactly that, and
//!   `worst_sum_rows_errors` prints how much of it is used.

mod ptx_common;

use lasagna_kernels::blas::{self as kb, add_bias_launch, blas_launch, sum_rows_launch};
use lasagna_kernels::Launch;
use lasagna_ptx_sim::{Arg, LaunchStats};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{Blas, Conv2dDims, ConvOps, Memory};
use proptest::prelude::*;
use ptx_common::{download_f32, filled_f32, launch, sim_with, upload_f32};

/// Bit-for-bit equality, except that any NaN matches any NaN.
fn same_bits(got: &[f32], want: &[f32]) -> Result<(), String> {
    assert_eq!(got.len(), want.len());
    match got
        .iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits() && !(g.is_nan() && w.is_nan()))
    {
        None => Ok(()),
        Some(i) => Err(format!(
            "[{i}] of {}: got {:e} ({:#x}), want {:e} ({:#x})",
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        )),
    }
}

/// A launch rule's shape, or a small override (grid 1..=3 blocks of 32..=256
/// threads) so the grid-stride loops, and `add_bias`'s carries, run.
fn shaped(l: Launch, small: Option<(u32, u32)>) -> Launch {
    match small {
        None => l,
        Some((grid, block)) => Launch {
            grid: lasagna_kernels::Dim3::x(grid),
            block: lasagna_kernels::Dim3::x(block),
            ..l
        },
    }
}

fn traffic(st: &LaunchStats) -> (u64, u64, u64, u64, u64) {
    (
        st.global_load,
        st.global_store,
        st.atomic,
        st.global_bytes_read,
        st.global_bytes_written,
    )
}

/// fill, scale and axpy on the simulator and the CPU; asserts that each
/// element is read (`x`, `y`) and written once.
fn check_elementwise(
    x: &[f32],
    y: &[f32],
    a: f32,
    small: Option<(u32, u32)>,
) -> Result<(), TestCaseError> {
    let n = x.len();
    let n64 = n as u64;
    let l = shaped(blas_launch(n).unwrap(), small);
    let mut sim = sim_with(&kb::MODULE);

    let by = filled_f32(&mut sim, n, f32::NAN);
    let st = launch(
        &mut sim,
        &kb::FILL,
        l,
        &[Arg::Ptr(by), Arg::F32(a), Arg::U64(n64)],
    );
    prop_assert_eq!(traffic(&st), (0, n64, 0, 0, 4 * n64), "fill, n {}", n);
    let mut want = vec![f32::NAN; n];
    Cpu.fill(&mut want, a, n).unwrap();
    same_bits(&download_f32(&mut sim, by, n), &want).map_err(|e| fail("fill", e))?;

    let bx = upload_f32(&mut sim, x);
    let st = launch(
        &mut sim,
        &kb::SCALE,
        l,
        &[Arg::Ptr(bx), Arg::F32(a), Arg::U64(n64)],
    );
    prop_assert_eq!(
        traffic(&st),
        (n64, n64, 0, 4 * n64, 4 * n64),
        "scale, n {}",
        n
    );
    let mut want = x.to_vec();
    Cpu.scale(&mut want, a, n).unwrap();
    same_bits(&download_f32(&mut sim, bx, n), &want).map_err(|e| fail("scale", e))?;

    let bx = upload_f32(&mut sim, x);
    let by = upload_f32(&mut sim, y);
    let args = [Arg::Ptr(bx), Arg::Ptr(by), Arg::F32(a), Arg::U64(n64)];
    let st = launch(&mut sim, &kb::AXPY, l, &args);
    prop_assert_eq!(
        traffic(&st),
        (2 * n64, n64, 0, 8 * n64, 4 * n64),
        "axpy, n {}",
        n
    );
    let mut want = y.to_vec();
    Cpu.axpy(a, &x.to_vec(), &mut want, n).unwrap();
    same_bits(&download_f32(&mut sim, by, n), &want).map_err(|e| fail("axpy", e))?;
    Ok(())
}

fn fail(what: &str, e: String) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

/// `[rows, cols, positions]` as `[rows * positions, cols]` (the layout
/// `Cpu::add_bias` and `Cpu::sum_rows` take), or back with `back`.
fn transpose(v: &[f32], rows: usize, cols: usize, positions: usize, back: bool) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            for p in 0..positions {
                let rcp = (r * cols + c) * positions + p;
                let rpc = (r * positions + p) * cols + c;
                if back {
                    out[rcp] = v[rpc];
                } else {
                    out[rpc] = v[rcp];
                }
            }
        }
    }
    out
}

/// add_bias on the simulator vs `Cpu::add_bias` on the transposed tensor
/// (each element gets one `+= bias[c]` either way, so bit-exact). Traffic:
/// y read and written once, plus one 4-byte bias load per element (bias is
/// `cols` floats, an L1/L2 hit after its first touch).
fn check_add_bias(
    y: &[f32],
    bias: &[f32],
    rows: usize,
    positions: usize,
    small: Option<(u32, u32)>,
) -> Result<(), TestCaseError> {
    let cols = bias.len();
    let n = y.len();
    let n64 = n as u64;
    let mut sim = sim_with(&kb::MODULE);
    let by = upload_f32(&mut sim, y);
    let bb = upload_f32(&mut sim, bias);
    let l = shaped(add_bias_launch(rows, cols, positions).unwrap(), small);
    let args = [
        Arg::Ptr(by),
        Arg::Ptr(bb),
        Arg::U64(n64),
        Arg::U32(cols as u32),
        Arg::U32(positions as u32),
    ];
    let st = launch(&mut sim, &kb::ADD_BIAS, l, &args);
    prop_assert_eq!(
        traffic(&st),
        (2 * n64, n64, 0, 8 * n64, 4 * n64),
        "add_bias {} x {} x {}",
        rows,
        cols,
        positions
    );
    let mut t = transpose(y, rows, cols, positions, false);
    // Cpu::add_bias panics on cols = 0 (`chunks_exact(0)`); there is nothing to add then.
    if cols > 0 {
        Cpu.add_bias(&mut t, &bias.to_vec(), rows * positions, cols)
            .unwrap();
    }
    let want = transpose(&t, rows, cols, positions, true);
    same_bits(&download_f32(&mut sim, by, n), &want)
        .map_err(|e| fail(&format!("add_bias {rows} x {cols} x {positions}"), e))
}

/// The CPU's column sums of `x [rows, cols, positions]` starting from `init`
/// (or 0), and the CPU side's `k` of the bound: `Cpu::sum_rows` when
/// positions = 1; conv2d's bias gradient (a 1x1 convolution of one input
/// channel, whose dy is `x`) when positions > 1.
fn cpu_sum_rows(
    x: &[f32],
    rows: usize,
    cols: usize,
    positions: usize,
    init: &[f32],
    accumulate: bool,
) -> (Vec<f32>, f64) {
    if positions == 1 || rows == 0 || cols == 0 {
        let t = transpose(x, rows, cols, positions, false);
        let mut out = init.to_vec();
        // Cpu::sum_rows panics on cols = 0 (`chunks_exact(0)`); there is no column then.
        if cols > 0 {
            Cpu.sum_rows(&t, rows * positions, cols, &mut out, accumulate)
                .unwrap();
        }
        return (out, (rows * positions) as f64);
    }
    let (h, w) = (1, positions);
    let d = Conv2dDims::new(rows, [1, h, w], cols, [1, 1], [1, 1], [0, 0], [1, 1], 1).unwrap();
    let input = vec![0.0; rows * h * w];
    let weight = vec![0.0; cols];
    let mut dweight = vec![0.0; cols];
    // conv2d_backward overwrites the bias gradient: `init` is added after.
    let mut dbias = vec![f32::NAN; cols];
    let mut scratch = vec![0.0; Cpu.conv2d_scratch_len(&d)];
    Cpu.conv2d_backward(
        &d,
        &input,
        &weight,
        &x.to_vec(),
        None,
        &mut dweight,
        Some(&mut dbias),
        &mut scratch,
    )
    .unwrap();
    if accumulate {
        dbias.iter_mut().zip(init).for_each(|(d, i)| *d += i);
    }
    (dbias, rows as f64 + 1.0)
}

/// Runs sum_rows; returns (got, want, bound) per column after asserting the
/// traffic: each element of x read once, `out` read (when accumulating) and
/// written once per column, no atomics.
#[allow(clippy::type_complexity)]
fn run_sum_rows(
    x: &[f32],
    rows: usize,
    cols: usize,
    positions: usize,
    init: &[f32],
    accumulate: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f64>) {
    let n = x.len() as u64;
    let mut sim = sim_with(&kb::MODULE);
    let bx = upload_f32(&mut sim, x);
    let bo = upload_f32(&mut sim, init);
    let l = sum_rows_launch(rows, cols, positions).unwrap();
    let args = [
        Arg::Ptr(bx),
        Arg::Ptr(bo),
        Arg::U32(rows as u32),
        Arg::U32(cols as u32),
        Arg::U32(positions as u32),
        Arg::U32(accumulate.into()),
    ];
    let st = launch(&mut sim, &kb::SUM_ROWS, l, &args);
    let c = cols as u64;
    let reads = n + if accumulate { c } else { 0 };
    assert_eq!(
        traffic(&st),
        (reads, c, 0, 4 * reads, 4 * c),
        "sum_rows {rows} x {cols} x {positions}: global (loads, stores, atomics, bytes read, written)"
    );
    let got = download_f32(&mut sim, bo, cols);
    let (want, k_cpu) = cpu_sum_rows(x, rows, cols, positions, init, accumulate);
    let k_ptx = if positions == 1 {
        rows.div_ceil(8) as f64 + 8.0
    } else {
        (rows * positions).div_ceil(256) as f64 + 9.0
    };
    let u = f64::from(f32::EPSILON) / 2.0;
    let bound = (0..cols)
        .map(|c| {
            let mut mag = if accumulate {
                init[c].abs() as f64
            } else {
                0.0
            };
            for r in 0..rows {
                for p in 0..positions {
                    mag += x[(r * cols + c) * positions + p].abs() as f64;
                }
            }
            (k_ptx + k_cpu) * u * mag * 1.001
        })
        .collect();
    (got, want, bound)
}

fn check_sum_rows(
    x: &[f32],
    rows: usize,
    cols: usize,
    positions: usize,
    init: &[f32],
    accumulate: bool,
) -> Result<(), TestCaseError> {
    let (got, want, bound) = run_sum_rows(x, rows, cols, positions, init, accumulate);
    for c in 0..cols {
        let err = (got[c] as f64 - want[c] as f64).abs();
        prop_assert!(
            err <= bound[c],
            "sum_rows {} x {} x {} (accumulate {}), column {}: got {:e}, cpu {:e}, err {:e} > {:e}",
            rows,
            cols,
            positions,
            accumulate,
            c,
            got[c],
            want[c],
            err,
            bound[c]
        );
    }
    Ok(())
}

/// Sizes around the warp, the block and a few blocks.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 31, 32, 33, 255, 256, 257, 511, 513]),
        1usize..3000,
    ]
}

/// Finite values of every magnitude, plus infinities, NaN and signed zeros.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -10.0f32..10.0,
        2 => any::<u32>().prop_map(f32::from_bits),
        1 => prop::sample::select(vec![0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-40, f32::MAX]),
    ]
}

fn small_launch() -> impl Strategy<Value = Option<(u32, u32)>> {
    prop_oneof![
        3 => Just(None),
        1 => (1u32..4, prop::sample::select(vec![32u32, 64, 96, 256])).prop_map(Some),
    ]
}

/// positions: 1 (Linear), small, around the block, and MNIST's 28x28.
fn positions() -> impl Strategy<Value = usize> {
    prop::sample::select(vec![1usize, 1, 1, 2, 3, 7, 49, 255, 256, 257, 300, 784])
}

/// (x, rows, cols, positions) with small enough products for the simulator.
fn tensor(
    vals: fn() -> BoxedStrategy<f32>,
) -> impl Strategy<Value = (Vec<f32>, usize, usize, usize)> {
    (positions(), 0usize..5)
        .prop_flat_map(|(p, shape)| {
            let (rows, cols) = match (p, shape) {
                (1, 0) => (0usize..3, 0usize..3),
                (1, _) => (1usize..200, 1usize..80),
                (_, 0) => (0usize..3, 0usize..3),
                (_, _) => (1usize..6, 1usize..5),
            };
            (rows, cols, Just(p))
        })
        .prop_flat_map(move |(rows, cols, p)| {
            (
                prop::collection::vec(vals(), rows * cols * p),
                Just(rows),
                Just(cols),
                Just(p),
            )
        })
}

fn any_value() -> BoxedStrategy<f32> {
    value().boxed()
}

fn moderate() -> BoxedStrategy<f32> {
    prop_oneof![
        4 => -100.0f32..100.0,
        1 => -1e-3f32..1e-3,
        1 => prop::sample::select(vec![0.0f32, -0.0, 1e6, -1e6]),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn fill_scale_and_axpy_are_bit_exact_with_the_cpu(
        (x, y) in size().prop_flat_map(|n| (
            prop::collection::vec(value(), n),
            prop::collection::vec(value(), n),
        )),
        a in value(),
        small in small_launch(),
    ) {
        check_elementwise(&x, &y, a, small)?;
    }

    #[test]
    fn add_bias_is_bit_exact_with_the_cpu_for_every_layout(
        (y, rows, cols, positions) in tensor(any_value),
        seed in any::<u64>(),
        small in small_launch(),
    ) {
        let bias: Vec<f32> = (0..cols)
            .map(|c| f32::from_bits((seed.rotate_left(c as u32 * 7) as u32) & 0xbfff_ffff))
            .collect();
        check_add_bias(&y, &bias, rows, positions, small)?;
    }

    #[test]
    fn sum_rows_matches_the_cpu_within_the_rounding_bound(
        (x, rows, cols, positions) in tensor(moderate),
        init in prop::collection::vec(-50.0f32..50.0, 80),
        accumulate in any::<bool>(),
    ) {
        check_sum_rows(&x, rows, cols, positions, &init[..cols], accumulate)?;
    }
}

/// A grid smaller than the tensor (a launch past the 65535-block cap is too
/// slow for the simulator, so this forces 3 blocks of 96 threads, a stride
/// of 288): `add_bias`'s (c, p) carries, with positions below, equal to and
/// above the stride, and cols that do not divide it.
#[test]
fn a_grid_smaller_than_the_tensor_strides_with_the_right_bias() {
    for (rows, cols, positions) in [
        (5usize, 7usize, 1usize),
        (3, 5, 7),
        (2, 3, 288),
        (2, 3, 1001),
    ] {
        let n = rows * cols * positions;
        let y: Vec<f32> = (0..n).map(|i| (i % 1013) as f32 * 0.5).collect();
        let bias: Vec<f32> = (0..cols).map(|c| c as f32 * 1000.0 + 0.25).collect();
        check_add_bias(&y, &bias, rows, positions, Some((3, 96))).unwrap();
    }
}

/// Column sums large enough for the row lanes to loop many times: the MLP's
/// hidden layer (bias gradient of 128 units over a batch of 2048) and a
/// Conv2d bias gradient (6 channels of 28x28 over 16 samples).
#[test]
fn worst_sum_rows_errors() {
    for (rows, cols, positions) in [(2048usize, 128usize, 1usize), (16, 6, 784)] {
        let n = rows * cols * positions;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 104_729) % 1999) as f32 * 0.01 - 9.99)
            .collect();
        let init: Vec<f32> = (0..cols).map(|c| c as f32 - 3.0).collect();
        for accumulate in [false, true] {
            let (got, want, bound) = run_sum_rows(&x, rows, cols, positions, &init, accumulate);
            let worst = (0..cols)
                .map(|c| (got[c] as f64 - want[c] as f64).abs() / bound[c])
                .fold(0.0f64, f64::max);
            println!(
                "sum_rows {rows} x {cols} x {positions}, accumulate {accumulate}: worst error {worst:.2e} of the bound"
            );
            assert!(worst <= 1.0);
        }
    }
}
