//! `prepare` checks the model file's header against its length before
//! reading it (issue 17): a 5 GB sparse `model.lsn` is refused after 16 bytes.

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_deploy::run::{prepare, Options};
use lasagna_deploy::{Board, Error};
use lasagna_format::{ModelBuilder, Op, TensorData};

/// Bytes this thread has read through `read(2)` and friends, where Linux
/// says (`rchar` in /proc/thread-self/io): each test runs on its own
/// thread, so other tests' reads do not count.
fn thread_rchar() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/io").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_5_gb_sparse_model_file_is_refused_after_its_header() {
    let mut b = ModelBuilder::new(&[4]);
    b.op(
        Op::Linear {
            in_features: 4,
            out_features: 2,
            bias: false,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        vec![TensorData::f32(&[2, 4], &[0.5; 8])],
    );
    let bytes = b.build().expect("valid model");
    let p = std::env::temp_dir().join(format!("lasagna-deploy-caps-{}.lsn", std::process::id()));
    std::fs::write(&p, &bytes).expect("write");
    // Sparse: no disk used, but metadata and read(2) see 5 GB.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .and_then(|f| f.set_len(5_000_000_000))
        .expect("set_len");
    let board = Board::find("qemu-m4").expect("board");
    let before = thread_rchar();
    let r = prepare(&p, board, &Options::default());
    let after = thread_rchar();
    let _ = std::fs::remove_file(&p);
    let e = r.err().expect("refused");
    let msg = e.to_string();
    assert!(matches!(e, Error::ModelFile { .. }), "{e:?}");
    assert!(
        msg.contains(&*p.to_string_lossy())
            && msg.contains(&format!(
                "file_size in the header says {} bytes but the file has 5000000000",
                bytes.len()
            ))
            && msg.contains("HINT"),
        "{msg}"
    );
    match (before, after) {
        (Some(b), Some(a)) => assert!(a - b < 4096, "read {} bytes", a - b),
        _ => skip::skipped("the bytes-read check: no /proc/thread-self/io here"),
    }
}
