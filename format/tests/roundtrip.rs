//! Property: random valid graphs round-trip writer -> reader exactly.
mod common;

use lasagna_format::{AlignedModel, DType, Model, ModelBuilder, Quant, QuantData};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_valid_graphs_round_trip_field_by_field(seed in any::<u64>()) {
        let b = common::random_builder(seed);
        let bytes = b.build().map_err(|e| TestCaseError::fail(format!("build: {e}")))?;
        let m = Model::parse(&bytes).map_err(|e| TestCaseError::fail(format!("parse: {e}")))?;

        // What went in is what comes out: rebuild a description from the reader
        // and compare it with the one we wrote, op by op and tensor by tensor.
        let back = ModelBuilder::from_model(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let shapes = b.shapes().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(m.input_shape(), shapes[0]);
        prop_assert_eq!(m.output_shape(), *shapes.last().unwrap_or(&shapes[0]));
        prop_assert_eq!(format!("{:?}", back.shapes().ok()), format!("{:?}", Some(shapes)));
        let written = format!("{b:?}");
        let read = format!("{back:?}");
        // Debug output covers ops, tensors (bytes, quant), value types,
        // labels, metadata and normalization; only the plan differs (the
        // read-back builder carries the file's plan explicitly).
        let strip = |s: &str| s.split(", fixed_plan").next().unwrap_or("").to_string();
        prop_assert_eq!(strip(&written), strip(&read));

        // And the format is canonical: the read-back description writes the same bytes.
        let again = back.build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(again == bytes, "rebuilt file differs from the original");

        // Every tensor is reachable and its typed view agrees with its dtype.
        for i in 0..m.tensor_count() {
            let t = m.tensor(i).ok_or_else(|| TestCaseError::fail("tensor missing"))?;
            prop_assert_eq!(t.offset % 16, 0);
            prop_assert_eq!(t.data.len() as u64, t.shape.numel() * t.dtype.size() as u64);
            match t.dtype {
                DType::I8 => prop_assert!(t.quant != Quant::None),
                _ => prop_assert!(t.quant == Quant::None),
            }
            prop_assert!(t.value_f32(0).is_some());
        }
        // Sanity on the helper that names quantization data.
        prop_assert!(!common::dtype_of(&QuantData::None, DType::F32).is_empty());
    }
}

#[test]
fn zero_copy_views_borrow_the_file_in_place() {
    let b = common::random_builder(7);
    let bytes = b.build().unwrap_or_default();
    // Copy into a 16-byte-aligned buffer, as `include_model!` does on a device.
    let aligned = AlignedModel::new(&bytes);
    let m = Model::parse(&aligned);
    assert!(m.is_ok(), "{m:?}");
    if let Ok(m) = m {
        for i in 0..m.tensor_count() {
            let Some(t) = m.tensor(i) else { continue };
            let ok = match t.dtype {
                DType::F32 => t
                    .as_f32()
                    .map(|s| std::ptr::eq(s.as_ptr().cast::<u8>(), t.data.as_ptr()))
                    .unwrap_or(false),
                DType::F16 => t.as_f16().is_ok(),
                DType::I8 => t.as_i8().is_ok(),
                DType::I32 => t.as_i32().is_ok(),
            };
            assert!(ok, "tensor {i} could not be borrowed in place");
        }
    }
}

#[test]
fn the_generator_covers_every_op_kind_and_dtype() {
    use std::collections::BTreeSet;
    let mut kinds = BTreeSet::new();
    let mut dtypes = BTreeSet::new();
    for seed in 0..2000u64 {
        let Ok(bytes) = common::random_builder(seed).build() else {
            continue;
        };
        let Ok(m) = Model::parse(&bytes) else {
            continue;
        };
        for e in m.ops() {
            kinds.insert(e.op.kind().name());
        }
        for i in 0..m.tensor_count() {
            if let Some(t) = m.tensor(i) {
                dtypes.insert(format!(
                    "{}{}",
                    t.dtype,
                    match t.quant {
                        Quant::PerChannel(_) => "/channel",
                        Quant::PerTensor { .. } => "/tensor",
                        Quant::None => "",
                    }
                ));
            }
        }
    }
    assert_eq!(kinds.len(), 17, "op kinds generated: {kinds:?}");
    assert_eq!(dtypes.len(), 5, "tensor dtypes generated: {dtypes:?}");
}
