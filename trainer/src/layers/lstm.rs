//! `LSTM`: PyTorch's `nn.LSTM(batch_first=True)` without dropout or
//! bidirectionality. A per-sample input `[T, I]` becomes `[T, H]` (every step
//! of the last layer) or `[H]` (its last step, `h_n[-1]`).
//!
//! Each layer runs as: one GEMM for the input projection of the whole batch
//! and sequence (`[N*T, I] x [I, 4H]`) plus both biases (summed first, one
//! pass), a gather of `W_hh^T`, then per step one GEMM for `h_{t-1} W_hh^T`
//! and one fused cell op. Backward mirrors it: per
//! step the cell's backward and two GEMMs (`W_hh`'s gradient and the gradient
//! flowing to `h_{t-1}`), then one GEMM each for `W_ih`'s gradient and the
//! input gradient over the whole sequence. Nothing is allocated after `setup`.

use crate::alloc::Footprint;
use crate::backend::{Backend, Gemm, LstmStep};
use crate::error::{Error, Result};
use crate::init::Dist;
use crate::layers::linear::{export_dim, not_set_up};
use crate::layers::{gemm_amp, Ctx, ExportOp, Layer, Param};
use crate::philox::Stream;
use lasagna_format::Op;

/// The most stacked layers: the format holds at most 255 tensors per op, 4 per layer.
pub const MAX_LAYERS: usize = 63;

/// What forward saves for backpropagation through time, per layer.
struct Saved<B: Backend> {
    /// `[N, T, 4H]`: the gate activations `i, f, g, o` of every step.
    gates: B::Buf,
    /// `[N, T, H]`: the cell state of every step.
    c: B::Buf,
    /// `T` buffers of `[N, H]`: `h_t`, each a GEMM operand on its own.
    h: Vec<B::Buf>,
    /// `[N, T, H]`: the output sequence, the next layer's input (`None` for
    /// the last layer, whose output is the layer's `y`).
    out: Option<B::Buf>,
}

/// Scratch shared by all layers.
struct Scratch<B: Backend> {
    /// `[N, 4H]`: `h_{t-1} W_hh^T`.
    rec: B::Buf,
    /// `[H, 4H]`: the current layer's `W_hh^T`, gathered once per forward.
    /// The per-step GEMM then reads its B operand row-major: with `W_hh`
    /// itself (`trans_b`) the CPU's `gemm` crate repacked all of it at every
    /// step, 23% of that GEMM's instructions.
    w_hh_t: B::Buf,
    /// `[4H * H]`: `w_hh_t[j * 4H + r] = W_hh[r * H + j]`, as `gather_rows`
    /// indices of one-element rows.
    w_hh_t_idx: B::Idx,
    /// `[4H]`: `b_ih + b_hh` in forward, their shared gradient in backward.
    bias: B::Buf,
    /// `[N, T, 4H]`: gradient of the gate pre-activations.
    dgates: B::Buf,
    /// `[N, 4H]`: the same for one step.
    dgates_step: B::Buf,
    /// `[N, H]`: gradient reaching `h_t` from step `t + 1`.
    dh: B::Buf,
    /// `[N, H]`: gradient reaching `c_t` from step `t + 1`.
    dc: B::Buf,
    /// `[N, T, H]`: gradient of a lower layer's output sequence (empty for one layer).
    dseq: B::Buf,
}

/// A stack of LSTM layers.
pub struct Lstm<B: Backend> {
    input_size: usize,
    hidden_size: usize,
    num_layers: usize,
    return_sequences: bool,
    steps: usize,
    /// Per layer `weight_ih [4H, I_l]`, `weight_hh [4H, H]`, `bias_ih [4H]`,
    /// `bias_hh [4H]` (PyTorch's and the format's order); empty before `setup`.
    params: Vec<Param<B>>,
    saved: Vec<Saved<B>>,
    scratch: Option<Scratch<B>>,
    /// fp16 GEMM inputs (AMP); the cell math stays f32.
    amp: bool,
}

