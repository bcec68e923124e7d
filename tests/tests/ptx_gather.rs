//! `kernels-ptx/ptx/gather.ptx` run on the PTX simulator against the CPU
//! reference (`DataOps for Cpu`, `trainer/src/backend/cpu/data.rs`).
//!
//! Tolerance: none. The gathers are copies, so the batch and the labels are
//! bit-exact with the CPU (compared as bits, so NaN payloads count too), and
//! `to_index` is an exact conversion: the same ids, and its flag set exactly
//! when the CPU fails.

mod ptx_common;

use lasagna_kernels::gather::{
    self as kg, gather_batch_launch, gather_idx_launch, gather_rows_launch, to_index_launch,
};
use lasagna_ptx_sim::{Arg, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::DataOps;
use proptest::prelude::*;
use ptx_common::{download_bytes, filled_f32, launch, sim_with, upload_f32, upload_u32};

fn download_u32(sim: &mut Simulator, b: lasagna_ptx_sim::BufId, n: usize) -> Vec<u32> {
    download_bytes(sim, b, n * 4)
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// (batch bits, labels) from the simulator, asserting the traffic: each
/// output element is written once and each source element it needs read once
/// (plus its row's index, an L1 hit for all but the first column; see the
/// PTX header); an out-of-range index reads no source element.
fn run(
    sim: &mut Simulator,
    x: &[f32],
    y: &[u32],
    idx: &[u32],
    cols: usize,
) -> (Vec<u32>, Vec<u32>) {
    let rows = idx.len();
    let src_rows = x.len() / cols.max(1);
    let n = rows * cols;
    let ok_rows = idx.iter().filter(|&&i| (i as usize) < src_rows).count();
    let bx = upload_f32(sim, x);
    let bi = upload_u32(sim, idx);
    let bd = filled_f32(sim, n, 1.5);
    let l = gather_rows_launch(rows, cols, src_rows).unwrap();
    let args = [
        Arg::Ptr(bx),
        Arg::Ptr(bi),
        Arg::Ptr(bd),
        Arg::U64(n as u64),
        Arg::U32(cols as u32),
        Arg::U32(src_rows as u32),
    ];
    let st = launch(sim, &kg::GATHER_ROWS, l, &args);
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        (n as u64 + (ok_rows * cols) as u64, n as u64, 0),
        "gather_rows, {rows} x {cols}"
    );
    let batch = download_u32(sim, bd, n);

    let ok = idx.iter().filter(|&&i| (i as usize) < y.len()).count();
    let by = upload_u32(sim, y);
    let bl = upload_u32(sim, &vec![7; rows]);
    let l = gather_idx_launch(rows, y.len()).unwrap();
    let args = [
        Arg::Ptr(by),
        Arg::Ptr(bi),
        Arg::Ptr(bl),
        Arg::U64(rows as u64),
        Arg::U32(y.len() as u32),
    ];
    let st = launch(sim, &kg::GATHER_IDX, l, &args);
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        ((rows + ok) as u64, rows as u64, 0),
        "gather_idx, {rows} rows"
    );
    let labels = download_u32(sim, bl, rows);

    // gather_batch: both in one launch, the same bits, each index read once
    // per element as gather_rows and not again for the label.
    if cols > 0 {
        let bd2 = filled_f32(sim, n, 1.5);
        let bl2 = upload_u32(sim, &vec![7; rows]);
        let l = gather_batch_launch(rows, cols, src_rows, y.len()).unwrap();
        let args = [
            Arg::Ptr(bx),
            Arg::Ptr(bi),
            Arg::Ptr(bd2),
            Arg::U64(n as u64),
            Arg::U32(cols as u32),
            Arg::U32(src_rows as u32),
            Arg::Ptr(by),
            Arg::Ptr(bl2),
            Arg::U32(y.len() as u32),
        ];
        let st = launch(sim, &kg::GATHER_BATCH, l, &args);
        assert_eq!(
            (st.global_load, st.global_store, st.atomic),
            (
                n as u64 + (ok_rows * cols + ok) as u64,
                (n + rows) as u64,
                0
            ),
            "gather_batch, {rows} x {cols}"
        );
        assert_eq!(download_u32(sim, bd2, n), batch, "gather_batch rows");
        assert_eq!(download_u32(sim, bl2, rows), labels, "gather_batch labels");
    }
    (batch, labels)
}

