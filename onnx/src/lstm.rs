//! ONNX's LSTM node as the format's one-layer LSTM.
//!
//! ONNX orders the four gates i, o, f, c; PyTorch (and the format) i, f, g, o
//! with g the cell candidate. The bias `B` is `[Wb, Rb]`, as PyTorch's
//! `bias_ih` and `bias_hh`.

use crate::error::{ErrorKind, OnnxError, Result};
use crate::proto::NodeProto;
use crate::walk::{node_label, Act, Val, Walk};
use lasagna_format::Op;

/// Format gate `g` (i, f, g, o) is ONNX gate `ONNX_OF[g]` (i, o, f, c).
pub const ONNX_OF: [usize; 4] = [0, 2, 3, 1];

/// Reorders the four `[h, cols]` gate blocks of `v` from ONNX's order to
/// PyTorch's.
pub fn onnx_to_torch(v: &[f32], h: usize, cols: usize) -> Vec<f32> {
    let block = h * cols;
    ONNX_OF
        .iter()
        .flat_map(|&g| v[g * block..(g + 1) * block].iter().copied())
        .collect()
}

/// The inverse of [`onnx_to_torch`].
pub fn torch_to_onnx(v: &[f32], h: usize, cols: usize) -> Vec<f32> {
    let block = h * cols;
    let mut out = vec![0.0; v.len()];
    for (g, &o) in ONNX_OF.iter().enumerate() {
        out[o * block..(o + 1) * block].copy_from_slice(&v[g * block..(g + 1) * block]);
    }
    out
}

fn err(node: &NodeProto, kind: ErrorKind, msg: impl Into<String>) -> OnnxError {
    OnnxError::new(kind, msg).at(node_label(node))
}

