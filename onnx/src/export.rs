//! `lasagna export --onnx`: a float `.lsn` model as an ONNX graph.
//!
//! Each format op becomes the nodes `torch.onnx.export` writes for the same
//! PyTorch layer, so the importer reads the result back to the same `.lsn`
//! bytes. Opset 17 (LayerNormalization's first), or 20 when a GELU needs
//! its tanh form (the `Gelu` op); the erf GELU is the five-node pattern.

use crate::error::{ErrorKind, OnnxError, Result};
use crate::layers::transpose;
use crate::lstm::torch_to_onnx;
use crate::meta::{KEY_LABELS, KEY_MEAN, KEY_STD};
use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_proto::DataType;
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::type_proto::{self, Value as TypeValue};
use crate::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::tensor::{f32_tensor, i64_tensor};
use lasagna_format::{DType, Op};
use prost::Message;

fn attr_i(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}
fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}
fn attr_is(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}
fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A value's type: `elem` tensor with a symbolic batch axis first.
fn value_info(name: &str, elem: DataType, dims: &[u32]) -> ValueInfoProto {
    let mut dim = vec![Dimension {
        value: Some(dimension::Value::DimParam("N".into())),
        ..Default::default()
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d as i64)),
        ..Default::default()
    }));
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(TypeValue::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The graph under construction.
struct Builder {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    x: String,
    n: usize,
}

impl Builder {
    fn fresh(&mut self) -> String {
        self.n += 1;
        format!("x{}", self.n)
    }
    fn init(&mut self, t: TensorProto) -> String {
        let name = t.name.clone().unwrap_or_default();
        self.inits.push(t);
        name
    }
    /// Appends a node reading `inputs` (the activation first unless given)
    /// and makes its first output the activation.
    fn node(&mut self, ty: &str, inputs: Vec<String>, attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh();
        self.nodes.push(NodeProto {
            name: Some(format!("{ty}_{}", self.n)),
            op_type: Some(ty.into()),
            input: inputs,
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        self.x = out.clone();
        out
    }
    fn unary(&mut self, ty: &str, attrs: Vec<AttributeProto>) {
        let x = self.x.clone();
        self.node(ty, vec![x], attrs);
    }
}

/// Writes a float `.lsn` model (f32 or f16 weights) as ONNX bytes.
pub fn export(lsn: &[u8]) -> Result<Vec<u8>> {
    let m = lasagna_format::Model::parse(lsn)
        .map_err(|e| OnnxError::new(ErrorKind::Model, format!("not a model file: {e}")))?;
    let int8 = m.input().is_some_and(|v| v.dtype == DType::I8)
        || (0..m.tensor_count()).any(|i| m.tensor(i).is_some_and(|t| t.dtype == DType::I8));
    if int8 {
        return Err(OnnxError::new(ErrorKind::Model, "an int8 model: its numbers are integer arithmetic that ONNX's float ops would not reproduce")
            .hint("export the f32 model the int8 file came from (lasagna export --model-file model.lsn --onnx model.onnx)"));
    }
    let ops = lasagna_trainer::export::file_ops(&m)
        .map_err(|e| OnnxError::new(ErrorKind::Model, e.to_string()))?;
    let ids = m.input().is_some_and(|v| v.dtype == DType::I32);
    let mut b = Builder {
        nodes: vec![],
        inits: vec![],
        x: "input".into(),
        n: 0,
    };
    let mut shape = m.input_shape();
    let mut opset = 17;
    for (k, (op, t)) in ops.iter().enumerate() {
        let p = |s: &str| format!("op{k}.{s}");
        let rank = shape.rank();
        match *op {
            Op::Linear {
                in_features,
                out_features,
                bias,
                ..
            } => {
                let (i, o) = (in_features as usize, out_features as usize);
                let x = b.x.clone();
                if rank == 1 {
                    let mut inputs = vec![x, b.init(f32_tensor(&p("weight"), &[o, i], &t[0]))];
                    if bias {
                        inputs.push(b.init(f32_tensor(&p("bias"), &[o], &t[1])));
                    }
                    b.node(
                        "Gemm",
                        inputs,
                        vec![
                            attr_f("alpha", 1.0),
                            attr_f("beta", 1.0),
                            attr_i("transB", 1),
                        ],
                    );
                } else {
                    let w = b.init(f32_tensor(&p("weight"), &[i, o], &transpose(&t[0], o, i)));
                    b.node("MatMul", vec![x, w], vec![]);
                    if bias {
                        let x = b.x.clone();
                        let bb = b.init(f32_tensor(&p("bias"), &[o], &t[1]));
                        b.node("Add", vec![x, bb], vec![]);
                    }
                }
            }
            Op::Conv2d {
                out_channels,
                in_channels,
                groups,
                window: w,
                bias,
            } => {
                let g = groups.max(1) as usize;
                let dims = [
                    out_channels as usize,
                    in_channels as usize / g,
                    w.kernel[0] as usize,
                    w.kernel[1] as usize,
                ];
                let x = b.x.clone();
                let mut inputs = vec![x, b.init(f32_tensor(&p("weight"), &dims, &t[0]))];
                if bias {
                    inputs.push(b.init(f32_tensor(&p("bias"), &[out_channels as usize], &t[1])));
                }
                let (s, pd, d) = (
                    w.stride.map(i64::from),
                    w.padding.map(i64::from),
                    w.dilation.map(i64::from),
                );
                b.node(
                    "Conv",
                    inputs,
                    vec![
                        attr_is("dilations", &d),
                        attr_i("group", g as i64),
                        attr_is("kernel_shape", &w.kernel.map(i64::from)),
                        attr_is("pads", &[pd[0], pd[1], pd[0], pd[1]]),
                        attr_is("strides", &s),
                    ],
                );
            }
            Op::MaxPool2d { window: w } | Op::AvgPool2d { window: w, .. } => {
                let pd = w.padding.map(i64::from);
                let mut attrs = vec![
                    attr_is("kernel_shape", &w.kernel.map(i64::from)),
                    attr_is("pads", &[pd[0], pd[1], pd[0], pd[1]]),
                    attr_is("strides", &w.stride.map(i64::from)),
                ];
                let ty = if let Op::AvgPool2d {
                    count_include_pad, ..
                } = *op
                {
                    attrs.insert(0, attr_i("count_include_pad", count_include_pad as i64));
                    "AveragePool"
                } else {
                    "MaxPool"
                };
                attrs.insert(0, attr_i("ceil_mode", 0));
                b.unary(ty, attrs);
            }
            Op::AdaptiveAvgPool2d { out_h, out_w } => {
                let d = shape.dims();
                if (out_h, out_w) == (1, 1) {
                    b.unary("GlobalAveragePool", vec![]);
                } else if rank == 3 && d[1] % out_h as u32 == 0 && d[2] % out_w as u32 == 0 {
                    let k = [(d[1] / out_h as u32) as i64, (d[2] / out_w as u32) as i64];
                    b.unary(
                        "AveragePool",
                        vec![attr_is("kernel_shape", &k), attr_is("strides", &k)],
                    );
                } else {
                    return Err(OnnxError::new(ErrorKind::Unsupported, format!("op {k}: AdaptiveAvgPool2d to ({out_h}, {out_w}) of {d:?} has uneven windows, which ONNX has no op for")));
                }
            }
            Op::BatchNorm { features, eps } => {
                let c = features as usize;
                let x = b.x.clone();
                let mut inputs = vec![x];
                for (j, s) in ["weight", "bias", "running_mean", "running_var"]
                    .iter()
                    .enumerate()
                {
                    inputs.push(b.init(f32_tensor(&p(s), &[c], &t[j])));
                }
                b.node("BatchNormalization", inputs, vec![attr_f("epsilon", eps)]);
            }
            Op::LayerNorm { size, eps } => {
                let x = b.x.clone();
                let w = b.init(f32_tensor(&p("weight"), &[size as usize], &t[0]));
                let bb = b.init(f32_tensor(&p("bias"), &[size as usize], &t[1]));
                b.node(
                    "LayerNormalization",
                    vec![x, w, bb],
                    vec![attr_i("axis", -1), attr_f("epsilon", eps)],
                );
            }
            Op::Embedding { num, dim } => {
                let x = b.x.clone();
                let w = b.init(f32_tensor(
                    &p("weight"),
                    &[num as usize, dim as usize],
                    &t[0],
                ));
                b.node("Gather", vec![w, x], vec![attr_i("axis", 0)]);
            }
            Op::Lstm {
                input_size,
                hidden_size,
                layers,
                return_sequences,
                ..
            } => {
                if layers != 1 {
                    return Err(OnnxError::new(
                        ErrorKind::Unsupported,
                        format!(
                            "op {k}: a {layers}-layer LSTM; the exporter writes one-layer LSTMs"
                        ),
                    ));
                }
                let (i, h) = (input_size as usize, hidden_size as usize);
                b.unary("Transpose", vec![attr_is("perm", &[1, 0, 2])]);
                let w = b.init(f32_tensor(
                    &p("W"),
                    &[1, 4 * h, i],
                    &torch_to_onnx(&t[0], h, i),
                ));
                let r = b.init(f32_tensor(
                    &p("R"),
                    &[1, 4 * h, h],
                    &torch_to_onnx(&t[1], h, h),
                ));
                let mut bias = torch_to_onnx(&t[2], h, 1);
                bias.extend(torch_to_onnx(&t[3], h, 1));
                let bb = b.init(f32_tensor(&p("B"), &[1, 8 * h], &bias));
                let x = b.x.clone();
                let (y, yh) = (b.fresh(), b.fresh());
                b.nodes.push(NodeProto {
                    name: Some(format!("LSTM_{k}")),
                    op_type: Some("LSTM".into()),
                    input: vec![x, w, r, bb],
                    output: vec![y.clone(), yh.clone()],
                    attribute: vec![
                        attr_s("direction", "forward"),
                        attr_i("hidden_size", h as i64),
                    ],
                    ..Default::default()
                });
                if return_sequences {
                    b.x = y;
                    let axes = b.init(i64_tensor(&p("axes"), &[1], &[1]));
                    let x = b.x.clone();
                    b.node("Squeeze", vec![x, axes], vec![]);
                    b.unary("Transpose", vec![attr_is("perm", &[1, 0, 2])]);
                } else {
                    b.x = yh;
                    let axes = b.init(i64_tensor(&p("axes"), &[1], &[0]));
                    let x = b.x.clone();
                    b.node("Squeeze", vec![x, axes], vec![]);
                }
            }
            Op::Flatten => b.unary("Flatten", vec![attr_i("axis", 1)]),
            Op::Relu => b.unary("Relu", vec![]),
            Op::LeakyRelu { alpha } => b.unary("LeakyRelu", vec![attr_f("alpha", alpha)]),
            Op::Sigmoid => b.unary("Sigmoid", vec![]),
            Op::Tanh => b.unary("Tanh", vec![]),
            Op::Softmax => b.unary("Softmax", vec![attr_i("axis", -1)]),
            Op::Silu => {
                let x = b.x.clone();
                let s = b.node("Sigmoid", vec![x.clone()], vec![]);
                b.node("Mul", vec![x, s], vec![]);
            }
            Op::Gelu { tanh: true } => {
                opset = 20;
                b.unary("Gelu", vec![attr_s("approximate", "tanh")]);
            }
            Op::Gelu { tanh: false } => {
                let x = b.x.clone();
                let s2 = b.init(f32_tensor(&p("sqrt2"), &[], &[std::f32::consts::SQRT_2]));
                let one = b.init(f32_tensor(&p("one"), &[], &[1.0]));
                let half = b.init(f32_tensor(&p("half"), &[], &[0.5]));
                let d = b.node("Div", vec![x.clone(), s2], vec![]);
                let e = b.node("Erf", vec![d], vec![]);
                let a = b.node("Add", vec![e, one], vec![]);
                let m1 = b.node("Mul", vec![x, a], vec![]);
                b.node("Mul", vec![m1, half], vec![]);
            }
            _ => {
                return Err(OnnxError::new(
                    ErrorKind::Unsupported,
                    format!("op {k}: {} has no ONNX form in this exporter", op.kind()),
                ))
            }
        }
        shape = op.infer_shape(shape).map_err(|why| {
            OnnxError::new(ErrorKind::Model, format!("op {k} ({}): {why}", op.kind()))
        })?;
    }
    let output = b.x.clone();
    let elem = if ids {
        DataType::Int64
    } else {
        DataType::Float
    };
    let (mean, std) = m.normalization();
    let mut props = vec![
        (KEY_MEAN.to_string(), mean.to_string()),
        (KEY_STD.to_string(), std.to_string()),
    ];
    let labels: Vec<&str> = m.labels().collect();
    if labels.iter().any(|l| l.contains(',')) {
        return Err(OnnxError::new(
            ErrorKind::Model,
            "a label contains a comma, which the lasagna.labels prop separates labels with",
        ));
    }
    if !labels.is_empty() {
        props.push((KEY_LABELS.to_string(), labels.join(",")));
    }
    props.extend(m.meta().map(|(k, v)| (k.to_string(), v.to_string())));
    let graph = GraphProto {
        name: Some("lasagna".into()),
        node: b.nodes,
        initializer: b.inits,
        input: vec![value_info("input", elem, m.input_shape().dims())],
        output: vec![value_info(&output, DataType::Float, shape.dims())],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(if opset >= 20 { 9 } else { 8 }),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        producer_name: Some("lasagna".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        metadata_props: props
            .into_iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some(k),
                value: Some(v),
            })
            .collect(),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}
