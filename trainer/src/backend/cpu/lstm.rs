//! The element-wise half of an LSTM step on the CPU (see `backend::rnn` for
//! the buffer layouts). `cell_forward` and `cell_backward` work on slices;
//! the trait impl in `rnn.rs` checks lengths and slices the buffers.

use crate::backend::LstmStep;

/// `e^x` for `x` in `[-87, 88]` (clamped outside, so it never overflows),
/// within 1 ulp: Cephes' `expf` (range reduction by `n ln 2`, then a degree-6
/// polynomial). Written without branches or libm calls so the cell loops
/// vectorize; glibc's scalar `expf`/`tanhf` were half of a training step.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    // ln 2 in two parts (Cody-Waite), so r = x - n ln 2 keeps its low bits.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    // 2^n from n's integer bits: n + 2^22 sits in t's low mantissa bits.
    let n = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    e * f32::from_bits((n.wrapping_add(127) << 23) as u32)
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x)` within 2 ulp: Cephes' `tanhf` (an odd polynomial below 0.625,
/// where `1 - 2 / (e^2x + 1)` would cancel), computed both ways and selected
/// so the loop stays branch-free.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let a = x.abs();
    // tanh(44) is 1 in f32; capping there keeps e^2a finite. (Not `min`,
    // which would turn a NaN into 44: NaN must reach the loss check.)
    let capped = if a > 44.0 { 44.0 } else { a };
    let big = 1.0 - 2.0 / (exp(2.0 * capped) + 1.0);
    let z = x * x;
    let p = -5.704_988_7e-3;
    let p = p * z + 2.063_909e-2;
    let p = p * z - 5.373_971_6e-2;
    let p = p * z + 1.333_144_2e-1;
    let p = p * z - 3.333_328e-1;
    let small = p * z * x + x;
    if a < 0.625 {
        small
    } else {
        big.copysign(x)
    }
}

/// One sample's units at one step, with `c_{t-1} = 0` when `FIRST`. Every
/// slice is a separate argument of exactly `c_t.len()` elements: LLVM then
/// knows they do not overlap (`&mut` arguments are `noalias`) and vectorizes
/// the loop without runtime overlap checks, which it otherwise hoisted out
/// of the sample loop, where they always failed.
#[inline(always)]
fn forward_units<const FIRST: bool>(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    c_prev: &[f32],
    c_t: &mut [f32],
    h_t: &mut [f32],
) {
    let n = c_t.len();
    let (gi, gf, gg, go, h_t) = (
        &mut gi[..n],
        &mut gf[..n],
        &mut gg[..n],
        &mut go[..n],
        &mut h_t[..n],
    );
    let c_prev = if FIRST { c_prev } else { &c_prev[..n] };
    for j in 0..n {
        let i = sigmoid(gi[j]);
        let f = sigmoid(gf[j]);
        let g = tanh(gg[j]);
        let o = sigmoid(go[j]);
        let cp = if FIRST { 0.0 } else { c_prev[j] };
        let c = f * cp + i * g;
        (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
        c_t[j] = c;
        h_t[j] = o * tanh(c);
    }
}

/// From this many units (samples x hidden) on, a cell op's samples are
/// split over two cores (`threads::join`): the `lstm` preset's 64 x 128 step
/// takes ~300k instructions forward, far more than the hand-off's ~1 us.
const SPLIT_MIN_UNITS: usize = 4096;

/// Where `n` samples split in two for `threads::join`; `None` to stay on one core.
fn split_samples(d: LstmStep) -> Option<usize> {
    (d.n >= 2 && d.n * d.hidden >= SPLIT_MIN_UNITS).then_some(d.n / 2)
}

/// Step `t` of every sample; the caller has checked the lengths. Samples
/// are independent, and each one's rows of every buffer are contiguous
/// (batch-major), so the two halves of the batch run on two cores with the
/// same results as one.
pub fn cell_forward(
    d: LstmStep,
    rec: Option<&[f32]>,
    gates: &mut [f32],
    c: &mut [f32],
    h_seq: Option<&mut [f32]>,
    h: &mut [f32],
) {
    let Some(k) = split_samples(d) else {
        return forward_samples(d, rec, gates, c, h_seq, h);
    };
    let (hid, steps) = (d.hidden, d.steps);
    let (d0, d1) = (LstmStep { n: k, ..d }, LstmStep { n: d.n - k, ..d });
    let (rec0, rec1) = halves(rec, k * 4 * hid);
    let (g0, g1) = gates.split_at_mut(k * steps * 4 * hid);
    let (c0, c1) = c.split_at_mut(k * steps * hid);
    let (s0, s1) = match h_seq {
        Some(v) => {
            let (a, b) = v.split_at_mut(k * steps * hid);
            (Some(a), Some(b))
        }
        None => (None, None),
    };
    let (h0, h1) = h.split_at_mut(k * hid);
    super::threads::join(
        || forward_samples(d0, rec0, g0, c0, s0, h0),
        || forward_samples(d1, rec1, g1, c1, s1, h1),
    );
}

/// [`cell_forward`] on one core.
// Compiled for AVX2+FMA too, like the activations: the loop is hot and
// vectorizes (results are the same: Rust never contracts into an FMA).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma"
))]
fn forward_samples(
    d: LstmStep,
    rec: Option<&[f32]>,
    gates: &mut [f32],
    c: &mut [f32],
    mut h_seq: Option<&mut [f32]>,
    h: &mut [f32],
) {
    let (hid, steps, t) = (d.hidden, d.steps, d.t);
    for s in 0..d.n {
        let row = s * steps + t;
        let g = &mut gates[row * 4 * hid..(row + 1) * 4 * hid];
        if let Some(rec) = rec {
            for (g, r) in g.iter_mut().zip(&rec[s * 4 * hid..(s + 1) * 4 * hid]) {
                *g += r;
            }
        }
        let (gi, rest) = g.split_at_mut(hid);
        let (gf, rest) = rest.split_at_mut(hid);
        let (gg, go) = rest.split_at_mut(hid);
        // c_{t-1} sits right before c_t in the same sample's sequence.
        let (before, from_t) = c.split_at_mut(row * hid);
        let c_t = &mut from_t[..hid];
        let h_t = &mut h[s * hid..(s + 1) * hid];
        if t > 0 {
            let c_prev = &before[(row - 1) * hid..];
            forward_units::<false>(gi, gf, gg, go, c_prev, c_t, h_t);
        } else {
            forward_units::<true>(gi, gf, gg, go, &[], c_t, h_t);
        }
        if let Some(seq) = h_seq.as_deref_mut() {
            seq[row * hid..(row + 1) * hid].copy_from_slice(h_t);
        }
    }
}

/// One sample's units at one step of backward, with `c_{t-1} = 0` when
/// `FIRST`: `d_o` holds the gradient reaching `h_t` on entry and `dL/da_o`
/// on exit; the other outputs are overwritten. Separate exact-length slices
/// for the same reason as forward.
#[inline(always)]
fn backward_units<const FIRST: bool>(
    [gi, gf, gg, go]: [&[f32]; 4],
    c_prev: &[f32],
    c_t: &[f32],
    dc: &mut [f32],
    di: &mut [f32],
    df: &mut [f32],
    dg: &mut [f32],
    d_o: &mut [f32],
) {
    let n = c_t.len();
    let (gi, gf, gg, go, dc) = (&gi[..n], &gf[..n], &gg[..n], &go[..n], &mut dc[..n]);
    let (di, df, dg, d_o) = (&mut di[..n], &mut df[..n], &mut dg[..n], &mut d_o[..n]);
    let c_prev = if FIRST { c_prev } else { &c_prev[..n] };
    for j in 0..n {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        let dh = d_o[j];
        let tc = tanh(c_t[j]);
        // dL/dc_t: from step t+1 (through f) and from h_t = o * tanh(c_t).
        let dct = dc[j] + dh * o * (1.0 - tc * tc);
        let cp = if FIRST { 0.0 } else { c_prev[j] };
        dc[j] = dct * f;
        // Through the activations: sigmoid' = s(1-s), tanh' = 1-t^2.
        di[j] = dct * g * i * (1.0 - i);
        df[j] = dct * cp * f * (1.0 - f);
        dg[j] = dct * i * (1.0 - g * g);
        d_o[j] = dh * tc * o * (1.0 - o);
    }
}

/// The backward of step `t` of every sample; the caller has checked the
/// lengths. Split over two cores by samples, like [`cell_forward`].
#[allow(clippy::too_many_arguments)]
pub fn cell_backward(
    d: LstmStep,
    gates: &[f32],
    c: &[f32],
    dh_seq: Option<&[f32]>,
    dh: Option<&[f32]>,
    dc: &mut [f32],
    dgates: &mut [f32],
    dgates_step: &mut [f32],
) {
    let Some(k) = split_samples(d) else {
        return backward_samples(d, gates, c, dh_seq, dh, dc, dgates, dgates_step);
    };
    let (hid, steps) = (d.hidden, d.steps);
    let (d0, d1) = (LstmStep { n: k, ..d }, LstmStep { n: d.n - k, ..d });
    let (seq, step) = (k * steps * hid, k * hid);
    let (gates0, gates1) = gates.split_at(4 * seq);
    let (c0, c1) = c.split_at(seq);
    let (dh_seq0, dh_seq1) = halves(dh_seq, seq);
    let (dh0, dh1) = halves(dh, step);
    let (dc0, dc1) = dc.split_at_mut(step);
    let (dg0, dg1) = dgates.split_at_mut(4 * seq);
    let (ds0, ds1) = dgates_step.split_at_mut(4 * step);
    super::threads::join(
        || backward_samples(d0, gates0, c0, dh_seq0, dh0, dc0, dg0, ds0),
        || backward_samples(d1, gates1, c1, dh_seq1, dh1, dc1, dg1, ds1),
    );
}

/// `v` split at `at` when given.
fn halves(v: Option<&[f32]>, at: usize) -> (Option<&[f32]>, Option<&[f32]>) {
    match v {
        Some(v) => {
            let (a, b) = v.split_at(at);
            (Some(a), Some(b))
        }
        None => (None, None),
    }
}

/// [`cell_backward`] on one core.
#[allow(clippy::too_many_arguments)]
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma"
))]
fn backward_samples(
    d: LstmStep,
    gates: &[f32],
    c: &[f32],
    dh_seq: Option<&[f32]>,
    dh: Option<&[f32]>,
    dc: &mut [f32],
    dgates: &mut [f32],
    dgates_step: &mut [f32],
) {
    let (hid, steps, t) = (d.hidden, d.steps, d.t);
    for s in 0..d.n {
        let row = s * steps + t;
        let g = &gates[row * 4 * hid..(row + 1) * 4 * hid];
        let (gi, rest) = g.split_at(hid);
        let (gf, rest) = rest.split_at(hid);
        let (gg, go) = rest.split_at(hid);
        let g = [gi, gf, gg, go];
        let c_t = &c[row * hid..(row + 1) * hid];
        let dc = &mut dc[s * hid..(s + 1) * hid];
        let out = &mut dgates_step[s * 4 * hid..(s + 1) * 4 * hid];
        let (di, rest) = out.split_at_mut(hid);
        let (df, rest) = rest.split_at_mut(hid);
        let (dg, d_o) = rest.split_at_mut(hid);
        // Sum the incoming dL/dh_t into the o block, which the units read
        // before writing it: the unit loop then has no optional inputs.
        match dh_seq {
            Some(v) => d_o.copy_from_slice(&v[row * hid..(row + 1) * hid]),
            None => d_o.fill(0.0),
        }
        if let Some(v) = dh {
            for (d, v) in d_o.iter_mut().zip(&v[s * hid..(s + 1) * hid]) {
                *d += v;
            }
        }
        if t > 0 {
            let c_prev = &c[(row - 1) * hid..row * hid];
            backward_units::<false>(g, c_prev, c_t, dc, di, df, dg, d_o);
        } else {
            backward_units::<true>(g, &[], c_t, dc, di, df, dg, d_o);
        }
        dgates[row * 4 * hid..(row + 1) * 4 * hid].copy_from_slice(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::backend::RnnOps;

    fn step(n: usize, hidden: usize, steps: usize, t: usize) -> LstmStep {
        LstmStep {
            n,
            hidden,
            steps,
            t,
        }
    }

    /// Distance in units in the last place, measured at the f64 value.
    fn ulps(got: f32, want: f64) -> f64 {
        let ulp = (want.abs().max(f32::MIN_POSITIVE as f64) as f32).to_bits();
        let ulp = f32::from_bits(ulp + 1) as f64 - f32::from_bits(ulp) as f64;
        (got as f64 - want).abs() / ulp
    }

    #[test]
    fn exp_sigmoid_and_tanh_are_within_a_few_ulps_and_keep_nan() {
        let (mut e, mut s, mut t) = (0.0f64, 0.0f64, 0.0f64);
        for k in -2_000_000..=2_000_000 {
            let x = k as f32 * 4e-5; // [-80, 80], every step of 4e-5
            let xd = x as f64;
            if (-80.0..=80.0).contains(&x) {
                e = e.max(ulps(exp(x), xd.exp()));
            }
            s = s.max(ulps(sigmoid(x / 4.0), 1.0 / (1.0 + (-xd / 4.0).exp())));
            t = t.max(ulps(tanh(x / 8.0), (xd / 8.0).tanh()));
        }
        assert!(
            e <= 1.5 && s <= 3.0 && t <= 2.0,
            "exp {e}, sigmoid {s}, tanh {t} ulps"
        );
        assert!(exp(f32::NAN).is_nan() && sigmoid(f32::NAN).is_nan() && tanh(f32::NAN).is_nan());
        assert_eq!((tanh(f32::INFINITY), tanh(f32::NEG_INFINITY)), (1.0, -1.0));
        assert_eq!(
            (sigmoid(f32::INFINITY), sigmoid(-200.0) < 1e-37),
            (1.0, true)
        );
        assert_eq!(exp(200.0), exp(88.0));
    }

    #[test]
    fn the_batch_split_over_two_cores_is_bit_exact_with_one_core() {
        // 5 x 1024 units: split (2 + 3 samples) at the middle step t = 1.
        let d = step(5, 1024, 3, 1);
        assert_eq!(split_samples(d), Some(2));
        let mut rng = crate::philox::Stream::new(9, 0);
        let mut r =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.uniform_range(-3.0, 3.0)).collect() };
        let (seq, st) = (5 * 3 * 1024, 5 * 1024);
        let (gates, c, rec, dh_seq, dh, dc) = (r(4 * seq), r(seq), r(4 * st), r(seq), r(st), r(st));
        let (mut g1, mut c1, mut s1, mut h1) =
            (gates.clone(), c.clone(), vec![0.0; seq], vec![0.0; st]);
        let (mut g2, mut c2, mut s2, mut h2) = (gates, c, vec![0.0; seq], vec![0.0; st]);
        cell_forward(d, Some(&rec), &mut g1, &mut c1, Some(&mut s1), &mut h1);
        forward_samples(d, Some(&rec), &mut g2, &mut c2, Some(&mut s2), &mut h2);
        assert!(g1 == g2 && c1 == c2 && s1 == s2 && h1 == h2);
        let (mut dc1, mut dg1, mut ds1) = (dc.clone(), vec![0.0; 4 * seq], vec![0.0; 4 * st]);
        let (mut dc2, mut dg2, mut ds2) = (dc, vec![0.0; 4 * seq], vec![0.0; 4 * st]);
        cell_backward(
            d,
            &g1,
            &c1,
            Some(&dh_seq),
            Some(&dh),
            &mut dc1,
            &mut dg1,
            &mut ds1,
        );
        backward_samples(
            d,
            &g1,
            &c1,
            Some(&dh_seq),
            Some(&dh),
            &mut dc2,
            &mut dg2,
            &mut ds2,
        );
        assert!(dc1 == dc2 && dg1 == dg2 && ds1 == ds2);
    }

    #[test]
    fn zero_pre_activations_give_half_gates_and_the_textbook_cell() {
        // a = 0: i = f = o = 1/2, g = 0, so c_0 = 0 and h_0 = 0; with
        // c_{-1} = 0 nothing moves. Give g a push: a_g = atanh(0.5) -> g = 0.5,
        // c_0 = 0.5 * 0.5 = 0.25, h_0 = 0.5 * tanh(0.25).
        let d = step(1, 1, 1, 0);
        let mut gates = vec![0.0, 0.0, 0.5f32.atanh(), 0.0];
        let (mut c, mut h, mut seq) = (vec![0.0], vec![0.0], vec![0.0]);
        Cpu.lstm_cell_forward(d, None, &mut gates, &mut c, Some(&mut seq), &mut h)
            .unwrap();
        assert!((gates[2] - 0.5).abs() < 1e-6 && gates[0] == 0.5 && gates[3] == 0.5);
        assert!((c[0] - 0.25).abs() < 1e-6);
        assert!((h[0] - 0.5 * 0.25f32.tanh()).abs() < 1e-6 && seq == h);
    }
}
