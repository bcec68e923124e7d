//! Fail before the work, not after it (issue 17): what `lasagna` refuses up
//! front, how fast, and what the message names. Every run here is refused
//! before MNIST loads, so none of them trains.

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_format::{ModelBuilder, Op, TensorData};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lasagna-checks-{}-{name}", std::process::id()))
}

/// Writes `text` to a temporary file named `name` and returns its path.
fn file(name: &str, text: &str) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, text).expect("write a temporary file");
    p
}

/// `lasagna ARGS`, with how long it took.
fn run(args: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let o = lasagna().args(args).output().expect("run lasagna");
    (o, t0.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A short `lasagna train` of `model`, with `extra` options.
fn train(model: &str, extra: &[&str]) -> (Output, Duration) {
    let mut args = vec![
        "train",
        "--model",
        model,
        "--train-subset",
        "500",
        "--val",
        "100",
        "--epochs",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// Exit code 1 with `needles` in the message, no panic or abort, within
/// `limit`, and nothing trained.
fn refused(what: &str, (o, took): (Output, Duration), needles: &[&str], limit: Duration) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{what}: {:?}\n{err}", o.status);
    for n in needles {
        assert!(err.contains(n), "{what}: expected {n:?} in: {err}");
    }
    for bad in ["panicked", "memory allocation of", "backtrace"] {
        assert!(!err.contains(bad), "{what}: {err}");
    }
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("test accuracy"), "{what} trained: {out}");
    assert!(took < limit, "{what} took {took:?}");
}

const QUICK: Duration = Duration::from_secs(10);

#[test]
fn a_last_layer_of_9_outputs_is_refused_before_training_naming_the_layer_and_the_fix() {
    let m = file(
        "out9.toml",
        "[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout = 64\n\
         [[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"linear\"\nout = 9\n",
    );
    let path = m.display().to_string();
    refused(
        "out = 9",
        train(&path, &[]),
        &[
            "layer 3, Linear(64 -> 9)",
            "9 outputs but MNIST has 10 classes",
            "HINT: set out = 10 in the last [[layers]] of",
            &path,
        ],
        QUICK,
    );
}

#[test]
fn a_model_of_one_flatten_is_refused_before_training_not_at_export() {
    let m = file("flatten.toml", "[[layers]]\ntype = \"flatten\"\n");
    let out = tmp("flatten.lsn");
    let out_s = out.display().to_string();
    refused(
        "flatten",
        train(&m.display().to_string(), &["--out", &out_s]),
        &["layer 0, Flatten", "784 outputs", "HINT", "out = 10"],
        QUICK,
    );
    assert!(!out.exists(), "a model file was written");
}

#[test]
fn a_bad_toml_hyperparameter_names_its_key_and_file_and_a_bad_flag_its_flag() {
    let base = "[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout = 10\n";
    let cases = [
        ("lr.toml", "[optimizer]\nlr = -1\n", "[optimizer] lr in"),
        (
            "betas.toml",
            "[optimizer]\nbetas = [1.0, 0.9]\n",
            "[optimizer] betas in",
        ),
        (
            "kind.toml",
            "[optimizer]\ntype = \"adagrad\"\n",
            "[optimizer] type in",
        ),
        (
            "sched.toml",
            "[optimizer]\nschedule = \"step:0:0.5\"\n",
            "[optimizer] schedule in",
        ),
        (
            "batch.toml",
            "[training]\nbatch_size = 0\n",
            "[training] batch_size in",
        ),
        (
            "smooth.toml",
            "[training]\nlabel_smoothing = 1.0\n",
            "[training] label_smoothing in",
        ),
    ];
    for (name, table, needle) in cases {
        let m = file(name, &format!("{base}{table}"));
        let path = m.display().to_string();
        let (o, took) = train(&path, &[]);
        let err = stderr(&o);
        refused(name, (o, took), &[needle, &path], QUICK);
        assert!(!err.contains("invalid --"), "{name}: {err}");
    }
    // The same value from the command line is named by its flag.
    let m = file("ok.toml", base);
    refused(
        "--lr=-1",
        train(&m.display().to_string(), &["--lr=-1"]),
        &["invalid --lr"],
        QUICK,
    );
    // A file value the flag overrides is not used, so not refused.
    let m = file("override.toml", &format!("{base}[optimizer]\nlr = -1\n"));
    let (o, _) = train(&m.display().to_string(), &["--lr", "0.01"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn deploy_timeout_0_is_refused_before_any_build_with_the_unit() {
    let (o, took) = run(&[
        "deploy",
        "--model-file",
        "/nonexistent/model.lsn",
        "--board",
        "qemu-m4",
        "--timeout",
        "0",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("--timeout") && err.contains("seconds") && err.contains("--timeout 600"),
        "{err}"
    );
    // Refused while parsing: the model file was never opened.
    assert!(!err.contains("/nonexistent/model.lsn"), "{err}");
    assert!(took < QUICK);
}

/// A metrics file of two epochs whose losses are `train` and `val`.
fn metrics(name: &str, train: &str, val: &str) -> PathBuf {
    let epoch = |n: u32| {
        format!(
            "{{\"epoch\": {n}, \"train_loss\": {train}, \"train_acc\": 0.5, \"val_loss\": {val}, \
             \"val_acc\": 0.5, \"lr\": 0.001, \"seconds\": 1.0}}"
        )
    };
    file(
        name,
        &format!("{{\"epochs\": [{}, {}]}}", epoch(1), epoch(2)),
    )
}

/// The text of an SVG's `<text>` elements.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[test]
fn plot_refuses_losses_beyond_f32_naming_the_file_epoch_and_field() {
    for (name, train, val, field) in [
        ("huge.json", "1e308", "-1e308", "train_loss"),
        ("nan.json", "null", "0.5", "train_loss"),
        ("neg.json", "0.5", "-1e308", "val_loss"),
    ] {
        let m = metrics(name, train, val);
        let out = tmp(&format!("{name}.svg"));
        let (o, took) = run(&[
            "plot",
            &m.display().to_string(),
            "--out",
            &out.display().to_string(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(name) && err.contains("epoch 1") && err.contains(field),
            "{name}: {err}"
        );
        assert!(!out.exists(), "{name}: drew a chart anyway");
        assert!(took < QUICK);
    }
}

#[test]
fn plot_labels_huge_losses_in_scientific_notation_not_zeros() {
    let m = metrics("big.json", "1e30", "2e30");
    let out = tmp("big.svg");
    let (o, _) = run(&[
        "plot",
        &m.display().to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let texts = svg_texts(&std::fs::read_to_string(&out).expect("svg"));
    let scientific = texts
        .iter()
        .filter(|t| t.contains("e29") || t.contains("e30"));
    assert!(scientific.count() >= 3, "no scientific labels in {texts:?}");
    // Before: "1000000000000000019884624838656.00" and the like.
    let long = texts
        .iter()
        .filter(|t| t.len() >= 12 && t.chars().all(|c| c.is_ascii_digit() || c == '.'));
    assert_eq!(long.count(), 0, "{texts:?}");
}

/// `MemAvailable` in bytes, where Linux says it.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn models_too_large_for_memory_are_refused_with_the_bytes_not_aborted() {
    let linear = |outs: &[&str]| {
        let mut t = String::from("[[layers]]\ntype = \"flatten\"\n");
        for o in outs {
            t.push_str(&format!("[[layers]]\ntype = \"linear\"\nout = {o}\n"));
        }
        t
    };
    // (name, TOML, bytes it needs at least: parameters alone, 4 bytes each).
    let cases = [
        ("giga.toml", linear(&["1000000000"]), 785e9 * 4.0),
        (
            "square.toml",
            linear(&["100000", "100000", "10"]),
            1e10 * 4.0,
        ),
        (
            "wide.toml",
            linear(&["4294967296"]),
            785.0 * 4294967296.0 * 4.0,
        ),
        (
            "lstm.toml",
            "input = [28, 28]\n[[layers]]\ntype = \"lstm\"\nhidden = 100000\n\
             [[layers]]\ntype = \"linear\"\nout = 10\n"
                .to_string(),
            4e10 * 4.0,
        ),
    ];
    let avail = mem_available();
    for (name, toml, at_least) in cases {
        // Parameters, gradients and Adam's two moments: 4x the parameters.
        if avail.is_none_or(|a| a as f64 > 4.0 * at_least) {
            skip::skipped(&format!(
                "{name}: this machine has {avail:?} bytes available, enough to try"
            ));
            continue;
        }
        let m = file(name, &toml);
        refused(
            name,
            train(&m.display().to_string(), &[]),
            &["needs", "bytes", "MemAvailable", "HINT"],
            QUICK,
        );
    }
}

#[test]
fn max_memory_1m_refuses_the_default_mlp_with_the_bytes_it_needs() {
    refused(
        "--max-memory 1M",
        train("mlp", &["--max-memory", "1M"]),
        &[
            "the model (218058 parameters) needs",
            "bytes",
            "1048576 bytes (1.0 MiB) that --max-memory allows",
        ],
        QUICK,
    );
    let (o, _) = train("mlp", &["--max-memory", "0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at least 1 byte"), "{}", stderr(&o));
}

#[test]
fn sweep_settings_that_cannot_train_are_refused_before_the_out_folder_exists() {
    let dir = tmp("sweep");
    let d = dir.display().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--epochs", "0"], "--epochs"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--val", "60000"], "--val"),
        (&["--train-subset", "500", "--val", "500"], "--val"),
        (&["--optimizer", "adagrad"], "--optimizer"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["sweep", "--out", &d, "--quiet"];
        all.extend_from_slice(args);
        refused(&format!("{args:?}"), run(&all), &[needle], QUICK);
        assert!(!dir.exists(), "{args:?} created {d}");
    }
    let (o, _) = run(&["sweep", "--limit", "0", "--out", &d]);
    assert!(!o.status.success() && stderr(&o).contains("at least 1"));
    if mem_available().is_some_and(|a| a < 100 << 30) {
        let all = ["sweep", "--hidden", "100000", "--out", &d, "--quiet"];
        refused(
            "--hidden 100000",
            run(&all),
            &["needs", "bytes", "h100000"],
            QUICK,
        );
        assert!(!dir.exists());
    } else {
        skip::skipped("--hidden 100000: no MemAvailable, or over 100 GiB of it");
    }
}

#[test]
fn eval_of_a_model_file_with_9_outputs_is_refused_before_mnist_loads() {
    let mut b = ModelBuilder::new(&[784]);
    b.op(
        Op::Linear {
            in_features: 784,
            out_features: 9,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        vec![
            TensorData::f32(&[9, 784], &vec![0.01; 9 * 784]),
            TensorData::f32(&[9], &[0.0; 9]),
        ],
    );
    let m = tmp("out9.lsn");
    std::fs::write(&m, b.build().expect("the model builds")).expect("write");
    let path = m.display().to_string();
    for engine in ["trainer", "nostd"] {
        // A missing data folder shows the refusal comes before MNIST loads.
        let (o, took) = run(&[
            "eval",
            "--model-file",
            &path,
            "--engine",
            engine,
            "--data",
            "/nonexistent/mnist",
        ]);
        refused(
            engine,
            (o, took),
            &[&path, "9 outputs but MNIST has 10 classes", "HINT"],
            QUICK,
        );
    }
}
