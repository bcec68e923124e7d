//! Every class of graph the engine cannot run is refused by name: the op
//! or attribute, the node, and a hint. One test per class, on small graphs
//! built here with ONNX's own protobuf types.

use lasagna_onnx::proto::attribute_proto::AttributeType;
use lasagna_onnx::proto::tensor_proto::DataType;
use lasagna_onnx::proto::tensor_shape_proto::{dimension, Dimension};
use lasagna_onnx::proto::type_proto::{Tensor, Value};
use lasagna_onnx::proto::*;
use lasagna_onnx::{import, ErrorKind, ImportOptions, OnnxError};
use prost::Message;

fn dim(d: Result<i64, &str>) -> Dimension {
    let v = match d {
        Ok(n) => dimension::Value::DimValue(n),
        Err(p) => dimension::Value::DimParam(p.into()),
    };
    Dimension {
        value: Some(v),
        ..Default::default()
    }
}

fn vi(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: dims.iter().map(|&d| dim(d)).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn f32t(name: &str, dims: &[i64]) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: vec![0.5; n as usize],
        ..Default::default()
    }
}

fn i64t(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![v.len() as i64],
        data_type: Some(DataType::Int64 as i32),
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn node(
    ty: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    NodeProto {
        op_type: Some(ty.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.into()),
        ..Default::default()
    }
}

/// A model of `nodes` reading `input` (shape `dims`) and returning `out`.
fn model(
    opset: i64,
    dims: &[Result<i64, &str>],
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    out: &str,
) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![vi("x", dims)],
            output: vec![vi(out, &[])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

const N: Result<i64, &str> = Err("batch");

fn refused(bytes: &[u8]) -> OnnxError {
    match import(bytes, &ImportOptions::default()) {
        Ok(i) => panic!("imported as {:?}; should have been refused", i.ops),
        Err(e) => {
            println!("refused: {e}");
            e
        }
    }
}

/// A Linear 4 -> 3 as Gemm, reading `x` and writing `y`.
fn gemm(x: &str, y: &str) -> (NodeProto, Vec<TensorProto>) {
    (
        node("Gemm", "fc", &[x, "W", "B"], &[y], vec![]),
        vec![f32t("W", &[4, 3]), f32t("B", &[3])],
    )
}

#[test]
fn a_small_graph_of_supported_ops_imports() {
    let (g, w) = gemm("x", "y");
    let ok = model(
        17,
        &[N, Ok(4)],
        vec![g, node("Relu", "r", &["y"], &["z"], vec![])],
        w,
        "z",
    );
    let i = import(&ok, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(i.ops, ["Linear", "ReLU"]);
}

#[test]
fn an_unknown_op_is_refused_by_name_with_the_node_and_the_supported_list() {
    let (g, w) = gemm("x", "y");
    let e = refused(&model(
        17,
        &[N, Ok(4)],
        vec![g, node("Elu", "act1", &["y"], &["z"], vec![])],
        w,
        "z",
    ));
    assert_eq!(e.kind, ErrorKind::Unsupported);
    let s = e.to_string();
    assert!(
        s.contains("op Elu is not supported")
            && s.contains("`act1` (Elu)")
            && s.contains("HINT")
            && s.contains("Gemm"),
        "{s}"
    );
}

#[test]
fn an_op_of_another_domain_is_refused_by_domain() {
    let mut n = node("Relu", "custom", &["x"], &["y"], vec![]);
    n.domain = Some("com.microsoft".into());
    let s = refused(&model(17, &[N, Ok(4)], vec![n], vec![], "y")).to_string();
    assert!(s.contains("domain `com.microsoft`"), "{s}");
}

#[test]
fn an_opset_outside_13_to_21_is_refused_with_the_export_flag_to_use() {
    for opset in [11, 22] {
        let e = refused(&model(
            opset,
            &[N, Ok(4)],
            vec![node("Relu", "r", &["x"], &["y"], vec![])],
            vec![],
            "y",
        ));
        assert_eq!(e.kind, ErrorKind::Opset);
        assert!(e.to_string().contains("opset_version=17"), "{e}");
    }
}

#[test]
fn a_dynamic_axis_other_than_the_batch_is_refused() {
    let e = refused(&model(
        17,
        &[N, Err("features")],
        vec![node("Relu", "r", &["x"], &["y"], vec![])],
        vec![],
        "y",
    ));
    assert_eq!(e.kind, ErrorKind::Shape);
    assert!(
        e.to_string().contains("`features`") && e.to_string().contains("dynamic_axes"),
        "{e}"
    );
}

#[test]
fn a_branch_or_residual_is_refused() {
    let nodes = vec![
        node("Relu", "a", &["x"], &["y"], vec![]),
        node("Add", "residual", &["x", "y"], &["z"], vec![]),
    ];
    let s = refused(&model(17, &[N, Ok(4)], nodes, vec![], "z")).to_string();
    // Blamed where the activation splits: the first of its two readers.
    assert!(s.contains("`a` (Relu)") && s.contains("branches"), "{s}");
}

#[test]
fn a_reshape_computed_from_the_input_shape_is_refused_with_the_flatten_hint() {
    let nodes = vec![
        node("Shape", "s", &["x"], &["shp"], vec![]),
        node("Reshape", "view", &["x", "shp"], &["y"], vec![]),
    ];
    let s = refused(&model(17, &[N, Ok(1), Ok(2), Ok(2)], nodes, vec![], "y")).to_string();
    assert!(
        s.contains("`view` (Reshape)") && s.contains("nn.Flatten"),
        "{s}"
    );
}

#[test]
fn unsupported_attributes_are_refused_by_name() {
    let conv = |attrs| node("Conv", "conv", &["x", "W"], &["y"], attrs);
    let w = vec![f32t("W", &[2, 1, 3, 3])];
    let dims = [N, Ok(1), Ok(8), Ok(8)];
    for (attrs, want) in [
        (vec![ints("pads", &[0, 0, 1, 1])], "asymmetric pads"),
        (
            vec![string("auto_pad", "SAME_UPPER")],
            "auto_pad=SAME_UPPER",
        ),
    ] {
        let s = refused(&model(17, &dims, vec![conv(attrs)], w.clone(), "y")).to_string();
        assert!(s.contains(want) && s.contains("`conv` (Conv)"), "{s}");
    }
    let soft = node(
        "Softmax",
        "sm",
        &["x"],
        &["y"],
        vec![AttributeProto {
            name: Some("axis".into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(1),
            ..Default::default()
        }],
    );
    let s = refused(&model(17, &[N, Ok(3), Ok(4)], vec![soft], vec![], "y")).to_string();
    assert!(s.contains("Softmax over axis 1"), "{s}");
}

#[test]
fn a_bidirectional_lstm_is_refused() {
    let lstm = node(
        "LSTM",
        "rnn",
        &["x", "W", "R"],
        &["", "h"],
        vec![string("direction", "bidirectional")],
    );
    let t = node(
        "Transpose",
        "t",
        &["x0"],
        &["x"],
        vec![ints("perm", &[1, 0, 2])],
    );
    let mut m = ModelProto::decode(
        &model(
            17,
            &[N, Ok(5), Ok(3)],
            vec![t, lstm],
            vec![f32t("W", &[2, 8, 3]), f32t("R", &[2, 8, 2])],
            "h",
        )[..],
    )
    .unwrap_or_default();
    if let Some(g) = m.graph.as_mut() {
        g.input[0].name = Some("x0".into());
    }
    let s = refused(&m.encode_to_vec()).to_string();
    assert!(
        s.contains("bidirectional") && s.contains("`rnn` (LSTM)"),
        "{s}"
    );
}

#[test]
fn a_transpose_that_reorders_a_sample_is_refused() {
    let t = node(
        "Transpose",
        "nhwc",
        &["x"],
        &["y"],
        vec![ints("perm", &[0, 2, 3, 1])],
    );
    let s = refused(&model(17, &[N, Ok(2), Ok(3), Ok(3)], vec![t], vec![], "y")).to_string();
    assert!(s.contains("reorders the elements of a sample"), "{s}");
}

#[test]
fn a_weight_computed_at_run_time_is_refused() {
    let nodes = vec![
        node("Shape", "s", &["x"], &["shp"], vec![]),
        node("Cast", "c", &["shp"], &["w"], vec![]),
        node("MatMul", "mm", &["x", "w"], &["y"], vec![]),
    ];
    let s = refused(&model(17, &[N, Ok(4)], nodes, vec![], "y")).to_string();
    assert!(
        s.contains("`mm` (MatMul)") && s.contains("computed at run time"),
        "{s}"
    );
}

#[test]
fn an_add_that_is_not_a_bias_and_a_reshape_to_rank_3_are_refused() {
    let (g, mut w) = gemm("x", "y");
    w.push(f32t("C", &[3]));
    let s = refused(&model(
        17,
        &[N, Ok(4)],
        vec![g, node("Add", "shift", &["y", "C"], &["z"], vec![])],
        w,
        "z",
    ))
    .to_string();
    assert!(s.contains("not a MatMul's bias"), "{s}");
    let r = node("Reshape", "r3", &["x", "S"], &["y"], vec![]);
    let s = refused(&model(
        17,
        &[N, Ok(4)],
        vec![r],
        vec![i64t("S", &[-1, 2, 2])],
        "y",
    ))
    .to_string();
    assert!(s.contains("Reshape to [-1, 2, 2]"), "{s}");
}
