//! `lasagna import`: an ONNX graph to a `.lsn` model file.

use crate::error::{ErrorKind, OnnxError, Result};
use crate::meta::{KEY_LABELS, KEY_MEAN, KEY_STD};
use crate::proto::tensor_proto::DataType;
use crate::proto::type_proto::Value as TypeValue;
use crate::proto::{tensor_shape_proto::dimension::Value as Dim, ModelProto};
use crate::walk::{Act, Walk};
use lasagna_format::Shape;
use lasagna_trainer::export::{write_model, ExportInfo, WeightType};
use prost::Message;

/// The opsets the importer reads (what `torch.onnx.export` writes today).
pub const OPSETS: core::ops::RangeInclusive<i64> = 13..=21;

/// What the flags say about the input and the outputs; each one given wins
/// over the model's metadata props.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportOptions {
    /// `--input-mean`.
    pub mean: Option<f32>,
    /// `--input-std`.
    pub std: Option<f32>,
    /// `--labels`, one per output.
    pub labels: Option<Vec<String>>,
}

/// An imported model and what the import did, for the command's report.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// The `.lsn` file's bytes (f32 weights, BatchNorm folded).
    pub lsn: Vec<u8>,
    /// The model's default-domain opset.
    pub opset: i64,
    /// `producer_name producer_version` of the ONNX file.
    pub producer: String,
    /// ONNX nodes read.
    pub nodes: usize,
    /// The `.lsn` ops written, by name, in order.
    pub ops: Vec<String>,
    /// BatchNorms folded into the Conv or Linear before them.
    pub folded: usize,
    /// The input normalization `(mean, std)` written.
    pub normalization: (f32, f32),
    /// Where the normalization came from: "flags", "metadata" or "default".
    pub normalization_from: &'static str,
    /// Number of labels written.
    pub labels: usize,
}

fn opset(m: &ModelProto) -> Result<i64> {
    let v = m
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .ok_or_else(|| {
            OnnxError::new(
                ErrorKind::Opset,
                "the model imports no default-domain opset",
            )
        })?;
    if !OPSETS.contains(&v) {
        return Err(OnnxError::new(ErrorKind::Opset, format!("opset {v} is outside the {}..={} the importer reads", OPSETS.start(), OPSETS.end()))
            .hint("export again with opset_version=17 (torch.onnx.export), or convert with onnx.version_converter"));
    }
    Ok(v)
}

/// The graph's one data input: its name, per-sample shape, and whether it
/// holds integer ids (an Embedding model).
fn input(m: &ModelProto) -> Result<(String, Vec<usize>, bool)> {
    let g = m
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::new(ErrorKind::Graph, "the model has no graph"))?;
    let inits: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let data: Vec<_> = g
        .input
        .iter()
        .filter(|v| !inits.contains(v.name.as_deref().unwrap_or("")))
        .collect();
    let [v] = data[..] else {
        return Err(OnnxError::new(
            ErrorKind::Unsupported,
            format!(
                "the graph has {} data inputs; the engine takes one",
                data.len()
            ),
        ));
    };
    let name = v.name.clone().unwrap_or_default();
    let Some(TypeValue::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(OnnxError::new(
            ErrorKind::Unsupported,
            format!("input `{name}` is not a tensor"),
        ));
    };
    let int = match DataType::try_from(t.elem_type.unwrap_or(0)) {
        Ok(DataType::Float) => false,
        Ok(DataType::Int64) | Ok(DataType::Int32) => true,
        _ => {
            return Err(OnnxError::new(
                ErrorKind::Unsupported,
                format!(
                    "input `{name}` has element type {}; the engine takes float32 (or int64 ids)",
                    t.elem_type.unwrap_or(0)
                ),
            ))
        }
    };
    let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    if dims.len() < 2 || dims.len() > 5 {
        return Err(OnnxError::new(ErrorKind::Shape, format!("input `{name}` has rank {}; the engine takes [N, ...] with 1 to 4 dimensions per sample", dims.len()))
            .hint("export with a batch axis first"));
    }
    let mut sample = Vec::new();
    for (k, d) in dims.iter().enumerate().skip(1) {
        match d.value {
            Some(Dim::DimValue(n)) if n > 0 => sample.push(
                usize::try_from(n)
                    .map_err(|_| OnnxError::new(ErrorKind::Shape, "input dimension too large"))?,
            ),
            Some(Dim::DimParam(ref p)) => {
                return Err(OnnxError::new(
                    ErrorKind::Shape,
                    format!(
                    "input `{name}` axis {k} is dynamic (`{p}`); the engine plans a fixed shape"
                ),
                )
                .hint("make only the batch axis dynamic (dynamic_axes={'input': {0: 'batch'}})"))
            }
            _ => {
                return Err(OnnxError::new(
                    ErrorKind::Shape,
                    format!("input `{name}` axis {k} has no fixed size"),
                )
                .hint("export with a fixed size on every axis but the batch"))
            }
        }
    }
    // The engine addresses a sample with u32 offsets; a bigger one is a
    // hostile or mistaken shape, refused before anything is sized by it.
    let numel = sample
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .filter(|&n| n <= u32::MAX as u64);
    if numel.is_none() {
        return Err(OnnxError::new(
            ErrorKind::Shape,
            format!("input `{name}` has {sample:?} per sample, more than 2^32 values"),
        ));
    }
    Ok((name, sample, int))
}

