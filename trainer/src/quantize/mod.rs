//! Post-training int8 quantization: `lasagna export --quantize int8`.
//!
//! # The int8 contract
//!
//! This is what the exporter writes and what `lasagna-infer`'s int8 path
//! implements; both sides follow it exactly.
//!
//! - **Every value is int8.** Value 0 (the input) and value `i + 1` (the
//!   output of op `i`) are `ValueType::I8 { scale, zero_point }`:
//!   `real = scale * (q - zero_point)`, `q` in `[-128, 127]`.
//! - **Input.** A model with a normalization `(mean, std)` (MNIST: 0.1307,
//!   0.3081) gets `scale = 1 / (255 std)`, `zero_point = round(255 mean) - 128`,
//!   so that pixel `p` in `[0, 255]` is the code `p - 128`
//!   ([`ValueQuant::pixels`]). Without one (mean 0, std 1), or with a mean
//!   outside `[0, 1]`, the input is calibrated like any other value.
//! - **Linear and Conv2d weights**: `i8`, symmetric, one scale per output
//!   channel: `s_w[c] = max |w[c, ..]| / 127` (1 for an all-zero row),
//!   `q = round(w / s_w[c])` clamped to `[-127, 127]`
//!   ([`quantize_per_channel`]); Linear weights are stored in blocks of
//!   four interleaved rows (`FLAG_WEIGHTS_INTERLEAVED`, FORMAT.md 6.2).
//!   **Biases**: `i32`,
//!   `round(b[c] / (s_in * s_w[c]))` in `f64`, clamped to the `i32` range,
//!   where `s_in` is the scale of the op's input value ([`quantize_bias`]).
//!   An op without a bias stays without one.
//! - **Other tensors** (LayerNorm, and BatchNorm that did not fold) stay
//!   `f32`: they are a few values per channel, and the engine applies them
//!   to dequantized values.
//! - **Activation ranges** come from calibration ([`calibrate`]): the
//!   BatchNorm-folded f32 model runs through `lasagna-infer` on `N` training
//!   images (default [`DEFAULT_CALIBRATION`], the first `N` in file order,
//!   so the export is deterministic) and each value's min and max are kept.
//!   A range becomes `lo = min(min, 0)`, `hi = max(max, 0)`,
//!   `scale = (hi - lo) / 255` (1 if 0), `zero_point = round(-128 - lo / scale)`
//!   clamped to `[-128, 127]` ([`ValueQuant::from_range`]).
//! - **Shared quantization.** ReLU, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d
//!   and Flatten give their input and output one quantization, so the
//!   engine runs them as integer copies, maxima and averages
//!   ([`share_groups`]). A group's range is the union of its members'
//!   ranges, except that a ReLU's input contributes the ReLU's output range
//!   (clipped at 0): the Linear or Conv2d before a ReLU then clamps its
//!   negatives to the zero point, which fuses the ReLU into it. A group
//!   holding value 0 takes the input quantization above.
//! - **Softmax** outputs have `scale = 1/256`, `zero_point = -128`
//!   ([`ValueQuant::SOFTMAX`]). GELU, SiLU, Sigmoid, Tanh, LeakyReLU,
//!   LayerNorm, unfolded BatchNorm, Linear and Conv2d outputs have their
//!   own calibrated range.
//! - **LSTM** (FORMAT.md section 6.3): weights `i8` per gate row, biases
//!   `i32` (`bias_ih` in units of `s_in · s_wi[r]`, `bias_hh` in
//!   `s_h · s_wh[r]`). Every layer's hidden state uses the op's output
//!   quantization, calibrated on the union of all layers' `h` at every step,
//!   and the `i16` cell state gets the scale `2^-cell_shift` that holds the
//!   largest calibrated `|c|` ([`calibrate_lstms`], [`cell_shift`]).
//! - **Embedding**: the table `i8`, one symmetric scale per row; the output
//!   is calibrated like any value. Calibrating a token model needs token
//!   sequences ([`deploy_int8`] with ids stored as `f32`), so
//!   `lasagna export`, which calibrates on MNIST, refuses it.
//! - **Scratch** is what [`lasagna_infer::scratch_bytes_int8`] asks.
//! - **Metadata**: the trained file's, with `lasagna.export.weights = int8`,
//!   `lasagna.export.calibration = N` and
//!   `lasagna.export.folded_batchnorm`.