impl<B: Backend> Lstm<B> {
    /// `num_layers` stacked layers mapping `input_size` features per step to
    /// `hidden_size`; `return_sequences` outputs every step, else the last.
    pub fn new(
        input_size: usize,
        hidden_size: usize,
        num_layers: usize,
        return_sequences: bool,
    ) -> Result<Self> {
        if input_size == 0 || hidden_size == 0 {
            return Err(Error::config(
                "LSTM",
                format!(
                    "input_size ({input_size}) and hidden_size ({hidden_size}) must be positive"
                ),
            ));
        }
        if !(1..=MAX_LAYERS).contains(&num_layers) {
            return Err(Error::config(
                "LSTM",
                format!("num_layers = {num_layers}; the format allows 1 to {MAX_LAYERS}"),
            ));
        }
        Ok(Lstm {
            input_size,
            hidden_size,
            num_layers,
            return_sequences,
            steps: 0,
            params: Vec::new(),
            saved: Vec::new(),
            scratch: None,
            amp: false,
        })
    }

    fn layer_input(&self, l: usize) -> usize {
        if l == 0 {
            self.input_size
        } else {
            self.hidden_size
        }
    }
}

/// `C = op(A) op(B) + beta C`, with the shape spelled out at each call site.
fn gemm(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool, beta: f32) -> Gemm {
    Gemm {
        m,
        n,
        k,
        trans_a,
        trans_b,
        alpha: 1.0,
        beta,
    }
}

