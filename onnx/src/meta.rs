//! The metadata props that carry what the network alone does not say: the
//! input normalization and the class labels. `lasagna export --onnx` writes
//! them; `lasagna import` reads them (flags win over them).

/// `metadata_props` key of the input mean: `x = (pixel / 255 - mean) / std`.
pub const KEY_MEAN: &str = "lasagna.input.mean";
/// `metadata_props` key of the input standard deviation.
pub const KEY_STD: &str = "lasagna.input.std";
/// `metadata_props` key of the class labels, comma-separated.
pub const KEY_LABELS: &str = "lasagna.labels";
