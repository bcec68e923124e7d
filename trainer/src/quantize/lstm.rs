//! The int8 LSTM and Embedding of the exporter (FORMAT.md section 6.3).
//!
//! An LSTM's output value holds only its last layer's hidden state (and
//! only the last step's without `return_sequences`), but every layer's `h`
//! at every step is stored in the output's quantization, and the cell
//! state needs a range of its own. So calibration runs each LSTM again on
//! the input the engine observed, in a plain `f32` loop that records the
//! union of all hidden states and the largest `|c|`.

use super::scheme::Range;
use super::weights::{quantize_bias, quantize_per_channel};
use crate::error::{Error, Result};
use crate::export::tensor_dims;
use crate::layers::ExportOp;
use lasagna_format::{AlignedModel, Op, TensorData};
use rayon::prelude::*;

/// What calibration saw inside one LSTM op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LstmRange {
    /// Every hidden state of every layer at every step.
    pub hidden: Range,
    /// The largest `|c|` of any layer at any step.
    pub cell_max: f32,
}

impl LstmRange {
    const EMPTY: LstmRange = LstmRange {
        hidden: Range::EMPTY,
        cell_max: 0.0,
    };

    fn union(self, o: LstmRange) -> LstmRange {
        LstmRange {
            hidden: self.hidden.union(o.hidden),
            cell_max: self.cell_max.max(o.cell_max),
        }
    }
}

/// The cell state's `cell_shift` for a largest `|c|` of `cell_max`: the
/// most fraction bits (scale `2^-cell_shift`) whose `i16` range,
/// `2^(15 − cell_shift)`, still holds `cell_max` (TFLite's power-of-two
/// cell scale); 15 for `|c| < 1`, 0 past 32768.
pub fn cell_shift(cell_max: f32) -> u8 {
    let mut integer_bits = 0u8;
    while integer_bits < 15 && f64::from(cell_max) > f64::from(1u32 << integer_bits) {
        integer_bits += 1;
    }
    15 - integer_bits
}

