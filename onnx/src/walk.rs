//! The graph walk: every ONNX value is a constant, the activation (the one
//! value flowing down the chain, with its batch axis tracked), or a value
//! computed from the input's shape. Nodes are read in file order; each
//! activation node becomes zero or one `.lsn` op.

use crate::attr::Attrs;
use crate::error::{ErrorKind, OnnxError, Result};
use crate::proto::{GraphProto, NodeProto};
use crate::tensor::{decode, Const};
use lasagna_format::{Op, Shape};
use lasagna_trainer::layers::ExportOp;
use std::collections::HashMap;

/// What an ONNX value is to the importer.
#[derive(Clone, Debug)]
pub enum Val {
    /// A constant (initializer, `Constant` node, or folded from constants).
    Const(Const),
    /// The activation: per-sample dims in ONNX order, and where the batch
    /// axis sits in the full shape.
    Act(Act),
    /// Computed from the input's shape (`Shape`, `ConstantOfShape`, ...):
    /// its values depend on the batch size; `zero` when every element is 0.
    Derived { zero: bool },
    /// An output no node may read (a Dropout mask, pooling indices, ...).
    Unused(&'static str),
}

/// The activation's shape as ONNX sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Act {
    /// Per-sample dimensions (the full shape without the batch axis).
    pub dims: Vec<usize>,
    /// Position of the batch axis in the full shape.
    pub batch: usize,
}

impl Act {
    /// Rank of the full shape.
    pub fn full_rank(&self) -> usize {
        self.dims.len() + 1
    }

    /// Full-shape axis `a` (negative counts from the end) as a per-sample
    /// index, or `None` when it is the batch axis.
    pub fn sample_axis(&self, a: i64) -> Result<Option<usize>> {
        let r = self.full_rank() as i64;
        let a = if a < 0 { a + r } else { a };
        if !(0..r).contains(&a) {
            return Err(OnnxError::new(
                ErrorKind::Graph,
                format!("axis {a} is outside rank {r}"),
            ));
        }
        let a = a as usize;
        Ok(match a.cmp(&self.batch) {
            std::cmp::Ordering::Less => Some(a),
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Greater => Some(a - 1),
        })
    }

    fn squeezed(&self) -> Vec<usize> {
        self.dims.iter().copied().filter(|&d| d != 1).collect()
    }
}

/// The walk's state.
pub struct Walk<'g> {
    pub graph: &'g GraphProto,
    pub values: HashMap<String, Val>,
    /// Readers of each value, not counting `Shape` (which reads no data).
    pub readers: HashMap<String, Vec<usize>>,
    /// Nodes already consumed by a pattern (GELU's erf form, SiLU).
    pub done: Vec<bool>,
    /// The `.lsn` ops so far.
    pub ops: Vec<ExportOp>,
    /// The `.lsn` shape after the last op.
    pub shape: Shape,
    /// The name of the current activation.
    pub current: String,
    /// The output of a MatMul that a following Add may give its bias.
    pub open_matmul: Option<(String, usize)>,
}

/// `name (OpType)` of a node, for messages.
pub fn node_label(n: &NodeProto) -> String {
    let ty = n.op_type.as_deref().unwrap_or("?");
    match n.name.as_deref() {
        Some(name) if !name.is_empty() => format!("`{name}` ({ty})"),
        _ => format!(
            "#{} ({ty})",
            n.output.first().map(String::as_str).unwrap_or("?")
        ),
    }
}

impl<'g> Walk<'g> {
    /// Starts a walk with the constants and the one activation input.
    pub fn new(graph: &'g GraphProto, input: (String, Act), shape: Shape) -> Result<Walk<'g>> {
        let mut values = HashMap::new();
        for t in &graph.initializer {
            let name = t.name.clone().unwrap_or_default();
            values.insert(name, Val::Const(decode(t)?));
        }
        let mut readers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            if n.op_type.as_deref() == Some("Shape") {
                continue;
            }
            for x in n.input.iter().filter(|x| !x.is_empty()) {
                readers.entry(x.clone()).or_default().push(i);
            }
        }
        let current = input.0.clone();
        values.insert(input.0, Val::Act(input.1));
        Ok(Walk {
            graph,
            values,
            readers,
            done: vec![false; graph.node.len()],
            ops: Vec::new(),
            shape,
            current,
            open_matmul: None,
        })
    }

