//! The int8 LSTM's gate sums on the Cortex-M4 (feature `arm-dsp`): the
//! same `i32` sums `Σ (x − zp) · w` as `lstm_i8`'s portable loop (exact
//! integers, any order), with the layer's input and previous hidden state
//! widened once per step into `i16` pairs minus their zero points and every
//! three gate rows one `SMLAD` pass over them (`dsp::dot3_wide`, the int8
//! Linear's loop: 18 instructions per 12 multiply-accumulates). The
//! portable loop took about 4 instructions per multiply-accumulate and
//! made the int8 LSTM slower than the f32 one on the M4.
//!
//! On the host (tests only) the DSP functions are `ops::lanes`' portable
//! ones, so `lstm_i8`'s tests run this very loop.

#[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
use super::dsp::{dot1_wide, dot3_wide, neg_pair, sxtab16, sxtab16_ror8, word};
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
use super::lanes::{neg_pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8};

/// Inputs (of `x` or `h`) up to which the widened copies fit on the stack
/// (two buffers of `MAX_IN / 2` words: 512 bytes).
const MAX_IN: usize = 128;

/// For every gate row `r < rows`: `f(r, Σ (x − zx) · w_ih[r], Σ (h − zh) ·
/// w_hh[r])` (wrapping `i32`), where `w_ih` has rows of `x.len()` and
/// `w_hh` rows of `h.len()` weights. `false`, having called nothing, when
/// the sizes do not suit (not multiples of 4, more than [`MAX_IN`], short
/// tensors): the caller runs its portable loop.
pub(crate) fn gate_sums(
    (w_ih, x, zx): (&[i8], &[i8], i32),
    (w_hh, h, zh): (&[i8], &[i8], i32),
    rows: usize,
    mut f: impl FnMut(usize, i32, i32),
) -> bool {
    let (nx, nh) = (x.len(), h.len());
    let fits = |n: usize, w: &[i8]| {
        n.is_multiple_of(4) && n <= MAX_IN && rows.checked_mul(n).is_some_and(|m| m <= w.len())
    };
    if !fits(nx, w_ih) || !fits(nh, w_hh) {
        return false;
    }
    let (mut bx, mut bh) = ([0u32; MAX_IN / 2], [0u32; MAX_IN / 2]);
    let (wx, wh) = (widen(x, zx, &mut bx), widen(h, zh, &mut bh));
    let mut r = 0;
    while r + 3 <= rows {
        let sx = dot3_wide(
            wx,
            [row(w_ih, nx, r), row(w_ih, nx, r + 1), row(w_ih, nx, r + 2)],
        );
        let sh = dot3_wide(
            wh,
            [row(w_hh, nh, r), row(w_hh, nh, r + 1), row(w_hh, nh, r + 2)],
        );
        for (k, (a, b)) in sx.into_iter().zip(sh).enumerate() {
            f(r + k, a, b);
        }
        r += 3;
    }
    for r in r..rows {
        f(
            r,
            dot1_wide(wx, row(w_ih, nx, r)),
            dot1_wide(wh, row(w_hh, nh, r)),
        );
    }
    true
}

/// Row `r` of a tensor with rows of `n` weights.
fn row(w: &[i8], n: usize, r: usize) -> &[i8] {
    w.get(r * n..(r + 1) * n).unwrap_or_default()
}

/// `x` minus `zp` as `i16` pairs, per group of four: `[x0, x2]`, `[x1, x3]`
/// (the lanes `SXTB16` gives a weight word).
fn widen<'b>(x: &[i8], zp: i32, buf: &'b mut [u32; MAX_IN / 2]) -> &'b [u32] {
    let neg = neg_pair(zp);
    for (pair, q) in buf.chunks_exact_mut(2).zip(x.chunks_exact(4)) {
        if let [e, o] = pair {
            let v = word(q);
            (*e, *o) = (sxtab16(neg, v), sxtab16_ror8(neg, v));
        }
    }
    buf.get(..x.len() / 2).unwrap_or_default()
}

/// `dsp::word`'s portable form.
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
fn word(b: &[i8]) -> u32 {
    match *b {
        [a, b, c, d, ..] => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => 0,
    }
}

/// `dsp::dot1_wide`'s portable form (the same lane arithmetic).
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
fn dot1_wide(wide: &[u32], w: &[i8]) -> i32 {
    let mut acc = 0i32;
    for (xp, q) in wide.chunks_exact(2).zip(w.chunks_exact(4)) {
        if let [xe, xo] = *xp {
            let v = word(q);
            acc = smlad(xo, sxtb16_ror8(v), smlad(xe, sxtb16(v), acc));
        }
    }
    acc
}

/// `dsp::dot3_wide`'s portable form.
#[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
fn dot3_wide(wide: &[u32], w: [&[i8]; 3]) -> [i32; 3] {
    w.map(|r| dot1_wide(wide, r))
}