/// Runs every LSTM of the folded f32 model `file` (whose ops are `ops`)
/// over `samples` and returns, per op, what it saw inside (`None` for the
/// other ops). Empty work when the model has no LSTM.
pub fn calibrate_lstms(
    file: &[u8],
    ops: &[ExportOp],
    samples: &[f32],
) -> Result<Vec<Option<LstmRange>>> {
    let lstm = |op: &Op| matches!(op, Op::Lstm { .. });
    if !ops.iter().any(|(op, _)| lstm(op)) {
        return Ok(vec![None; ops.len()]);
    }
    let model = AlignedModel::new(file);
    let engine_err = |e: lasagna_infer::Error| {
        Error::config(
            "int8 calibration",
            format!("the no_std engine cannot run the folded f32 model: {e}"),
        )
    };
    let engine = lasagna_infer::Engine::new(&model).map_err(engine_err)?;
    let per = engine.input_len().max(1);
    let tokens = engine.input_dtype() == lasagna_format::DType::I32;
    let n = samples.len() / per;
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let parts = samples
        .par_chunks(chunk * per)
        .map(|part| {
            let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
            let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
            let mut seen = vec![LstmRange::EMPTY; ops.len()];
            for x in part.chunks(per) {
                let mut observe = |v: usize, data: &[f32]| {
                    // Value v is op v's input.
                    if let (Some((op, t)), Some(s)) = (ops.get(v), seen.get_mut(v)) {
                        if lstm(op) {
                            *s = s.union(run_f32(op, t, data));
                        }
                    }
                };
                let run = if tokens {
                    let ids: Vec<i32> = x.iter().map(|&v| v as i32).collect();
                    engine.run_tokens_observed(arena, &ids, &mut observe)
                } else {
                    engine.run_observed(arena, x, &mut observe)
                };
                run.map_err(engine_err)?;
            }
            Ok(seen)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut seen = vec![LstmRange::EMPTY; ops.len()];
    for part in parts {
        for (s, p) in seen.iter_mut().zip(part) {
            *s = s.union(p);
        }
    }
    Ok(ops
        .iter()
        .zip(seen)
        .map(|((op, _), s)| lstm(op).then_some(s))
        .collect())
}

/// One LSTM over one input sequence `x` (`[T, input_size]`), in `f32`,
/// gates `((x W_ih^T + b_ih) + b_hh) + h W_hh^T` as the engine orders them:
/// the range of every `h` and the largest `|c|`.
fn run_f32(op: &Op, t: &[Vec<f32>], x: &[f32]) -> LstmRange {
    let Op::Lstm {
        input_size,
        hidden_size,
        layers,
        ..
    } = *op
    else {
        return LstmRange::EMPTY;
    };
    let (h, n_in) = (hidden_size as usize, input_size as usize);
    let steps = x.len() / n_in.max(1);
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    let mut seen = LstmRange::EMPTY;
    let mut input: Vec<f32> = x.to_vec();
    let mut width = n_in;
    for w in t.chunks(4).take(layers as usize) {
        let [w_ih, w_hh, b_ih, b_hh] = w else {
            return seen;
        };
        let (mut hs, mut cs) = (vec![0.0f32; h], vec![0.0f32; h]);
        let mut out = Vec::with_capacity(steps * h);
        let mut g = vec![0.0f32; 4 * h];
        for xs in input.chunks_exact(width.max(1)) {
            for (r, gr) in g.iter_mut().enumerate() {
                let dx: f32 = xs.iter().zip(&w_ih[r * width..]).map(|(a, b)| a * b).sum();
                let dh: f32 = hs.iter().zip(&w_hh[r * h..]).map(|(a, b)| a * b).sum();
                *gr = dx + b_ih[r] + b_hh[r] + dh;
            }
            for j in 0..h {
                let (i, f) = (sig(g[j]), sig(g[h + j]));
                let (gg, o) = (g[2 * h + j].tanh(), sig(g[3 * h + j]));
                cs[j] = f * cs[j] + i * gg;
                hs[j] = o * cs[j].tanh();
                seen.cell_max = seen.cell_max.max(cs[j].abs());
            }
            seen.hidden.observe(&hs);
            out.extend_from_slice(&hs);
        }
        input = out;
        width = h;
    }
    seen
}

/// The int8 tensors of an LSTM: per layer `weight_ih` and `weight_hh` `i8`
/// with one scale per gate row, `bias_ih` `i32` in units of
/// `s_in · s_wi[r]` (`s_in`: the op's input scale for layer 0, else `s_h`)
/// and `bias_hh` `i32` in units of `s_h · s_wh[r]`.
pub fn lstm_tensors(
    i: usize,
    op: &Op,
    tensors: &[Vec<f32>],
    s_x: f32,
    s_h: f32,
) -> Result<Vec<TensorData>> {
    let mut out = Vec::with_capacity(tensors.len());
    let mut scales: Vec<f32> = Vec::new();
    for (j, t) in tensors.iter().enumerate() {
        let dims = tensor_dims(op, j)?;
        let name = format!("op {i} (LSTM) tensor {j}");
        let s_in = if j < 4 { s_x } else { s_h };
        out.push(match j % 4 {
            0 | 1 => {
                let rows = dims.first().copied().unwrap_or(0) as usize;
                let (q, s) = quantize_per_channel(t, rows, &name)?;
                scales.extend_from_slice(&s);
                TensorData::i8_per_channel(&dims, &q, s)
            }
            // The layer's scales so far: weight_ih's rows, then weight_hh's.
            k => {
                let rows = t.len();
                let from = scales.len().saturating_sub(2 * rows);
                let s_w = scales.get(from + (k - 2) * rows..from + (k - 1) * rows);
                let s_w = s_w.ok_or_else(|| {
                    Error::config("int8 export", format!("{name}: weights missing"))
                })?;
                let unit = if k == 2 { s_in } else { s_h };
                TensorData::i32(&dims, &quantize_bias(t, unit, s_w, &name)?)
            }
        });
    }
    Ok(out)
}

/// The int8 table of an Embedding: `i8`, one symmetric scale per row.
pub fn embedding_table(i: usize, op: &Op, tensors: &[Vec<f32>]) -> Result<Vec<TensorData>> {
    let dims = tensor_dims(op, 0)?;
    let name = format!("op {i} (Embedding) weight");
    let t = tensors
        .first()
        .ok_or_else(|| Error::config("int8 export", format!("{name} is missing")))?;
    let rows = dims.first().copied().unwrap_or(0) as usize;
    let (q, s) = quantize_per_channel(t, rows, &name)?;
    Ok(vec![TensorData::i8_per_channel(&dims, &q, s)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn cell_shift_is_the_finest_power_of_two_that_holds_the_range() {
        assert_eq!(cell_shift(0.0), 15);
        assert_eq!(cell_shift(1.0), 15);
        assert_eq!(cell_shift(1.01), 14);
        assert_eq!(cell_shift(5.3), 12);
        assert_eq!(cell_shift(8.0), 12);
        assert_eq!(cell_shift(1.0e9), 0);
    }

    #[test]
    fn lstm_biases_are_in_the_units_of_their_own_product() {
        let op = Op::Lstm {
            input_size: 1,
            hidden_size: 1,
            layers: 1,
            return_sequences: false,
            cell_shift: 12,
        };
        let t = vec![
            vec![0.5, -1.0, 0.25, 1.0],
            vec![2.0, 1.0, -2.0, 0.5],
            vec![0.1; 4],
            vec![0.2; 4],
        ];
        let out = lstm_tensors(0, &op, &t, 0.01, 0.5).unwrap();
        assert_eq!(out.len(), 4);
        // bias_ih = 0.1 / (0.01 · |w_ih[r]| / 127), bias_hh = 0.2 / (0.5 · |w_hh[r]| / 127).
        let want_ih: Vec<i32> = [0.5f64, 1.0, 0.25, 1.0]
            .iter()
            .map(|w| (0.1f64 / (0.01 * f64::from((*w as f32) / 127.0))).round() as i32)
            .collect();
        let want_hh: Vec<i32> = [2.0f64, 1.0, 2.0, 0.5]
            .iter()
            .map(|w| (0.2f64 / (0.5 * f64::from((*w as f32) / 127.0))).round() as i32)
            .collect();
        let words = |d: &TensorData| -> Vec<i32> {
            d.bytes
                .chunks(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        assert_eq!(words(&out[2]), want_ih);
        assert_eq!(words(&out[3]), want_hh);
    }
}