    /// The value called `name`, or why it cannot be read.
    pub fn value(&self, name: &str, node: &NodeProto) -> Result<&Val> {
        match self.values.get(name) {
            Some(Val::Unused(what)) => Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!("reads `{name}`, {what}, which the engine does not compute"),
            )
            .at(node_label(node))),
            Some(v) => Ok(v),
            None => Err(OnnxError::new(
                ErrorKind::Graph,
                format!(
                    "reads `{name}` before any node writes it (a cycle, or nodes out of order)"
                ),
            )
            .at(node_label(node))),
        }
    }

    /// Input `i` of `node` as a constant, or an error naming it.
    pub fn konst(&self, node: &NodeProto, i: usize, what: &str) -> Result<&Const> {
        let name = node.input.get(i).map(String::as_str).unwrap_or("");
        if name.is_empty() {
            return Err(
                OnnxError::new(ErrorKind::Graph, format!("lacks its {what} input"))
                    .at(node_label(node)),
            );
        }
        match self.value(name, node)? {
            Val::Const(c) => Ok(c),
            _ => Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!(
                    "its {what} (`{name}`) is computed at run time; the engine needs it constant"
                ),
            )
            .at(node_label(node))
            .hint(
                "export with do_constant_folding=True, or make the tensor a parameter or buffer",
            )),
        }
    }

    /// Input `i` as an optional constant (`None` when the input is omitted).
    pub fn opt_konst(&self, node: &NodeProto, i: usize, what: &str) -> Result<Option<&Const>> {
        match node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(_) => self.konst(node, i, what).map(Some),
        }
    }

    /// Whether any node reads `name`.
    pub fn is_read(&self, name: &str) -> bool {
        !name.is_empty()
            && (self.readers.get(name).is_some_and(|r| !r.is_empty())
                || self
                    .graph
                    .output
                    .iter()
                    .any(|o| o.name.as_deref() == Some(name)))
    }

    /// The sole reader of `name`, if exactly one node reads it.
    pub fn sole_reader(&self, name: &str) -> Option<usize> {
        match self.readers.get(name).map(Vec::as_slice) {
            Some([i]) => Some(*i),
            _ => None,
        }
    }

    /// Appends a `.lsn` op, checking it fits the shape so far, and makes
    /// `out` the activation with `act`'s ONNX shape.
    pub fn emit(
        &mut self,
        node: &NodeProto,
        op: Op,
        tensors: Vec<Vec<f32>>,
        out: &str,
        act: Act,
    ) -> Result<()> {
        let next = op.infer_shape(self.shape).map_err(|why| {
            OnnxError::new(
                ErrorKind::Shape,
                format!(
                    "becomes {} but does not fit its input {:?}: {why}",
                    op.kind(),
                    self.shape.dims()
                ),
            )
            .at(node_label(node))
        })?;
        self.ops.push((op, tensors));
        self.shape = next;
        self.set_act(node, out, act)
    }

    /// Makes `out` the activation without a new op (a view: Dropout,
    /// Squeeze, a Transpose that moves only the batch axis...).
    pub fn set_act(&mut self, node: &NodeProto, out: &str, act: Act) -> Result<()> {
        let mine: Vec<usize> = self
            .shape
            .dims()
            .iter()
            .map(|&d| d as usize)
            .filter(|&d| d != 1)
            .collect();
        if act.squeezed() != mine {
            return Err(OnnxError::new(
                ErrorKind::Shape,
                format!(
                    "gives {:?} per sample where the engine's layers give {:?}",
                    act.dims,
                    self.shape.dims()
                ),
            )
            .at(node_label(node)));
        }
        self.values.insert(out.to_string(), Val::Act(act));
        self.current = out.to_string();
        Ok(())
    }

    /// Marks every output of `node` after the first as unreadable.
    pub fn unused_rest(&mut self, node: &NodeProto, what: &'static str) {
        for o in node.output.iter().skip(1).filter(|o| !o.is_empty()) {
            self.values.insert(o.clone(), Val::Unused(what));
        }
    }

    /// Attributes of `node`.
    pub fn attrs<'n>(&self, node: &'n NodeProto) -> Attrs<'n> {
        Attrs::of(node)
    }
}
