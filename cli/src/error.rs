//! What a subcommand can fail with: the trainer's errors, the deploy
//! tool's or the ONNX converter's, each already saying what, where and what
//! to do next.

/// An error from one of the libraries the CLI drives.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Training, data, export, quantization, evaluation.
    #[error(transparent)]
    Trainer(#[from] lasagna_trainer::Error),
    /// Building and running the firmware, and the host check.
    #[error(transparent)]
    Deploy(#[from] lasagna_deploy::Error),
    /// Writing the command's own outputs (`cannot write PATH: ...`).
    #[error(transparent)]
    Files(#[from] lasagna_files::Error),
    /// `lasagna import`, `lasagna export --onnx`: the ONNX converter's
    /// error (the node and a hint), with the file it was converting.
    #[error("cannot {what} {path}: {source}")]
    Onnx {
        /// `import`, or `export as ONNX`.
        what: &'static str,
        /// The file converted: the ONNX file, or the `.lsn` model file.
        path: std::path::PathBuf,
        /// What the converter said.
        source: lasagna_onnx::OnnxError,
    },
    /// `--threads` or `LASAGNA_NUM_THREADS`/`RAYON_NUM_THREADS`.
    #[error(transparent)]
    Threads(#[from] lasagna_trainer::backend::cpu::threads::ThreadsError),
}
