//! Nodes with weights: Gemm, MatMul(+Add), Conv, pooling, the two norms
//! and Gather as Embedding. (LSTM has its own file.)

use crate::error::{ErrorKind, OnnxError, Result};
use crate::proto::NodeProto;
use crate::walk::{node_label, Act, Walk};
use lasagna_format::{Op, WeightLayout, Window};

/// An error of `kind` blamed on `node`.
pub fn err(node: &NodeProto, kind: ErrorKind, msg: String) -> OnnxError {
    OnnxError::new(kind, msg).at(node_label(node))
}

/// `v` as a window field (the format stores them in a byte).
fn byte(node: &NodeProto, v: i64, what: &str) -> Result<u8> {
    u8::try_from(v).map_err(|_| {
        err(
            node,
            ErrorKind::Unsupported,
            format!("{what} {v} is outside 0..=255"),
        )
    })
}

/// Transposes a `[r, c]` matrix.
pub fn transpose(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut t = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = v[i * c + j];
        }
    }
    t
}

impl Walk<'_> {
    pub(crate) fn linear(
        &mut self,
        node: &NodeProto,
        ty: &str,
        act: &Act,
        out: &str,
    ) -> Result<()> {
        let k = *act.dims.last().unwrap_or(&0);
        if act.batch == act.dims.len() {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                format!("{ty} over the batch axis"),
            ));
        }
        match ty {
            "Gemm" => {
                let a = self.attrs(node);
                let (alpha, beta) = (a.float("alpha", 1.0)?, a.float("beta", 1.0)?);
                if a.int("transA", 0)? != 0 || act.dims.len() != 1 || act.batch != 0 {
                    return Err(err(
                        node,
                        ErrorKind::Unsupported,
                        "Gemm with a transposed or non-[N, K] activation".into(),
                    ));
                }
                let trans_b = a.int("transB", 0)? != 0;
                let b = self.konst(node, 1, "weight B")?;
                let [r, c] = b.dims[..] else {
                    return Err(err(
                        node,
                        ErrorKind::Shape,
                        format!("Gemm weight has dims {:?}, not 2-D", b.dims),
                    ));
                };
                let (m, kk) = if trans_b { (r, c) } else { (c, r) };
                if kk != k {
                    return Err(err(
                        node,
                        ErrorKind::Shape,
                        format!("Gemm weight takes {kk} inputs, the activation has {k}"),
                    ));
                }
                let mut w = if trans_b {
                    b.floats()
                } else {
                    transpose(&b.floats(), r, c)
                };
                w.iter_mut().for_each(|x| *x *= alpha);
                let bias = match self.opt_konst(node, 2, "bias C")? {
                    None => None,
                    Some(cst) if cst.numel() == m => {
                        Some(cst.floats().iter().map(|x| x * beta).collect::<Vec<_>>())
                    }
                    Some(cst) if cst.numel() == 1 => Some(vec![cst.floats()[0] * beta; m]),
                    Some(cst) => {
                        return Err(err(
                            node,
                            ErrorKind::Shape,
                            format!("Gemm bias has dims {:?} for {m} outputs", cst.dims),
                        ))
                    }
                };
                let op = Op::Linear {
                    in_features: u32c(node, k)?,
                    out_features: u32c(node, m)?,
                    bias: bias.is_some(),
                    layout: WeightLayout::RowMajor,
                };
                let mut t = vec![w];
                t.extend(bias);
                self.emit(
                    node,
                    op,
                    t,
                    out,
                    Act {
                        dims: vec![m],
                        batch: 0,
                    },
                )
            }
            "MatMul" => {
                let b = self.konst(node, 1, "weight")?;
                let [r, c] = b.dims[..] else {
                    return Err(err(
                        node,
                        ErrorKind::Shape,
                        format!("MatMul weight has dims {:?}, not 2-D", b.dims),
                    ));
                };
                if r != k {
                    return Err(err(
                        node,
                        ErrorKind::Shape,
                        format!("MatMul weight takes {r} inputs, the activation has {k}"),
                    ));
                }
                let w = transpose(&b.floats(), r, c);
                let op = Op::Linear {
                    in_features: u32c(node, r)?,
                    out_features: u32c(node, c)?,
                    bias: false,
                    layout: WeightLayout::RowMajor,
                };
                let mut dims = act.dims.clone();
                if let Some(l) = dims.last_mut() {
                    *l = c;
                }
                self.emit(
                    node,
                    op,
                    vec![w],
                    out,
                    Act {
                        dims,
                        batch: act.batch,
                    },
                )?;
                self.open_matmul = Some((out.to_string(), self.ops.len() - 1));
                Ok(())
            }
            _ => {
                // Add: the bias of the MatMul just before.
                let x = &self.current;
                let bias_at = node.input.iter().position(|n| n != x).unwrap_or(1);
                let open = self.open_matmul.take().filter(|(name, _)| name == x);
                let b = self.konst(node, bias_at, "addend")?.floats();
                let Some((_, idx)) = open else {
                    return Err(err(
                        node,
                        ErrorKind::Unsupported,
                        "Add of a constant that is not a MatMul's bias".into(),
                    )
                    .hint("the engine adds constants only as a Linear's bias"));
                };
                let (op, tensors) = &mut self.ops[idx];
                let Op::Linear {
                    out_features,
                    bias: false,
                    in_features,
                    layout,
                } = *op
                else {
                    return Err(err(
                        node,
                        ErrorKind::Graph,
                        "Add after a MatMul that has a bias".into(),
                    ));
                };
                if b.len() != out_features as usize {
                    return Err(err(
                        node,
                        ErrorKind::Shape,
                        format!(
                            "Add of {} values after a MatMul with {out_features} outputs",
                            b.len()
                        ),
                    ));
                }
                *op = Op::Linear {
                    in_features,
                    out_features,
                    bias: true,
                    layout,
                };
                tensors.push(b);
                self.set_act(node, out, act.clone())
            }
        }
    }

    pub(crate) fn conv(&mut self, node: &NodeProto, act: &Act, out: &str) -> Result<()> {
        let [c, h, w] = chw(node, act)?;
        let wt = self.konst(node, 1, "weight")?;
        let [m, cg, kh, kw] = wt.dims[..] else {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                format!(
                    "Conv weight {:?}: only 2-D convolutions are supported",
                    wt.dims
                ),
            ));
        };
        let a = self.attrs(node);
        let group = a.int("group", 1)?;
        if group < 1
            || c as i64 % group != 0
            || m as i64 % group != 0
            || cg as i64 * group != c as i64
        {
            return Err(err(
                node,
                ErrorKind::Shape,
                format!(
                    "Conv with group {group}: weight {:?} does not fit {c} input channels",
                    wt.dims
                ),
            ));
        }
        if let Some(ks) = a.ints("kernel_shape")? {
            if ks != [kh as i64, kw as i64] {
                return Err(err(
                    node,
                    ErrorKind::Shape,
                    format!(
                        "Conv kernel_shape {ks:?} disagrees with its weight {:?}",
                        wt.dims
                    ),
                ));
            }
        }
        let window = self.window(node, [kh as i64, kw as i64], true)?;
        let weight = wt.floats();
        let bias = self.opt_konst(node, 2, "bias")?.map(|b| b.floats());
        if bias.as_ref().is_some_and(|b| b.len() != m) {
            return Err(err(
                node,
                ErrorKind::Shape,
                format!("Conv bias does not have {m} values"),
            ));
        }
        let u16c = |v: usize, what: &str| {
            u16::try_from(v).map_err(|_| {
                err(
                    node,
                    ErrorKind::Unsupported,
                    format!("{what} {v} exceeds 65535"),
                )
            })
        };
        let op = Op::Conv2d {
            in_channels: u16c(c, "in channels")?,
            out_channels: u16c(m, "out channels")?,
            groups: u16c(group as usize, "groups")?,
            window,
            bias: bias.is_some(),
        };
        let next = op.infer_shape(self.shape).map_err(|why| {
            err(
                node,
                ErrorKind::Shape,
                format!("Conv does not fit [{c}, {h}, {w}]: {why}"),
            )
        })?;
        let dims = next.dims().iter().map(|&d| d as usize).collect();
        let mut t = vec![weight];
        t.extend(bias);
        self.emit(node, op, t, out, Act { dims, batch: 0 })
    }

    /// Kernel, strides, symmetric pads and dilations of a Conv or pool.
    fn window(&self, node: &NodeProto, kernel: [i64; 2], dilation: bool) -> Result<Window> {
        let a = self.attrs(node);
        match a.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" | "VALID" => {}
            other => {
                return Err(
                    err(node, ErrorKind::Unsupported, format!("auto_pad={other}"))
                        .hint("give explicit padding (PyTorch's padding=k//2 exports as pads)"),
                )
            }
        }
        if a.int("ceil_mode", 0)? != 0 {
            return Err(err(node, ErrorKind::Unsupported, "ceil_mode=1".into())
                .hint("the engine pools with ceil_mode=False (PyTorch's default)"));
        }
        if a.int("storage_order", 0)? != 0 {
            return Err(err(node, ErrorKind::Unsupported, "storage_order=1".into()));
        }
        let strides = a.ints("strides")?.unwrap_or(vec![1, 1]);
        let pads = a.ints("pads")?.unwrap_or(vec![0; 4]);
        let dil = a.ints("dilations")?.unwrap_or(vec![1, 1]);
        if strides.len() != 2 || pads.len() != 4 || dil.len() != 2 {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                "a window that is not 2-D".into(),
            ));
        }
        if pads[0] != pads[2] || pads[1] != pads[3] {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                format!("asymmetric pads {pads:?}"),
            )
            .hint("the engine pads each side of an axis alike"));
        }
        if !dilation && dil != [1, 1] {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                format!("pooling with dilations {dil:?}"),
            ));
        }
        if strides.iter().chain(&dil).any(|&s| s < 1) {
            return Err(err(
                node,
                ErrorKind::Graph,
                "a stride or dilation below 1".into(),
            ));
        }
        Ok(Window {
            kernel: [
                byte(node, kernel[0], "kernel")?,
                byte(node, kernel[1], "kernel")?,
            ],
            stride: [
                byte(node, strides[0], "stride")?,
                byte(node, strides[1], "stride")?,
            ],
            padding: [
                byte(node, pads[0], "padding")?,
                byte(node, pads[1], "padding")?,
            ],
            dilation: [
                byte(node, dil[0], "dilation")?,
                byte(node, dil[1], "dilation")?,
            ],
        })
    }

    pub(crate) fn pool(&mut self, node: &NodeProto, ty: &str, act: &Act, out: &str) -> Result<()> {
        let [c, _, _] = chw(node, act)?;
        self.unused_rest(node, "MaxPool's indices");
        let op = if ty == "GlobalAveragePool" {
            Op::AdaptiveAvgPool2d { out_h: 1, out_w: 1 }
        } else {
            let Some(ks) = self.attrs(node).ints("kernel_shape")? else {
                return Err(err(
                    node,
                    ErrorKind::Graph,
                    format!("{ty} without kernel_shape"),
                ));
            };
            let [kh, kw] = ks[..] else {
                return Err(err(
                    node,
                    ErrorKind::Unsupported,
                    format!("{ty} with kernel {ks:?}: only 2-D pooling"),
                ));
            };
            let window = self.window(node, [kh, kw], false)?;
            if ty == "MaxPool" {
                Op::MaxPool2d { window }
            } else {
                let include = self.attrs(node).int("count_include_pad", 0)? != 0;
                Op::AvgPool2d {
                    window,
                    count_include_pad: include,
                }
            }
        };
        let next = op
            .infer_shape(self.shape)
            .map_err(|why| err(node, ErrorKind::Shape, format!("{ty} does not fit: {why}")))?;
        let dims: Vec<usize> = next.dims().iter().map(|&d| d as usize).collect();
        debug_assert_eq!(dims.first(), Some(&c));
        self.emit(node, op, vec![], out, Act { dims, batch: 0 })
    }

    pub(crate) fn norm(&mut self, node: &NodeProto, ty: &str, act: &Act, out: &str) -> Result<()> {
        let a = self.attrs(node);
        let eps = a.float("epsilon", 1e-5)?;
        self.unused_rest(node, "a training-only statistic");
        if ty == "BatchNormalization" {
            if a.int("training_mode", 0)? != 0 {
                return Err(err(
                    node,
                    ErrorKind::Unsupported,
                    "BatchNormalization in training mode".into(),
                )
                .hint("call model.eval() before torch.onnx.export"));
            }
            let c = *act.dims.first().unwrap_or(&0);
            if act.batch != 0 {
                return Err(err(
                    node,
                    ErrorKind::Unsupported,
                    "BatchNormalization with the batch off axis 0".into(),
                ));
            }
            let mut t = Vec::with_capacity(4);
            for (i, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
                let v = self.konst(node, i, what)?.floats();
                if v.len() != c {
                    return Err(err(
                        node,
                        ErrorKind::Shape,
                        format!(
                            "BatchNormalization {what} has {} values for {c} channels",
                            v.len()
                        ),
                    ));
                }
                t.push(v);
            }
            let op = Op::BatchNorm {
                features: u32c(node, c)?,
                eps,
            };
            return self.emit(node, op, t, out, act.clone());
        }
        let d = *act.dims.last().unwrap_or(&0);
        let axis = a.int("axis", -1)?;
        if act.sample_axis(axis)? != Some(act.dims.len().wrapping_sub(1))
            || act.batch == act.dims.len()
        {
            return Err(err(
                node,
                ErrorKind::Unsupported,
                format!("LayerNormalization from axis {axis}, not the last"),
            ));
        }
        let w = self.konst(node, 1, "scale")?.floats();
        let b = match self.opt_konst(node, 2, "bias")? {
            Some(b) => b.floats(),
            None => vec![0.0; w.len()],
        };
        if w.len() != d || b.len() != d {
            return Err(err(
                node,
                ErrorKind::Shape,
                format!("LayerNormalization parameters do not have {d} values"),
            ));
        }
        self.emit(
            node,
            Op::LayerNorm {
                size: u32c(node, d)?,
                eps,
            },
            vec![w, b],
            out,
            act.clone(),
        )
    }
}

/// `[C, H, W]` per sample with the batch first.
fn chw(node: &NodeProto, act: &Act) -> Result<[usize; 3]> {
    match (act.batch, &act.dims[..]) {
        (0, &[c, h, w]) => Ok([c, h, w]),
        _ => Err(err(
            node,
            ErrorKind::Shape,
            format!(
                "takes [N, C, H, W]; the activation is {:?} with the batch at axis {}",
                act.dims, act.batch
            ),
        )),
    }
}

/// `v` as a format `u32`.
pub fn u32c(node: &NodeProto, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| err(node, ErrorKind::Shape, format!("size {v} exceeds u32")))
}
