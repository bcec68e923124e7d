//! `kernels-ptx/ptx/embedding.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/embedding.rs` through `Cpu`'s `NormOps`).
//!
//! Tolerances:
//! - forward: a copy, bit-exact.
//! - backward with dyadic gradients and a dyadic table (multiples of 1/64,
//!   |dy|, |table| <= 4): every partial sum is exact in f32 whatever the order
//!   of the atomics, so the result is bit-exact with the CPU's sequential sum.
//!   (The table must be dyadic too: the sums start from it. With an arbitrary
//!   table the test passed only because blocks ran in order; the strict
//!   simulator's shuffled blocks, like a GPU, broke it.)
//! - backward with arbitrary f32 gradients: the atomics add a row's k
//!   contributions in another order than the CPU, and each of the k - 1
//!   additions rounds by at most 2^-24 of its running magnitude, so per
//!   element `|ptx - cpu| <= 2 (k + 1) 2^-24 sum |terms|` (both orders err,
//!   initial value included); checked per element with that k.

mod ptx_common;

use lasagna_kernels::embedding::{self as ke, embedding_launch};
use lasagna_ptx_sim::{Arg, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::NormOps;
use proptest::prelude::*;
use ptx_common::{download_f32, filled_f32, launch, sim_with, upload_f32, upload_u32};

/// (forward y, backward dtable) from the simulator, asserting the traffic:
/// one index and one table read per output element (forward), an index and
/// a dy read and one atomic per element (backward), no plain stores in backward.
fn run(
    sim: &mut Simulator,
    idx: &[u32],
    table: &[f32],
    dy: &[f32],
    dim: usize,
) -> (Vec<f32>, Vec<f32>) {
    let count = idx.len();
    let rows = table.len() / dim.max(1);
    let n = count * dim;
    // Elements whose index is in range (all of them but in the guard test).
    let ok = (idx.iter().filter(|&&i| (i as usize) < rows).count() * dim) as u64;
    let l = embedding_launch(count, dim, rows).unwrap();
    let tail = [
        Arg::U64(n as u64),
        Arg::U32(dim as u32),
        Arg::U32(rows as u32),
    ];
    let bi = upload_u32(sim, idx);
    let bt = upload_f32(sim, table);
    let by = filled_f32(sim, n, f32::NAN);
    let mut args = vec![Arg::Ptr(bi), Arg::Ptr(bt), Arg::Ptr(by)];
    args.extend(tail);
    let st = launch(sim, &ke::EMBEDDING_FORWARD, l, &args);
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        (n as u64 + ok, n as u64, 0),
        "forward, n {n}"
    );
    let y = download_f32(sim, by, n);

    let bdy = upload_f32(sim, dy);
    let mut args = vec![Arg::Ptr(bi), Arg::Ptr(bdy), Arg::Ptr(bt)];
    args.extend(tail);
    let st = launch(sim, &ke::EMBEDDING_BACKWARD, l, &args);
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        (2 * n as u64, 0, ok),
        "backward, n {n}"
    );
    (y, download_f32(sim, bt, table.len()))
}

fn cpu(idx: &[u32], table: &[f32], dy: &[f32], dim: usize) -> (Vec<f32>, Vec<f32>) {
    let n = idx.len() * dim;
    let mut y = vec![0.0; n];
    Cpu.embedding_forward(&idx.to_vec(), &table.to_vec(), &mut y, idx.len(), dim)
        .unwrap();
    let mut dt = table.to_vec();
    Cpu.embedding_backward(&idx.to_vec(), &dy.to_vec(), &mut dt, idx.len(), dim)
        .unwrap();
    (y, dt)
}

type Case = (Vec<u32>, Vec<f32>, usize, usize);

