//! Damaged and hostile `.onnx` files: every one gives a typed error, never
//! a panic, and no single allocation grows beyond what the file's size
//! justifies (a counting allocator watches each test thread).

use lasagna_onnx::proto::tensor_proto::DataType;
use lasagna_onnx::proto::*;
use lasagna_onnx::{import, ErrorKind, ImportOptions};
use proptest::prelude::*;
use prost::Message;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;

/// The system allocator, recording the largest request of each thread.
struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LARGEST.with(|m| m.set(m.get().max(l.size())));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        LARGEST.with(|m| m.set(m.get().max(size)));
        unsafe { System.realloc(p, l, size) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Imports `bytes`, returning the result's kind and the largest single
/// allocation made meanwhile.
fn watched(bytes: &[u8]) -> (Result<(), ErrorKind>, usize) {
    LARGEST.with(|m| m.set(0));
    let r = import(bytes, &ImportOptions::default())
        .map(|_| ())
        .map_err(|e| e.kind);
    (r, LARGEST.with(Cell::get))
}

/// What a file of `len` bytes may allocate at once: a few copies of its
/// data (decoded tensors, the `.lsn` written) and a fixed allowance.
fn justified(len: usize) -> usize {
    4 * len + (256 << 10)
}

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn tiny(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, dims: &[i64]) -> ModelProto {
    use lasagna_onnx::proto::tensor_shape_proto::{dimension, Dimension};
    use lasagna_onnx::proto::type_proto::{Tensor, Value};
    let mut dim = vec![Dimension {
        value: Some(dimension::Value::DimParam("N".into())),
        ..Default::default()
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(dimension::Value::DimValue(d)),
        ..Default::default()
    }));
    let vi = |name: &str, dim: Vec<Dimension>| ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = nodes
        .last()
        .and_then(|n| n.output.first().cloned())
        .unwrap_or_default();
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![vi("x", dim)],
            output: vec![vi(&out, vec![])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(ty: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        op_type: Some(ty.into()),
        name: Some(format!("{ty}0")),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A tensor that claims `dims` over `raw` bytes.
fn claims(name: &str, dims: &[i64], raw: usize) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(vec![0; raw]),
        ..Default::default()
    }
}

fn expect(case: &str, m: &ModelProto, kind: ErrorKind) {
    let bytes = m.encode_to_vec();
    let (r, largest) = watched(&bytes);
    println!(
        "{case}: {r:?}, largest allocation {largest} B for a {} B file",
        bytes.len()
    );
    assert_eq!(r, Err(kind), "{case}");
    assert!(
        largest <= justified(bytes.len()),
        "{case}: allocated {largest} B at once for a {} B file",
        bytes.len()
    );
}

#[test]
fn hostile_files_give_typed_errors_within_the_files_allocation_budget() {
    // 2^31 elements declared over 16 bytes, as a Gemm weight.
    let gemm = node("Gemm", &["x", "W"], &["y"]);
    expect(
        "2^31-element initializer",
        &tiny(vec![gemm.clone()], vec![claims("W", &[1 << 31], 16)], &[4]),
        ErrorKind::Tensor,
    );
    expect(
        "i64::MAX dims",
        &tiny(
            vec![gemm.clone()],
            vec![claims("W", &[i64::MAX, i64::MAX], 16)],
            &[4],
        ),
        ErrorKind::Tensor,
    );
    expect(
        "negative dim",
        &tiny(vec![gemm.clone()], vec![claims("W", &[-4, 4], 64)], &[4]),
        ErrorKind::Tensor,
    );
    // An input of 2^40 values per sample.
    expect(
        "absurd input",
        &tiny(
            vec![node("Relu", &["x"], &["y"])],
            vec![],
            &[1 << 20, 1 << 20],
        ),
        ErrorKind::Shape,
    );
    // A cycle: a node reads its own output; two nodes read each other's.
    expect(
        "self loop",
        &tiny(vec![node("Add", &["x", "y"], &["y"])], vec![], &[4]),
        ErrorKind::Graph,
    );
    expect(
        "two-node cycle",
        &tiny(
            vec![node("Relu", &["b"], &["a"]), node("Relu", &["a"], &["b"])],
            vec![],
            &[4],
        ),
        ErrorKind::Graph,
    );
    // Wrong types: a string tensor as a weight; a float attribute where an int belongs.
    let mut s = claims("W", &[4, 3], 0);
    s.data_type = Some(DataType::String as i32);
    expect(
        "string weight",
        &tiny(vec![gemm.clone()], vec![s], &[4]),
        ErrorKind::Unsupported,
    );
    let mut g = gemm.clone();
    g.attribute.push(AttributeProto {
        name: Some("transB".into()),
        r#type: Some(3),
        s: Some(b"yes".to_vec()),
        ..Default::default()
    });
    expect(
        "string-typed transB",
        &tiny(vec![g], vec![claims("W", &[4, 3], 48)], &[4]),
        ErrorKind::Graph,
    );
    // An LSTM whose hidden_size would overflow 4 * h.
    let mut l = node("LSTM", &["x", "W", "R"], &["", "h"]);
    l.attribute.push(AttributeProto {
        name: Some("hidden_size".into()),
        r#type: Some(2),
        i: Some(i64::MAX / 2),
        ..Default::default()
    });
    let t = node("Transpose", &["x"], &["xt"]);
    let mut l2 = l.clone();
    l2.input[0] = "xt".into();
    let mut t2 = t.clone();
    t2.attribute.push(AttributeProto {
        name: Some("perm".into()),
        r#type: Some(7),
        ints: vec![1, 0, 2],
        ..Default::default()
    });
    expect(
        "LSTM hidden_size overflow",
        &tiny(
            vec![t2, l2],
            vec![claims("W", &[1, 8, 3], 96), claims("R", &[1, 8, 2], 64)],
            &[5, 3],
        ),
        ErrorKind::Shape,
    );
    // Not protobuf at all, and an empty file.
    for (case, bytes) in [
        ("text", b"hello, this is not a model".to_vec()),
        ("empty", vec![]),
    ] {
        let (r, largest) = watched(&bytes);
        println!("{case}: {r:?}, largest {largest} B");
        assert!(
            matches!(
                r,
                Err(ErrorKind::Decode) | Err(ErrorKind::Opset) | Err(ErrorKind::Graph)
            ),
            "{case}: {r:?}"
        );
        assert!(largest <= justified(bytes.len()), "{case}");
    }
}

#[test]
fn every_truncation_of_a_fixture_is_an_error_not_a_panic() {
    let bytes = fixture("cnn_bn.onnx");
    // Every 97th length, and the last 256 bytes one by one. A cut that
    // falls between two of the model's trailing fields (its opset, its
    // metadata) is still a well-formed protobuf, so those may import; any
    // cut into the graph may not.
    let tail = bytes.len() - 256;
    let cuts = (0..tail).step_by(97).chain(tail..bytes.len());
    for n in cuts {
        let (r, largest) = watched(&bytes[..n]);
        assert!(r.is_err() || n >= tail, "a {n}-byte prefix imported");
        assert!(largest <= justified(bytes.len()), "prefix {n}: {largest} B");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Random byte damage to each fixture: an error or a model, never a
    /// panic, and never an allocation the file does not justify.
    #[test]
    fn damaged_fixtures_never_panic(which in 0usize..3, edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12)) {
        let mut bytes = fixture(["mlp.onnx", "cnn_bn.onnx", "lstm.onnx"][which]);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let (_, largest) = watched(&bytes);
        prop_assert!(largest <= justified(bytes.len()), "{largest} B for a {} B file", bytes.len());
    }
}
