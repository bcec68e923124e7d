//! The `lasagna` binary refuses a 5 GB sparse input after reading its header
//! or its length (issue 17), in every command that reads one. Each run is
//! limited to 2 GiB of address space, so that reading the file whole (the
//! old behaviour: 5.3 GB and 17 s) fails at once instead of eating memory.

use std::path::PathBuf;
use std::process::{Command, Output};

const FIVE_GB: u64 = 5_000_000_000;

/// A file under the temp dir, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    /// `bytes`, then zeros up to 5 GB: sparse, so it costs no disk.
    fn sparse(name: &str, bytes: &[u8]) -> Tmp {
        let p =
            std::env::temp_dir().join(format!("lasagna-cli-caps-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).expect("write");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_len(FIVE_GB))
            .expect("set_len");
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `lasagna ARGS`, under a 2 GiB address-space limit where there is a shell.
fn lasagna(args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_lasagna");
    let mut c = if cfg!(unix) {
        let mut c = Command::new("sh");
        c.args(["-c", "ulimit -v 2097152 && exec \"$0\" \"$@\"", bin]);
        c
    } else {
        Command::new(bin)
    };
    c.args(args).output().expect("run lasagna")
}

/// Runs `lasagna ARGS`, checks it fails saying `want`; returns its stderr.
fn refused(args: &[&str], want: &str) -> String {
    let o = lasagna(args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(stderr.contains(want), "{args:?}: {stderr}");
    stderr
}

#[test]
fn a_5_gb_sparse_model_file_is_refused_by_inspect_eval_export_and_deploy() {
    let mut b = lasagna_format::ModelBuilder::new(&[4]);
    b.op(
        lasagna_format::Op::Linear {
            in_features: 4,
            out_features: 2,
            bias: false,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        vec![lasagna_format::TensorData::f32(&[2, 4], &[0.5; 8])],
    );
    let bytes = b.build().expect("valid model");
    let f = Tmp::sparse("model.lsn", &bytes);
    let m = f.0.to_str().expect("utf-8 temp path");
    let out = std::env::temp_dir().join(format!("lasagna-cli-caps-{}-out.lsn", std::process::id()));
    let out = out.to_str().expect("utf-8 temp path");
    let want = format!(
        "{m}: file_size in the header says {} bytes but the file has {FIVE_GB}",
        bytes.len()
    );
    let stderr = refused(&["inspect", m], &want);
    assert!(stderr.contains("HINT: re-run `lasagna export`"), "{stderr}");
    refused(&["eval", "--model-file", m], &want);
    refused(&["export", "--model-file", m, "--out", out], &want);
    refused(&["deploy", "--model-file", m, "--board", "qemu-m4"], &want);
    assert!(!std::path::Path::new(out).exists(), "export wrote {out}");
}

#[test]
fn a_5_gb_sparse_text_input_is_refused_by_train_sweep_and_plot() {
    let toml = Tmp::sparse("model.toml", b"[[layers]]\n");
    let grid = Tmp::sparse("grid.toml", b"layers = [2]\n");
    let json = Tmp::sparse("metrics.json", b"{}");
    let want = "5000000000 bytes, more than the 16777216 bytes a text input may have";
    for (args, file) in [
        (vec!["train", "--model"], &toml),
        (vec!["sweep", "--grid"], &grid),
        (vec!["plot"], &json),
    ] {
        let p = file.0.to_str().expect("utf-8 temp path");
        let mut args = args.clone();
        args.push(p);
        refused(&args, &format!("{p}: {want}"));
    }
}
