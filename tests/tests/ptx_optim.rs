//! `kernels-ptx/ptx/optim.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/sgd.rs`, `trainer/src/backend/cpu/adam.rs` through
//! `Cpu`'s `OptimOps`), for several consecutive steps on the same state.
//!
//! Tolerance: none (bit-exact). The kernels perform the CPU's f32 operations
//! in the CPU's order, each an IEEE `.rn` operation (`mul`, `add`, `sub`,
//! `div.rn`, `sqrt.rn`; no fma contraction, which the CPU never does either),
//! and Adam's per-call scalars come from `AdamScalars::new`, the same f64
//! expressions as `adam.rs`. Every step then starts from identical state, so
//! any difference would be a real divergence, not accumulated rounding. (On a
//! GPU the same holds: `.rn` division and square root are correctly rounded
//! and no `.ftz` is used.)

mod ptx_common;

use lasagna_kernels::optim::{self as ko, adam_multi_launch, optim_launch, AdamScalars};
use lasagna_ptx_sim::{Arg, BufId, Device, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{AdamStep, OptimOps, SgdStep};
use proptest::prelude::*;
use ptx_common::{download_f32, launch, sim_with, upload_f32};

/// Overwrites `b` with `v`.
fn write(sim: &mut Simulator, b: &BufId, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    sim.upload(b, &bytes).unwrap();
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) -> Result<(), TestCaseError> {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            g.to_bits() == w.to_bits() || g.is_nan() && w.is_nan(),
            "{what}: element {i} of {}: got {g:e}, want {w:e} (diff {:e})",
            got.len(),
            g - w
        );
    }
    Ok(())
}

/// Gradients for `steps` steps of `n` parameters, from a seed.
fn grads(n: usize, steps: usize, seed: u32) -> Vec<Vec<f32>> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s >> 8) as f32 / 16_777_216.0 * 2.0 - 1.0
    };
    (0..steps)
        .map(|t| (0..n).map(|_| next() * (1.0 + t as f32)).collect())
        .collect()
}

/// `steps` SGD steps on the simulator and the CPU from the same state,
/// comparing param and buffer after each; asserts each element is read and
/// written once per array it touches.
fn sgd_case(h0: SgdStep, p0: &[f32], steps: usize, seed: u32) -> Result<(), TestCaseError> {
    let n = p0.len();
    let mut sim = sim_with(&ko::MODULE);
    let bp = upload_f32(&mut sim, p0);
    let bg = upload_f32(&mut sim, &vec![0.0; n]);
    // Garbage in the buffer: the first step must overwrite it without reading.
    let bm = upload_f32(&mut sim, &vec![123.0; n]);
    let (mut p, mut mom) = (p0.to_vec(), vec![123.0f32; n]);
    for (t, g) in grads(n, steps, seed).into_iter().enumerate() {
        let h = SgdStep {
            first: t == 0,
            ..h0
        };
        write(&mut sim, &bg, &g);
        let args = [
            Arg::Ptr(bp),
            Arg::Ptr(bg),
            Arg::Ptr(bm),
            Arg::U64(n as u64),
            Arg::F32(h.lr),
            Arg::F32(h.momentum),
            Arg::F32(h.dampening),
            Arg::F32(h.weight_decay),
            Arg::U32(h.nesterov as u32),
            Arg::U32(h.first as u32),
        ];
        let st = launch(&mut sim, &ko::SGD_STEP, optim_launch(n).unwrap(), &args);
        let n64 = n as u64;
        let (reads, writes) = match (h.momentum == 0.0, h.first) {
            (true, _) => (2, 1),
            (false, true) => (2, 2),
            (false, false) => (3, 2),
        };
        prop_assert_eq!(
            (
                st.global_load,
                st.global_store,
                st.global_bytes_read,
                st.global_bytes_written
            ),
            (reads * n64, writes * n64, 4 * reads * n64, 4 * writes * n64),
            "sgd step {}: (loads, stores, bytes read, bytes written)",
            t
        );
        Cpu.sgd_step(&h, &mut p, &g, &mut mom, n).unwrap();
        same_bits(
            &format!("sgd {h:?} step {t} param"),
            &download_f32(&mut sim, bp, n),
            &p,
        )?;
        if h.momentum != 0.0 {
            same_bits(
                &format!("sgd {h:?} step {t} buf"),
                &download_f32(&mut sim, bm, n),
                &mom,
            )?;
        } else {
            // momentum 0: the buffer is never touched.
            prop_assert!(download_f32(&mut sim, bm, n).iter().all(|&v| v == 123.0));
        }
    }
    Ok(())
}