mod calibrate;
mod lstm;
mod scheme;
mod weights;

pub use calibrate::calibrate;
pub use lstm::{calibrate_lstms, cell_shift, LstmRange};
pub use scheme::{passes_through, share_groups, value_quants, Range, ValueQuant};
pub use weights::{quantize_bias, quantize_per_channel};

use crate::data::{load_mnist, resolve_data_dir, Dataset, Normalization};
use crate::error::{Error, Result};
use crate::export::{
    float_input, float_specs, fold_model, tensor_dims, write_specs, DeployReport, Folded,
    WeightType,
};
use crate::layers::ExportOp;
use lasagna_format::{DType, Op, OpSpec, TensorData, ValueType, WeightLayout};
use std::path::Path;

/// Calibration images when `--calibration` is not given: TFLite's guidance
/// is "a few hundred" representative samples; 1000 MNIST images take about
/// a second and cover every digit many times.
pub const DEFAULT_CALIBRATION: usize = 1000;

/// Refuses ops that have no int8 form, naming the first one by its index
/// in `ops`. The engine that runs the file decides which ops those are
/// ([`lasagna_infer::int8_refusal`]), so the exporter never writes an int8
/// file the engine would refuse.
pub fn check_int8(ops: &[Op]) -> Result<()> {
    for (i, op) in ops.iter().enumerate() {
        let Some(refusal) = lasagna_infer::int8_refusal(op.kind()) else {
            continue;
        };
        return Err(Error::config(
            "--quantize int8",
            format!(
                "op {i} ({}) cannot be quantized to int8: {}. \
                 HINT: use --quantize f16 for this model (half the bytes, computed in f32)",
                op.kind(),
                refusal.why
            ),
        ));
    }
    Ok(())
}

/// Checks that a parsed model file can be quantized: float (not already
/// int8) and made of ops with an int8 form ([`check_int8`], op indices as
/// `lasagna inspect` shows them).
pub fn check_int8_file(m: &lasagna_format::Model<'_>) -> Result<()> {
    let quantized = m.input().is_some_and(|v| v.dtype == DType::I8)
        || m.ops().any(|e| e.output.dtype == DType::I8);
    if quantized {
        return Err(Error::config(
            "--quantize int8",
            "the model file is already int8. HINT: export from the trained f32 file \
             (`lasagna train --out`)",
        ));
    }
    check_int8(&m.ops().map(|e| e.op).collect::<Vec<_>>())
}

/// Checks a calibration size: at least 1, and at most `available` images
/// when that is known.
pub fn check_calibration(n: usize, available: Option<usize>) -> Result<()> {
    if n == 0 {
        return Err(Error::config(
            "--calibration",
            format!(
                "0 images: calibration needs at least 1 (the default is {DEFAULT_CALIBRATION})"
            ),
        ));
    }
    match available {
        Some(have) if n > have => Err(Error::config(
            "--calibration",
            format!("{n} images, but the training set has only {have}. HINT: use at most {have}"),
        )),
        _ => Ok(()),
    }
}

/// The first `n` images of `train` (file order, so exports are
/// reproducible), checking `1 <= n <= train.len()`.
pub fn calibration_set(train: &Dataset, n: usize) -> Result<Dataset> {
    check_calibration(n, Some(train.len()))?;
    Ok(train.subset(n))
}

