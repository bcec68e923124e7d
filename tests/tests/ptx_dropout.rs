//! `kernels-ptx/ptx/dropout.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/dropout.rs` through `Cpu`'s `ActivationOps`,
//! and `trainer/src/philox.rs`).
//!
//! Tolerance: none. The mask is an integer function of (seed, offset, index)
//! and the kept values are one IEEE `mul.rn` by the same f32 scale the CPU
//! computes (`1 / (1 - p)`, both `.rn`), so outputs must be bit-identical
//! (NaN only where the CPU has NaN, e.g. `inf * 0` in the grouped path).

mod ptx_common;

use lasagna_kernels::dropout::{self as kd, dropout_launch, philox_launch};
use lasagna_ptx_sim::{Arg, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::ActivationOps;
use lasagna_trainer::philox::philox4x32_10;
use proptest::prelude::*;
use ptx_common::{download_f32, filled_f32, launch, sim_with, upload_f32, upload_u32};

/// Runs `dropout_forward` on `x` and `dropout_backward` on `dy` and returns
/// `(y, dx)`. Asserts the traffic for 0 < p < 1: each input element is read
/// once and each output element written once, with no atomics.
fn run_sim(
    sim: &mut Simulator,
    p: f32,
    seed: u64,
    offset: u64,
    group: usize,
    x: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let l = dropout_launch(n).unwrap();
    let mut out = Vec::new();
    for (k, src) in [(&kd::DROPOUT_FORWARD, x), (&kd::DROPOUT_BACKWARD, dy)] {
        // Outputs start as NaN so an element the kernel skips cannot pass.
        let bs = upload_f32(sim, src);
        let bd = filled_f32(sim, n, f32::NAN);
        let args = [
            Arg::Ptr(bs),
            Arg::Ptr(bd),
            Arg::U64(n as u64),
            Arg::F32(p),
            Arg::U64(seed),
            Arg::U64(offset),
            Arg::U64(group as u64),
            Arg::U64(0),
        ];
        let st = launch(sim, k, l, &args);
        if p > 0.0 && p < 1.0 {
            let n = n as u64;
            assert_eq!(
                (st.global_load, st.global_store, st.atomic),
                (n, n, 0),
                "{}: global (loads, stores, atomics)",
                k.name
            );
            assert_eq!(
                (st.global_bytes_read, st.global_bytes_written),
                (4 * n, 4 * n),
                "{}: global bytes (read, written)",
                k.name
            );
        }
        out.push(download_f32(sim, bd, n));
    }
    let dx = out.pop().unwrap();
    (out.pop().unwrap(), dx)
}

fn run_cpu(
    p: f32,
    seed: u64,
    offset: u64,
    group: usize,
    x: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let n = x.len();
    let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
    Cpu.dropout_forward(p, seed, offset, group, &x.to_vec(), &mut y, n)
        .unwrap();
    Cpu.dropout_backward(p, seed, offset, group, &dy.to_vec(), &mut dx, n)
        .unwrap();
    (y, dx)
}

/// Bit-identical, except that any NaN matches any NaN.
fn same_bits(what: &str, got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(),
            "{what}: element {i} of {}: got {g:e} ({:#010x}), want {w:e} ({:#010x})",
            got.len(),
            g.to_bits(),
            w.to_bits()
        );
    }
    Ok(())
}

fn check(
    p: f32,
    seed: u64,
    offset: u64,
    group: usize,
    x: &[f32],
    dy: &[f32],
) -> Result<(), TestCaseError> {
    let mut sim = sim_with(&kd::MODULE);
    let (y, dx) = run_sim(&mut sim, p, seed, offset, group, x, dy);
    let (y_ref, dx_ref) = run_cpu(p, seed, offset, group, x, dy);
    let tag = format!("p {p}, seed {seed}, offset {offset}, group {group}");
    same_bits(&format!("forward, {tag}"), &y, &y_ref)?;
    same_bits(&format!("backward, {tag}"), &dx, &dx_ref)?;
    Ok(())
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 3, 4, 5, 1023, 4097]),
        1usize..3000,
    ]
}

/// Mostly ordinary values, plus signed zeros and infinities (which the
/// grouped path turns into -0.0 and NaN when dropped, as the CPU does).
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        9 => -10.0f32..10.0,
        1 => prop::sample::select(vec![0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, 1e-30]),
    ]
}