/// `steps` Adam/AdamW steps (t = 1..=steps) on both backends, comparing
/// param, m and v after each; asserts 4 reads and 3 writes per element.
fn adam_case(h0: AdamStep, p0: &[f32], steps: usize, seed: u32) -> Result<(), TestCaseError> {
    let n = p0.len();
    let mut sim = sim_with(&ko::MODULE);
    let bp = upload_f32(&mut sim, p0);
    let bg = upload_f32(&mut sim, &vec![0.0; n]);
    let bm = upload_f32(&mut sim, &vec![0.0; n]);
    let bv = upload_f32(&mut sim, &vec![0.0; n]);
    let (mut p, mut m, mut v) = (p0.to_vec(), vec![0.0f32; n], vec![0.0f32; n]);
    for (t, g) in grads(n, steps, seed).into_iter().enumerate() {
        let h = AdamStep {
            step: t as u64 + 1,
            ..h0
        };
        let s = AdamScalars::new(h.lr, h.beta1, h.beta2, h.weight_decay, h.step);
        write(&mut sim, &bg, &g);
        let args = [
            Arg::Ptr(bp),
            Arg::Ptr(bg),
            Arg::Ptr(bm),
            Arg::Ptr(bv),
            Arg::U64(n as u64),
            Arg::F32(h.beta1),
            Arg::F32(h.beta2),
            Arg::F32(s.step_size),
            Arg::F32(s.bc2_sqrt),
            Arg::F32(h.eps),
            Arg::F32(h.weight_decay),
            Arg::F32(s.decay),
            Arg::U32(h.decoupled as u32),
        ];
        let st = launch(&mut sim, &ko::ADAM_STEP, optim_launch(n).unwrap(), &args);
        let n64 = n as u64;
        prop_assert_eq!(
            (
                st.global_load,
                st.global_store,
                st.global_bytes_read,
                st.global_bytes_written
            ),
            (4 * n64, 3 * n64, 16 * n64, 12 * n64),
            "adam step {}: (loads, stores, bytes read, bytes written)",
            t
        );
        Cpu.adam_step(&h, &mut p, &g, &mut m, &mut v, n).unwrap();
        let tag = format!("adam {h:?}");
        same_bits(&format!("{tag} param"), &download_f32(&mut sim, bp, n), &p)?;
        same_bits(&format!("{tag} m"), &download_f32(&mut sim, bm, n), &m)?;
        same_bits(&format!("{tag} v"), &download_f32(&mut sim, bv, n), &v)?;
    }
    Ok(())
}

