//! Between trained models and model files: export to `lasagna-format`, and
//! import a file back into layers for evaluation.

use crate::backend::{Act, Backend};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::layers::ExportOp;
use crate::layers::{
    Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Embedding, Flatten,
    Layer, LayerNorm, Layers, Linear, Lstm, MaxPool2d, Softmax,
};
use crate::model::Model;
use lasagna_format::{ModelBuilder, Op, OpSpec, TensorData, ValueType, WeightLayout};

/// What the exporter writes besides the network.
#[derive(Clone, Debug, Default)]
pub struct ExportInfo {
    /// Input normalization `(mean, std)`.
    pub normalization: (f32, f32),
    /// Class labels (one per output, or empty).
    pub labels: Vec<String>,
    /// Metadata entries (`lasagna.train.test_accuracy`, ...).
    pub meta: Vec<(String, String)>,
}

fn to_u32(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::config("export", format!("{what} {v} exceeds the format's u32")))
}

/// How weights are stored in a written file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    /// 32-bit floats, exact.
    F32,
    /// 16-bit floats (half the bytes; the engine computes in f32).
    F16,
}

impl WeightType {
    /// The name written to the `lasagna.export.weights` metadata key.
    pub fn name(self) -> &'static str {
        match self {
            WeightType::F32 => "f32",
            WeightType::F16 => "f16",
        }
    }
}

/// Writes `model` as an f32 model file (eval semantics: Dropout disappears).
pub fn export_f32<B: Backend>(b: &B, model: &Model<B>, info: &ExportInfo) -> Result<Vec<u8>> {
    write_model(model.input_shape(), model.export(b)?, info, WeightType::F32)
}

/// Writes format ops (with host tensors) as a model file: weights in
/// `weights`, every op given the scratch the no_std engine asks for, the
/// arena planned by the format's writer.
pub fn write_model(
    input: &[usize],
    ops: Vec<ExportOp>,
    info: &ExportInfo,
    weights: WeightType,
) -> Result<Vec<u8>> {
    let specs = float_specs(input, &ops, weights)?;
    write_specs(input, float_input(&ops), specs, info)
}

/// The input value type of a float model of `ops`: `i32` token ids when
/// the first op is an Embedding (the format's rule), else `f32`.
pub fn float_input(ops: &[ExportOp]) -> ValueType {
    match ops.first() {
        Some((lasagna_format::Op::Embedding { .. }, _)) => ValueType::I32,
        _ => ValueType::F32,
    }
}