impl<B: Backend> Layer<B> for Lstm<B> {
    fn kind(&self) -> &'static str {
        "LSTM"
    }

    fn describe(&self) -> String {
        let layers = if self.num_layers == 1 {
            "layer"
        } else {
            "layers"
        };
        let out = if self.return_sequences {
            "all steps"
        } else {
            "last step"
        };
        format!(
            "LSTM({} -> {}, {} {layers}, {out})",
            self.input_size, self.hidden_size, self.num_layers
        )
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        match *input {
            [t, i] if i == self.input_size && t > 0 => Ok(if self.return_sequences {
                vec![t, self.hidden_size]
            } else {
                vec![self.hidden_size]
            }),
            [0, _] => Err("a sequence needs at least one step".into()),
            _ => Err(format!(
                "expected [steps, {}] (a sequence of input_size features), got {input:?}",
                self.input_size
            )),
        }
    }

    fn footprint(&self, input: &[usize], max_batch: usize) -> Option<Footprint> {
        let t = *input.first()? as u64;
        let (h, n) = (self.hidden_size as u64, max_batch as u64);
        let h4 = h.checked_mul(4)?;
        let mut sizes = Vec::new();
        let nh = n.checked_mul(h)?;
        let nth = nh.checked_mul(t)?;
        let nt4h = nth.checked_mul(4)?;
        let mut state = 0u64;
        for l in 0..self.num_layers {
            let i = self.layer_input(l) as u64;
            sizes.extend([h4.checked_mul(i)?, h4.checked_mul(h)?, h4, h4]);
            // Saved per layer, as `setup` allocates: gates, c, h per step, and
            // the output sequence of every layer but the last.
            let out = if l + 1 == self.num_layers { 0 } else { nth };
            state = [nt4h, nth, nth, out]
                .iter()
                .try_fold(state, |a, &v| a.checked_add(v))?;
        }
        // Scratch: rec, w_hh_t and its indices (u32, as wide as f32), bias,
        // dgates, dgates_step, dh, dc, dseq.
        let dseq = if self.num_layers > 1 { nth } else { 0 };
        let n4h = nh.checked_mul(4)?;
        let w_hh = h4.checked_mul(h)?;
        state = [n4h, w_hh, w_hh, h4, nt4h, n4h, nh, nh, dseq]
            .iter()
            .try_fold(state, |a, &v| a.checked_add(v))?;
        Footprint::new(&sizes, state)
    }

    fn setup(&mut self, b: &B, input: &[usize], max_batch: usize, rng: &mut Stream) -> Result<()> {
        self.output_shape(input)
            .map_err(|r| Error::config(self.describe(), r))?;
        let (t, h, n) = (input[0], self.hidden_size, max_batch);
        self.steps = t;
        // PyTorch draws every tensor from U(-1/sqrt(H), 1/sqrt(H)) in parameter order.
        let dist = Dist::Uniform(1.0 / (h as f32).sqrt());
        self.params.clear();
        self.saved.clear();
        for l in 0..self.num_layers {
            let i = self.layer_input(l);
            for (name, shape) in [
                ("weight_ih", vec![4 * h, i]),
                ("weight_hh", vec![4 * h, h]),
                ("bias_ih", vec![4 * h]),
                ("bias_hh", vec![4 * h]),
            ] {
                let values = dist.try_sample(shape.iter().product(), rng)?;
                self.params.push(Param::new(b, name, shape, &values)?);
            }
            let last = l + 1 == self.num_layers;
            self.saved.push(Saved {
                gates: b.zeros(n * t * 4 * h)?,
                c: b.zeros(n * t * h)?,
                h: (0..t).map(|_| b.zeros(n * h)).collect::<Result<_>>()?,
                out: if last {
                    None
                } else {
                    Some(b.zeros(n * t * h)?)
                },
            });
        }
        let dseq = if self.num_layers > 1 { n * t * h } else { 0 };
        let idx = (0..h)
            .flat_map(|j| (0..4 * h).map(move |r| r * h + j))
            .map(|i| u32::try_from(i).map_err(|_| Error::config("LSTM", "W_hh too large")))
            .collect::<Result<Vec<u32>>>()?;
        self.scratch = Some(Scratch {
            rec: b.zeros(n * 4 * h)?,
            w_hh_t: b.zeros(4 * h * h)?,
            w_hh_t_idx: b.upload_idx(&idx)?,
            bias: b.zeros(4 * h)?,
            dgates: b.zeros(n * t * 4 * h)?,
            dgates_step: b.zeros(n * 4 * h)?,
            dh: b.zeros(n * h)?,
            dc: b.zeros(n * h)?,
            dseq: b.zeros(dseq)?,
        });
        Ok(())
    }

    // Eval mode runs the same code: the saved state is the working state
    // (gates are activated in place, h_t feeds the next GEMM), so skipping it
    // would save no work.
    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let amp = self.amp;
        let (n, t, h) = (ctx.batch, self.steps, self.hidden_size);
        let layers = self.num_layers;
        let Some(scratch) = self.scratch.as_mut() else {
            return Err(not_set_up("LSTM"));
        };
        for l in 0..layers {
            let in_l = if l == 0 { self.input_size } else { h };
            let [w_ih, w_hh, b_ih, b_hh] = &self.params[4 * l..4 * l + 4] else {
                return Err(not_set_up("LSTM"));
            };
            let (below, here) = self.saved.split_at_mut(l);
            let st = &mut here[0];
            let input = match below.last() {
                Some(Saved { out: Some(out), .. }) => out,
                Some(_) => return Err(not_set_up("LSTM")),
                None => x,
            };
            // gates [N*T, 4H] = X [N*T, I_l] W_ih^T + (b_ih + b_hh).
            gemm_amp(
                b,
                amp,
                &gemm(n * t, 4 * h, in_l, false, true, 0.0),
                input,
                &w_ih.value,
                &mut st.gates,
            )?;
            b.copy(&b_ih.value, &mut scratch.bias, 4 * h)?;
            b.axpy(1.0, &b_hh.value, &mut scratch.bias, 4 * h)?;
            b.add_bias(&mut st.gates, &scratch.bias, n * t, 4 * h)?;
            // W_hh^T [H, 4H]: an exact permutation (one-element rows).
            b.gather_rows(
                &w_hh.value,
                &scratch.w_hh_t_idx,
                4 * h * h,
                1,
                &mut scratch.w_hh_t,
            )?;
            let last = l + 1 == layers;
            for step in 0..t {
                let (done, now) = st.h.split_at_mut(step);
                let rec = match done.last() {
                    Some(h_prev) => {
                        // rec [N, 4H] = h_{t-1} [N, H] W_hh^T [H, 4H].
                        gemm_amp(
                            b,
                            amp,
                            &gemm(n, 4 * h, h, false, false, 0.0),
                            h_prev,
                            &scratch.w_hh_t,
                            &mut scratch.rec,
                        )?;
                        Some(&scratch.rec)
                    }
                    None => None,
                };
                let h_seq = match (&mut st.out, last && self.return_sequences) {
                    (Some(out), _) => Some(out),
                    (None, true) => Some(&mut *y),
                    (None, false) => None,
                };
                let d = LstmStep {
                    n,
                    hidden: h,
                    steps: t,
                    t: step,
                };
                b.lstm_cell_forward(d, rec, &mut st.gates, &mut st.c, h_seq, &mut now[0])?;
            }
            if last && !self.return_sequences {
                let h_last = st.h.last().ok_or_else(|| not_set_up("LSTM"))?;
                b.copy(h_last, y, n * h)?;
            }
        }
        Ok(())
    }

    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        x: &B::Buf,
        _y: &B::Buf,
        dy: &B::Buf,
        mut dx: Option<&mut B::Buf>,
    ) -> Result<()> {
        let amp = self.amp;
        let (n, t, h) = (ctx.batch, self.steps, self.hidden_size);
        let layers = self.num_layers;
        let Some(sc) = self.scratch.as_mut() else {
            return Err(not_set_up("LSTM"));
        };
        for l in (0..layers).rev() {
            let in_l = if l == 0 { self.input_size } else { h };
            let top = l + 1 == layers;
            let [w_ih, w_hh, b_ih, b_hh] = &mut self.params[4 * l..4 * l + 4] else {
                return Err(not_set_up("LSTM"));
            };
            let st = &self.saved[l];
            b.fill(&mut sc.dc, 0.0, n * h)?;
            for step in (0..t).rev() {
                // The gradient reaching h_t from outside this layer's recurrence.
                let dh_seq = match (top, self.return_sequences) {
                    (true, true) => Some(dy),
                    (true, false) => None,
                    (false, _) => Some(&sc.dseq),
                };
                // ... and from step t + 1; the last step of `[H]` output gets dy.
                let dh = if step + 1 < t {
                    Some(&sc.dh)
                } else if top && !self.return_sequences {
                    Some(dy)
                } else {
                    None
                };
                let d = LstmStep {
                    n,
                    hidden: h,
                    steps: t,
                    t: step,
                };
                b.lstm_cell_backward(
                    d,
                    &st.gates,
                    &st.c,
                    dh_seq,
                    dh,
                    &mut sc.dc,
                    &mut sc.dgates,
                    &mut sc.dgates_step,
                )?;
                if step > 0 {
                    let h_prev = &st.h[step - 1];
                    // dW_hh [4H, H] += dgates_t^T [4H, N] h_{t-1} [N, H].
                    gemm_amp(
                        b,
                        amp,
                        &gemm(4 * h, h, n, true, false, 1.0),
                        &sc.dgates_step,
                        h_prev,
                        &mut w_hh.grad,
                    )?;
                    // dh_{t-1} [N, H] = dgates_t [N, 4H] W_hh [4H, H].
                    gemm_amp(
                        b,
                        amp,
                        &gemm(n, h, 4 * h, false, false, 0.0),
                        &sc.dgates_step,
                        &w_hh.value,
                        &mut sc.dh,
                    )?;
                }
            }
            let input = match l.checked_sub(1).map(|k| &self.saved[k].out) {
                Some(Some(out)) => out,
                Some(None) => return Err(not_set_up("LSTM")),
                None => x,
            };
            // dW_ih [4H, I_l] += dgates^T [4H, N*T] X [N*T, I_l].
            gemm_amp(
                b,
                amp,
                &gemm(4 * h, in_l, n * t, true, false, 1.0),
                &sc.dgates,
                input,
                &mut w_ih.grad,
            )?;
            // Both biases get the same gradient: one pass over dgates.
            b.sum_rows(&sc.dgates, n * t, 4 * h, &mut sc.bias, false)?;
            b.axpy(1.0, &sc.bias, &mut b_ih.grad, 4 * h)?;
            b.axpy(1.0, &sc.bias, &mut b_hh.grad, 4 * h)?;
            // dX [N*T, I_l] = dgates [N*T, 4H] W_ih [4H, I_l]: the layer below's
            // output gradient (dseq was fully read above), or the input gradient.
            let g = gemm(n * t, in_l, 4 * h, false, false, 0.0);
            if l > 0 {
                gemm_amp(b, amp, &g, &sc.dgates, &w_ih.value, &mut sc.dseq)?;
            } else if let Some(dx) = dx.as_deref_mut() {
                gemm_amp(b, amp, &g, &sc.dgates, &w_ih.value, dx)?;
            }
        }
        Ok(())
    }

    fn set_amp(&mut self, on: bool) {
        self.amp = on;
    }

    fn params(&self) -> &[Param<B>] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut self.params
    }

    fn export(&self, b: &B) -> Result<Vec<ExportOp>> {
        if self.params.is_empty() {
            return Err(not_set_up("LSTM"));
        }
        let op = Op::Lstm {
            input_size: export_dim(self.input_size, "input_size")?,
            hidden_size: export_dim(self.hidden_size, "hidden_size")?,
            layers: u8::try_from(self.num_layers)
                .map_err(|_| Error::config("export", "LSTM num_layers does not fit a u8"))?,
            return_sequences: self.return_sequences,
            cell_shift: 0,
        };
        let tensors = self
            .params
            .iter()
            .map(|p| b.to_vec(&p.value))
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![(op, tensors)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn new_rejects_empty_sizes_and_layer_counts_the_format_cannot_hold() {
        assert!(Lstm::<Cpu>::new(0, 4, 1, false).is_err());
        assert!(Lstm::<Cpu>::new(4, 0, 1, false).is_err());
        assert!(Lstm::<Cpu>::new(4, 4, 0, false).is_err());
        assert!(Lstm::<Cpu>::new(4, 4, 64, false).is_err());
        assert!(Lstm::<Cpu>::new(4, 4, 63, true).is_ok());
    }

    #[test]
    fn describe_names_sizes_layers_and_output() -> Result<()> {
        let one = Lstm::<Cpu>::new(28, 128, 1, false)?;
        assert_eq!(one.describe(), "LSTM(28 -> 128, 1 layer, last step)");
        let two = Lstm::<Cpu>::new(8, 16, 2, true)?;
        assert_eq!(two.describe(), "LSTM(8 -> 16, 2 layers, all steps)");
        assert_eq!(Layer::<Cpu>::kind(&two), "LSTM");
        Ok(())
    }

    #[test]
    fn export_matches_the_format_tensor_spec_and_init_is_bounded() -> Result<()> {
        let b = Cpu;
        let mut l = Lstm::<Cpu>::new(3, 4, 2, true)?;
        l.setup(&b, &[5, 3], 2, &mut Stream::new(7, 0))?;
        let ops = l.export(&b)?;
        let (op, tensors) = &ops[0];
        assert_eq!(tensors.len(), op.tensor_count());
        assert_eq!(tensors.len(), 8);
        for (j, (t, p)) in tensors.iter().zip(l.params()).enumerate() {
            let (name, _, shape) = op.tensor_spec(j).ok_or_else(|| not_set_up("tensor_spec"))?;
            assert_eq!(name, p.name, "tensor {j}");
            assert_eq!(t.len() as u64, shape.numel(), "{name} of layer {}", j / 4);
            assert_eq!(t, &p.value);
            // 1/sqrt(H) = 0.5.
            assert!(t.iter().all(|v| v.abs() <= 0.5), "{name}");
        }
        Ok(())
    }
}