/// `steps` steps of `adam_step_multi` over tensors of `lens` elements in one
/// launch each, against the CPU's per-tensor `adam_step`: bit-identical, and
/// every element read 4 times and written 3 times (no slot touches another's
/// memory, blocks past a short tensor's end do nothing). Every other step
/// reads its scalars from device memory (`scalars`, as a graph-replayed
/// step does) with NaN in the parameters they replace.
fn adam_multi_case(
    h0: AdamStep,
    lens: &[usize],
    steps: usize,
    seed: u32,
) -> Result<(), TestCaseError> {
    let mut sim = sim_with(&ko::MODULE);
    let mut host = Vec::new();
    let mut dev = Vec::new();
    for (j, &n) in lens.iter().enumerate() {
        let p0: Vec<f32> = (0..n)
            .map(|i| ((i * 7 + j * 13) as f32 * 0.011).sin())
            .collect();
        let z = vec![0.0f32; n];
        dev.push([&p0, &z, &z, &z].map(|v| upload_f32(&mut sim, v)));
        host.push((p0, z.clone(), z));
    }
    let total: u64 = lens.iter().map(|&n| n as u64).sum();
    for t in 0..steps {
        let h = AdamStep {
            step: t as u64 + 1,
            ..h0
        };
        let s = AdamScalars::new(h.lr, h.beta1, h.beta2, h.weight_decay, h.step);
        let on_device = t % 2 == 1;
        let (params, scalars) = if on_device {
            let b = upload_f32(&mut sim, &[s.step_size, s.bc2_sqrt, s.decay]);
            ([f32::NAN; 3], Arg::Ptr(b))
        } else {
            ([s.step_size, s.bc2_sqrt, s.decay], Arg::U64(0))
        };
        let mut args = vec![
            Arg::F32(h.beta1),
            Arg::F32(h.beta2),
            Arg::F32(params[0]),
            Arg::F32(params[1]),
            Arg::F32(h.eps),
            Arg::F32(h.weight_decay),
            Arg::F32(params[2]),
            Arg::U32(h.decoupled as u32),
            scalars,
            Arg::U32(lens.len() as u32),
        ];
        let mut gs = Vec::new();
        for (j, (&n, d)) in lens.iter().zip(&dev).enumerate() {
            let g = grads(n, t + 1, seed ^ j as u32).pop().unwrap_or_default();
            write(&mut sim, &d[1], &g);
            args.extend([
                Arg::Ptr(d[0]),
                Arg::Ptr(d[1]),
                Arg::Ptr(d[2]),
                Arg::Ptr(d[3]),
                Arg::U64(n as u64),
            ]);
            gs.push(g);
        }
        for _ in lens.len()..ko::MULTI_SLOTS {
            args.extend([
                Arg::U64(0),
                Arg::U64(0),
                Arg::U64(0),
                Arg::U64(0),
                Arg::U64(0),
            ]);
        }
        let st = launch(
            &mut sim,
            &ko::ADAM_STEP_MULTI,
            adam_multi_launch(lens).unwrap(),
            &args,
        );
        // The device scalars are 3 loads per thread of the used slots' blocks.
        let l = adam_multi_launch(lens).unwrap();
        let threads = u64::from(l.grid.x) * u64::from(l.block.x) * lens.len() as u64;
        let scalar_loads = if on_device { 3 * threads } else { 0 };
        prop_assert_eq!(
            (st.global_load - scalar_loads, st.global_store),
            (4 * total, 3 * total),
            "step {}",
            t
        );
        for (((&n, d), (p, m, v)), g) in lens.iter().zip(&dev).zip(&mut host).zip(&gs) {
            Cpu.adam_step(&h, p, g, m, v, n).unwrap();
            same_bits(
                &format!("multi {h:?} n {n} param"),
                &download_f32(&mut sim, d[0], n),
                p,
            )?;
            same_bits(
                &format!("multi {h:?} n {n} m"),
                &download_f32(&mut sim, d[2], n),
                m,
            )?;
            same_bits(
                &format!("multi {h:?} n {n} v"),
                &download_f32(&mut sim, d[3], n),
                v,
            )?;
        }
    }
    Ok(())
}