/// (idx, table, dim, rows): few rows so indices repeat.
fn case() -> impl Strategy<Value = Case> {
    let dim = prop_oneof![
        prop::sample::select(vec![1usize, 31, 32, 33, 257]),
        1usize..300
    ];
    let count = prop_oneof![prop::sample::select(vec![0usize, 1, 2, 33]), 1usize..40];
    (dim, count, 1usize..12).prop_flat_map(|(dim, count, rows)| {
        (
            prop::collection::vec(0..rows as u32, count),
            prop::collection::vec(-4.0f32..4.0, rows * dim),
            Just(dim),
            Just(rows),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn forward_is_bit_exact_and_dyadic_backward_is_bit_exact_with_repeats(
        (idx, table, dim, _rows) in case(), seed in any::<u32>()
    ) {
        let n = idx.len() * dim;
        let dy: Vec<f32> = (0..n).map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 513).map(|k| (k as f32 - 256.0) / 64.0).collect();
        let table: Vec<f32> = table.iter().map(|x| (x * 64.0).round() / 64.0).collect();
        let mut sim = sim_with(&ke::MODULE);
        let (y, dt) = run(&mut sim, &idx, &table, &dy, dim);
        let (y_ref, dt_ref) = cpu(&idx, &table, &dy, dim);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&y), bits(&y_ref), "forward, dim {}", dim);
        prop_assert_eq!(bits(&dt), bits(&dt_ref), "backward, dim {}", dim);
    }

    #[test]
    fn backward_with_any_gradients_is_within_the_reordering_bound(
        (idx, table, dim, rows) in case(),
        dy in prop::collection::vec(-4.0f32..4.0, 40 * 300)
    ) {
        let n = idx.len() * dim;
        let dy = &dy[..n];
        let mut sim = sim_with(&ke::MODULE);
        let (_, dt) = run(&mut sim, &idx, &table, dy, dim);
        let (_, dt_ref) = cpu(&idx, &table, dy, dim);
        for r in 0..rows {
            let hits: Vec<usize> = (0..idx.len()).filter(|&i| idx[i] as usize == r).collect();
            let k = hits.len() as f64;
            for c in 0..dim {
                let mag = table[r * dim + c].abs() as f64 + hits.iter().map(|&i| dy[i * dim + c].abs() as f64).sum::<f64>();
                let bound = 2.0 * (k + 1.0) * f64::from(f32::EPSILON) / 2.0 * mag;
                let err = (dt[r * dim + c] as f64 - dt_ref[r * dim + c] as f64).abs();
                prop_assert!(err <= bound, "row {r} col {c}: got {}, cpu {}, err {err:e} > {bound:e}", dt[r * dim + c], dt_ref[r * dim + c]);
            }
        }
    }
}

/// An index past the table writes NaN forward and is skipped backward (the
/// backend rejects it before launching, as the CPU does; this is the kernel's
/// own guard against reading out of bounds).
#[test]
fn an_out_of_range_index_reads_and_writes_nothing_outside_the_table() {
    let mut sim = sim_with(&ke::MODULE);
    let table = vec![1.0f32, 2.0, 3.0, 4.0];
    let (y, dt) = run(&mut sim, &[1, 2], &table, &[0.5, 0.5, 9.0, 9.0], 2);
    assert_eq!(&y[..2], &[3.0, 4.0]);
    assert!(y[2].is_nan() && y[3].is_nan());
    assert_eq!(dt, vec![1.0, 2.0, 3.5, 4.5]);
}

/// Many repeats of few rows with arbitrary gradients: prints the worst
/// difference from the CPU (the reordering of the atomics' additions).
#[test]
fn worst_backward_error_with_many_repeats() {
    let (dim, rows, count) = (37usize, 3usize, 200usize);
    let idx: Vec<u32> = (0..count).map(|i| (i * 7 % rows) as u32).collect();
    let table: Vec<f32> = (0..rows * dim).map(|i| (i % 13) as f32 * 0.1).collect();
    let dy: Vec<f32> = (0..count * dim)
        .map(|i| ((i * 7919) % 1000) as f32 * 1.37e-3 - 0.5)
        .collect();
    let mut sim = sim_with(&ke::MODULE);
    let (_, dt) = run(&mut sim, &idx, &table, &dy, dim);
    let (_, dt_ref) = cpu(&idx, &table, &dy, dim);
    let w = ptx_common::compare(&dt_ref, &dt, &dt_ref, 1e-5, 1e-5);
    println!("embedding_backward, {count} indices into {rows} rows: {w}");
    assert_eq!(w.failures, 0);
}
