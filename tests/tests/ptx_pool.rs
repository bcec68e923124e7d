//! `kernels-ptx/ptx/maxpool2d.ptx` and `avgpool2d.ptx` (fixed windows and
//! adaptive bins) run on the PTX simulator against the CPU reference
//! (`trainer/src/backend/cpu/maxpool2d.rs`, `avgpool2d.rs` through `Cpu`'s `PoolOps`).
//!
//! Tolerance: none, every output is compared bit for bit (abs = rel = 0).
//! - Max forward: compares and selects only, with the CPU's tie (first in
//!   row-major window order) and NaN (`v > best || isnan(v)`) rules; argmax
//!   must be equal too.
//! - Avg forward: the kernel adds each window row left to right, the row sums
//!   top to bottom, and divides once with `div.rn`, the CPU's exact sequence
//!   of IEEE operations.
//! - Adaptive forward: the same sums over PyTorch's bins, then `/ height
//!   / width` as two `div.rn`, the CPU's order.
//! - All backwards gather, per input element, the contributions of the
//!   outputs whose windows (bins) hold it in ascending output order starting
//!   from +0, which is the order in which the CPU's zero-fill-then-scatter
//!   adds them; each contribution (`dy`, `dy / divisor` or `dy / height /
//!   width`) is rounded identically.
//!
//! Shapes: batch 1-3, channels 1-5, odd and even planes 1-13, windows 1-3
//! (2 and 3 mostly), strides 1-3, padding up to kernel / 2, both
//! `count_include_pad` settings. Adaptive: planes 1-13 pooled to 1 up to
//! h + 3 (more outputs than inputs: overlapping bins). Worst errors are
//! printed by `worst_errors_over_fixed_shapes` (`cargo test -- --nocapture`).
//!
//! Performance: no atomics anywhere, one store per output (forward) or input
//! (backward); the adaptive entries read exactly the bins' elements, once
//! per (output, element) pair, in both directions.

mod ptx_common;