#[test]
fn adam_step_multi_is_bit_identical_to_one_adam_step_per_tensor() {
    let h = AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        decoupled: false,
        step: 1,
    };
    // The MLP's shapes scaled down, a tensor of one element, 16 slots full.
    adam_multi_case(h, &[1000, 10, 300, 1, 257], 3, 5).unwrap_or_else(|e| panic!("{e}"));
    let full: Vec<usize> = (0..ko::MULTI_SLOTS).map(|i| 1 + 37 * i).collect();
    adam_multi_case(h, &full, 2, 11).unwrap_or_else(|e| panic!("{e}"));
    let h = AdamStep {
        weight_decay: 0.01,
        decoupled: true,
        ..h
    };
    adam_multi_case(h, &[3, 600, 1, 255, 256, 2, 70, 9], 2, 9).unwrap_or_else(|e| panic!("{e}"));
    let h = AdamStep {
        weight_decay: 0.1,
        decoupled: false,
        ..h
    };
    adam_multi_case(h, &[513], 2, 3).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn more_tensors_than_slots_is_an_error_not_a_bad_launch() {
    assert!(adam_multi_launch(&[1; ko::MULTI_SLOTS]).is_ok());
    assert!(adam_multi_launch(&[1; ko::MULTI_SLOTS + 1]).is_err());
}

fn params() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        prop::sample::select(vec![1usize, 3, 255, 256, 257]),
        1usize..2000,
    ]
    .prop_flat_map(|n| prop::collection::vec(-3.0f32..3.0, n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sgd_five_steps_are_bit_identical_to_cpu_for_every_variant(
        p0 in params(),
        seed in any::<u32>(),
        lr in prop_oneof![Just(0.1f32), 1e-4f32..1.0],
        momentum in prop_oneof![Just(0.0f32), Just(0.9), 0.0f32..1.0],
        dampening in prop_oneof![Just(0.0f32), 0.0f32..1.0],
        nesterov in any::<bool>(),
        weight_decay in prop_oneof![Just(0.0f32), 0.0f32..0.1],
    ) {
        let h = SgdStep { lr, momentum, dampening, nesterov, weight_decay, first: true };
        sgd_case(h, &p0, 5, seed)?;
    }

    #[test]
    fn adam_and_adamw_five_steps_are_bit_identical_to_cpu(
        p0 in params(),
        seed in any::<u32>(),
        lr in prop_oneof![Just(1e-3f32), 1e-5f32..0.5],
        beta1 in prop_oneof![Just(0.9f32), 0.0f32..0.99],
        beta2 in prop_oneof![Just(0.999f32), 0.9f32..0.9999],
        eps in prop_oneof![Just(1e-8f32), 1e-10f32..1e-3],
        weight_decay in prop_oneof![Just(0.0f32), Just(0.01), 0.0f32..0.2],
        decoupled in any::<bool>(),
    ) {
        let h = AdamStep { lr, beta1, beta2, eps, weight_decay, decoupled, step: 1 };
        adam_case(h, &p0, 5, seed)?;
    }
}

/// The documented configurations (PyTorch defaults, and the ones the CPU unit
/// tests spell out) over a long run, where bias correction fades out.
#[test]
fn default_configurations_stay_bit_identical_over_forty_steps() {
    let p0: Vec<f32> = (0..777).map(|i| (i as f32 * 0.013).sin()).collect();
    let sgd = |momentum, dampening, nesterov, weight_decay| SgdStep {
        lr: 0.1,
        momentum,
        dampening,
        nesterov,
        weight_decay,
        first: true,
    };
    for h in [
        sgd(0.0, 0.0, false, 0.0),
        sgd(0.0, 0.0, false, 0.01),
        sgd(0.9, 0.0, false, 0.0),
        sgd(0.9, 0.5, false, 0.1),
        sgd(0.9, 0.0, true, 0.01),
    ] {
        sgd_case(h, &p0, 40, 7).unwrap_or_else(|e| panic!("{e}"));
    }
    for (weight_decay, decoupled) in [(0.0, false), (0.0, true), (0.1, false), (0.01, true)] {
        let h = AdamStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            step: 1,
        };
        adam_case(h, &p0, 40, 11).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Every entry of the module is covered above.
#[test]
fn every_optim_entry_is_tested() {
    for k in ko::ALL {
        assert!(
            ["sgd_step", "adam_step", "adam_step_multi"].contains(&k.name),
            "{} untested",
            k.name
        );
    }
}
