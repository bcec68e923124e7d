//! Nodes that change only how the activation is indexed: Flatten, Reshape,
//! Squeeze, Unsqueeze and Transpose. The engine keeps one contiguous
//! per-sample buffer, so these are free when they keep the order of the
//! sample's elements, and refused when they would reorder them.

use crate::error::{ErrorKind, OnnxError, Result};
use crate::proto::NodeProto;
use crate::walk::{node_label, Act, Walk};
use lasagna_format::Op;

impl Walk<'_> {
    pub(crate) fn view(&mut self, node: &NodeProto, ty: &str, act: &Act, out: &str) -> Result<()> {
        let label = || node_label(node);
        let numel: usize = act.dims.iter().product();
        match ty {
            "Flatten" => {
                let axis = self.attrs(node).int("axis", 1)?;
                if act.batch != 0 || axis != 1 {
                    return Err(OnnxError::new(
                        ErrorKind::Unsupported,
                        format!("Flatten at axis {axis} of a batch at axis {}", act.batch),
                    )
                    .at(label())
                    .hint("flatten every axis after the batch: nn.Flatten() or x.flatten(1)"));
                }
                self.flatten(node, numel, out)
            }
            "Reshape" => {
                if self.attrs(node).int("allowzero", 0)? != 0 {
                    return Err(
                        OnnxError::new(ErrorKind::Unsupported, "Reshape with allowzero=1")
                            .at(label()),
                    );
                }
                let shape = match self.opt_konst(node, 1, "shape") {
                    Ok(Some(c)) => c.ints().map(<[i64]>::to_vec),
                    _ => None,
                };
                let Some(shape) = shape else {
                    return Err(OnnxError::new(ErrorKind::Unsupported, "Reshape to a shape computed from the input (as x.view(x.size(0), -1) exports)")
                        .at(label())
                        .hint("use nn.Flatten() or x.flatten(1), which export as Flatten"));
                };
                // [N, features]: the batch first, then everything else.
                let flat = act.batch == 0
                    && shape.len() == 2
                    && (-1..=1).contains(&shape[0])
                    && (shape[1] == -1 || shape[1] == numel as i64)
                    && !(shape[0] == -1 && shape[1] == -1);
                if !flat {
                    return Err(OnnxError::new(
                        ErrorKind::Unsupported,
                        format!("Reshape to {shape:?}; the engine reshapes only to [N, features]"),
                    )
                    .at(label())
                    .hint("flatten with nn.Flatten() before the classifier"));
                }
                self.flatten(node, numel, out)
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = match self.opt_konst(node, 1, "axes")? {
                    Some(c) => c.ints().map(<[i64]>::to_vec),
                    None => self.attrs(node).ints("axes")?,
                };
                let mut full: Vec<Option<usize>> = act.dims.iter().map(|&d| Some(d)).collect();
                full.insert(act.batch, None);
                if ty == "Squeeze" {
                    let r = full.len() as i64;
                    let mut drop: Vec<usize> = match axes {
                        Some(ax) => ax
                            .iter()
                            .map(|&a| if a < 0 { a + r } else { a })
                            .map(|a| a as usize)
                            .collect(),
                        None => (0..full.len()).filter(|&k| full[k] == Some(1)).collect(),
                    };
                    drop.sort_unstable();
                    drop.dedup();
                    for &k in drop.iter().rev() {
                        if full.get(k).copied().flatten() != Some(1) {
                            return Err(OnnxError::new(
                                ErrorKind::Unsupported,
                                format!(
                                    "Squeeze of axis {k}, which is not a unit axis of the sample"
                                ),
                            )
                            .at(label()));
                        }
                        full.remove(k);
                    }
                } else {
                    let Some(mut ax) = axes else {
                        return Err(
                            OnnxError::new(ErrorKind::Graph, "Unsqueeze without axes").at(label())
                        );
                    };
                    let r = (full.len() + ax.len()) as i64;
                    for a in &mut ax {
                        if *a < 0 {
                            *a += r;
                        }
                    }
                    ax.sort_unstable();
                    for &a in &ax {
                        if a < 0 || a as usize > full.len() {
                            return Err(OnnxError::new(
                                ErrorKind::Graph,
                                format!("Unsqueeze axis {a} out of range"),
                            )
                            .at(label()));
                        }
                        full.insert(a as usize, Some(1));
                    }
                }
                self.set_act(node, out, from_full(&full))
            }
            _ => {
                let mut full: Vec<Option<usize>> = act.dims.iter().map(|&d| Some(d)).collect();
                full.insert(act.batch, None);
                let perm = self
                    .attrs(node)
                    .ints("perm")?
                    .unwrap_or_else(|| (0..full.len() as i64).rev().collect());
                let mut seen = vec![false; full.len()];
                let mut moved = Vec::with_capacity(full.len());
                for &p in &perm {
                    match usize::try_from(p)
                        .ok()
                        .filter(|&p| p < full.len() && !seen[p])
                    {
                        Some(p) => {
                            seen[p] = true;
                            moved.push((p, full[p]));
                        }
                        None => {
                            return Err(OnnxError::new(
                                ErrorKind::Graph,
                                format!("Transpose perm {perm:?} is not a permutation"),
                            )
                            .at(label()))
                        }
                    }
                }
                if moved.len() != full.len() {
                    return Err(OnnxError::new(
                        ErrorKind::Graph,
                        format!("Transpose perm {perm:?} is not a permutation"),
                    )
                    .at(label()));
                }
                // The sample's non-unit axes must keep their order.
                let order: Vec<usize> = moved
                    .iter()
                    .filter(|(_, d)| d.is_some_and(|d| d != 1))
                    .map(|(p, _)| *p)
                    .collect();
                if order.windows(2).any(|w| w[0] > w[1]) {
                    return Err(OnnxError::new(ErrorKind::Unsupported, format!("Transpose {perm:?} reorders the elements of a sample"))
                        .at(label())
                        .hint("the engine keeps each sample's layout; only the batch axis may move (as batch_first does)"));
                }
                let full: Vec<Option<usize>> = moved.into_iter().map(|(_, d)| d).collect();
                self.set_act(node, out, from_full(&full))
            }
        }
    }

    /// `[N, features]`: a Flatten op when the engine's shape has rank > 1.
    fn flatten(&mut self, node: &NodeProto, numel: usize, out: &str) -> Result<()> {
        let act = Act {
            dims: vec![numel],
            batch: 0,
        };
        if self.shape.rank() > 1 {
            self.emit(node, Op::Flatten, vec![], out, act)
        } else {
            self.set_act(node, out, act)
        }
    }
}

/// An activation from its full shape, `None` marking the batch axis.
fn from_full(full: &[Option<usize>]) -> Act {
    Act {
        dims: full.iter().filter_map(|d| *d).collect(),
        batch: full.iter().position(Option::is_none).unwrap_or(0),
    }
}
