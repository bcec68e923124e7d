//! Gather: of a constant table by the input's ids, the Embedding layer;
//! of the activation at index 0 or -1 of a unit axis, a squeeze (how
//! `h_n[-1]` of a one-layer LSTM exports).

use crate::error::{ErrorKind, Result};
use crate::layers::{err, u32c};
use crate::proto::NodeProto;
use crate::walk::{Act, Walk};
use lasagna_format::Op;

impl Walk<'_> {
    pub(crate) fn gather(&mut self, node: &NodeProto, act: &Act, out: &str) -> Result<()> {
        let axis = self.attrs(node).int("axis", 0)?;
        if node.input.first() == Some(&self.current) {
            // Gather on the activation: index 0 or -1 of a unit axis is a
            // squeeze (h_n[-1] of a one-layer LSTM).
            let idx = self.konst(node, 1, "indices")?;
            let k = act.sample_axis(axis)?;
            let ok = idx.dims.is_empty()
                && matches!(idx.ints(), Some([0]) | Some([-1]))
                && k.is_some_and(|k| act.dims[k] == 1);
            let Some(k) = k.filter(|_| ok) else {
                return Err(err(
                    node,
                    ErrorKind::Unsupported,
                    format!("Gather along axis {axis} of the activation"),
                )
                .hint("the engine takes no slices; for an LSTM use h_n[-1] (one layer)"));
            };
            let mut a = act.clone();
            a.dims.remove(k);
            if k < a.batch {
                a.batch -= 1;
            }
            return self.set_act(node, out, a);
        }
        // Gather of a constant table by the activation: Embedding.
        let table = self.konst(node, 0, "table")?;
        let [num, dim] = table.dims[..] else {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                format!(
                    "Gather of a table with dims {:?}; Embedding tables are 2-D",
                    table.dims
                ),
            ));
        };
        if axis != 0 || !self.ops.is_empty() {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                "Gather other than an Embedding of the model's input".into(),
            ));
        }
        let w = table.floats();
        let op = Op::Embedding {
            num: u32c(node, num)?,
            dim: u32c(node, dim)?,
        };
        let mut dims = act.dims.clone();
        dims.push(dim);
        self.emit(
            node,
            op,
            vec![w],
            out,
            Act {
                dims,
                batch: act.batch,
            },
        )
    }
}
