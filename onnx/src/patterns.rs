//! Multi-node patterns that are one layer: GELU in the erf form that
//! PyTorch exports below opset 20 (`x * (erf(x / sqrt2) + 1) * 0.5`), and
//! SiLU (`x * sigmoid(x)`).

use crate::error::Result;
use crate::proto::NodeProto;
use crate::walk::{Val, Walk};
use lasagna_format::Op;

impl Walk<'_> {
    fn is_const(&self, name: &str, want: f32, tol: f32) -> bool {
        matches!(self.values.get(name), Some(Val::Const(c)) if c.scalar().is_some_and(|v| (v - want).abs() <= tol))
    }

    /// The other input of a two-input node, when one input is `x`.
    fn other<'n>(node: &'n NodeProto, x: &str) -> Option<&'n str> {
        match node.input.as_slice() {
            [a, b] if a == x => Some(b),
            [a, b] if b == x => Some(a),
            _ => None,
        }
    }

    fn reader_of(&self, name: &str, ty: &str) -> Option<usize> {
        self.sole_reader(name)
            .filter(|&i| self.graph.node[i].op_type.as_deref() == Some(ty))
    }

    /// Matches a pattern starting at node `i`; `Some(())` when it did and
    /// the layer was emitted.
    pub(crate) fn pattern(&mut self, i: usize) -> Result<Option<()>> {
        let g = self.graph;
        let n = &g.node[i];
        let x = self.current.clone();
        let act = match self.values.get(&x) {
            Some(Val::Act(a)) => a.clone(),
            _ => return Ok(None),
        };
        if n.input.first() != Some(&x) {
            return Ok(None);
        }
        let out0 = |k: usize| g.node[k].output.first().cloned().unwrap_or_default();
        if n.op_type.as_deref() == Some("Sigmoid") {
            let s = out0(i);
            let Some(m) = self.reader_of(&s, "Mul") else {
                return Ok(None);
            };
            if Self::other(&g.node[m], &s) != Some(x.as_str())
                || self.readers.get(&x).map_or(0, Vec::len) != 2
            {
                return Ok(None);
            }
            self.done[m] = true;
            self.emit(n, Op::Silu, vec![], &out0(m), act)?;
            return Ok(Some(()));
        }
        // Div(x, sqrt2) -> Erf -> Add(1) -> Mul(x, .) -> Mul(0.5)
        let Some(c) = Self::other(n, &x) else {
            return Ok(None);
        };
        if n.input.first() != Some(&x) || !self.is_const(c, std::f32::consts::SQRT_2, 1e-4) {
            return Ok(None);
        }
        let Some(e) = self.reader_of(&out0(i), "Erf") else {
            return Ok(None);
        };
        let Some(a) = self.reader_of(&out0(e), "Add") else {
            return Ok(None);
        };
        if !Self::other(&g.node[a], &out0(e)).is_some_and(|c| self.is_const(c, 1.0, 1e-6)) {
            return Ok(None);
        }
        let Some(m1) = self.reader_of(&out0(a), "Mul") else {
            return Ok(None);
        };
        if Self::other(&g.node[m1], &out0(a)) != Some(x.as_str()) {
            return Ok(None);
        }
        let Some(m2) = self.reader_of(&out0(m1), "Mul") else {
            return Ok(None);
        };
        if !Self::other(&g.node[m2], &out0(m1)).is_some_and(|c| self.is_const(c, 0.5, 1e-6)) {
            return Ok(None);
        }
        if self.readers.get(&x).map_or(0, Vec::len) != 2 {
            return Ok(None);
        }
        for k in [e, a, m1, m2] {
            self.done[k] = true;
        }
        self.emit(n, Op::Gelu { tanh: false }, vec![], &out0(m2), act)?;
        Ok(Some(()))
    }
}
