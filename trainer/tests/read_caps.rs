//! Files a user names are checked before they are read whole (issue 17): a
//! 5 GB sparse file named `model.lsn`, `model.toml` or `run.json` is refused
//! by every library entry point that reads one, after reading a few bytes;
//! so is a 5 GB checkpoint, and one without a header costs at most 1 MiB.

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_format::{ModelBuilder, Op, TensorData};
use lasagna_trainer::config::ModelSpec;
use lasagna_trainer::run::{inspect, EvalOptions, EvalSet};
use lasagna_trainer::Error;
use std::path::{Path, PathBuf};

const FIVE_GB: u64 = 5_000_000_000;

/// A file under the temp dir, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    /// `bytes`, then zeros up to 5 GB: sparse, so it costs no disk, but
    /// metadata and `read(2)` see 5 GB.
    fn sparse(name: &str, bytes: &[u8]) -> Tmp {
        let p =
            std::env::temp_dir().join(format!("lasagna-read-caps-{}-{name}", std::process::id()));
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

/// Bytes this thread has read through `read(2)` and friends, where Linux
/// says (`rchar` in /proc/thread-self/io): each test runs on its own
/// thread, so other tests' reads do not count.
fn thread_rchar() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs `f` and checks it read less than `limit` bytes, where that can be
/// measured.
fn reads_little<T>(limit: u64, f: impl FnOnce() -> T) -> T {
    let before = thread_rchar();
    let out = f();
    match (before, thread_rchar()) {
        (Some(b), Some(a)) => assert!(a - b < limit, "read {} bytes", a - b),
        _ => skip::skipped("the bytes-read check: no /proc/thread-self/io here"),
    }
    out
}

fn model() -> Vec<u8> {
    let mut b = ModelBuilder::new(&[784]);
    b.op(
        Op::Linear {
            in_features: 784,
            out_features: 10,
            bias: false,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        vec![TensorData::f32(&[10, 784], &[0.0; 7840])],
    );
    b.build().expect("valid model")
}

fn assert_size_refusal(e: Error, path: &Path, header: usize) {
    let msg = e.to_string();
    assert!(matches!(e, Error::ModelFile { .. }), "{e:?}");
    assert!(
        msg.contains(&*path.to_string_lossy())
            && msg.contains(&format!(
                "file_size in the header says {header} bytes but the file has {FIVE_GB}"
            ))
            && msg.contains("HINT"),
        "{msg}"
    );
}

#[test]
fn a_5_gb_sparse_model_file_is_refused_by_inspect_and_eval_after_its_header() {
    let bytes = model();
    let f = Tmp::sparse("model.lsn", &bytes);
    let e = reads_little(4096, || inspect(&f.0)).expect_err("refused");
    assert_size_refusal(e, &f.0, bytes.len());
    let o = EvalOptions {
        model_file: f.0.clone(),
        data: Some(PathBuf::from("/nonexistent")),
    };
    let e = reads_little(4096, || EvalSet::load(&o)).expect_err("refused");
    assert_size_refusal(e, &f.0, bytes.len());
}

#[test]
fn a_5_gb_sparse_model_toml_or_json_is_refused_from_its_length() {
    for (name, text) in [
        ("model.toml", "[[layers]]\n"),
        ("run.json", "{\"sweep\": {}}"),
    ] {
        let f = Tmp::sparse(name, text.as_bytes());
        let path = f.0.to_string_lossy().into_owned();
        let e = reads_little(4096, || match name {
            "model.toml" => ModelSpec::load(&path).err(),
            _ => lasagna_trainer::sweep::read_json(&f.0).err(),
        })
        .expect("refused");
        let msg = e.to_string();
        assert!(
            msg.contains(&path) && msg.contains("5000000000 bytes, more than the 16777216"),
            "{msg}"
        );
    }
}

#[test]
fn a_5_gb_sparse_checkpoint_is_refused_after_its_header_line() {
    use lasagna_trainer::checkpoint::Checkpoint;
    // A header declaring a 100-byte payload, then 5 GB.
    let f = Tmp::sparse("run.ckpt", b"LASAGNA-CKPT 2 crc32=00000000 len=100\n");
    let e = reads_little(4096, || Checkpoint::load(&f.0)).expect_err("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("len") && msg.contains("138-byte file but it has 5000000000"),
        "{msg}"
    );
    // No header at all: refused after at most 1 MiB.
    let f = Tmp::sparse("bare.ckpt", b"{\"version\": 1");
    let e = reads_little(1 << 21, || Checkpoint::load(&f.0)).expect_err("refused");
    assert!(e.to_string().contains("version"), "{e}");
}
