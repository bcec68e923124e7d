//! The int8 LSTM, after TFLite Micro's integer `UNIDIRECTIONAL_SEQUENCE_LSTM`
//! (FORMAT.md section 6.3 is the definition): `i8` input and hidden state,
//! `i8` weights with one scale per gate row, `i32` biases, gate
//! pre-activations in Q3.12, gates in Q0.15 from [`lstm_lut`](super::lstm_lut),
//! and an `i16` cell state with scale `2^-cell_shift`. Every layer's hidden
//! state uses the op's output quantization `(s_h, zp_h)`.
//!
//! Per step and layer, for gate row `r` (order i, f, g, o):
//!
//! ```text
//! acc_x = b_ih[r] + Σ (x_q − zp_x) · W_ih[r, k]        i32, units s_x · s_wi[r]
//! acc_h = b_hh[r] + Σ (h_q − zp_h) · W_hh[r, k]        i32, units s_h · s_wh[r]
//! pre   = sat16(R((s_x · 4096) · s_wi[r], acc_x) + R((s_h · 4096) · s_wh[r], acc_h))
//! ```
//!
//! (`R(m, acc)` is [`Requant`]), then per unit
//! `c = sat16(rshr(f · c, 15) + rshr(i · g, 30 − cs))` and
//! `h_q = sat8(zp_h + R(2^-30 / s_h, o · tanh(c)))`.
//!
//! Time-major like the f32 kernel: scratch holds, per layer, `c` (`i16`)
//! and `h` (`i8`), and one `4h` row of `i16` gate pre-activations.

use super::lstm::Lstm;
use super::lstm_lut::{sigmoid_q15, tanh_q15};
use super::{copy, WeightScale, Weights};
use crate::quant::{saturate, QParams, Requant};

/// Gate pre-activations are Q3.12: real = level / 2^12.
const GATE_FRAC_BITS: i32 = 12;

/// `i16`s of scratch the int8 kernel needs: `c` per layer and the `4h`
/// gates (`None` on overflow).
pub fn scratch_i16(hidden: usize, layers: usize) -> Option<usize> {
    hidden
        .checked_mul(layers)?
        .checked_add(hidden.checked_mul(4)?)
}

/// Scratch bytes of the int8 kernel: the `i16`s of [`scratch_i16`], then
/// `h` per layer as `i8` (`None` on overflow).
pub fn scratch_bytes(hidden: usize, layers: usize) -> Option<usize> {
    scratch_i16(hidden, layers)?
        .checked_mul(2)?
        .checked_add(hidden.checked_mul(layers)?)
}

/// One layer's int8 tensors.
struct Layer<'m> {
    w_ih: &'m [i8],
    s_ih: WeightScale<'m>,
    w_hh: &'m [i8],
    s_hh: WeightScale<'m>,
    b_ih: &'m [i32],
    b_hh: &'m [i32],
}