use lasagna_kernels::avgpool2d::{self as kavg, adaptive_pool2d_launch};
use lasagna_kernels::maxpool2d::{self as kmax, pool2d_launch};
use lasagna_ptx_sim::{Arg, Device, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{adaptive_bin, Pool2dDims, PoolOps, ReluGate};
use proptest::prelude::*;
use ptx_common::{
    compare, download_f32, filled_f32, launch, sim_with, upload_f32, upload_u32, Worst,
};

fn geometry(d: &Pool2dDims) -> Vec<Arg> {
    [
        d.n * d.c,
        d.h,
        d.w,
        d.oh,
        d.ow,
        d.kh,
        d.kw,
        d.sh,
        d.sw,
        d.ph,
        d.pw,
    ]
    .iter()
    .map(|&v| Arg::U32(v as u32))
    .collect()
}

fn download_u32(s: &mut Simulator, b: lasagna_ptx_sim::BufId, n: usize) -> Vec<u32> {
    let mut out = vec![0u8; n * 4];
    s.download(&b, &mut out).unwrap();
    out.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Max pooling both ways on the simulator and the CPU: (forward, argmax
/// mismatches, backward). Also checks that no atomics are used. `gate`: the
/// scale of an absorbed ReLU (and Dropout) backward, gated by `x` itself.
fn run_max(d: &Pool2dDims, x: &[f32], dy: &[f32], gate: Option<f32>) -> (Worst, usize, Worst) {
    let (ni, no) = (d.in_len(), d.out_len());
    let l = pool2d_launch(ni, no).unwrap();
    let mut sim = sim_with(&kmax::MODULE);
    let bx = upload_f32(&mut sim, x);
    let by = filled_f32(&mut sim, no, f32::NAN);
    let ba = upload_u32(&mut sim, &vec![u32::MAX; no]);
    let mut args = vec![Arg::Ptr(bx), Arg::Ptr(by), Arg::Ptr(ba)];
    args.extend(geometry(d));
    let st = launch(&mut sim, &kmax::MAXPOOL2D_FORWARD, l, &args);
    assert_eq!(st.atomic, 0);
    assert_eq!(
        st.global_store,
        2 * no as u64,
        "one y and one argmax per output"
    );
    let y = download_f32(&mut sim, by, no);
    let a = download_u32(&mut sim, ba, no);

    let cpu = Cpu;
    let (mut y_ref, mut a_ref) = (vec![0.0; no], vec![0u32; no]);
    cpu.maxpool2d_forward(*d, &x.to_vec(), &mut y_ref, &mut a_ref)
        .unwrap();
    let arg_bad = a.iter().zip(&a_ref).filter(|(g, w)| g != w).count();

    // Backward from the CPU's argmax, so a forward mismatch cannot hide here.
    let bdy = upload_f32(&mut sim, dy);
    let bar = upload_u32(&mut sim, &a_ref);
    let bdx = filled_f32(&mut sim, ni, f32::NAN);
    let (relu_x, scale) = match gate {
        Some(scale) => (Arg::Ptr(bx), scale),
        None => (Arg::U64(0), f32::NAN),
    };
    let mut args = vec![
        Arg::Ptr(bdy),
        Arg::Ptr(bar),
        relu_x,
        Arg::F32(scale),
        Arg::Ptr(bdx),
    ];
    args.extend(geometry(d));
    let st = launch(&mut sim, &kmax::MAXPOOL2D_BACKWARD, l, &args);
    assert_eq!(st.atomic, 0, "the backward gathers: no atomics");
    assert_eq!(st.global_store, ni as u64, "each dx written once");
    let dx = download_f32(&mut sim, bdx, ni);
    let mut dx_ref = vec![0.0; ni];
    let xv = x.to_vec();
    let relu = gate.map(|scale| ReluGate { x: &xv, scale });
    cpu.maxpool2d_backward(*d, &dy.to_vec(), &a_ref, relu, &mut dx_ref)
        .unwrap();
    (
        compare(&y_ref, &y, &y_ref, 0.0, 0.0),
        arg_bad,
        compare(&dx_ref, &dx, &dx_ref, 0.0, 0.0),
    )
}

/// Average pooling both ways: (forward, backward).
fn run_avg(d: &Pool2dDims, include_pad: bool, x: &[f32], dy: &[f32]) -> (Worst, Worst) {
    let (ni, no) = (d.in_len(), d.out_len());
    let l = pool2d_launch(ni, no).unwrap();
    let mut sim = sim_with(&kavg::MODULE);
    let bx = upload_f32(&mut sim, x);
    let by = filled_f32(&mut sim, no, f32::NAN);
    let mut args = vec![Arg::Ptr(bx), Arg::Ptr(by)];
    args.extend(geometry(d));
    args.push(Arg::U32(include_pad as u32));
    let st = launch(&mut sim, &kavg::AVGPOOL2D_FORWARD, l, &args);
    assert_eq!((st.atomic, st.global_store), (0, no as u64));
    let y = download_f32(&mut sim, by, no);

    let bdy = upload_f32(&mut sim, dy);
    let bdx = filled_f32(&mut sim, ni, f32::NAN);
    let mut args = vec![Arg::Ptr(bdy), Arg::Ptr(bdx)];
    args.extend(geometry(d));
    args.push(Arg::U32(include_pad as u32));
    let st = launch(&mut sim, &kavg::AVGPOOL2D_BACKWARD, l, &args);
    assert_eq!((st.atomic, st.global_store), (0, ni as u64));
    let dx = download_f32(&mut sim, bdx, ni);

    let cpu = Cpu;
    let (mut y_ref, mut dx_ref) = (vec![0.0; no], vec![0.0; ni]);
    cpu.avgpool2d_forward(*d, include_pad, &x.to_vec(), &mut y_ref)
        .unwrap();
    cpu.avgpool2d_backward(*d, include_pad, &dy.to_vec(), &mut dx_ref)
        .unwrap();
    (
        compare(&y_ref, &y, &y_ref, 0.0, 0.0),
        compare(&dx_ref, &dx, &dx_ref, 0.0, 0.0),
    )
}

/// Adaptive average pooling of `n * c` planes `h x w` to `oh x ow`, both
/// ways: (forward, backward). Also checks the traffic: no atomics, each
/// output (input) stored once, and reads of exactly `sum over outputs of
/// |bin|` elements in both directions (the gather visits each (output,
/// element) pair once, as the forward does).
fn run_adaptive(
    nc: (usize, usize),
    hw: (usize, usize),
    o: (usize, usize),
    x: &[f32],
    dy: &[f32],
) -> (Worst, Worst) {
    let ((n, c), (h, w), (oh, ow)) = (nc, hw, o);
    let planes = n * c;
    let (ni, no) = (planes * h * w, planes * oh * ow);
    let l = adaptive_pool2d_launch(planes, h, w, oh, ow).unwrap();
    let bins: u64 = (0..oh)
        .map(|i| {
            let (a, b) = adaptive_bin(i, h, oh);
            (b - a) as u64
        })
        .sum::<u64>()
        * (0..ow)
            .map(|j| {
                let (a, b) = adaptive_bin(j, w, ow);
                (b - a) as u64
            })
            .sum::<u64>()
        * planes as u64;
    let dims = [planes, h, w, oh, ow].map(|v| Arg::U32(v as u32));
    let mut sim = sim_with(&kavg::MODULE);
    let bx = upload_f32(&mut sim, x);
    let by = filled_f32(&mut sim, no, f32::NAN);
    let mut args = vec![Arg::Ptr(bx), Arg::Ptr(by)];
    args.extend(dims);
    let st = launch(&mut sim, &kavg::ADAPTIVE_AVGPOOL2D_FORWARD, l, &args);
    assert_eq!((st.atomic, st.global_store), (0, no as u64));
    assert_eq!(
        st.global_bytes_read,
        4 * bins,
        "forward reads each bin once"
    );
    let y = download_f32(&mut sim, by, no);

    let bdy = upload_f32(&mut sim, dy);
    let bdx = filled_f32(&mut sim, ni, f32::NAN);
    let mut args = vec![Arg::Ptr(bdy), Arg::Ptr(bdx)];
    args.extend(dims);
    let st = launch(&mut sim, &kavg::ADAPTIVE_AVGPOOL2D_BACKWARD, l, &args);
    assert_eq!((st.atomic, st.global_store), (0, ni as u64));
    assert_eq!(
        st.global_bytes_read,
        4 * bins,
        "backward reads dy once per (output, input) pair"
    );
    let dx = download_f32(&mut sim, bdx, ni);

    let cpu = Cpu;
    let (mut y_ref, mut dx_ref) = (vec![0.0; no], vec![0.0; ni]);
    cpu.adaptive_avgpool2d_forward(n, c, h, w, oh, ow, &x.to_vec(), &mut y_ref)
        .unwrap();
    cpu.adaptive_avgpool2d_backward(n, c, h, w, oh, ow, &dy.to_vec(), &mut dx_ref)
        .unwrap();
    (
        compare(&y_ref, &y, &y_ref, 0.0, 0.0),
        compare(&dx_ref, &dx, &dx_ref, 0.0, 0.0),
    )
}

/// `(n, c)`, `(h, w)`, `(oh, ow)`, x and dy of one adaptive pooling case.
type AdaptiveCase = (
    (usize, usize),
    (usize, usize),
    (usize, usize),
    Vec<f32>,
    Vec<f32>,
);

/// Adaptive geometry: batch 1-3, channels 1-5, planes 1-13, outputs 1 to
/// h + 3 per axis (bins overlap when the output is not a divisor, and when
/// it is larger than the input).
fn adaptive_case() -> impl Strategy<Value = AdaptiveCase> {
    (1usize..=3, 1usize..=5, 1usize..=13, 1usize..=13)
        .prop_flat_map(|(n, c, h, w)| (Just((n, c)), Just((h, w)), 1..=h + 3, 1..=w + 3))
        .prop_flat_map(|(nc, hw, oh, ow)| {
            let planes = nc.0 * nc.1;
            (
                Just(nc),
                Just(hw),
                Just((oh, ow)),
                prop::collection::vec(-4.0f32..4.0, planes * hw.0 * hw.1),
                prop::collection::vec(-4.0f32..4.0, planes * oh * ow),
            )
        })
}

/// A valid geometry: kernel 1-3 (2 and 3 mostly), stride 1-3, padding up to
/// kernel / 2, planes large enough for the window.
fn dims() -> impl Strategy<Value = Pool2dDims> {
    let axis = || {
        (prop_oneof![1 => Just(1usize), 4 => 2usize..=3], 1usize..=3).prop_flat_map(|(k, s)| {
            (Just(k), Just(s), 0..=k / 2).prop_flat_map(|(k, s, p)| {
                let min = k.saturating_sub(2 * p).max(1);
                (Just(k), Just(s), Just(p), min..=13)
            })
        })
    };
    (1usize..=3, 1usize..=5, axis(), axis()).prop_map(|(n, c, (kh, sh, ph, h), (kw, sw, pw, w))| {
        Pool2dDims::new(n, c, (h, w), (kh, kw), (sh, sw), (ph, pw)).unwrap()
    })
}

/// Values with many ties (a few levels) half the time, so first-maximum
/// rules are exercised, plus the odd NaN and infinity.
fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    let v = prop_oneof![
        8 => -4.0f32..4.0,
        3 => prop::sample::select(vec![-1.0f32, 0.0, -0.0, 2.0]),
        1 => prop::sample::select(vec![f32::NAN, f32::NEG_INFINITY, f32::INFINITY]),
    ];
    prop::collection::vec(v, n)
}

fn case() -> impl Strategy<Value = (Pool2dDims, Vec<f32>, Vec<f32>, bool)> {
    dims().prop_flat_map(|d| {
        (
            Just(d),
            values(d.in_len()),
            prop::collection::vec(-4.0f32..4.0, d.out_len()),
            any::<bool>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn maxpool_is_bit_exact_with_cpu_values_argmax_and_gradients((d, x, dy, _) in case()) {
        let (f, arg_bad, b) = run_max(&d, &x, &dy, None);
        prop_assert!(f.failures == 0, "forward {d:?}: {f}");
        prop_assert!(arg_bad == 0, "forward {d:?}: {arg_bad} argmax differ");
        prop_assert!(b.failures == 0, "backward {d:?}: {b}");
    }

    /// The absorbed ReLU (scale 1) and ReLU + Dropout (scale 1 / (1 - p))
    /// backward, gated by x's negatives, signed zeros, NaN and infinities.
    #[test]
    fn maxpool_backward_with_an_absorbed_relu_is_bit_exact_with_cpu(
        (d, x, dy, dropout) in case(),
    ) {
        let scale = if dropout { 1.0 / (1.0 - 0.3f32) } else { 1.0 };
        let (_, _, b) = run_max(&d, &x, &dy, Some(scale));
        prop_assert!(b.failures == 0, "backward {d:?} scale {scale}: {b}");
    }

    #[test]
    fn avgpool_is_bit_exact_with_cpu_for_both_divisors((d, x, dy, inc) in case()) {
        // Infinities and NaN propagate identically but say nothing about sums.
        let x: Vec<f32> = x.iter().map(|v| if v.is_finite() { *v } else { 3.0 }).collect();
        let (f, b) = run_avg(&d, inc, &x, &dy);
        prop_assert!(f.failures == 0, "forward {d:?} include_pad {inc}: {f}");
        prop_assert!(b.failures == 0, "backward {d:?} include_pad {inc}: {b}");
    }

    #[test]
    fn adaptive_avgpool_is_bit_exact_with_cpu((nc, hw, o, x, dy) in adaptive_case()) {
        let (f, b) = run_adaptive(nc, hw, o, &x, &dy);
        prop_assert!(f.failures == 0, "forward {nc:?} {hw:?} -> {o:?}: {f}");
        prop_assert!(b.failures == 0, "backward {nc:?} {hw:?} -> {o:?}: {b}");
    }
}

/// Fixed shapes (the CNN's 2x2/2, overlapping 3x3/1 with padding, 3x3/2 on an
/// odd plane, 2x3 mixed), printing the worst error of each.
#[test]
fn worst_errors_over_fixed_shapes() {
    let shapes = [
        ((2, 3), (8, 8), (2, 2), (2, 2), (0, 0)),
        ((3, 5), (7, 9), (3, 3), (1, 1), (1, 1)),
        ((1, 4), (11, 11), (3, 3), (2, 2), (1, 1)),
        ((2, 2), (5, 6), (2, 3), (1, 2), (1, 1)),
    ];
    for ((n, c), hw, k, s, p) in shapes {
        let d = Pool2dDims::new(n, c, hw, k, s, p).unwrap();
        let x: Vec<f32> = (0..d.in_len())
            .map(|i| ((i * 7919) % 31) as f32 * 0.37 - 5.0)
            .collect();
        let dy: Vec<f32> = (0..d.out_len()).map(|i| (i as f32 * 0.7).sin()).collect();
        let (f, arg_bad, b) = run_max(&d, &x, &dy, None);
        println!("maxpool {hw:?} k{k:?} s{s:?} p{p:?} forward : {f}; argmax differ {arg_bad}");
        println!("maxpool {hw:?} k{k:?} s{s:?} p{p:?} backward: {b}");
        assert_eq!(f.failures + b.failures + arg_bad, 0);
        let (_, _, b) = run_max(&d, &x, &dy, Some(1.0));
        println!("maxpool {hw:?} k{k:?} s{s:?} p{p:?} backward, ReLU absorbed: {b}");
        assert_eq!(b.failures, 0);
        for inc in [false, true] {
            let (f, b) = run_avg(&d, inc, &x, &dy);
            println!("avgpool {hw:?} k{k:?} s{s:?} p{p:?} pad {inc} forward : {f}");
            println!("avgpool {hw:?} k{k:?} s{s:?} p{p:?} pad {inc} backward: {b}");
            assert_eq!(f.failures + b.failures, 0);
        }
    }
    // Adaptive: global pooling (7x7 -> 1x1), 7 -> 3 (overlapping bins), 5 -> 8
    // (more outputs than inputs) and the CNN head's 14x14 -> 7x7.
    for (nc, hw, o) in [
        ((8, 64), (7, 7), (1, 1)),
        ((2, 3), (7, 7), (3, 3)),
        ((1, 2), (5, 6), (8, 4)),
        ((2, 4), (14, 14), (7, 7)),
    ] {
        let planes = nc.0 * nc.1;
        let x: Vec<f32> = (0..planes * hw.0 * hw.1)
            .map(|i| ((i * 7919) % 31) as f32 * 0.37 - 5.0)
            .collect();
        let dy: Vec<f32> = (0..planes * o.0 * o.1)
            .map(|i| (i as f32 * 0.7).sin())
            .collect();
        let (f, b) = run_adaptive(nc, hw, o, &x, &dy);
        println!("adaptive_avgpool {hw:?} -> {o:?} forward : {f}");
        println!("adaptive_avgpool {hw:?} -> {o:?} backward: {b}");
        assert_eq!(f.failures + b.failures, 0);
    }
}
