//! `lasagna inspect`: a human-readable listing of a model file.

use lasagna_format::{Model, Quant, ValueInfo, WeightLayout};
use std::fmt::Write;

/// `scale, zero point` of an i8 value; empty for other dtypes.
fn value_quant(v: &ValueInfo) -> String {
    match v.quant {
        Some((scale, zp)) => format!("{scale:.6e}, {zp}"),
        None => String::new(),
    }
}

/// Renders the ops, shapes, dtypes, parameter bytes, arena and metadata of
/// a model. Int8 models get a column with each op output's scale and zero
/// point (`real = scale * (q - zero point)`); tensors show their
/// quantization kind (`/channel`: one scale per output channel, `/tensor`:
/// one scale and zero point) and, for a weight stored in blocks of four
/// interleaved rows, `/interleaved4` (FORMAT.md 6.2).
pub fn render(model: &Model<'_>) -> String {
    let mut s = String::new();
    let (mean, std) = model.normalization();
    let input = model.input();
    let input_quant = match input.and_then(|v| v.quant) {
        Some((scale, zp)) => format!(", scale {scale:.6e}, zero point {zp}"),
        None => String::new(),
    };
    let _ = writeln!(
        s,
        "input {} ({}{input_quant}), normalized as (x - {mean}) / {std}",
        model.input_shape(),
        input.map(|v| v.dtype.name()).unwrap_or("?")
    );
    let quantized = model.ops().any(|e| e.output.quant.is_some());
    let quant_col = |text: &str| {
        if quantized {
            format!(" {text:<18}")
        } else {
            String::new()
        }
    };
    let _ = writeln!(
        s,
        "{:>3}  {:<18} {:<16} {:<16}{} {:>10}  tensors",
        "#",
        "op",
        "input",
        "output",
        quant_col("out scale, zp"),
        "params B"
    );
    for e in model.ops() {
        let mut tensors = String::new();
        let mut bytes = 0usize;
        for j in 0..e.n_tensors {
            if let Some(t) = model.op_tensor(&e, j) {
                bytes += t.data.len();
                let q = match t.quant {
                    Quant::None => String::new(),
                    Quant::PerTensor { .. } => "/tensor".into(),
                    Quant::PerChannel(_) => "/channel".into(),
                };
                let layout = match (j, e.op.weight_layout()) {
                    (0, WeightLayout::Interleaved4) => "/interleaved4",
                    _ => "",
                };
                let _ = write!(tensors, "{}{}{}{} ", t.dtype, t.shape, q, layout);
            }
        }
        let _ = writeln!(
            s,
            "{:>3}  {:<18} {:<16} {:<16}{} {:>10}  {}",
            e.index,
            e.op.kind().name(),
            format!("{}{}", e.input.dtype, e.input.shape),
            format!("{}{}", e.output.dtype, e.output.shape),
            quant_col(&value_quant(&e.output)),
            bytes,
            tensors.trim_end()
        );
    }
    let _ = writeln!(
        s,
        "file {} B, tensors {} B, overhead {} B, arena {} B",
        model.file_bytes(),
        model.tensor_bytes(),
        model.file_bytes() as u64 - model.tensor_bytes(),
        model.arena_bytes()
    );
    let labels: Vec<&str> = model.labels().collect();
    if !labels.is_empty() {
        let _ = writeln!(s, "labels: {}", labels.join(" "));
    }
    for (k, v) in model.meta() {
        let _ = writeln!(s, "{k} = {v}");
    }
    s
}
