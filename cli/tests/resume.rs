//! `lasagna train --resume` end to end: a resumed run continues the run in
//! its checkpoint or is refused, and a damaged or edited checkpoint is
//! refused with a clear error, never trained on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lasagna-resume-{}-{name}", std::process::id()))
}

/// A small MLP, so each run takes a moment.
const SMALL_MLP: &str = r#"
[[layers]]
type = "flatten"
[[layers]]
type = "linear"
out = 32
[[layers]]
type = "relu"
[[layers]]
type = "linear"
out = 10
"#;

/// `lasagna train` on 400 training and 100 validation images of the small
/// MLP (written to `<tag>.toml`), with `args` added.
fn train(tag: &str, args: &[&str]) -> Output {
    let toml = tmp(&format!("{tag}.toml"));
    std::fs::write(&toml, SMALL_MLP).expect("write the model description");
    lasagna()
        .args(["train", "--train-subset", "500", "--val", "100", "--quiet"])
        .arg("--model")
        .arg(&toml)
        .args(args)
        .output()
        .expect("run lasagna")
}

/// `lasagna train --resume <ckpt>` with `args`, nothing else.
fn resume(ckpt: &Path, args: &[&str]) -> Output {
    lasagna()
        .args(["train", "--quiet", "--resume"])
        .arg(ckpt)
        .args(args)
        .output()
        .expect("run lasagna")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Exit code 1, no panic, and the error text.
fn refused(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "not refused: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    err
}

/// A checkpoint after 1 epoch of the small MLP, trained with `args`.
fn one_epoch(tag: &str, args: &[&str]) -> PathBuf {
    let ckpt = tmp(&format!("{tag}.ckpt"));
    let mut all = vec!["--epochs", "1", "--checkpoint"];
    let path = ckpt.to_string_lossy().to_string();
    all.push(&path);
    all.extend_from_slice(args);
    ok(&train(tag, &all));
    ckpt
}

#[test]
fn resume_with_a_contradicting_option_is_refused_naming_it_and_both_values() {
    let ckpt = one_epoch("contradict", &["--lr", "0.001"]);
    let cases: &[(&[&str], &str, &str)] = &[
        (&["--model", "cnn"], "--model", "contradict.toml"),
        (&["--norm-mean", "0.5"], "--norm-mean", "0.1307"),
        (&["--norm-std", "0.5"], "--norm-std", "0.3081"),
        (&["--lr", "0.01"], "--lr", "0.001"),
        (&["--seed", "3"], "--seed", "0"),
        (&["--batch-size", "32"], "--batch-size", "64"),
        (&["--optimizer", "sgd"], "--optimizer", "adam"),
        (&["--val", "50"], "--val", "100"),
        (&["--train-subset", "600"], "--train-subset", "500"),
        (&["--amp"], "--amp", "off"),
        (&["--schedule", "cosine"], "--schedule", "constant"),
    ];
    for (args, option, was) in cases {
        let err = refused(&resume(&ckpt, args));
        let given = args.get(1).copied().unwrap_or("on");
        assert!(
            err.contains(&format!("was trained with {option} "))
                && err.contains(was)
                && err.contains(&format!("this command says {given}"))
                && err.contains("HINT: drop"),
            "{args:?}: {err}"
        );
    }
    // Fewer epochs than done is not "continue".
    let err = refused(&resume(&ckpt, &["--epochs", "0"]));
    assert!(
        err.contains("--epochs") && err.contains("fewer than the 1 epochs"),
        "{err}"
    );
    let _ = std::fs::remove_file(&ckpt);
}

#[test]
fn resume_with_more_epochs_continues_to_the_same_model_as_an_uninterrupted_run() {
    let (whole, resumed) = (tmp("whole.lsn"), tmp("resumed.lsn"));
    ok(&train(
        "more",
        &["--epochs", "2", "--out", &whole.to_string_lossy()],
    ));
    let ckpt = one_epoch("more", &[]);
    // The same values as the checkpoint are fine; --epochs 2 continues it.
    let ckpt2 = tmp("more2.ckpt");
    ok(&resume(
        &ckpt,
        &[
            "--epochs",
            "2",
            "--seed",
            "0",
            "--norm-mean",
            "0.1307",
            "--val",
            "100",
            "--out",
            &resumed.to_string_lossy(),
            "--checkpoint",
            &ckpt2.to_string_lossy(),
        ],
    ));
    let (a, b) = (
        std::fs::read(&whole).expect("whole"),
        std::fs::read(&resumed).expect("resumed"),
    );
    let m = lasagna_format::Model::parse(&b).expect("the resumed model reads back");
    assert_eq!(m.meta_get("lasagna.train.epochs"), Some("2"));
    assert!(
        a == b,
        "1 + 1 resumed epochs differ from 2 epochs in one run"
    );
    // The continued run's checkpoint has 2 epochs done: fewer is refused.
    let err = refused(&resume(&ckpt2, &["--epochs", "1"]));
    assert!(err.contains("fewer than the 2 epochs"), "{err}");
    for f in [&whole, &resumed, &ckpt, &ckpt2] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn the_model_file_after_a_resume_carries_the_checkpoints_model_name_and_normalization() {
    let ckpt = one_epoch("label", &["--norm-mean", "0.5", "--norm-std", "0.25"]);
    let out = tmp("label.lsn");
    ok(&resume(
        &ckpt,
        &["--epochs", "2", "--out", &out.to_string_lossy()],
    ));
    let bytes = std::fs::read(&out).expect("model file");
    let m = lasagna_format::Model::parse(&bytes).expect("reads back");
    let name = tmp("label.toml").to_string_lossy().to_string();
    assert_eq!(m.meta_get("lasagna.train.model"), Some(name.as_str()));
    assert_eq!(m.normalization(), (0.5, 0.25));
    let _ = std::fs::remove_file(&ckpt);
    let _ = std::fs::remove_file(&out);
}

/// The checkpoint's payload as JSON, and a function writing an edited one
/// with a correct header (CRC-32 and length recomputed), so that only the
/// value checks stand between it and a resumed run.
fn payload(ckpt: &Path) -> serde_json::Value {
    let bytes = std::fs::read(ckpt).expect("checkpoint");
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .expect("a header line");
    serde_json::from_slice(&bytes[nl + 1..]).expect("a JSON payload")
}

fn write_with_header(path: &Path, v: &serde_json::Value) {
    let json = serde_json::to_vec(v).expect("json");
    let mut out = format!(
        "LASAGNA-CKPT 2 crc32={:08x} len={}\n",
        crc32fast::hash(&json),
        json.len()
    )
    .into_bytes();
    out.extend_from_slice(&json);
    std::fs::write(path, out).expect("write");
}

#[test]
fn a_damaged_or_edited_checkpoint_is_refused_with_exit_code_1() {
    let ckpt = one_epoch("damaged", &[]);
    let edited = tmp("edited.ckpt");

    // One digit of a weight changed, header untouched: the checksum fails.
    let mut bytes = std::fs::read(&ckpt).expect("checkpoint");
    let at = bytes
        .windows(12)
        .position(|w| w == b"\"weights\":[[")
        .expect("weights")
        + 12;
    let d = at
        + bytes[at..]
            .iter()
            .position(u8::is_ascii_digit)
            .expect("digit");
    bytes[d] = if bytes[d] == b'9' { b'1' } else { bytes[d] + 1 };
    std::fs::write(&edited, &bytes).expect("write");
    let err = refused(&resume(&edited, &[]));
    assert!(
        err.contains("crc32") && err.contains("changed or damaged") && err.contains("HINT"),
        "{err}"
    );

    // Valid header, impossible values: each is named with its value.
    type Edit = fn(&mut serde_json::Value);
    let edits: Vec<(&str, Edit)> = vec![
        ("weights[0][0] = inf", |v| v["weights"][0][0] = 1e39.into()),
        ("state.epochs_done = 99", |v| {
            v["state"]["epochs_done"] = 99.into()
        }),
        ("state.step = 1000000000000000", |v| {
            v["state"]["step"] = 1_000_000_000_000_000u64.into();
            v["optimizer"]["step"] = 1_000_000_000_000_000u64.into();
        }),
    ];
    for (want, edit) in edits {
        let mut v = payload(&ckpt);
        edit(&mut v);
        write_with_header(&edited, &v);
        let err = refused(&resume(&edited, &[]));
        assert!(
            err.contains(&*edited.to_string_lossy()) && err.contains(want) && err.contains("HINT"),
            "want `{want}`: {err}"
        );
    }
    let _ = std::fs::remove_file(&ckpt);
    let _ = std::fs::remove_file(&edited);
}

#[test]
fn help_states_the_defaults_the_library_fills_in() {
    use lasagna_trainer::data::{MNIST_MEAN, MNIST_STD};
    use lasagna_trainer::run::{DEFAULT_MODEL, DEFAULT_VAL};
    // The options are `Option`s (so --resume knows what was given) and the
    // library fills the defaults; --help states them in its text.
    let o = lasagna().args(["train", "--help"]).output().expect("run");
    let help = String::from_utf8_lossy(&o.stdout);
    for want in [
        format!("[default: {DEFAULT_MODEL}]"),
        format!("[default: {DEFAULT_VAL}]"),
        format!("[default: {MNIST_MEAN}]"),
        format!("[default: {MNIST_STD}, MNIST's]"),
        format!(
            "[default: {}]",
            lasagna_trainer::train::TrainConfig::mnist_default().seed
        ),
    ] {
        assert!(help.contains(&want), "--help lacks {want}: {help}");
    }
}

/// A folder of links to the MNIST files, except the training labels, which
/// `labels` may rewrite (written raw, which the loader reads as well as .gz).
fn mnist_copy(tag: &str, labels: impl Fn(&mut [u32])) -> PathBuf {
    use lasagna_trainer::data::{load_mnist, resolve_data_dir, Normalization};
    let src = std::fs::canonicalize(resolve_data_dir(None)).expect("MNIST in data/mnist");
    let dir = tmp(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in [
        "train-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::os::unix::fs::symlink(src.join(f), dir.join(f)).expect("link");
    }
    let mut y = load_mnist(&src, Normalization::default())
        .expect("MNIST")
        .train
        .y;
    labels(&mut y);
    // IDX1: magic 0x00000801, the count, then one byte per label (big-endian header).
    let mut idx = vec![0, 0, 8, 1];
    idx.extend_from_slice(&(y.len() as u32).to_be_bytes());
    idx.extend(y.iter().map(|&l| l as u8));
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx).expect("labels");
    dir
}

#[test]
fn resume_takes_the_same_mnist_from_elsewhere_and_refuses_other_images() {
    let ckpt = one_epoch("data", &[]);
    let same = mnist_copy("same-mnist", |_| {});
    ok(&resume(
        &ckpt,
        &["--epochs", "2", "--data", &same.to_string_lossy()],
    ));
    // Same file names and counts, other labels (as Fashion-MNIST would be).
    let other = mnist_copy("other-mnist", |y| {
        for l in y.iter_mut().take(500) {
            *l = (*l + 1) % 10;
        }
    });
    let err = refused(&resume(
        &ckpt,
        &["--epochs", "2", "--data", &other.to_string_lossy()],
    ));
    assert!(
        err.contains("recipe.train_crc32") && err.contains("HINT: point --data"),
        "{err}"
    );
    let _ = std::fs::remove_file(&ckpt);
    let _ = std::fs::remove_dir_all(&same);
    let _ = std::fs::remove_dir_all(&other);
}
