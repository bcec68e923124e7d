//! `kernels-ptx/ptx/amp.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/amp.rs`, through `Cpu`'s `AmpOps`).
//!
//! Tolerance: none. `amp_unscale_check` does one correctly rounded f32
//! multiply per element, as the CPU; `round_f16` is IEEE round to nearest
//! even both ways. Outputs are compared as bits (any NaN matches any NaN:
//! the GPU's NaN payloads are canonical), and the flag must agree exactly.

mod ptx_common;

use lasagna_kernels::amp::{self as ka, amp_launch};
use lasagna_ptx_sim::{Arg, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::AmpOps;
use proptest::prelude::*;
use ptx_common::{download_f32, filled_f32, launch, sim_with, upload_f32};

/// Bit-for-bit equality, except that any NaN matches any NaN.
fn same_bits(got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(),
            "[{}] of {}: got {:e}, want {:e}",
            i,
            got.len(),
            g,
            w
        );
    }
    Ok(())
}

/// Runs amp_unscale_check with the flag starting at `flag0`; asserts one
/// load and one store per element, no atomics, and at most one flag store
/// per block. Returns (g, flag).
fn unscale(sim: &mut Simulator, g: &[f32], inv: f32, flag0: f32) -> (Vec<f32>, f32) {
    let n = g.len();
    let l = amp_launch(n).unwrap();
    let bg = upload_f32(sim, g);
    let bf = upload_f32(sim, &[flag0]);
    let args = [
        Arg::Ptr(bg),
        Arg::Ptr(bf),
        Arg::U64(n as u64),
        Arg::F32(inv),
    ];
    let st = launch(sim, &ka::AMP_UNSCALE_CHECK, l, &args);
    assert_eq!(st.global_load, n as u64, "loads, n {n}");
    assert_eq!(st.atomic, 0);
    let flag_stores = st.global_store - n as u64;
    assert!(
        flag_stores <= l.grid.count(),
        "{flag_stores} flag stores from {} blocks",
        l.grid.count()
    );
    (download_f32(sim, bg, n), download_f32(sim, bf, 1)[0])
}

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -1e4f32..1e4,
        2 => -1e-30f32..1e-30,
        1 => any::<u32>().prop_map(f32::from_bits),
        1 => prop::sample::select(vec![0.0f32, -0.0, f32::MAX, -f32::MAX, 3e38, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 65520.0, 65519.99]),
    ]
}

fn sizes() -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![0usize, 1, 255, 256, 257, 1000]),
        1usize..3000
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn unscale_check_is_bit_exact_with_the_cpu_and_flags_the_same_steps(
        g in sizes().prop_flat_map(|n| prop::collection::vec(value(), n)),
        inv in prop::sample::select(vec![1.0f32 / 65536.0, 0.5, 2.0, 1.0, 1.0 / 3e38]),
        flag0 in prop::sample::select(vec![0.0f32, 1.0]),
    ) {
        let mut sim = sim_with(&ka::MODULE);
        let (got, flag) = unscale(&mut sim, &g, inv, flag0);
        let mut want = g.clone();
        let mut want_flag = vec![flag0];
        Cpu.unscale_check(&mut want, g.len(), inv, &mut want_flag).unwrap();
        same_bits(&got, &want)?;
        prop_assert_eq!(flag, want_flag[0], "n {} inv {:e}", g.len(), inv);
    }

    #[test]
    fn round_f16_is_bit_exact_with_the_cpu_and_moves_each_element_once(
        x in sizes().prop_flat_map(|n| prop::collection::vec(value(), n)),
    ) {
        let n = x.len();
        let mut sim = sim_with(&ka::MODULE);
        let bx = upload_f32(&mut sim, &x);
        let by = filled_f32(&mut sim, n, f32::NAN);
        let st = launch(&mut sim, &ka::ROUND_F16, amp_launch(n).unwrap(),
            &[Arg::Ptr(bx), Arg::Ptr(by), Arg::U64(n as u64)]);
        prop_assert_eq!((st.global_load, st.global_store), (n as u64, n as u64));
        let got = download_f32(&mut sim, by, n);
        let mut want = vec![0.0; n];
        Cpu.round_f16(&x, &mut want, n).unwrap();
        same_bits(&got, &want)?;
    }
}

/// One bad element flags the step wherever it sits, including in the last
/// block and in a block that grid-strides over several chunks.
#[test]
fn a_single_inf_or_nan_anywhere_sets_the_flag() {
    let mut sim = sim_with(&ka::MODULE);
    let n = 5000;
    for pos in [0, 255, 256, 2047, n - 1] {
        for bad in [f32::INFINITY, f32::NAN, f32::NEG_INFINITY] {
            let mut g = vec![0.25f32; n];
            g[pos] = bad;
            let (_, flag) = unscale(&mut sim, &g, 0.5, 0.0);
            assert_eq!(flag, 1.0, "{bad} at {pos}");
        }
    }
    // Overflow caused by the multiplication itself.
    let (_, flag) = unscale(&mut sim, &[1.0, 3e38], 2.0, 0.0);
    assert_eq!(flag, 1.0);
    let (g, flag) = unscale(&mut sim, &vec![0.25f32; n], 0.5, 0.0);
    assert_eq!(flag, 0.0);
    assert!(g.iter().all(|&v| v == 0.125));
}
