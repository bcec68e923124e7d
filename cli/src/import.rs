//! `lasagna import`: an ONNX graph (as `torch.onnx.export` writes it) to a
//! `.lsn` model file. The work is `lasagna_onnx::import`; this file reads
//! the ONNX file with a size cap, checks the flags, writes the result
//! atomically and prints what the import did.

use crate::error::CliError;
use clap::Args;
use lasagna_onnx::{ImportOptions, Imported};
use lasagna_trainer::Error;
use std::path::{Path, PathBuf};

/// The largest ONNX file read. The chapter's networks are a few MB; the
/// cap is far above any model a microcontroller can hold (a few MB of
/// flash) and keeps a wrong path to a multi-gigabyte file from being read
/// into memory.
pub const MAX_ONNX_BYTES: u64 = 256 << 20;

/// Read an ONNX model (from PyTorch) and write it as a `.lsn` model file.
///
/// Supported are the graphs that `torch.onnx.export` writes for the
/// chapter's layers, opsets 13 to 21:
///
///   Linear (Gemm, or MatMul + Add), Conv, MaxPool, AveragePool,
///   GlobalAveragePool, BatchNormalization (folded into the Conv or Linear
///   before it), Relu, LeakyRelu, Gelu, Sigmoid, Tanh, Softmax, Flatten and
///   Reshape to 2-D, Dropout and Identity (dropped), a one-layer forward
///   LSTM, and Gather as an Embedding.
///
/// One input, one output, static shapes except the batch dimension. An op
/// outside this list is refused by name, with the node and a hint.
///
/// On the PyTorch side:
///
///   torch.onnx.export(model, x, "model.onnx", dynamo=False, opset_version=17,
///       input_names=["input"], output_names=["logits"],
///       dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
///
/// The input normalization, (pixel/255 - mean) / std, and the labels come
/// from the ONNX metadata props `lasagna.input.mean`, `lasagna.input.std`
/// and `lasagna.labels` when the file has them; --input-mean, --input-std
/// and --labels win over them. The weights are stored as f32; then:
///
///   lasagna import model.onnx --out model.lsn
///   lasagna export --model-file model.lsn --quantize int8 --out model-int8.lsn
///   lasagna deploy --model-file model-int8.lsn --board qemu-m4
///
/// `lasagna export --model-file model.lsn --onnx back.onnx` goes the other way.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ImportArgs {
    /// The ONNX file (at most 256 MiB).
    #[arg(value_name = "MODEL.onnx")]
    pub model: PathBuf,
    /// Where to write the `.lsn` model file (f32 weights, BatchNorm folded).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The mean subtracted from each pixel after scaling it to [0, 1], as
    /// in `transforms.Normalize` [default: the `lasagna.input.mean`
    /// metadata prop, else 0].
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = crate::args::finite)]
    pub input_mean: Option<f32>,
    /// The standard deviation each pixel is divided by after the mean is
    /// subtracted; positive [default: the `lasagna.input.std` metadata
    /// prop, else 1].
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = crate::args::positive_finite)]
    pub input_std: Option<f32>,
    /// One label per output, comma-separated (`--labels 0,1,2,3,4,5,6,7,8,9`)
    /// [default: the `lasagna.labels` metadata prop, else none].
    #[arg(long, value_name = "A,B,...", value_parser = labels)]
    pub labels: Option<Labels>,
}

/// `--labels`: one non-empty name per output.
#[derive(Clone, Debug)]
pub struct Labels(pub Vec<String>);

fn labels(s: &str) -> Result<Labels, String> {
    let names: Vec<String> = s.split(',').map(|l| l.trim().to_string()).collect();
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(format!(
            "label {} of `{s}` is empty; give one name per output, comma-separated \
             (e.g. --labels 0,1,2,3,4,5,6,7,8,9)",
            i + 1
        ));
    }
    Ok(Labels(names))
}

pub fn run(a: ImportArgs) -> Result<(), CliError> {
    // Refused before any work: writing over the input, an unwritable
    // --out, or one another process is writing.
    lasagna_files::check_distinct(&[("MODEL.onnx", &a.model), ("--out", &a.out)])?;
    let _locks = lasagna_files::claim(&[("--out", &a.out)])?;
    let onnx = lasagna_trainer::read::capped_file(
        &a.model,
        MAX_ONNX_BYTES,
        &format!("({} MiB) an ONNX file may have here", MAX_ONNX_BYTES >> 20),
        "check the path names the model you meant; a model that large does not fit a microcontroller",
    )?;
    if onnx.starts_with(&lasagna_format::layout::MAGIC) {
        return Err(Error::BadData {
            path: a.model.clone(),
            reason: "this is a Lasagna model file (.lsn), not ONNX. HINT: `lasagna export \
                     --model-file FILE --onnx model.onnx` writes one as ONNX"
                .into(),
        }
        .into());
    }
    let opts = ImportOptions {
        mean: a.input_mean,
        std: a.input_std,
        labels: a.labels.map(|l| l.0),
    };
    let imported = lasagna_onnx::import(&onnx, &opts).map_err(|source| CliError::Onnx {
        what: "import",
        path: a.model.clone(),
        source,
    })?;
    lasagna_files::write_atomic(&a.out, &imported.lsn)?;
    print!("{}", report(&a.model, &a.out, &imported));
    Ok(())
}

/// What the import read and wrote, one fact a line.
fn report(model: &Path, out: &Path, i: &Imported) -> String {
    let (mean, std) = i.normalization;
    let mut s = format!(
        "read {}: ONNX opset {}, producer {}, {} nodes\n",
        model.display(),
        i.opset,
        if i.producer.trim().is_empty() {
            "(none)"
        } else {
            i.producer.trim()
        },
        i.nodes
    );
    s += &format!("  ops        {} ({})\n", i.ops.join(", "), i.ops.len());
    s += &format!("  folded     {} BatchNorm\n", i.folded);
    s += &format!(
        "  input      (pixel/255 - {mean}) / {std}, from {}\n",
        i.normalization_from
    );
    if i.normalization_from == "default" {
        s += "             HINT: neither flags nor metadata props give one, so pixels are only\n\
               \x20            scaled to [0, 1]; if the model was trained on normalized images,\n\
               \x20            re-run with --input-mean and --input-std\n";
    }
    if i.labels == 0 {
        s += "  labels     none (outputs are known by their index)\n";
    } else {
        s += &format!("  labels     {}\n", i.labels);
    }
    s += &format!(
        "wrote {} ({} bytes, f32 weights)\n",
        out.display(),
        i.lsn.len()
    );
    let int8 = out.with_file_name(format!(
        "{}-int8.lsn",
        out.file_stem().unwrap_or_default().to_string_lossy()
    ));
    s += &format!(
        "next: lasagna export --model-file {} --quantize int8 --out {}\n",
        out.display(),
        int8.display()
    );
    s
}