/// Format op specs for ops with float weights: tensors stored as `weights`,
/// every value `f32`, scratch as [`lasagna_infer::scratch_bytes`] asks.
pub fn float_specs(input: &[usize], ops: &[ExportOp], weights: WeightType) -> Result<Vec<OpSpec>> {
    let mut shape = input_shape(input)?;
    let mut specs = Vec::with_capacity(ops.len());
    for &(op, ref tensors) in ops {
        let data = tensors
            .iter()
            .enumerate()
            .map(|(j, values)| {
                let dims = tensor_dims(&op, j)?;
                Ok(match weights {
                    WeightType::F32 => TensorData::f32(&dims, values),
                    WeightType::F16 => TensorData::f16(&dims, values),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let scratch = lasagna_infer::scratch_bytes(&op, &shape);
        specs.push(OpSpec {
            op,
            tensors: data,
            output: ValueType::F32,
            scratch_bytes: to_u32(scratch, "scratch bytes")?,
        });
        shape = next_shape(&op, shape)?;
    }
    Ok(specs)
}

/// The per-sample input shape as the format's [`lasagna_format::Shape`].
fn input_shape(input: &[usize]) -> Result<lasagna_format::Shape> {
    let dims = input
        .iter()
        .map(|&d| to_u32(d, "input dimension"))
        .collect::<Result<Vec<u32>>>()?;
    lasagna_format::Shape::new(&dims)
        .ok_or_else(|| Error::config("export", "input rank must be 1 to 4"))
}

/// The output shape of `op` for input `shape`, as an export error if it does not fit.
fn next_shape(op: &Op, shape: lasagna_format::Shape) -> Result<lasagna_format::Shape> {
    op.infer_shape(shape).map_err(|reason| {
        Error::config(
            "export",
            format!("{} does not fit its input: {reason}", op.kind()),
        )
    })
}

/// Dimensions of tensor `j` of `op` (PyTorch's layout).
pub(crate) fn tensor_dims(op: &Op, j: usize) -> Result<Vec<u32>> {
    op.tensor_spec(j)
        .map(|(_, _, s)| s.dims().to_vec())
        .ok_or_else(|| Error::config("export", format!("{} has no tensor {j}", op.kind())))
}

/// Writes ready-made format op specs as a model file: `input_type` is the
/// type of value 0 (`f32`, or `i8` for an int8 model), normalization,
/// labels and metadata come from `info`, and the format's writer plans the
/// arena.
pub fn write_specs(
    input: &[usize],
    input_type: ValueType,
    specs: Vec<OpSpec>,
    info: &ExportInfo,
) -> Result<Vec<u8>> {
    let shape = input_shape(input)?;
    let mut builder = ModelBuilder::new(shape.dims());
    builder
        .input_type(input_type)
        .normalization(info.normalization.0, info.normalization.1);
    for spec in specs {
        builder.push(spec);
    }
    if !info.labels.is_empty() {
        builder.labels(info.labels.iter().cloned());
    }
    for (k, v) in &info.meta {
        builder.meta(k.clone(), v.clone());
    }
    builder
        .build()
        .map_err(|e| Error::config("export", format!("the model could not be written: {e}")))
}

/// The ops of a model file with their tensors as host `f32` (dequantized if
/// stored otherwise) and row-major (an interleaved int8 Linear weight is put
/// back in order, and its op says row-major).
pub fn file_ops(m: &lasagna_format::Model<'_>) -> Result<Vec<ExportOp>> {
    let mut ops = Vec::new();
    for e in m.ops() {
        let mut tensors = Vec::new();
        for j in 0..e.n_tensors {
            let t = m.op_tensor(&e, j).ok_or_else(|| {
                Error::config("model file", format!("op {} lacks tensor {j}", e.index))
            })?;
            let n = t.shape.numel() as usize;
            // Tensor 0 in the op's weight layout (an int8 Linear may be
            // interleaved, FORMAT.md 6.2), the rest as stored: host order.
            let layout = if j == 0 {
                e.op.weight_layout()
            } else {
                WeightLayout::RowMajor
            };
            tensors.push(
                (0..n)
                    .map(|i| t.value_f32_in(layout, i).unwrap_or(f32::NAN))
                    .collect(),
            );
        }
        // The tensors are now in host (row-major) order, and so is the op.
        ops.push((e.op.with_weight_layout(WeightLayout::RowMajor), tensors));
    }
    Ok(ops)
}

/// What `deploy` did, for the command's report.
#[derive(Clone, Debug, PartialEq)]
pub struct DeployReport {
    /// Ops before and after folding.
    pub ops: (usize, usize),
    /// BatchNorms folded into the layer before them.
    pub folded: usize,
}

/// A trained model file with its BatchNorms folded: what every deployment
/// (f32, f16, int8) starts from.
#[derive(Clone, Debug)]
pub struct Folded {
    /// Per-sample input shape.
    pub input: Vec<usize>,
    /// The ops after folding, with host `f32` tensors.
    pub ops: Vec<ExportOp>,
    /// Normalization, labels and the file's metadata, without earlier
    /// `lasagna.export.*` keys but with `lasagna.export.folded_batchnorm`.
    pub info: ExportInfo,
    /// Ops before and after folding.
    pub report: DeployReport,
}

/// Parses a trained model file and folds its BatchNorms.
pub fn fold_file(bytes: &[u8]) -> Result<Folded> {
    let m = lasagna_format::Model::parse(bytes)
        .map_err(|e| Error::config("model file", e.to_string()))?;
    fold_model(&m)
}

/// Folds the BatchNorms of a parsed trained model file.
pub fn fold_model(m: &lasagna_format::Model<'_>) -> Result<Folded> {
    let ops = file_ops(m)?;
    let before = ops.len();
    let folded = crate::fold::fold_batchnorm(ops, m.input_shape());
    let report = DeployReport {
        ops: (before, folded.len()),
        folded: before - folded.len(),
    };
    let mut meta: Vec<(String, String)> = m
        .meta()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    meta.retain(|(k, _)| !k.starts_with("lasagna.export."));
    meta.push((
        "lasagna.export.folded_batchnorm".into(),
        report.folded.to_string(),
    ));
    Ok(Folded {
        input: m.input_shape().dims().iter().map(|&d| d as usize).collect(),
        ops: folded,
        info: ExportInfo {
            normalization: m.normalization(),
            labels: m.labels().map(String::from).collect(),
            meta,
        },
        report,
    })
}

/// Turns a trained model file into a deployment file: BatchNorms folded,
/// weights stored as `weights`, labels and metadata kept.
pub fn deploy(bytes: &[u8], weights: WeightType) -> Result<(Vec<u8>, DeployReport)> {
    let Folded {
        input,
        ops,
        mut info,
        report,
    } = fold_file(bytes)?;
    info.meta
        .push(("lasagna.export.weights".into(), weights.name().into()));
    Ok((write_model(&input, ops, &info, weights)?, report))
}

fn pair(v: [u8; 2]) -> (usize, usize) {
    (v[0] as usize, v[1] as usize)
}

/// Layers equivalent to a model file's ops, and the tensors to load into
/// them (parameters first, then buffers such as running statistics).
pub fn import<B: Backend>(m: &lasagna_format::Model<'_>) -> Result<(Layers<B>, Vec<Vec<f32>>)> {
    let mut layers: Vec<Box<dyn Layer<B>>> = Vec::new();
    for e in m.ops() {
        let unsupported = || {
            Error::config(
                "model file",
                format!(
                    "op {} ({}) is not supported by the trainer yet",
                    e.index,
                    e.op.kind()
                ),
            )
        };
        let layer: Box<dyn Layer<B>> = match e.op {
            Op::Linear {
                in_features,
                out_features,
                bias,
                ..
            } => Box::new(Linear::new(
                in_features as usize,
                out_features as usize,
                bias,
                Init::Default,
            )),
            Op::Flatten => Box::new(Flatten::new()),
            Op::Relu => Box::new(Activation::new(Act::Relu)),
            Op::LeakyRelu { alpha } => Box::new(Activation::new(Act::LeakyRelu(alpha))),
            Op::Gelu { tanh } => Box::new(Activation::new(if tanh {
                Act::GeluTanh
            } else {
                Act::Gelu
            })),
            Op::Silu => Box::new(Activation::new(Act::Silu)),
            Op::Sigmoid => Box::new(Activation::new(Act::Sigmoid)),
            Op::Tanh => Box::new(Activation::new(Act::Tanh)),
            Op::Softmax => Box::new(Softmax::new()),
            Op::BatchNorm { features, eps } if e.input.shape.rank() <= 2 => {
                Box::new(BatchNorm1d::new(features as usize, eps, 0.1)?)
            }
            Op::BatchNorm { features, eps } => {
                Box::new(BatchNorm2d::new(features as usize, eps, 0.1)?)
            }
            Op::Conv2d {
                in_channels,
                out_channels,
                groups,
                window: w,
                bias,
            } => Box::new(Conv2d::new(
                in_channels as usize,
                out_channels as usize,
                pair(w.kernel),
                pair(w.stride),
                pair(w.padding),
                pair(w.dilation),
                groups as usize,
                bias,
                Init::Default,
            )?),
            Op::MaxPool2d { window: w } => Box::new(MaxPool2d::new(
                pair(w.kernel),
                pair(w.stride),
                pair(w.padding),
            )?),
            Op::AvgPool2d {
                window: w,
                count_include_pad,
            } => Box::new(AvgPool2d::new(
                pair(w.kernel),
                pair(w.stride),
                pair(w.padding),
                count_include_pad,
            )?),
            Op::AdaptiveAvgPool2d { out_h, out_w } => {
                Box::new(AdaptiveAvgPool2d::new(out_h as usize, out_w as usize)?)
            }
            Op::Lstm {
                input_size,
                hidden_size,
                layers,
                return_sequences,
                ..
            } => Box::new(Lstm::new(
                input_size as usize,
                hidden_size as usize,
                layers as usize,
                return_sequences,
            )?),
            Op::LayerNorm { size, eps } => Box::new(LayerNorm::new(size as usize, eps)?),
            Op::Embedding { num, dim } => Box::new(Embedding::new(num as usize, dim as usize)),
            _ => return Err(unsupported()),
        };
        layers.push(layer);
    }
    // Tensors in op order: each layer takes its parameters, then its buffers.
    let tensors = file_ops(m)?.into_iter().flat_map(|(_, t)| t).collect();
    Ok((layers, tensors))
}

/// Builds a model from a file, with its weights loaded, ready for `eval()`.
pub fn load_model<B: Backend>(
    b: &B,
    m: &lasagna_format::Model<'_>,
    max_batch: usize,
) -> Result<Model<B>> {
    let (layers, tensors) = import::<B>(m)?;
    let input: Vec<usize> = m.input_shape().dims().iter().map(|&d| d as usize).collect();
    // The file's shapes decide the activation buffers: refuse them before
    // allocating when they do not fit (no optimizer, so no state).
    let need = crate::footprint::estimate(&layers, &input, max_batch, 0)?;
    let host = b.location() == crate::backend::Location::Host;
    crate::footprint::check(&need, crate::footprint::limit(None, host))?;
    let mut model = Model::build(b, layers, &input, max_batch, 0)?;
    model.restore(b, &tensors)?;
    model.eval();
    Ok(model)
}
