//! Between trained models and model files: export to `lasagna-format`, and
//! import a file back into layers for evaluation.

use crate::backend::{Act, Backend};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::layers::{
    Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Embedding, Flatten,
    Layer, LayerNorm, Layers, Linear, Lstm, MaxPool2d, Softmax,
};
use crate::model::Model;
use lasagna_format::{ModelBuilder, Op, TensorData};

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

/// Writes `model` as an f32 model file (eval semantics: Dropout disappears).
pub fn export_f32<B: Backend>(b: &B, model: &Model<B>, info: &ExportInfo) -> Result<Vec<u8>> {
    let dims = model
        .input_shape()
        .iter()
        .map(|&d| to_u32(d, "input dimension"))
        .collect::<Result<Vec<u32>>>()?;
    let mut builder = ModelBuilder::new(&dims);
    builder.normalization(info.normalization.0, info.normalization.1);
    for (op, tensors) in model.export(b)? {
        let data = tensors
            .iter()
            .enumerate()
            .map(|(j, values)| {
                let shape = op.tensor_spec(j).map(|(_, _, s)| s).ok_or_else(|| {
                    Error::config("export", format!("{} has no tensor {j}", op.kind()))
                })?;
                Ok(TensorData::f32(shape.dims(), values))
            })
            .collect::<Result<Vec<_>>>()?;
        builder.op(op, data);
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

fn pair(v: [u8; 2]) -> (usize, usize) {
    (v[0] as usize, v[1] as usize)
}

/// Layers equivalent to a model file's ops, and the tensors to load into
/// them (parameters first, then buffers such as running statistics).
pub fn import<B: Backend>(m: &lasagna_format::Model<'_>) -> Result<(Layers<B>, Vec<Vec<f32>>)> {
    let mut layers: Vec<Box<dyn Layer<B>>> = Vec::new();
    let mut tensors = Vec::new();
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
        for j in 0..e.n_tensors {
            let t = m.op_tensor(&e, j).ok_or_else(unsupported)?;
            let n = t.shape.numel() as usize;
            tensors.push((0..n).map(|i| t.value_f32(i).unwrap_or(f32::NAN)).collect());
        }
        layers.push(layer);
    }
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
    let mut model = Model::build(b, layers, &input, max_batch, 0)?;
    model.restore(b, &tensors)?;
    model.eval();
    Ok(model)
}
