//! The PyTorch-made fixtures (`onnx/fixtures/`, see its README) import to
//! the layers PyTorch had, and survive import → export → import unchanged.

use lasagna_onnx::{export, import, ImportOptions};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn ops(name: &str) -> Vec<String> {
    match import(&fixture(name), &ImportOptions::default()) {
        Ok(i) => i.ops,
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn each_fixture_imports_to_the_layers_pytorch_had() {
    assert_eq!(
        ops("mlp.onnx"),
        ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    );
    let cnn = ["Conv2d", "ReLU", "MaxPool2d"];
    let mut want: Vec<&str> = cnn.iter().chain(&cnn).chain(&cnn).copied().collect();
    want.extend(["Flatten", "Linear"]);
    assert_eq!(ops("cnn_bn.onnx"), want);
    assert_eq!(ops("lstm.onnx"), ["LSTM", "Linear"]);
}

#[test]
fn the_cnn_folds_its_three_batchnorms_and_metadata_sets_normalization_and_labels() {
    let i = import(&fixture("cnn_bn.onnx"), &ImportOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(i.folded, 3);
    assert_eq!(
        (i.normalization, i.normalization_from, i.labels),
        ((0.1307, 0.3081), "metadata", 10)
    );
    let flags = ImportOptions {
        mean: Some(0.5),
        std: Some(0.25),
        labels: Some((0..10).map(|d| format!("digit {d}")).collect()),
    };
    let i = import(&fixture("cnn_bn.onnx"), &flags).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (i.normalization, i.normalization_from),
        ((0.5, 0.25), "flags")
    );
    let m = lasagna_format::Model::parse(&i.lsn).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.labels().nth(3), Some("digit 3"));
}

#[test]
fn import_export_import_gives_the_same_bytes() {
    for name in ["mlp.onnx", "cnn_bn.onnx", "lstm.onnx"] {
        let a = import(&fixture(name), &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let onnx = export(&a.lsn).unwrap_or_else(|e| panic!("{name} export: {e}"));
        let b = import(&onnx, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{name} re-import: {e}"));
        assert_eq!(a.ops, b.ops, "{name}");
        assert!(
            a.lsn == b.lsn,
            "{name}: the re-imported .lsn differs ({} vs {} bytes)",
            a.lsn.len(),
            b.lsn.len()
        );
    }
}
