//! LSTM (PyTorch's `nn.LSTM(batch_first=True)`, eval): x is (t, i), per
//! layer `weight_ih` (4h, i_l), `weight_hh` (4h, h), `bias_ih` and `bias_hh`
//! (4h), gate order i, f, g, o; y is (t, h) with `return_sequences`, else
//! the last step's h of the last layer, (h).
//!
//! The engine runs time-major: at each step every layer advances once, so
//! only each layer's `h` and `c` and one gate vector are kept, never a
//! layer's whole output sequence. Scratch, in `f32`s:
//! `[h_0, c_0, h_1, c_1, .., h_{L-1}, c_{L-1}, gates (4h)]`, which is
//! [`scratch_len`]. The arithmetic is the trainer's: gates =
//! `((x W_ih^T + b_ih) + b_hh) + h W_hh^T`, with the recurrent term skipped at
//! step 0 (h is 0 there), then `c = f c + i g`, `h = o tanh(c)`.

use super::activation::sigmoid;
use super::{copy, Weights};
use crate::math;

/// An LSTM op's sizes for one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lstm {
    /// Time steps.
    pub steps: usize,
    /// Input features per step.
    pub input_size: usize,
    /// Hidden units per layer.
    pub hidden: usize,
    /// Stacked layers.
    pub layers: usize,
    /// Output every step of the last layer (else only its last step).
    pub return_sequences: bool,
}

/// Scratch `f32`s the kernel needs: `h` and `c` per layer plus the `4h` gates
/// (`None` on overflow).
pub fn scratch_len(hidden: usize, layers: usize) -> Option<usize> {
    hidden
        .checked_mul(layers)?
        .checked_mul(2)?
        .checked_add(hidden.checked_mul(4)?)
}