fn cpu(x: &[f32], y: &[u32], idx: &[u32], cols: usize) -> (Vec<u32>, Vec<u32>) {
    let rows = idx.len();
    let mut d = vec![0.0; rows * cols];
    Cpu.gather_rows(&x.to_vec(), &idx.to_vec(), rows, cols, &mut d)
        .unwrap();
    let mut l = vec![0; rows];
    Cpu.gather_idx(&y.to_vec(), &idx.to_vec(), rows, &mut l)
        .unwrap();
    (d.iter().map(|v| v.to_bits()).collect(), l)
}

/// (x, y, idx, cols): a dataset of `src_rows` samples, indices with repeats.
fn case() -> impl Strategy<Value = (Vec<f32>, Vec<u32>, Vec<u32>, usize)> {
    let cols = prop_oneof![
        prop::sample::select(vec![1usize, 31, 32, 33, 255, 256, 257, 784]),
        1usize..300
    ];
    let rows = prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 33, 257]),
        1usize..70
    ];
    (cols, rows, 1usize..40).prop_flat_map(|(cols, rows, src_rows)| {
        (
            // Any bits, NaN payloads and infinities included: a copy keeps them.
            prop::collection::vec(any::<u32>().prop_map(f32::from_bits), src_rows * cols),
            prop::collection::vec(any::<u32>(), src_rows),
            prop::collection::vec(0..src_rows as u32, rows),
            Just(cols),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn gathered_rows_and_labels_are_bit_exact_with_the_cpu((x, y, idx, cols) in case()) {
        let mut sim = sim_with(&kg::MODULE);
        let got = run(&mut sim, &x, &y, &idx, cols);
        let want = cpu(&x, &y, &idx, cols);
        prop_assert_eq!(got.0, want.0, "rows, {} x {}", idx.len(), cols);
        prop_assert_eq!(got.1, want.1, "labels, {} rows", idx.len());
    }
}

/// An index past the source writes NaN (rows) or 0xFFFFFFFF (labels) and
/// reads nothing outside it (the backend rejects it before launching, as the
/// CPU does; this is the kernel's own guard).
#[test]
fn an_out_of_range_index_reads_nothing_outside_the_source() {
    let mut sim = sim_with(&kg::MODULE);
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let (batch, labels) = run(&mut sim, &x, &[5, 6], &[1, 2, 0], 2);
    let batch: Vec<f32> = batch.into_iter().map(f32::from_bits).collect();
    assert_eq!(&batch[..2], &[3.0, 4.0]);
    assert!(batch[2].is_nan() && batch[3].is_nan());
    assert_eq!(&batch[4..], &[1.0, 2.0]);
    assert_eq!(labels, vec![6, u32::MAX, 5]);
}

/// A grid capped below the problem still covers it by striding: more rows of
/// MNIST-sized samples than one launch of the cap holds is too slow for the
/// simulator, so this forces a one-block grid instead.
#[test]
fn a_grid_smaller_than_the_batch_strides_over_it() {
    let (cols, src_rows, rows) = (37usize, 5usize, 40usize);
    let x: Vec<f32> = (0..cols * src_rows).map(|i| i as f32 * 0.25).collect();
    let y: Vec<u32> = (0..src_rows as u32).collect();
    let idx: Vec<u32> = (0..rows).map(|r| (r * 3 % src_rows) as u32).collect();
    let mut sim = sim_with(&kg::MODULE);
    let bx = upload_f32(&mut sim, &x);
    let bi = upload_u32(&mut sim, &idx);
    let bd = filled_f32(&mut sim, rows * cols, f32::NAN);
    let mut l = gather_rows_launch(rows, cols, src_rows).unwrap();
    l.grid.x = 1;
    let args = [
        Arg::Ptr(bx),
        Arg::Ptr(bi),
        Arg::Ptr(bd),
        Arg::U64((rows * cols) as u64),
        Arg::U32(cols as u32),
        Arg::U32(src_rows as u32),
    ];
    launch(&mut sim, &kg::GATHER_ROWS, l, &args);
    let got: Vec<u32> = download_u32(&mut sim, bd, rows * cols);
    assert_eq!(got, cpu(&x, &y, &idx, cols).0);
}

/// The CPU's test for a token id.
fn is_token_id(v: f32) -> bool {
    (0.0..16_777_216.0).contains(&v) && v.fract() == 0.0
}

/// to_index on the simulator: (ids, flag). Asserts the traffic: each value
/// read once, each id written once, plus one flag store per bad value.
fn run_to_index(x: &[f32], small: Option<u32>) -> (Vec<u32>, u32) {
    let n = x.len();
    let bad = x.iter().filter(|&&v| !is_token_id(v)).count() as u64;
    let mut sim = sim_with(&kg::MODULE);
    let bx = upload_f32(&mut sim, x);
    let bd = upload_u32(&mut sim, &vec![7; n]);
    let bf = upload_u32(&mut sim, &[0]);
    let mut l = to_index_launch(n).unwrap();
    if let Some(grid) = small {
        l.grid.x = grid;
    }
    let args = [Arg::Ptr(bx), Arg::Ptr(bd), Arg::Ptr(bf), Arg::U64(n as u64)];
    let st = launch(&mut sim, &kg::TO_INDEX, l, &args);
    let n64 = n as u64;
    assert_eq!(
        (
            st.global_load,
            st.global_store,
            st.atomic,
            st.global_bytes_read
        ),
        (n64, n64 + bad, 0, 4 * n64),
        "to_index, n {n}, {bad} bad: global (loads, stores, atomics, bytes read)"
    );
    (
        download_u32(&mut sim, bd, n),
        download_u32(&mut sim, bf, 1)[0],
    )
}

/// Token ids, with (sometimes) values that are not: fractions, negatives,
/// 2^24 and past it, NaN, infinities; and -0.0, which is id 0 on the CPU.
fn token_values() -> impl Strategy<Value = Vec<f32>> {
    let n = prop_oneof![
        prop::sample::select(vec![0usize, 1, 2, 255, 256, 257]),
        1usize..2000
    ];
    let valid = prop_oneof![
        4 => (0u32..1000).prop_map(|v| v as f32),
        2 => (0u32..(1 << 24)).prop_map(|v| v as f32),
        1 => prop::sample::select(vec![0.0f32, -0.0, 16_777_215.0]),
    ];
    let invalid = prop_oneof![
        (0.0f32..1000.0).prop_filter("not an integer", |v| v.fract() != 0.0),
        prop::sample::select(vec![
            -1.0f32,
            -0.5,
            0.5,
            1e-40,
            16_777_216.0,
            16_777_218.0,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]),
    ];
    (n, prop_oneof![3 => Just(0u32), 1 => Just(1), 1 => Just(50)]).prop_flat_map(
        move |(n, bad_percent)| {
            prop::collection::vec(
                prop_oneof![
                    100 - bad_percent => valid.clone(),
                    bad_percent => invalid.clone(),
                ],
                n,
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn to_index_converts_as_the_cpu_and_flags_exactly_when_it_fails(
        x in token_values(),
        small in prop_oneof![3 => Just(None), 1 => (1u32..4).prop_map(Some)],
    ) {
        let (ids, flag) = run_to_index(&x, small);
        let mut want = vec![0u32; x.len()];
        match Cpu.to_index(&x.to_vec(), &mut want, x.len()) {
            Ok(()) => {
                prop_assert_eq!(flag, 0);
                prop_assert_eq!(ids, want);
            }
            Err(e) => {
                prop_assert_eq!(flag, 1);
                // Each value is still converted on its own: bad ones give 0.
                let each: Vec<u32> = x.iter().map(|&v| if is_token_id(v) { v as u32 } else { 0 }).collect();
                prop_assert_eq!(ids, each);
                // The host names the first bad value (read back on this error
                // path only), as the CPU's message does.
                let first = x.iter().copied().find(|&v| !is_token_id(v)).unwrap();
                let msg = e.to_string();
                let named = format!("to_index: {first} is not a token id");
                prop_assert!(msg.contains(&named), "{} vs {}", msg, named);
            }
        }
    }
}