fn case() -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    size().prop_flat_map(|n| {
        (
            prop::collection::vec(value(), n),
            prop::collection::vec(value(), n),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn mask_and_outputs_are_bit_identical_to_cpu_for_any_seed_offset_and_size(
        (x, dy) in case(),
        seed in any::<u64>(),
        offset in any::<u64>(),
        p in prop_oneof![Just(0.5f32), Just(0.1), Just(0.9), 0.0f32..1.0],
    ) {
        check(p, seed, offset, 1, &x, &dy)?;
    }

    #[test]
    fn grouped_masks_are_bit_identical_to_cpu(
        (x, dy) in case(),
        seed in any::<u64>(),
        offset in any::<u64>(),
        group in prop::sample::select(vec![2usize, 3, 4, 9, 49, 1000]),
        p in 0.05f32..0.95,
    ) {
        check(p, seed, offset, group, &x, &dy)?;
    }
}

/// The CPU's early outs and the degenerate probabilities: p <= 0 copies
/// (bit for bit, so p < 0 does not rescale), p >= 1 zeroes without reading,
/// p = NaN drops everything; group 0 means 1.
#[test]
fn edge_probabilities_and_group_zero_match_cpu() {
    let x: Vec<f32> = (0..1029).map(|i| (i as f32 - 500.0) * 0.37).collect();
    let dy: Vec<f32> = x.iter().map(|v| 1.0 - v).collect();
    for p in [0.0f32, -0.5, 1.0, 1.5, f32::NAN, 1e-7, 0.999_999] {
        for group in [0usize, 1, 7] {
            check(p, 3, 4, group, &x, &dy).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// The kept fraction of 2^16 elements is within 5 binomial standard
/// deviations of 1 - p, kept values are exactly x / (1 - p), and backward
/// keeps exactly the elements forward kept.
#[test]
fn keep_fraction_is_within_five_sigma_and_backward_uses_the_same_mask() {
    let n = 1 << 16;
    let x = vec![1.0f32; n];
    let dy: Vec<f32> = (0..n).map(|i| 1.0 + (i % 7) as f32).collect();
    let mut sim = sim_with(&kd::MODULE);
    for p in [0.1f32, 0.3, 0.5, 0.9] {
        let (y, dx) = run_sim(&mut sim, p, 0x1234_5678_9abc_def0, 17, 1, &x, &dy);
        let scale = 1.0 / (1.0 - p);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64;
        let expect = n as f64 * (1.0 - p as f64);
        let sd = (n as f64 * p as f64 * (1.0 - p as f64)).sqrt();
        assert!(
            (kept - expect).abs() < 5.0 * sd,
            "p {p}: kept {kept}, expected {expect} ± {}",
            5.0 * sd
        );
        for i in 0..n {
            assert!(y[i] == 0.0 || y[i] == scale, "p {p}: y[{i}] = {}", y[i]);
            assert_eq!(y[i] != 0.0, dx[i] != 0.0, "p {p}: mask differs at {i}");
            if dx[i] != 0.0 {
                assert_eq!(dx[i], dy[i] * scale, "p {p}: dx[{i}]");
            }
        }
    }
}

/// Random123's published Philox4x32-10 known answers, through the CPU
/// generator and through the kernel's generator on the simulator.
#[test]
fn philox_matches_the_random123_known_answers_on_cpu_and_simulator() {
    let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0, 0, 0, 0],
            [0, 0],
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
        ),
        (
            [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
            [0xa409_3822, 0x299f_31d0],
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
        ),
    ];
    // Plus arbitrary counters and keys, checked against the CPU generator.
    let mut cases: Vec<([u32; 4], [u32; 2])> = kat.iter().map(|&(c, k, _)| (c, k)).collect();
    let mut s = 0x9e37_79b9_u32;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    for _ in 0..61 {
        cases.push(([next(), next(), next(), next()], [next(), next()]));
    }
    for (c, k, want) in kat {
        assert_eq!(
            philox4x32_10(c, k),
            want,
            "CPU, counter {c:08x?} key {k:08x?}"
        );
    }
    let ctr: Vec<u32> = cases.iter().flat_map(|(c, _)| *c).collect();
    let key: Vec<u32> = cases.iter().flat_map(|(_, k)| *k).collect();
    let n = cases.len();
    let mut sim = sim_with(&kd::MODULE);
    let (bc, bk) = (upload_u32(&mut sim, &ctr), upload_u32(&mut sim, &key));
    let bo = upload_u32(&mut sim, &vec![0u32; 4 * n]);
    let st = launch(
        &mut sim,
        &kd::PHILOX4X32_10,
        philox_launch(n).unwrap(),
        &[Arg::Ptr(bc), Arg::Ptr(bk), Arg::Ptr(bo), Arg::U64(n as u64)],
    );
    assert_eq!(
        (st.global_load, st.global_store),
        (6 * n as u64, 4 * n as u64)
    );
    let out: Vec<u32> = download_f32(&mut sim, bo, 4 * n)
        .iter()
        .map(|v| v.to_bits())
        .collect();
    for (j, (c, k)) in cases.iter().enumerate() {
        let got = [out[4 * j], out[4 * j + 1], out[4 * j + 2], out[4 * j + 3]];
        assert_eq!(
            got,
            philox4x32_10(*c, *k),
            "simulator, counter {c:08x?} key {k:08x?}"
        );
        if let Some((_, _, want)) = kat.get(j) {
            assert_eq!(got, *want, "simulator, known answer {j}");
        }
    }
}

/// Every entry of the module is covered above.
#[test]
fn every_dropout_entry_is_tested() {
    let tested = ["dropout_forward", "dropout_backward", "philox4x32_10"];
    for k in kd::ALL {
        assert!(tested.contains(&k.name), "{} untested", k.name);
    }
}