/// Runs the whole sequence. `tensors` holds `4 * layers` tensors in the
/// format's order. `None` (and `y` partly written) if `scratch` is shorter
/// than [`scratch_len`] or `tensors` is short: the engine checks both in prepare.
pub fn forward(
    p: &Lstm,
    x: &[f32],
    tensors: &[Weights<'_>],
    scratch: &mut [f32],
    y: &mut [f32],
) -> Option<()> {
    let (h, h2, input_size) = (p.hidden, 2 * p.hidden, p.input_size);
    // `chunks_exact` panics on a zero size: every size it gets is checked
    // here (`2 * h` too, which wraps to 0 for a hidden size no target holds).
    if h == 0 || h2 == 0 || input_size == 0 || tensors.len() < 4 * p.layers {
        return None;
    }
    let (state, rest) = scratch.split_at_mut_checked(h2 * p.layers)?;
    let gates = rest.get_mut(..4 * h)?;
    state.fill(0.0);
    let mut seq = y.chunks_exact_mut(h);
    for (t, x_t) in x.chunks_exact(input_size).take(p.steps).enumerate() {
        let mut below: &[f32] = x_t;
        for (st, w) in state.chunks_exact_mut(h2).zip(tensors.chunks_exact(4)) {
            let (hs, cs) = st.split_at_mut_checked(h)?;
            let &[w_ih, w_hh, b_ih, b_hh] = w else {
                return None;
            };
            for (r, g) in gates.iter_mut().enumerate() {
                let mut v = w_ih.dot(r, below) + b_ih.at(r) + b_hh.at(r);
                if t > 0 {
                    v += w_hh.dot(r, hs);
                }
                *g = v;
            }
            cell(gates, hs, cs);
            below = hs;
        }
        if p.return_sequences {
            copy(below, seq.next()?);
        }
    }
    if !p.return_sequences {
        let top = state.chunks_exact(h2).last()?;
        copy(top.get(..h)?, y);
    }
    Some(())
}

/// One step of the units from the gate pre-activations `[i, f, g, o]`
/// (each `h` long): `c = f c + i g`, `h = o tanh(c)`, in place.
#[inline]
fn cell(gates: &[f32], hs: &mut [f32], cs: &mut [f32]) {
    let n = hs.len();
    let (gi, rest) = gates.split_at(n.min(gates.len()));
    let (gf, rest) = rest.split_at(n.min(rest.len()));
    let (gg, go) = rest.split_at(n.min(rest.len()));
    let units = hs
        .iter_mut()
        .zip(cs.iter_mut())
        .zip(gi)
        .zip(gf)
        .zip(gg)
        .zip(go);
    for (((((h, c), &ai), &af), &ag), &ao) in units {
        let (i, f, g, o) = (sigmoid(ai), sigmoid(af), math::tanh(ag), sigmoid(ao));
        *c = f * *c + i * g;
        *h = o * math::tanh(*c);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ops::testutil::{assert_close, values};
    use std::vec;
    use std::vec::Vec;

    /// Layer-major f64 reference: each layer over the whole sequence.
    fn naive(p: &Lstm, x: &[f32], t: &[Vec<f32>]) -> Vec<f64> {
        let h = p.hidden;
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let mut input: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut in_size = p.input_size;
        for l in 0..p.layers {
            let (w_ih, w_hh, b_ih, b_hh) = (&t[4 * l], &t[4 * l + 1], &t[4 * l + 2], &t[4 * l + 3]);
            let (mut hs, mut cs) = (vec![0.0f64; h], vec![0.0f64; h]);
            let mut out = Vec::new();
            for s in 0..p.steps {
                let xs = &input[s * in_size..(s + 1) * in_size];
                let mut g = vec![0.0f64; 4 * h];
                for r in 0..4 * h {
                    let mut v = b_ih[r] as f64 + b_hh[r] as f64;
                    for k in 0..in_size {
                        v += xs[k] * w_ih[r * in_size + k] as f64;
                    }
                    for k in 0..h {
                        v += hs[k] * w_hh[r * h + k] as f64;
                    }
                    g[r] = v;
                }
                for j in 0..h {
                    let (i, f, gg, o) = (
                        sig(g[j]),
                        sig(g[h + j]),
                        g[2 * h + j].tanh(),
                        sig(g[3 * h + j]),
                    );
                    cs[j] = f * cs[j] + i * gg;
                    hs[j] = o * cs[j].tanh();
                }
                out.extend_from_slice(&hs);
            }
            input = out;
            in_size = h;
        }
        if p.return_sequences {
            input
        } else {
            input[(p.steps - 1) * h..].to_vec()
        }
    }

    #[test]
    fn matches_a_layer_major_reference_for_one_and_three_layers_both_outputs() {
        for &(steps, input_size, hidden, layers) in &[(1, 3, 2, 1), (5, 4, 3, 1), (6, 2, 4, 3)] {
            let mut tensors = Vec::new();
            for l in 0..layers {
                let i = if l == 0 { input_size } else { hidden };
                let s = 100 + 4 * l as u64;
                tensors.push(values(4 * hidden * i, s));
                tensors.push(values(4 * hidden * hidden, s + 1));
                tensors.push(values(4 * hidden, s + 2));
                tensors.push(values(4 * hidden, s + 3));
            }
            let w: Vec<Weights> = tensors.iter().map(|t| Weights::F32(t)).collect();
            let x: Vec<f32> = values(steps * input_size, 99)
                .iter()
                .map(|v| v * 2.0)
                .collect();
            for return_sequences in [false, true] {
                let p = Lstm {
                    steps,
                    input_size,
                    hidden,
                    layers,
                    return_sequences,
                };
                let mut scratch = vec![f32::NAN; scratch_len(hidden, layers).unwrap_or(0)];
                let n = if return_sequences {
                    steps * hidden
                } else {
                    hidden
                };
                let mut y = vec![0.0; n];
                assert_eq!(forward(&p, &x, &w, &mut scratch, &mut y), Some(()));
                let tol = if cfg!(feature = "fast-math") {
                    5e-3
                } else {
                    1e-5
                };
                assert_close(&y, &naive(&p, &x, &tensors), tol);
            }
        }
    }

    #[test]
    fn short_scratch_or_tensors_is_refused_not_a_panic() {
        let p = Lstm {
            steps: 2,
            input_size: 1,
            hidden: 2,
            layers: 1,
            return_sequences: false,
        };
        let t = [0.0f32; 8];
        let w = [Weights::F32(&t); 4];
        let mut y = [0.0; 2];
        assert_eq!(forward(&p, &[1.0, 2.0], &w, &mut [0.0; 11], &mut y), None);
        assert_eq!(
            forward(&p, &[1.0, 2.0], &w[..3], &mut [0.0; 12], &mut y),
            None
        );
        assert_eq!(
            forward(&p, &[1.0, 2.0], &w, &mut [0.0; 12], &mut y),
            Some(())
        );
    }
}
