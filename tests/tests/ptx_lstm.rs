//! `kernels-ptx/ptx/lstm.ptx` run on the PTX simulator against the CPU
//! reference (`trainer/src/backend/cpu/lstm.rs` through `Cpu`'s `RnnOps`).
//!
//! Tolerance: none. The kernels evaluate the CPU's own exp/sigmoid/tanh
//! (Cephes, branch-free) and cell formulas op for op, in the same order,
//! with IEEE `.rn` operations that are never contracted into FMAs (Rust does
//! not contract either) and `div.rn`, so every output is compared bit for
//! bit: the worst error is 0 ulp. (Had the PTX used `ex2.approx`, its 2 ulp
//! would have needed a few-ulp bound per activation instead.)

mod ptx_common;

use lasagna_kernels::lstm::{self as kl, lstm_launch};
use lasagna_kernels::{Kernel, Launch, ParamKind};
use lasagna_ptx_sim::{Arg, BufId, Device, LaunchStats, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{LstmStep, RnnOps};
use proptest::prelude::*;
use ptx_common::{download_f32, sim_with, upload_f32};

/// `ptx_common::launch`, but an optional pointer may also be null
/// (`Arg::U64(0)`), which that helper does not accept.
fn launch(s: &mut Simulator, k: &Kernel, l: Launch, args: &[Arg]) -> LaunchStats {
    assert_eq!(args.len(), k.params.len(), "{}: argument count", k.name);
    for (p, a) in k.params.iter().zip(args) {
        let ok = matches!(
            (p.kind, a),
            (ParamKind::PtrF32 | ParamKind::OptPtrF32, Arg::Ptr(_))
                | (ParamKind::OptPtrF32, Arg::U64(0))
                | (ParamKind::U32, Arg::U32(_))
                | (ParamKind::U64, Arg::U64(_))
        );
        assert!(
            ok,
            "{}: parameter `{}` is {:?}, got {a:?}",
            k.name, p.name, p.kind
        );
    }
    let d = |d: lasagna_kernels::Dim3| [d.x, d.y, d.z];
    s.launch(k.name, d(l.grid), d(l.block), l.shared_bytes, args)
        .unwrap_or_else(|e| panic!("{}: launch failed: {e}", k.name));
    s.synchronize().unwrap();
    s.last_stats()
}

fn opt(sim: &mut Simulator, v: Option<&Vec<f32>>) -> (Arg, Option<BufId>) {
    match v {
        Some(v) => {
            let b = upload_f32(sim, v);
            (Arg::Ptr(b), Some(b))
        }
        None => (Arg::U64(0), None),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// One step's buffers, forward and backward (the CPU's argument names).
#[derive(Clone, Debug)]
struct Bufs {
    gates: Vec<f32>,
    rec: Option<Vec<f32>>,
    c: Vec<f32>,
    h_seq: Option<Vec<f32>>,
    h: Vec<f32>,
    dh_seq: Option<Vec<f32>>,
    dh: Option<Vec<f32>>,
    dc: Vec<f32>,
    dgates: Vec<f32>,
    dgates_step: Vec<f32>,
}

fn cpu_forward(d: LstmStep, b: &mut Bufs) {
    Cpu.lstm_cell_forward(
        d,
        b.rec.as_ref(),
        &mut b.gates,
        &mut b.c,
        b.h_seq.as_mut(),
        &mut b.h,
    )
    .unwrap();
}

fn cpu_backward(d: LstmStep, b: &mut Bufs) {
    Cpu.lstm_cell_backward(
        d,
        &b.gates,
        &b.c,
        b.dh_seq.as_ref(),
        b.dh.as_ref(),
        &mut b.dc,
        &mut b.dgates,
        &mut b.dgates_step,
    )
    .unwrap();
}

fn tail(d: LstmStep) -> [Arg; 4] {
    [
        Arg::U64((d.n * d.hidden) as u64),
        Arg::U32(d.hidden as u32),
        Arg::U32(d.steps as u32),
        Arg::U32(d.t as u32),
    ]
}

/// Forward on the simulator, asserting the traffic: per unit, its 4 gates
/// (and 4 `rec` values, and `c_{t-1}` when `t > 0`) read once; its 4
/// activations, `c_t`, `h_t` (and `h_seq`) written once.
fn ptx_forward(d: LstmStep, b: &mut Bufs) {
    let mut sim = sim_with(&kl::MODULE);
    let nh = (d.n * d.hidden) as u64;
    let bg = upload_f32(&mut sim, &b.gates);
    let (arec, _) = opt(&mut sim, b.rec.as_ref());
    let bc = upload_f32(&mut sim, &b.c);
    let (aseq, bseq) = opt(&mut sim, b.h_seq.as_ref());
    let bh = upload_f32(&mut sim, &b.h);
    let mut args = vec![Arg::Ptr(bg), arec, Arg::Ptr(bc), aseq, Arg::Ptr(bh)];
    args.extend(tail(d));
    let l = lstm_launch(d.n, d.hidden, d.steps).unwrap();
    let st = launch(&mut sim, &kl::LSTM_CELL_FORWARD, l, &args);
    let loads = 4 + 4 * u64::from(b.rec.is_some()) + u64::from(d.t > 0);
    let stores = 6 + u64::from(b.h_seq.is_some());
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        (nh * loads, nh * stores, 0),
        "forward traffic, {d:?}"
    );
    b.gates = download_f32(&mut sim, bg, b.gates.len());
    b.c = download_f32(&mut sim, bc, b.c.len());
    b.h = download_f32(&mut sim, bh, b.h.len());
    if let (Some(v), Some(id)) = (b.h_seq.as_mut(), bseq) {
        *v = download_f32(&mut sim, id, v.len());
    }
}

/// Backward on the simulator, asserting the traffic: per unit, its 4 gates,
/// `c_t`, `dc` (and `c_{t-1}`, `dh_seq`, `dh` when there) read once; `dc`
/// and the 4 gate gradients into each of `dgates` and `dgates_step` written once.
fn ptx_backward(d: LstmStep, b: &mut Bufs) {
    let mut sim = sim_with(&kl::MODULE);
    let nh = (d.n * d.hidden) as u64;
    let bg = upload_f32(&mut sim, &b.gates);
    let bc = upload_f32(&mut sim, &b.c);
    let (aseq, _) = opt(&mut sim, b.dh_seq.as_ref());
    let (adh, _) = opt(&mut sim, b.dh.as_ref());
    let bdc = upload_f32(&mut sim, &b.dc);
    let bdg = upload_f32(&mut sim, &b.dgates);
    let bds = upload_f32(&mut sim, &b.dgates_step);
    let mut args = vec![
        Arg::Ptr(bg),
        Arg::Ptr(bc),
        aseq,
        adh,
        Arg::Ptr(bdc),
        Arg::Ptr(bdg),
        Arg::Ptr(bds),
    ];
    args.extend(tail(d));
    let l = lstm_launch(d.n, d.hidden, d.steps).unwrap();
    let st = launch(&mut sim, &kl::LSTM_CELL_BACKWARD, l, &args);
    let loads = 6 + u64::from(d.t > 0) + u64::from(b.dh_seq.is_some()) + u64::from(b.dh.is_some());
    assert_eq!(
        (st.global_load, st.global_store, st.atomic),
        (nh * loads, nh * 9, 0),
        "backward traffic, {d:?}"
    );
    b.dc = download_f32(&mut sim, bdc, b.dc.len());
    b.dgates = download_f32(&mut sim, bdg, b.dgates.len());
    b.dgates_step = download_f32(&mut sim, bds, b.dgates_step.len());
}

fn assert_same(what: &str, d: LstmStep, got: &[f32], want: &[f32]) {
    let (g, w) = (bits(got), bits(want));
    if let Some(i) = (0..g.len()).find(|&i| g[i] != w[i]) {
        panic!(
            "{what}, {d:?}: first difference at [{i}]: got {:e}, cpu {:e} ({} of {} differ)",
            got[i],
            want[i],
            (0..g.len()).filter(|&i| g[i] != w[i]).count(),
            g.len()
        );
    }
}

fn assert_all_same(d: LstmStep, got: &Bufs, want: &Bufs) {
    assert_same("gates", d, &got.gates, &want.gates);
    assert_same("c", d, &got.c, &want.c);
    assert_same("h", d, &got.h, &want.h);
    if let (Some(g), Some(w)) = (&got.h_seq, &want.h_seq) {
        assert_same("h_seq", d, g, w);
    }
    assert_same("dc", d, &got.dc, &want.dc);
    assert_same("dgates", d, &got.dgates, &want.dgates);
    assert_same("dgates_step", d, &got.dgates_step, &want.dgates_step);
}

/// Values for pre-activations and gradients: mostly moderate, some past the
/// clamps of exp (|x| > 44, 87) and the polynomial's 0.625 switch.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -6.0f32..6.0,
        1 => -0.7f32..0.7,
        1 => prop::sample::select(vec![0.0f32, -0.0, 0.625, -0.625, 44.5, -50.0, 90.0, -100.0]),
    ]
}

