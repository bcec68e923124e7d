//! `kernels-ptx/ptx/convert.ptx` run on the PTX simulator against
//! `half::f16` (what `format/src/writer.rs` uses to store f16 weights; the
//! CPU training backend has no conversion or loss-scaling op of its own).
//!
//! Tolerance: none. `cvt.rn.f16.f32` and `half::f16::from_f32` are both the
//! IEEE round-to-nearest-even conversion, and f16 -> f32 is exact, so every
//! result must match bit for bit; the only exception is a NaN's payload (the
//! GPU returns a canonical NaN), so NaN is compared as "is NaN".

mod ptx_common;

use half::f16;
use lasagna_kernels::convert::{self as kc, convert_launch};
use lasagna_ptx_sim::{Arg, Simulator};
use proptest::prelude::*;
use ptx_common::{
    download_bytes, download_f32, filled_f32, launch, sim_with, upload_bytes, upload_f32,
};

/// f32 -> f16 on the simulator; asserts one read and one write per element.
fn to_f16(sim: &mut Simulator, x: &[f32]) -> Vec<u16> {
    let n = x.len();
    let bx = upload_f32(sim, x);
    let by = upload_bytes(sim, &vec![0xffu8; 2 * n]);
    let st = launch(
        sim,
        &kc::F32_TO_F16,
        convert_launch(n).unwrap(),
        &[Arg::Ptr(bx), Arg::Ptr(by), Arg::U64(n as u64)],
    );
    assert_eq!(
        (st.global_load, st.global_store),
        (n as u64, n as u64),
        "f32_to_f16 n {n}"
    );
    assert_eq!(
        (st.global_bytes_read, st.global_bytes_written),
        (4 * n as u64, 2 * n as u64)
    );
    download_bytes(sim, by, 2 * n)
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// f16 -> f32 on the simulator; asserts one read and one write per element.
fn to_f32(sim: &mut Simulator, h: &[u16]) -> Vec<f32> {
    let n = h.len();
    let bytes: Vec<u8> = h.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bx = upload_bytes(sim, &bytes);
    let by = filled_f32(sim, n, f32::NAN);
    let st = launch(
        sim,
        &kc::F16_TO_F32,
        convert_launch(n).unwrap(),
        &[Arg::Ptr(bx), Arg::Ptr(by), Arg::U64(n as u64)],
    );
    assert_eq!(
        (st.global_load, st.global_store),
        (n as u64, n as u64),
        "f16_to_f32 n {n}"
    );
    assert_eq!(
        (st.global_bytes_read, st.global_bytes_written),
        (2 * n as u64, 4 * n as u64)
    );
    download_f32(sim, by, n)
}

/// Number of f32 -> f16 results that differ from `half` (NaN matches NaN).
fn mismatches(x: &[f32], got: &[u16]) -> Vec<(f32, u16, u16)> {
    x.iter()
        .zip(got)
        .filter_map(|(&v, &g)| {
            let want = f16::from_f32(v);
            let ok = g == want.to_bits() || (want.is_nan() && f16::from_bits(g).is_nan());
            (!ok).then_some((v, g, want.to_bits()))
        })
        .collect()
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -70000.0f32..70000.0,
        2 => -1.0f32..1.0,
        // Around the f16 subnormal range (2^-24 .. 2^-14) and ties.
        2 => -1e-4f32..1e-4,
        1 => any::<u32>().prop_map(f32::from_bits),
        1 => prop::sample::select(vec![0.0f32, -0.0, 65504.0, 65519.99, 65520.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 5.960_464_5e-8, 2.980_232_2e-8]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn f32_to_f16_is_bit_exact_with_half_and_reads_each_element_once(
        x in prop_oneof![prop::sample::select(vec![0usize, 1, 31, 33, 255, 257]), 1usize..3000]
            .prop_flat_map(|n| prop::collection::vec(value(), n))
    ) {
        let mut sim = sim_with(&kc::MODULE);
        let got = to_f16(&mut sim, &x);
        let bad = mismatches(&x, &got);
        prop_assert!(bad.is_empty(), "n {}: {} mismatches, first {:?}", x.len(), bad.len(), bad.first());
    }
}

/// Every one of the 65536 f16 bit patterns converts exactly, and every f32
/// that is a tie between two f16 neighbours rounds to the even one.
#[test]
fn every_f16_round_trips_and_ties_round_to_even() {
    let mut sim = sim_with(&kc::MODULE);
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let f = to_f32(&mut sim, &all);
    let mut worst = 0usize;
    for (&h, &v) in all.iter().zip(&f) {
        let want = f16::from_bits(h).to_f32();
        if !(v.to_bits() == want.to_bits() || want.is_nan() && v.is_nan()) {
            worst += 1;
        }
    }
    assert_eq!(worst, 0, "f16_to_f32 mismatches");
    // Back: non-NaN patterns must come back bit for bit.
    let finite: Vec<f32> = f.iter().copied().filter(|v| !v.is_nan()).collect();
    let back = to_f16(&mut sim, &finite);
    assert!(mismatches(&finite, &back).is_empty());
    // Midpoints between consecutive positive finite f16 values (exact in f32).
    let mids: Vec<f32> = (0u16..0x7bff)
        .map(|h| (f16::from_bits(h).to_f32() + f16::from_bits(h + 1).to_f32()) / 2.0)
        .collect();
    let got = to_f16(&mut sim, &mids);
    let bad = mismatches(&mids, &got);
    println!(
        "f32_to_f16 over {} ties: {} mismatches (worst error: 0 ulp required)",
        mids.len(),
        bad.len()
    );
    assert!(bad.is_empty(), "first {:?}", bad.first());
}