/// The int8 op specs for folded `ops`, given the quantization of every
/// value (`ops.len() + 1`, input first): Linear and Conv2d weights per
/// channel with i32 biases, other tensors f32, every output int8, scratch as the engine asks
/// ([`lasagna_infer::scratch_bytes_int8`]).
pub fn int8_specs(
    input: &[usize],
    ops: Vec<ExportOp>,
    quants: &[ValueQuant],
) -> Result<Vec<OpSpec>> {
    let dims: Vec<u32> = input.iter().map(|&d| d as u32).collect();
    let mut shape = lasagna_format::Shape::new(&dims)
        .ok_or_else(|| Error::config("int8 export", "input rank must be 1 to 4"))?;
    check_int8(&ops.iter().map(|(op, _)| *op).collect::<Vec<_>>())?;
    if quants.len() != ops.len() + 1 {
        return Err(Error::config(
            "int8 export",
            format!("{} value quantizations for {} ops", quants.len(), ops.len()),
        ));
    }
    let mut specs = Vec::with_capacity(ops.len());
    for (i, (op, tensors)) in ops.into_iter().enumerate() {
        // An int8 Linear's weight is stored in blocks of four interleaved
        // rows (FORMAT.md 6.2), the layout the Cortex-M4 kernel reads with
        // one pointer per block; other ops are unchanged.
        let op = op.with_weight_layout(WeightLayout::Interleaved4);
        let tensors = match op {
            Op::Linear { .. } | Op::Conv2d { .. } => {
                let s_in = quants[i].scale;
                weight_bias(i, &op, &tensors, s_in)?
            }
            Op::Lstm { .. } => {
                lstm::lstm_tensors(i, &op, &tensors, quants[i].scale, quants[i + 1].scale)?
            }
            Op::Embedding { .. } => lstm::embedding_table(i, &op, &tensors)?,
            _ => tensors
                .iter()
                .enumerate()
                .map(|(j, t)| Ok(TensorData::f32(&tensor_dims(&op, j)?, t)))
                .collect::<Result<Vec<_>>>()?,
        };
        specs.push(OpSpec {
            op,
            tensors,
            output: quants[i + 1].value_type(),
            // What the engine asks for (Linear widens its input, Conv2d
            // accumulates a plane in i32).
            scratch_bytes: u32::try_from(lasagna_infer::scratch_bytes_int8(&op, &shape)).map_err(
                |_| {
                    Error::config(
                        "int8 export",
                        format!("op {i}: scratch exceeds the format's u32"),
                    )
                },
            )?,
        });
        shape = op.infer_shape(shape).map_err(|reason| {
            Error::config("int8 export", format!("op {i} ({}): {reason}", op.kind()))
        })?;
    }
    Ok(specs)
}

fn weight_bias(i: usize, op: &Op, tensors: &[Vec<f32>], s_in: f32) -> Result<Vec<TensorData>> {
    let dims = tensor_dims(op, 0)?;
    let channels = dims.first().copied().unwrap_or(0) as usize;
    let name = format!("op {i} ({}) weight", op.kind());
    let w = tensors
        .first()
        .ok_or_else(|| Error::config("int8 export", format!("{name} is missing")))?;
    let (q, s_w) = quantize_per_channel(w, channels, &name)?;
    let q = match *op {
        Op::Linear {
            in_features,
            out_features,
            layout,
            ..
        } => layout.store(&q, out_features as usize, in_features as usize),
        _ => q,
    };
    let mut out = Vec::with_capacity(tensors.len());
    if let Some(b) = tensors.get(1) {
        let name = format!("op {i} ({}) bias", op.kind());
        let b = quantize_bias(b, s_in, &s_w, &name)?;
        out.push(TensorData::i8_per_channel(&dims, &q, s_w));
        out.push(TensorData::i32(&tensor_dims(op, 1)?, &b));
    } else {
        out.push(TensorData::i8_per_channel(&dims, &q, s_w));
    }
    Ok(out)
}