fn parse_meta(m: &ModelProto, key: &str) -> Result<Option<f32>> {
    match m
        .metadata_props
        .iter()
        .find(|p| p.key.as_deref() == Some(key))
    {
        None => Ok(None),
        Some(p) => {
            let s = p.value.as_deref().unwrap_or("");
            match s.trim().parse::<f32>() {
                Ok(v) if v.is_finite() => Ok(Some(v)),
                _ => Err(OnnxError::new(
                    ErrorKind::Model,
                    format!("metadata prop {key} = `{s}` is not a finite number"),
                )
                .hint(format!(
                    "fix the prop, or give --input-{}",
                    key.rsplit('.').next().unwrap_or(key)
                ))),
            }
        }
    }
}

/// Reads an ONNX model and writes it as a `.lsn` file.
pub fn import(onnx: &[u8], opts: &ImportOptions) -> Result<Imported> {
    let m = ModelProto::decode(onnx).map_err(|e| {
        OnnxError::new(ErrorKind::Decode, format!("not an ONNX model: {e}"))
            .hint("give the .onnx file that torch.onnx.export wrote")
    })?;
    let opset = opset(&m)?;
    let (name, dims, int) = input(&m)?;
    let g = m
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::new(ErrorKind::Graph, "the model has no graph"))?;
    let u: Vec<u32> = dims
        .iter()
        .map(|&d| u32::try_from(d).unwrap_or(u32::MAX))
        .collect();
    let shape = Shape::new(&u).ok_or_else(|| {
        OnnxError::new(
            ErrorKind::Shape,
            format!("input shape {dims:?} does not fit the format"),
        )
    })?;
    let act = Act {
        dims: dims.clone(),
        batch: 0,
    };
    let mut w = Walk::new(g, (name, act), shape)?;
    for i in 0..g.node.len() {
        w.step(i)?;
    }
    let outs: Vec<&str> = g.output.iter().filter_map(|o| o.name.as_deref()).collect();
    if outs != [w.current.as_str()] {
        return Err(OnnxError::new(
            ErrorKind::Unsupported,
            format!(
                "the graph's outputs {outs:?} are not the last layer's output `{}`",
                w.current
            ),
        )
        .hint("the engine returns one tensor, the last layer's"));
    }
    if int
        && !matches!(
            w.ops.first(),
            Some((lasagna_format::Op::Embedding { .. }, _))
        )
    {
        return Err(OnnxError::new(
            ErrorKind::Unsupported,
            "an integer input that does not feed an Embedding (Gather)",
        ));
    }
    let ops = w.ops;
    let before = ops.len();
    let ops = lasagna_trainer::fold::fold_batchnorm(ops, shape);
    let folded = before - ops.len();
    let names = ops
        .iter()
        .map(|(op, _)| op.kind().name().to_string())
        .collect();
    let outputs = w.shape.numel();

    let (normalization, from) = match (
        opts.mean,
        opts.std,
        parse_meta(&m, KEY_MEAN)?,
        parse_meta(&m, KEY_STD)?,
    ) {
        (Some(a), Some(b), _, _) => ((a, b), "flags"),
        (fa, fb, ma, mb) if fa.is_some() || fb.is_some() => (
            (fa.or(ma).unwrap_or(0.0), fb.or(mb).unwrap_or(1.0)),
            "flags",
        ),
        (_, _, Some(a), Some(b)) => ((a, b), "metadata"),
        _ => ((0.0, 1.0), "default"),
    };
    if normalization.1.is_nan() || normalization.1 <= 0.0 || !normalization.1.is_finite() {
        return Err(OnnxError::new(
            ErrorKind::Model,
            format!("input std {} is not positive", normalization.1),
        ));
    }
    let labels: Vec<String> = match &opts.labels {
        Some(l) => l.clone(),
        None => m
            .metadata_props
            .iter()
            .find(|p| p.key.as_deref() == Some(KEY_LABELS))
            .and_then(|p| p.value.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(|l| l.trim().to_string()).collect())
            .unwrap_or_default(),
    };
    if !labels.is_empty() && labels.len() as u64 != outputs {
        return Err(OnnxError::new(
            ErrorKind::Model,
            format!("{} labels for {outputs} outputs", labels.len()),
        )
        .hint("give one label per output (--labels a,b,...)"));
    }
    let producer = format!(
        "{} {}",
        m.producer_name.as_deref().unwrap_or("unknown"),
        m.producer_version.as_deref().unwrap_or("")
    )
    .trim()
    .to_string();
    let mut meta: Vec<(String, String)> = m
        .metadata_props
        .iter()
        .filter_map(|p| Some((p.key.clone()?, p.value.clone().unwrap_or_default())))
        .filter(|(k, _)| {
            k.starts_with("lasagna.") && ![KEY_MEAN, KEY_STD, KEY_LABELS].contains(&k.as_str())
        })
        .collect();
    for (k, v) in [
        ("lasagna.import.producer", producer.clone()),
        ("lasagna.import.opset", opset.to_string()),
    ] {
        if !meta.iter().any(|(mk, _)| mk == k) {
            meta.push((k.to_string(), v));
        }
    }
    let info = ExportInfo {
        normalization,
        labels: labels.clone(),
        meta,
    };
    let input: Vec<usize> = dims;
    let lsn = write_model(&input, ops, &info, WeightType::F32).map_err(|e| {
        OnnxError::new(
            ErrorKind::Model,
            format!("the imported model cannot be written: {e}"),
        )
    })?;
    Ok(Imported {
        lsn,
        opset,
        producer,
        nodes: g.node.len(),
        ops: names,
        folded,
        normalization,
        normalization_from: from,
        labels: labels.len(),
    })
}
