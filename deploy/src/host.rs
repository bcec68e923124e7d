//! The host reference for a deployment: the same engine, the same inputs,
//! the same argmax and the same checksum as the firmware (`lasagna-protocol`), so the
//! device can be checked prediction by prediction and, on the int8 path,
//! bit for bit.

use crate::error::{Error, Result};
use crate::predictions::{Outputs, Values};
use lasagna_format::{AlignedModel, DType};
use lasagna_infer::quant::QParams;
use lasagna_protocol::argmax::{argmax, ordered};
use lasagna_protocol::checksum::Fnv1a;
use std::path::Path;

/// Elements of an MNIST image, the firmware's input (`images.bin`).
pub const MNIST_INPUT_LEN: usize = 28 * 28;

/// How a model stores its weights (what `lasagna export --quantize` chose).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    /// f32 weights and activations.
    F32,
    /// f16 weights, f32 activations and arithmetic.
    F16,
    /// int8 weights and activations, integer arithmetic.
    Int8,
}

impl Weights {
    /// `f32`, `f16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Weights::F32 => "f32",
            Weights::F16 => "f16",
            Weights::Int8 => "int8",
        }
    }
}

/// What deploy needs to know about a model before building for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelFacts {
    /// File size: what the firmware embeds in flash.
    pub model_bytes: u64,
    /// The memory plan's arena: a static in RAM.
    pub arena_bytes: u64,
    /// How the weights are stored.
    pub weights: Weights,
}

impl ModelFacts {
    /// Whether the model runs on the int8 path.
    pub fn int8(&self) -> bool {
        self.weights == Weights::Int8
    }
}

fn engine_err(path: &Path) -> impl Fn(lasagna_infer::Error) -> Error + '_ {
    move |e| Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!("the no_std engine cannot run it: {e}"),
    }
}

/// Checks that `bytes` is a model the firmware can run on MNIST: it parses,
/// the engine prepares it, and it takes one 784-value f32 or int8 image.
pub fn check_model(path: &Path, bytes: &[u8]) -> Result<ModelFacts> {
    lasagna_format::Model::parse(bytes).map_err(|e| Error::ModelFile {
        path: path.to_path_buf(),
        reason: format!(
            "{e}. HINT: deploy takes a file written by `lasagna export` (or `lasagna train --out`)"
        ),
    })?;
    let aligned = AlignedModel::new(bytes);
    let engine = lasagna_infer::Engine::new(aligned.bytes()).map_err(engine_err(path))?;
    if !matches!(engine.input_dtype(), DType::F32 | DType::I8) {
        return Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!(
                "its input is {} (token ids); the firmware feeds MNIST images (f32 or int8)",
                engine.input_dtype().name()
            ),
        });
    }
    if engine.input_len() != MNIST_INPUT_LEN {
        return Err(Error::ModelFile {
            path: path.to_path_buf(),
            reason: format!(
                "its input is {} ({} values), but the firmware feeds MNIST images of \
                 {MNIST_INPUT_LEN} values (1 x 28 x 28)",
                engine.model().input_shape(),
                engine.input_len()
            ),
        });
    }
    let model = engine.model();
    let f16 = (0..model.tensor_count())
        .filter_map(|i| model.tensor(i))
        .any(|t| t.dtype == DType::F16);
    Ok(ModelFacts {
        model_bytes: bytes.len() as u64,
        arena_bytes: engine.arena_bytes() as u64,
        weights: match (engine.is_int8(), f16) {
            (true, _) => Weights::Int8,
            (false, true) => Weights::F16,
            (false, false) => Weights::F32,
        },
    })
}

/// The host's run of the images the device saw.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRun {
    /// Predicted class per image.
    pub predictions: Vec<u8>,
    /// Predictions equal to the label.
    pub correct: u32,
    /// FNV-1a over every output byte, in the firmware's order.
    pub outputs_fnv1a: u32,
    /// Every output (for `--predictions`).
    pub outputs: Outputs,
    /// An int8 model's output scale and zero point.
    pub output_quant: Option<(f32, i32)>,
}

/// Runs `lasagna-infer` on the host over `labels.len()` images of
/// [`MNIST_INPUT_LEN`] grey levels each (`pixels`, image-major), preparing
/// each input exactly as the firmware does.
pub fn run_host(path: &Path, bytes: &[u8], pixels: &[u8], labels: &[u8]) -> Result<HostRun> {
    let aligned = AlignedModel::new(bytes);
    let err = engine_err(path);
    let engine = lasagna_infer::Engine::new(aligned.bytes()).map_err(&err)?;
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
    let (mean, std) = engine.normalization();
    let q = engine
        .input_quant()
        .map(|(scale, zero_point)| QParams { scale, zero_point });
    let mut fnv = Fnv1a::new();
    let mut levels = vec![0i8; MNIST_INPUT_LEN];
    let mut values = vec![0.0f32; MNIST_INPUT_LEN];
    let (mut predictions, mut correct) = (Vec::with_capacity(labels.len()), 0u32);
    let total = labels.len() * engine.output_len();
    let (mut all_levels, mut all_floats) = match q {
        Some(_) => (Vec::with_capacity(total), Vec::new()),
        None => (Vec::new(), Vec::with_capacity(total)),
    };
    for (i, &label) in labels.iter().enumerate() {
        let image = pixels
            .get(i * MNIST_INPUT_LEN..(i + 1) * MNIST_INPUT_LEN)
            .ok_or_else(|| Error::config("deploy images", format!("image {i} has no pixels")))?;
        let best = match q {
            Some(q) => {
                for (x, &p) in levels.iter_mut().zip(image) {
                    *x = q.quantize((f32::from(p) / 255.0 - mean) / std);
                }
                let y = engine.run_i8(arena, &levels).map_err(&err)?;
                all_levels.extend_from_slice(y);
                y.iter().for_each(|&v| fnv.i8(v));
                argmax(y.iter().map(|&v| i32::from(v)))
            }
            None => {
                for (x, &p) in values.iter_mut().zip(image) {
                    *x = (f32::from(p) / 255.0 - mean) / std;
                }
                let y = engine.run(arena, &values).map_err(&err)?;
                all_floats.extend_from_slice(y);
                y.iter().for_each(|&v| fnv.f32(v));
                argmax(y.iter().map(|&v| ordered(v)))
            }
        };
        correct += u32::from(usize::from(label) == best);
        predictions.push(best as u8);
    }
    Ok(HostRun {
        predictions,
        correct,
        outputs_fnv1a: fnv.0,
        outputs: Outputs {
            per_image: engine.output_len(),
            values: match q {
                Some(_) => Values::Levels(all_levels),
                None => Values::Floats(all_floats),
            },
        },
        output_quant: engine.output_quant(),
    })
}