fn vals(len: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(value(), len)
}

fn opt_vals(on: bool, len: usize) -> BoxedStrategy<Option<Vec<f32>>> {
    if on {
        vals(len).prop_map(Some).boxed()
    } else {
        Just(None).boxed()
    }
}

fn case() -> impl Strategy<Value = (LstmStep, Bufs)> {
    let n = prop_oneof![prop::sample::select(vec![1usize, 2, 9]), 1usize..12];
    let hidden = prop_oneof![
        prop::sample::select(vec![1usize, 31, 32, 33, 64, 257]),
        1usize..100
    ];
    (n, hidden, 1usize..4, any::<[bool; 4]>())
        .prop_flat_map(|(n, hidden, steps, on)| {
            let d = LstmStep {
                n,
                hidden,
                steps,
                t: 0,
            };
            let (seq, step) = (n * steps * hidden, n * hidden);
            (
                Just(d),
                0..steps,
                (vals(4 * seq), opt_vals(on[0], 4 * step), vals(seq)),
                (opt_vals(on[1], seq), vals(step)),
                (opt_vals(on[2], seq), opt_vals(on[3], step), vals(step)),
                (vals(4 * seq), vals(4 * step)),
            )
        })
        .prop_map(
            |(d, t, (gates, rec, c), (h_seq, h), (dh_seq, dh, dc), (dgates, dgates_step))| {
                (
                    LstmStep { t, ..d },
                    Bufs {
                        gates,
                        rec,
                        c,
                        h_seq,
                        h,
                        dh_seq,
                        dh,
                        dc,
                        dgates,
                        dgates_step,
                    },
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// Forward from random pre-activations, then backward from what forward
    /// left (as training does), both compared bit for bit.
    #[test]
    fn forward_and_backward_steps_are_bit_exact_with_the_cpu((d, b) in case()) {
        let mut want = b.clone();
        cpu_forward(d, &mut want);
        let mut got = b;
        ptx_forward(d, &mut got);
        // Backward starts from the same state (the CPU's forward output).
        got.gates.clone_from(&want.gates);
        got.c.clone_from(&want.c);
        cpu_backward(d, &mut want);
        ptx_backward(d, &mut got);
        assert_all_same(d, &got, &want);
    }
}

/// A whole sequence, forward over every step then backward in reverse, as
/// the LSTM layer drives it (with `h` standing in for the recurrent product),
/// stays bit-exact: nothing drifts across steps.
#[test]
fn a_whole_sequence_forward_and_backward_is_bit_exact() {
    let (n, hidden, steps) = (3usize, 37usize, 5usize);
    let (seq, step) = (n * steps * hidden, n * hidden);
    let wave =
        |len: usize, k: f32| -> Vec<f32> { (0..len).map(|i| (i as f32 * k).sin() * 4.0).collect() };
    let init = Bufs {
        gates: wave(4 * seq, 0.37),
        rec: None,
        c: vec![0.0; seq],
        h_seq: Some(vec![0.0; seq]),
        h: vec![0.0; step],
        dh_seq: Some(wave(seq, 0.11)),
        dh: None,
        dc: vec![0.0; step],
        dgates: vec![0.0; 4 * seq],
        dgates_step: vec![0.0; 4 * step],
    };
    let (mut got, mut want) = (init.clone(), init);
    for t in 0..steps {
        let d = LstmStep {
            n,
            hidden,
            steps,
            t,
        };
        // rec = 4 copies of h_{t-1} (any data of the right shape will do).
        let rec = (t > 0).then(|| want.h.iter().cycle().take(4 * step).copied().collect());
        want.rec.clone_from(&rec);
        got.rec = rec;
        cpu_forward(d, &mut want);
        ptx_forward(d, &mut got);
        assert_all_same(d, &got, &want);
    }
    for t in (0..steps).rev() {
        let d = LstmStep {
            n,
            hidden,
            steps,
            t,
        };
        let dh = (t + 1 < steps).then(|| want.dgates_step[..step].to_vec());
        want.dh.clone_from(&dh);
        got.dh = dh;
        cpu_backward(d, &mut want);
        ptx_backward(d, &mut got);
        assert_all_same(d, &got, &want);
    }
    println!("lstm, {n} x {steps} steps x {hidden} units: worst error 0 ulp (bit-exact)");
}

/// NaN and infinite pre-activations give what the CPU gives (NaN must reach
/// the loss check; saturated gates must not turn into NaN).
#[test]
fn nan_and_infinite_pre_activations_match_the_cpu() {
    let d = LstmStep {
        n: 1,
        hidden: 3,
        steps: 1,
        t: 0,
    };
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let b = Bufs {
        gates: vec![
            nan, inf, -inf, 1.0, -inf, inf, inf, 0.5, nan, -inf, 2.0, inf,
        ],
        rec: None,
        c: vec![0.0; 3],
        h_seq: None,
        h: vec![0.0; 3],
        dh_seq: None,
        dh: Some(vec![1.0, -1.0, 0.5]),
        dc: vec![0.25; 3],
        dgates: vec![0.0; 12],
        dgates_step: vec![0.0; 12],
    };
    let (mut got, mut want) = (b.clone(), b);
    cpu_forward(d, &mut want);
    ptx_forward(d, &mut got);
    cpu_backward(d, &mut want);
    ptx_backward(d, &mut got);
    assert_all_same(d, &got, &want);
    assert!(want.h[0].is_nan() && want.c[0].is_nan());
}