impl Walk<'_> {
    pub(crate) fn lstm(&mut self, node: &NodeProto, act: &Act) -> Result<()> {
        let a = self.attrs(node);
        let layout = a.int("layout", 0)?;
        let want_batch = if layout == 0 { 1 } else { 0 };
        let [t, i] = act.dims[..] else {
            return Err(err(
                node,
                ErrorKind::Shape,
                format!(
                    "LSTM takes [T, N, I]; the activation is {:?} per sample",
                    act.dims
                ),
            ));
        };
        if act.batch != want_batch {
            return Err(err(
                node,
                ErrorKind::Shape,
                format!(
                    "LSTM (layout {layout}) wants the batch at axis {want_batch}, it is at {}",
                    act.batch
                ),
            ));
        }
        if a.string("direction", "forward")? != "forward" {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                "a bidirectional or reverse LSTM",
            )
            .hint("the engine runs one forward direction"));
        }
        if let Some(acts) = a.strings("activations")? {
            if acts
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect::<Vec<_>>()
                != ["sigmoid", "tanh", "tanh"]
            {
                return Err(err(
                    node,
                    ErrorKind::Unsupported,
                    format!("LSTM activations {acts:?}"),
                ));
            }
        }
        if a.has("clip") || a.int("input_forget", 0)? != 0 {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                "LSTM with clip or input_forget",
            ));
        }
        let w = self.konst(node, 1, "W")?;
        let r = self.konst(node, 2, "R")?;
        let h = a.int("hidden_size", 0)?;
        let h = usize::try_from(h).ok().filter(|&h| h > 0).ok_or_else(|| {
            err(
                node,
                ErrorKind::Graph,
                "LSTM hidden_size missing or not positive",
            )
        })?;
        // Checked: `hidden_size` is the file's word until W's data backs it.
        let h4 = h.checked_mul(4).ok_or_else(|| {
            err(
                node,
                ErrorKind::Shape,
                format!("LSTM hidden_size {h} is absurd"),
            )
        })?;
        if w.dims != [1, h4, i] || r.dims != [1, h4, h] {
            return Err(err(
                node,
                ErrorKind::Shape,
                format!(
                    "LSTM W {:?} / R {:?} do not fit hidden {h} and input {i}",
                    w.dims, r.dims
                ),
            ));
        }
        let (w, r) = (w.floats(), r.floats());
        let (bi, bh) = match self.opt_konst(node, 3, "B")? {
            Some(b) if b.dims == [1, 8 * h] => {
                let b = b.floats();
                (b[..4 * h].to_vec(), b[4 * h..].to_vec())
            }
            Some(b) => {
                return Err(err(
                    node,
                    ErrorKind::Shape,
                    format!("LSTM B {:?} is not [1, {}]", b.dims, 8 * h),
                ))
            }
            None => (vec![0.0; 4 * h], vec![0.0; 4 * h]),
        };
        if node.input.get(4).is_some_and(|s| !s.is_empty()) {
            return Err(err(node, ErrorKind::Unsupported, "LSTM with sequence_lens")
                .hint("every sequence has the model's fixed length"));
        }
        for (k, what) in [(5, "initial_h"), (6, "initial_c")] {
            let zero = match node.input.get(k).map(String::as_str) {
                None | Some("") => true,
                Some(name) => match self.value(name, node)? {
                    Val::Const(c) => c.floats().iter().all(|&x| x == 0.0),
                    Val::Derived { zero } => *zero,
                    _ => false,
                },
            };
            if !zero {
                return Err(err(
                    node,
                    ErrorKind::Unsupported,
                    format!("LSTM with a non-zero {what}"),
                )
                .hint("the engine starts every sequence from zero state"));
            }
        }
        if node.input.get(7).is_some_and(|s| !s.is_empty()) {
            return Err(err(node, ErrorKind::Unsupported, "LSTM with peepholes (P)"));
        }
        let out = |k: usize| node.output.get(k).cloned().unwrap_or_default();
        let (y, yh, yc) = (out(0), out(1), out(2));
        if self.is_read(&yc) {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                "reads the LSTM's cell state Y_c",
            )
            .hint("use the output or h_n"));
        }
        let (seq, name) = match (self.is_read(&y), self.is_read(&yh)) {
            (true, false) => (true, y),
            (false, true) => (false, yh),
            (true, true) => {
                return Err(err(
                    node,
                    ErrorKind::Unsupported,
                    "reads both the LSTM's Y and Y_h",
                ))
            }
            (false, false) => {
                return Err(err(
                    node,
                    ErrorKind::Graph,
                    "nothing reads the LSTM's outputs",
                ))
            }
        };
        for o in [out(0), out(1), out(2)] {
            if !o.is_empty() && o != name {
                self.values
                    .insert(o, Val::Unused("an LSTM output the model does not use"));
            }
        }
        let tensors = vec![
            onnx_to_torch(&w, h, i),
            onnx_to_torch(&r, h, h),
            onnx_to_torch(&bi, h, 1),
            onnx_to_torch(&bh, h, 1),
        ];
        let u = |v: usize| {
            u32::try_from(v)
                .map_err(|_| err(node, ErrorKind::Shape, format!("size {v} exceeds u32")))
        };
        let op = Op::Lstm {
            input_size: u(i)?,
            hidden_size: u(h)?,
            layers: 1,
            return_sequences: seq,
            cell_shift: 0,
        };
        // Y is [T, 1, N, H] (layout 0) or [N, T, 1, H]; Y_h [1, N, H] or [N, 1, H].
        let act = match (seq, layout) {
            (true, 0) => Act {
                dims: vec![t, 1, h],
                batch: 2,
            },
            (true, _) => Act {
                dims: vec![t, 1, h],
                batch: 0,
            },
            (false, 0) => Act {
                dims: vec![1, h],
                batch: 1,
            },
            (false, _) => Act {
                dims: vec![1, h],
                batch: 0,
            },
        };
        self.emit(node, op, tensors, &name, act)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_reordering_round_trips_and_moves_whole_blocks() {
        // Blocks tagged by ONNX gate: i=0, o=1, f=2, c=3; two values each.
        let onnx = [0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        let torch = onnx_to_torch(&onnx, 2, 1);
        assert_eq!(torch, [0.0, 0.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0]);
        assert_eq!(torch_to_onnx(&torch, 2, 1), onnx);
    }
}