impl<'m> Layer<'m> {
    fn new(t: &[Weights<'m>]) -> Option<Layer<'m>> {
        match *t {
            [Weights::I8(w_ih, s_ih), Weights::I8(w_hh, s_hh), Weights::I32(b_ih), Weights::I32(b_hh)] => {
                Some(Layer {
                    w_ih,
                    s_ih,
                    w_hh,
                    s_hh,
                    b_ih,
                    b_hh,
                })
            }
            _ => None,
        }
    }
}

/// Runs the whole sequence. `x` is `steps × input_size` levels of `q.0`,
/// `y` levels of `q.1` (every step or the last); `s16` and `s8` are the
/// scratch ([`scratch_i16`] `i16`s, `hidden × layers` `i8`s). `None` (and
/// `y` partly written) if a buffer or the tensors are short: prepare
/// checks them.
#[allow(clippy::too_many_arguments)]
pub fn forward_i8(
    p: &Lstm,
    cell_shift: u32,
    q: (QParams, QParams),
    x: &[i8],
    tensors: &[Weights<'_>],
    s16: &mut [i16],
    s8: &mut [i8],
    y: &mut [i8],
) -> Option<()> {
    let (h, input_size) = (p.hidden, p.input_size);
    if h == 0 || input_size == 0 || cell_shift > 15 || tensors.len() < 4 * p.layers {
        return None;
    }
    let (cells, rest) = s16.split_at_mut_checked(h.checked_mul(p.layers)?)?;
    let gates = rest.get_mut(..4 * h)?;
    let hidden = s8.get_mut(..h * p.layers)?;
    cells.fill(0);
    // Real 0 is the zero point: the recurrent sum at step 0 is 0.
    hidden.fill(saturate(0, q.1.zero_point));
    // 2^-30 / s_h: one f32 division (2^-30 is exact in f32).
    let out = Requant::new(1.0 / 1_073_741_824.0 / q.1.scale);
    let mut seq = y.chunks_exact_mut(h);
    for x_t in x.chunks_exact(input_size).take(p.steps) {
        for l in 0..p.layers {
            let layer = Layer::new(tensors.get(4 * l..4 * l + 4)?)?;
            let c = cells.get_mut(l * h..(l + 1) * h)?;
            let (lower, rest) = hidden.split_at_mut_checked(l * h)?;
            let hs = rest.get_mut(..h)?;
            // Layer l > 0 reads layer l − 1's new h, in the output's quantization.
            let (below, qx) = match l.checked_sub(1) {
                Some(b) => (lower.get(b * h..)?, q.1),
                None => (x_t, q.0),
            };
            pre_activations(&layer, below, qx, hs, q.1, gates)?;
            cell(gates, c, hs, cell_shift, out, q.1.zero_point);
        }
        if p.return_sequences {
            copy(hidden.get(hidden.len().checked_sub(h)?..)?, seq.next()?);
        }
    }
    if !p.return_sequences {
        copy(hidden.get(hidden.len().checked_sub(h)?..)?, y);
    }
    Some(())
}

/// The `4h` gate pre-activations in Q3.12 from the layer's input `x`
/// (quantization `qx`) and its previous `h` (quantization `qh`).
fn pre_activations(
    l: &Layer<'_>,
    x: &[i8],
    qx: QParams,
    h: &[i8],
    qh: QParams,
    gates: &mut [i16],
) -> Option<()> {
    let (nx, nh) = (x.len(), h.len());
    let (wx, wh) = (l.w_ih.chunks_exact(nx), l.w_hh.chunks_exact(nh));
    // Multiplying by 4096 = 2^12 is exact: these are s_x / 2^-12 and s_h / 2^-12.
    let (fx, fh) = (qx.scale * 4096.0, qh.scale * 4096.0);
    let gate = |r: usize, (bx, bh): (i32, i32), (sx, sh): (i32, i32)| {
        let mx = Requant::new(fx * l.s_ih.of(r));
        let mh = Requant::new(fh * l.s_hh.of(r));
        let v = mx
            .apply(bx.wrapping_add(sx))
            .saturating_add(mh.apply(bh.wrapping_add(sh)));
        v.clamp(-32768, 32767) as i16
    };
    // The Cortex-M4's SMLAD loop when the sizes suit it (and its host
    // emulation in the tests), else the portable one: the same integers.
    #[cfg(any(test, all(feature = "arm-dsp", target_arch = "arm")))]
    {
        let n = gates.len();
        let (bi, bh) = (l.b_ih, l.b_hh);
        let done = super::lstm_i8_dsp::gate_sums(
            (l.w_ih, x, qx.zero_point),
            (l.w_hh, h, qh.zero_point),
            n.min(bi.len()).min(bh.len()),
            |r, sx, sh| {
                if let (Some(g), Some(&b0), Some(&b1)) = (gates.get_mut(r), bi.get(r), bh.get(r)) {
                    *g = gate(r, (b0, b1), (sx, sh));
                }
            },
        );
        if done {
            return (gates.len() == l.b_ih.len()).then_some(());
        }
    }
    let rows = gates
        .iter_mut()
        .zip(wx.zip(wh))
        .zip(l.b_ih.iter().zip(l.b_hh));
    for (r, ((g, (wx, wh)), (&bx, &bh))) in rows.enumerate() {
        let sums = (dot(x, qx.zero_point, wx), dot(h, qh.zero_point, wh));
        *g = gate(r, (bx, bh), sums);
    }
    (gates.len() == l.b_ih.len()).then_some(())
}

/// `Σ (x[k] − zp) · w[k]` in `i32`.
#[inline(always)]
fn dot(x: &[i8], zp: i32, w: &[i8]) -> i32 {
    x.iter().zip(w).fold(0i32, |acc, (&a, &b)| {
        acc.wrapping_add((i32::from(a) - zp) * i32::from(b))
    })
}

/// `(v + 2^(s−1)) >> s` for `s ≥ 1` (rounding half up).
#[inline(always)]
fn rshr(v: i32, s: u32) -> i32 {
    (v + (1 << (s - 1))) >> s
}

/// Advances every unit of a layer from its Q3.12 gates: the cell state `c`
/// (`i16`, scale `2^-cs`) and the hidden state `h` (`i8`, through `out`).
fn cell(gates: &[i16], c: &mut [i16], h: &mut [i8], cs: u32, out: Requant, zp_h: i32) {
    let n = h.len();
    let (gi, rest) = gates.split_at(n.min(gates.len()));
    let (gf, rest) = rest.split_at(n.min(rest.len()));
    let (gg, go) = rest.split_at(n.min(rest.len()));
    let units = h
        .iter_mut()
        .zip(c.iter_mut())
        .zip(gi)
        .zip(gf)
        .zip(gg)
        .zip(go);
    for (((((h, c), &ai), &af), &ag), &ao) in units {
        let i = i32::from(sigmoid_q15(ai));
        let f = i32::from(sigmoid_q15(af));
        let g = i32::from(tanh_q15(ag));
        let o = i32::from(sigmoid_q15(ao));
        // f · c is Q15 · Q(cs): 15 fraction bits too many; i · g is Q30.
        let v = rshr(f * i32::from(*c), 15) + rshr(i * g, 30 - cs);
        let c_new = v.clamp(-32768, 32767);
        *c = c_new as i16;
        // The cell in Q3.12 for tanh, saturated at ±8 (tanh(8) = 1 − 2e-7).
        let c12 = match i64::from(GATE_FRAC_BITS) - i64::from(cs) {
            0 => c_new,
            d if d > 0 => (c_new << d).clamp(-32768, 32767),
            _ => rshr(c_new, cs - GATE_FRAC_BITS as u32),
        };
        let t = i32::from(tanh_q15(c12 as i16));
        *h = saturate(out.apply(o * t), zp_h);
    }
}

#[cfg(test)]
// The reference indexes plainly, as the spec's formulas read.
#[allow(clippy::indexing_slicing, clippy::needless_range_loop)]
mod tests {
    use super::*;
    use lasagna_format::Scales;
    use std::vec;
    use std::vec::Vec;

    /// `round(acc · m)`, half up, from `m`'s exact value (`f32` = mantissa ·
    /// 2^exp) in 128-bit integers, saturated to `i32`; 0 for multipliers
    /// below 2^-32 (the format's rule).
    fn requant(m: f32, acc: i32) -> i32 {
        if m.is_nan() || m < 2.0f32.powi(-32) {
            return 0;
        }
        let bits = m.to_bits();
        let (mant, exp) = (
            i128::from((bits & 0x7f_ffff) | 0x80_0000),
            ((bits >> 23) & 0xff) as i32 - 150,
        );
        let p = i128::from(acc) * mant;
        let r = if exp >= 0 {
            p << exp
        } else {
            let s = -exp;
            (p + (1i128 << (s - 1))) >> s
        };
        r.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
    }

    /// σ or tanh by the spec's words: the table entry computed in `f64`
    /// on the spot, interpolated, mirrored for negative inputs.
    fn act(x: i16, tanh: bool) -> i16 {
        let (per, bits) = if tanh { (64.0, 6) } else { (32.0, 7) };
        let f = |k: i64| -> i64 {
            let r = k as f64 / per;
            let v = if tanh {
                r.tanh()
            } else {
                1.0 / (1.0 + (-r).exp())
            };
            ((32768.0 * v).round() as i64).min(32767)
        };
        let a = i64::from(x).abs().min(32767);
        let (k, frac) = (a / (1 << bits), a % (1 << bits));
        let v = f(k) + ((f(k + 1) - f(k)) * frac + (1 << (bits - 1))) / (1 << bits);
        (match (x < 0, tanh) {
            (false, _) => v,
            (true, false) => 32768 - v,
            (true, true) => -v,
        }) as i16
    }

    fn round_shift(v: i64, s: i64) -> i64 {
        if s <= 0 {
            v << -s
        } else {
            (v + (1 << (s - 1))).div_euclid(1 << s)
        }
    }

    struct RefLayer {
        w_ih: Vec<i8>,
        s_ih: Vec<f32>,
        w_hh: Vec<i8>,
        s_hh: Vec<f32>,
        b_ih: Vec<i32>,
        b_hh: Vec<i32>,
    }

    /// Layer-major integer reference: each layer over the whole sequence,
    /// then the next, in `i64` with explicit clamps.
    fn reference(p: &Lstm, cs: u32, q: (QParams, QParams), x: &[i8], ls: &[RefLayer]) -> Vec<i8> {
        let h = p.hidden;
        let mut input: Vec<i8> = x.to_vec();
        let mut qin = q.0;
        for l in ls {
            let n_in = input.len() / p.steps;
            let mut hs = vec![q.1.zero_point as i8; h];
            let mut c = vec![0i64; h];
            let mut out = Vec::new();
            for t in 0..p.steps {
                let xs = &input[t * n_in..(t + 1) * n_in];
                let mut g = vec![0i64; 4 * h];
                for r in 0..4 * h {
                    let mut ax = i64::from(l.b_ih[r]);
                    for k in 0..n_in {
                        ax += (i64::from(xs[k]) - i64::from(qin.zero_point))
                            * i64::from(l.w_ih[r * n_in + k]);
                    }
                    let mut ah = i64::from(l.b_hh[r]);
                    for k in 0..h {
                        ah += (i64::from(hs[k]) - i64::from(q.1.zero_point))
                            * i64::from(l.w_hh[r * h + k]);
                    }
                    let mx = requant(qin.scale * 4096.0 * l.s_ih[r], ax as i32);
                    let mh = requant(q.1.scale * 4096.0 * l.s_hh[r], ah as i32);
                    g[r] = (i64::from(mx) + i64::from(mh)).clamp(-32768, 32767);
                }
                for j in 0..h {
                    let i = i64::from(act(g[j] as i16, false));
                    let f = i64::from(act(g[h + j] as i16, false));
                    let gg = i64::from(act(g[2 * h + j] as i16, true));
                    let o = i64::from(act(g[3 * h + j] as i16, false));
                    let v = round_shift(f * c[j], 15) + round_shift(i * gg, 30 - i64::from(cs));
                    c[j] = v.clamp(-32768, 32767);
                    let c12 = round_shift(c[j], i64::from(cs) - 12).clamp(-32768, 32767);
                    let th = i64::from(act(c12 as i16, true));
                    let m = 2.0f32.powi(-30) / q.1.scale;
                    let v = i64::from(requant(m, (o * th) as i32)) + i64::from(q.1.zero_point);
                    hs[j] = v.clamp(-128, 127) as i8;
                }
                out.extend_from_slice(&hs);
            }
            input = out;
            qin = q.1;
        }
        if p.return_sequences {
            input
        } else {
            input[(p.steps - 1) * h..].to_vec()
        }
    }

    fn levels(n: usize, seed: u64, lo: i32, hi: i32) -> Vec<i32> {
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(7);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                lo + ((s >> 33) % (hi - lo + 1) as u64) as i32
            })
            .collect()
    }

    fn to_bytes(s: &[f32]) -> Vec<u8> {
        s.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn matches_an_independent_integer_reference_bit_for_bit() {
        // (steps, input, hidden, layers, cell_shift): cell formats below,
        // at and above the gates' Q3.12, per-tensor and per-row scales.
        let cases = [
            (1, 3, 2, 1, 12),
            (5, 4, 3, 1, 11),
            (6, 2, 4, 3, 14),
            (7, 5, 6, 2, 9),
            (4, 3, 5, 1, 15),
            // Sizes the Cortex-M4's SMLAD loop takes (multiples of 4):
            // 32 gate rows, three at a time and a remainder of two.
            (3, 12, 8, 2, 12),
        ];
        for (case, &(steps, input_size, hidden, layers, cs)) in cases.iter().enumerate() {
            let seed = case as u64 * 100;
            let q = (
                QParams {
                    scale: 0.03,
                    zero_point: -20,
                },
                QParams {
                    scale: 1.0 / 120.0,
                    zero_point: 3,
                },
            );
            let mut ls = Vec::new();
            for l in 0..layers {
                let n_in = if l == 0 { input_size } else { hidden };
                let s = seed + 10 * l as u64;
                let sc = |n, s| {
                    levels(n, s, 1, 40)
                        .iter()
                        .map(|&v| v as f32 * 1e-4)
                        .collect()
                };
                ls.push(RefLayer {
                    w_ih: levels(4 * hidden * n_in, s, -127, 127)
                        .iter()
                        .map(|&v| v as i8)
                        .collect(),
                    s_ih: sc(4 * hidden, s + 1),
                    w_hh: levels(4 * hidden * hidden, s + 2, -127, 127)
                        .iter()
                        .map(|&v| v as i8)
                        .collect(),
                    s_hh: if case % 2 == 0 {
                        vec![0.002; 4 * hidden]
                    } else {
                        sc(4 * hidden, s + 3)
                    },
                    b_ih: levels(4 * hidden, s + 4, -3000, 3000),
                    b_hh: levels(4 * hidden, s + 5, -3000, 3000),
                });
            }
            let bytes: Vec<(Vec<u8>, Vec<u8>)> = ls
                .iter()
                .map(|l| (to_bytes(&l.s_ih), to_bytes(&l.s_hh)))
                .collect();
            let mut w = Vec::new();
            for (l, (bi, bh)) in ls.iter().zip(&bytes) {
                w.push(Weights::I8(
                    &l.w_ih,
                    WeightScale::Channel(Scales::from_le_bytes(bi)),
                ));
                w.push(Weights::I8(
                    &l.w_hh,
                    if case % 2 == 0 {
                        WeightScale::Tensor(0.002)
                    } else {
                        WeightScale::Channel(Scales::from_le_bytes(bh))
                    },
                ));
                w.push(Weights::I32(&l.b_ih));
                w.push(Weights::I32(&l.b_hh));
            }
            let x: Vec<i8> = levels(steps * input_size, seed + 99, -128, 127)
                .iter()
                .map(|&v| v as i8)
                .collect();
            for return_sequences in [false, true] {
                let p = Lstm {
                    steps,
                    input_size,
                    hidden,
                    layers,
                    return_sequences,
                };
                let mut s16 = vec![7i16; scratch_i16(hidden, layers).unwrap()];
                let mut s8 = vec![7i8; hidden * layers];
                let n = if return_sequences {
                    steps * hidden
                } else {
                    hidden
                };
                let mut y = vec![0i8; n];
                let got = forward_i8(&p, cs, q, &x, &w, &mut s16, &mut s8, &mut y);
                assert_eq!(got, Some(()));
                let want = reference(&p, cs, q, &x, &ls);
                assert_eq!(y, want, "case {case}, return_sequences {return_sequences}");
                // The cell saturates or not, but the outputs must not be constant.
                assert!(
                    want.iter().any(|&v| v != want[0]),
                    "case {case} is degenerate"
                );
            }
        }
    }

    #[test]
    fn short_buffers_and_wrong_tensors_are_refused_not_a_panic() {
        let p = Lstm {
            steps: 2,
            input_size: 1,
            hidden: 2,
            layers: 1,
            return_sequences: false,
        };
        let (w, b) = ([1i8; 8], [0i32; 8]);
        let s = WeightScale::Tensor(0.1);
        let t = [
            Weights::I8(&w, s),
            Weights::I8(&w[..4 * 2], s),
            Weights::I32(&b),
            Weights::I32(&b),
        ];
        let q = (
            QParams {
                scale: 0.1,
                zero_point: 0,
            },
            QParams {
                scale: 0.01,
                zero_point: 0,
            },
        );
        let mut y = [0i8; 2];
        let x = [5i8, -5];
        let run = |t: &[Weights<'_>], n16: usize, n8: usize, y: &mut [i8]| {
            forward_i8(&p, 11, q, &x, t, &mut vec![0; n16], &mut vec![0; n8], y)
        };
        assert_eq!(run(&t, 10, 2, &mut y), Some(()));
        assert_eq!(run(&t, 9, 2, &mut y), None);
        assert_eq!(run(&t, 10, 1, &mut y), None);
        assert_eq!(run(&t[..3], 10, 2, &mut y), None);
        let f = [0.0f32; 8];
        assert_eq!(
            run(&[Weights::F32(&f), t[1], t[2], t[3]], 10, 2, &mut y),
            None
        );
    }
}