/// `lasagna export --quantize int8`: the trained model file `bytes` (read
/// from `path`, which errors name) to an int8 deployment file, calibrated
/// on the first `images` MNIST training images found in `data` (else
/// `$LASAGNA_DATA`, else `data/mnist`) and normalized as the model was
/// trained.
///
/// The file is parsed once, and everything that can be refused (the
/// calibration size, an op with no int8 form, a file already int8) is
/// refused before MNIST is loaded.
pub fn export_int8(
    path: &Path,
    bytes: &[u8],
    images: usize,
    data: Option<&Path>,
) -> Result<(Vec<u8>, DeployReport)> {
    let m = lasagna_format::Model::parse(bytes).map_err(|e| Error::ModelFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    check_calibration(images, None)?;
    check_int8_file(&m).map_err(|e| in_file(e, path))?;
    if m.input().is_some_and(|v| v.dtype == DType::I32) {
        return Err(in_file(
            Error::config(
                "--quantize int8",
                "the model reads token ids (an Embedding first), and `lasagna export` \
                 calibrates on MNIST images. HINT: quantize it with \
                 `lasagna_trainer::quantize::deploy_int8` and token sequences, or use --quantize f16",
            ),
            path,
        ));
    }
    let (mean, std) = m.normalization();
    let dir = resolve_data_dir(data);
    let mnist = load_mnist(&dir, Normalization { mean, std })?;
    let set = calibration_set(&mnist.train, images).map_err(|e| in_file(e, &dir))?;
    quantize_model(&m, &set).map_err(|e| in_file(e, path))
}

/// A configuration error prefixed with the file or folder it is about.
fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Config { what, reason } => Error::Config {
            what,
            reason: format!("{}: {reason}", path.display()),
        },
        e => e,
    }
}

/// Turns a trained model file into an int8 deployment file (see the
/// contract above): BatchNorms folded, the folded f32 model calibrated on
/// the samples of `calibration` (normalized as the model expects), weights
/// and activations quantized, labels and metadata kept.
pub fn deploy_int8(bytes: &[u8], calibration: &Dataset) -> Result<(Vec<u8>, DeployReport)> {
    let m = lasagna_format::Model::parse(bytes)
        .map_err(|e| Error::config("model file", e.to_string()))?;
    check_int8_file(&m)?;
    quantize_model(&m, calibration)
}

/// [`deploy_int8`] after the checks: the parsed file is folded once and
/// its folded ops go in memory to calibration and quantization.
fn quantize_model(
    m: &lasagna_format::Model<'_>,
    calibration: &Dataset,
) -> Result<(Vec<u8>, DeployReport)> {
    let Folded {
        input,
        mut ops,
        mut info,
        report,
    } = fold_model(m)?;
    let want: usize = input.iter().product();
    if calibration.sample_len() != want || calibration.is_empty() {
        return Err(Error::config(
            "int8 calibration",
            format!(
                "the model expects inputs of {input:?} ({want} values) but the calibration \
                 set has {} samples of {:?}",
                calibration.len(),
                calibration.sample_shape
            ),
        ));
    }
    // Calibration observes the engine running the folded graph, and the
    // engine runs files: it gets the folded ops as an f32 file in memory.
    let f32_file = write_specs(
        &input,
        float_input(&ops),
        float_specs(&input, &ops, WeightType::F32)?,
        &info,
    )?;
    let mut ranges = calibrate(&f32_file, &calibration.x)?;
    // An LSTM's output quantization holds every layer's h at every step,
    // and its cell state gets a power-of-two scale (section 6.3).
    let lstms = calibrate_lstms(&f32_file, &ops, &calibration.x)?;
    for (i, ((op, _), seen)) in ops.iter_mut().zip(lstms).enumerate() {
        if let (Op::Lstm { cell_shift: cs, .. }, Some(seen)) = (op, seen) {
            *cs = cell_shift(seen.cell_max);
            if let Some(r) = ranges.get_mut(i + 1) {
                *r = r.union(seen.hidden);
            }
        }
    }
    let kinds: Vec<Op> = ops.iter().map(|(op, _)| *op).collect();
    let quants = value_quants(&kinds, &ranges, info.normalization)?;
    let input_type = match kinds.first() {
        Some(Op::Embedding { .. }) => ValueType::I32,
        _ => quants
            .first()
            .map(|q| q.value_type())
            .ok_or_else(|| Error::config("int8 export", "the model has no input value"))?,
    };
    let specs = int8_specs(&input, ops, &quants)?;
    info.meta
        .push(("lasagna.export.weights".into(), "int8".into()));
    info.meta.push((
        "lasagna.export.calibration".into(),
        calibration.len().to_string(),
    ));
    Ok((write_specs(&input, input_type, specs, &info)?, report))
}
