//! One node at a time: constants are folded, shape-derived values are set
//! aside, and the node that reads the activation is mapped to an op.

use crate::error::{ErrorKind, OnnxError, Result};
use crate::proto::NodeProto;
use crate::tensor::{Const, Data};
use crate::walk::{node_label, Act, Val, Walk};
use lasagna_format::Op;

/// Ops the importer maps, for the refusal's hint.
pub const SUPPORTED: &str = "Gemm, MatMul+Add, Conv, MaxPool, AveragePool, GlobalAveragePool, \
BatchNormalization, LayerNormalization, Relu, LeakyRelu, Gelu (and its Erf form), Sigmoid, \
Tanh, Softmax, Flatten, Reshape to [N, features], Squeeze, Unsqueeze, Transpose of the batch \
axis, Dropout, Identity, LSTM (one layer, forward), Gather (as Embedding), Constant";

impl Walk<'_> {
    /// Reads node `i`.
    pub fn step(&mut self, i: usize) -> Result<()> {
        if self.done[i] {
            return Ok(());
        }
        let graph = self.graph;
        let node = &graph.node[i];
        let ty = node.op_type.as_deref().unwrap_or("");
        match node.domain.as_deref() {
            None | Some("") | Some("ai.onnx") => {}
            Some(d) => {
                return Err(OnnxError::new(
                    ErrorKind::Unsupported,
                    format!("op {ty} of domain `{d}` is not supported"),
                )
                .at(node_label(node))
                .hint(format!(
                    "the importer reads the default ONNX domain: {SUPPORTED}"
                )))
            }
        }
        for o in &node.output {
            if !o.is_empty() && self.values.contains_key(o) {
                return Err(OnnxError::new(
                    ErrorKind::Graph,
                    format!("writes `{o}`, which another node or initializer already defines"),
                )
                .at(node_label(node)));
            }
        }
        // Inputs must exist (this is where a cycle shows).
        let mut acts = Vec::new();
        let mut derived = false;
        for x in node.input.iter().filter(|x| !x.is_empty()) {
            match self.value(x, node)? {
                Val::Act(_) => acts.push(x.clone()),
                Val::Derived { .. } => derived = true,
                _ => {}
            }
        }
        let out = node.output.first().cloned().unwrap_or_default();
        if ty == "Constant" {
            return self.constant(node, &out);
        }
        if ty == "Shape" && acts.len() == 1 {
            self.values.insert(out, Val::Derived { zero: false });
            return Ok(());
        }
        if acts.is_empty() {
            return self.fold(node, ty, derived);
        }
        if ty == "Div" || ty == "Sigmoid" {
            if let Some(()) = self.pattern(i)? {
                return Ok(());
            }
        }
        let x = match acts.as_slice() {
            [x] => x.clone(),
            _ => {
                return Err(OnnxError::new(
                    ErrorKind::Unsupported,
                    format!("{ty} of two activations (a branch, or a residual connection)"),
                )
                .at(node_label(node))
                .hint("the engine runs a chain of single-input layers"))
            }
        };
        if x != self.current {
            return Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!("reads `{x}`, an earlier activation (the graph branches)"),
            )
            .at(node_label(node))
            .hint("the engine runs a chain of single-input layers"));
        }
        if self.readers.get(&x).map_or(0, Vec::len) > 1 {
            return Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!("`{x}` feeds more than one node (the graph branches)"),
            )
            .at(node_label(node))
            .hint("the engine runs a chain of single-input layers"));
        }
        let act = match self.values.get(&x) {
            Some(Val::Act(a)) => a.clone(),
            _ => {
                return Err(
                    OnnxError::new(ErrorKind::Graph, "lost the activation").at(node_label(node))
                )
            }
        };
        if node.input.first() != Some(&x) && !matches!(ty, "Gather" | "Add" | "Mul") {
            return Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!("{ty} reads the activation as a parameter"),
            )
            .at(node_label(node)));
        }
        self.map(node, ty, &act, &out)
    }

    fn constant(&mut self, node: &NodeProto, out: &str) -> Result<()> {
        let a = self.attrs(node);
        let c = if let Some(t) = a.tensor("value")? {
            t
        } else if a.has("value_float") {
            Const {
                dims: vec![],
                data: Data::F32(vec![a.float("value_float", 0.0)?]),
            }
        } else if a.has("value_int") {
            Const {
                dims: vec![],
                data: Data::I64(vec![a.int("value_int", 0)?]),
            }
        } else if let Some(v) = a.ints("value_ints")? {
            Const {
                dims: vec![v.len()],
                data: Data::I64(v),
            }
        } else {
            return Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!("Constant with attributes {:?}; the importer reads value, value_float, value_int and value_ints", a.names()),
            )
            .at(node_label(node)));
        };
        self.values.insert(out.to_string(), Val::Const(c));
        Ok(())
    }

    /// A node with no activation input: constant folding of view ops, or a
    /// shape-derived value.
    fn fold(&mut self, node: &NodeProto, ty: &str, derived: bool) -> Result<()> {
        let out = node.output.first().cloned().unwrap_or_default();
        if ty == "ConstantOfShape" {
            // Its size depends on the batch (the LSTM's zero state), or is
            // a constant never materialised: no allocation either way.
            let zero = match self.attrs(node).tensor("value")? {
                None => true,
                Some(v) => v.floats().iter().all(|&x| x == 0.0),
            };
            self.values.insert(out, Val::Derived { zero });
            return Ok(());
        }
        if derived {
            let zero = ty == "Expand"
                && matches!(
                    self.values
                        .get(node.input.first().map(String::as_str).unwrap_or("")),
                    Some(Val::Derived { zero: true }) | Some(Val::Const(_))
                )
                && match self.values.get(&node.input[0]) {
                    Some(Val::Const(c)) => c.floats().iter().all(|&x| x == 0.0),
                    Some(Val::Derived { zero }) => *zero,
                    _ => false,
                };
            for o in node.output.iter().filter(|o| !o.is_empty()) {
                self.values.insert(o.clone(), Val::Derived { zero });
            }
            return Ok(());
        }
        let c = self.konst(node, 0, "data")?.clone();
        let folded = match ty {
            "Identity" | "Cast" => c,
            "Reshape" | "Squeeze" | "Unsqueeze" | "Flatten" => {
                // Views of a constant keep their values; their shape is
                // taken from whoever reads them.
                Const {
                    dims: vec![c.numel()],
                    data: c.data,
                }
            }
            _ => {
                return Err(OnnxError::new(
                    ErrorKind::Unsupported,
                    format!("{ty} on constants is not folded by the importer"),
                )
                .at(node_label(node))
                .hint("export with do_constant_folding=True"))
            }
        };
        self.values.insert(out, Val::Const(folded));
        Ok(())
    }

    /// A node that reads the activation.
    fn map(&mut self, node: &NodeProto, ty: &str, act: &Act, out: &str) -> Result<()> {
        let a = self.attrs(node);
        let simple = |op: Op| Some(op);
        let unary = match ty {
            "Relu" => simple(Op::Relu),
            "Sigmoid" => simple(Op::Sigmoid),
            "Tanh" => simple(Op::Tanh),
            "LeakyRelu" => simple(Op::LeakyRelu {
                alpha: a.float("alpha", 0.01)?,
            }),
            "Gelu" => {
                let tanh = match a.string("approximate", "none")?.as_str() {
                    "none" => false,
                    "tanh" => true,
                    other => {
                        return Err(OnnxError::new(
                            ErrorKind::Unsupported,
                            format!("Gelu approximate=`{other}`"),
                        )
                        .at(node_label(node)))
                    }
                };
                simple(Op::Gelu { tanh })
            }
            "Softmax" => {
                let axis = a.int("axis", -1)?;
                if act.sample_axis(axis)? != Some(act.dims.len().wrapping_sub(1))
                    || act.batch == act.dims.len()
                {
                    return Err(OnnxError::new(
                        ErrorKind::Unsupported,
                        format!("Softmax over axis {axis}, not the last"),
                    )
                    .at(node_label(node))
                    .hint("the engine's Softmax runs over the last axis (dim=-1)"));
                }
                simple(Op::Softmax)
            }
            _ => None,
        };
        if let Some(op) = unary {
            self.unused_rest(node, "a second output");
            return self.emit(node, op, vec![], out, act.clone());
        }
        match ty {
            "Dropout" | "Identity" => {
                self.unused_rest(node, "Dropout's mask (training only)");
                self.set_act(node, out, act.clone())
            }
            "Cast" => {
                let to = a.int("to", 0)?;
                if to != crate::proto::tensor_proto::DataType::Float as i64 {
                    return Err(OnnxError::new(ErrorKind::Unsupported, format!("Cast of the activation to type {to}"))
                        .at(node_label(node)));
                }
                self.set_act(node, out, act.clone())
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Transpose" => self.view(node, ty, act, out),
            "Gemm" | "MatMul" | "Add" => self.linear(node, ty, act, out),
            "Conv" => self.conv(node, act, out),
            "MaxPool" | "AveragePool" | "GlobalAveragePool" => self.pool(node, ty, act, out),
            "BatchNormalization" | "LayerNormalization" => self.norm(node, ty, act, out),
            "LSTM" => self.lstm(node, act),
            "Gather" => self.gather(node, act, out),
            _ => Err(OnnxError::new(ErrorKind::Unsupported, format!("op {ty} is not supported"))
                .at(node_label(node))
                .hint(format!("the importer maps {SUPPORTED}; replace the layer, or open an issue naming it"))),
        }
    }
}
