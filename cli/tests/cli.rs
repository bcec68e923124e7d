//! The `lasagna` binary end to end: train on an MNIST subset, export, read the
//! file back, evaluate it, and the errors a user sees for bad input.

#[path = "../../tests/src/skip.rs"]
mod skip;

use std::path::PathBuf;
use std::process::Command;

fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lasagna-cli-{}-{name}", std::process::id()))
}

#[test]
fn train_on_a_subset_exports_a_readable_model_and_metrics() {
    let (out, metrics) = (tmp("mlp.lsn"), tmp("metrics.json"));
    let o = lasagna()
        .args([
            "train",
            "--model",
            "mlp",
            "--epochs",
            "2",
            "--train-subset",
            "10000",
            "--val",
            "1000",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--metrics")
        .arg(&metrics)
        .output()
        .expect("run lasagna");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("json");
    for key in [
        "epochs",
        "test_accuracy",
        "test_loss",
        "parameters",
        "device",
        "seconds_total",
    ] {
        assert!(m.get(key).is_some(), "metrics lack {key}: {m}");
    }
    let epochs = m["epochs"].as_array().expect("epochs array");
    assert_eq!(epochs.len(), 2);
    for key in [
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "seconds",
    ] {
        assert!(epochs[0].get(key).is_some(), "epoch entry lacks {key}");
    }
    assert_eq!(m["parameters"], 218_058);
    // Stated accuracy for this subset run (9,000 training images, 2 epochs,
    // seed 0; it reaches 93.0%): at least 92% on the full test set.
    let acc = m["test_accuracy"].as_f64().expect("accuracy");
    assert!(acc >= 0.92, "test accuracy {acc}");

    let bytes = std::fs::read(&out).expect("model file");
    let model = lasagna_format::Model::parse(&bytes).expect("the exported file reads back");
    assert_eq!(model.output_shape().dims(), &[10]);
    assert_eq!(
        model.op_count(),
        6,
        "Flatten, Linear, ReLU, Linear, ReLU, Linear (Dropout dropped)"
    );
    assert_eq!(model.labels().count(), 10);
    assert!(model.meta_get("lasagna.train.test_accuracy").is_some());

    let e = lasagna()
        .arg("eval")
        .arg("--model-file")
        .arg(&out)
        .output()
        .expect("eval");
    let text = String::from_utf8_lossy(&e.stdout);
    assert!(e.status.success(), "{text}");
    assert!(
        text.contains(&format!("{:.2}%", 100.0 * acc)),
        "eval must reproduce the training run's accuracy: {text}"
    );
    spec_12_13_keys_and_sizes(&out);
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&metrics);
}

/// docs/FORMAT.md §12 lists every metadata key the tool writes, and §13's
/// table gives the sizes of the files it writes for the MLP: the trained
/// file `trained` (the mlp preset) and its f32, f16 and int8 exports.
fn spec_12_13_keys_and_sizes(trained: &std::path::Path) {
    let spec = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/FORMAT.md"))
        .expect("docs/FORMAT.md");
    let section = |from: &str, to: &str| -> String {
        let a = spec.find(from).expect("section start");
        let b = spec[a..].find(to).map_or(spec.len(), |b| a + b);
        spec[a..b].to_string()
    };
    let s12 = section("## 12. Versioning", "## 13.");
    let s13 = section("## 13. Compactness", "## 14.");
    // "| `mlp-f16.lsn` (export) | f16 | 218 | 784 | 436 116 | 436 900 | ..."
    let stated_size = |file: &str| -> u64 {
        let row = s13
            .lines()
            .find(|l| l.starts_with(&format!("| `{file}`")))
            .unwrap_or_else(|| panic!("FORMAT.md §13 has no row for {file}"));
        let cell = row.split('|').nth(6).expect("File column");
        cell.replace(' ', "").parse().expect("a size")
    };
    let mut files = vec![("mlp.lsn", trained.to_path_buf())];
    for (q, name) in [
        ("f32", "mlp-f32.lsn"),
        ("f16", "mlp-f16.lsn"),
        ("int8", "mlp-int8.lsn"),
    ] {
        let path = tmp(&format!("spec13-{name}"));
        let o = lasagna()
            .args(["export", "--quantize", q, "--model-file"])
            .arg(trained)
            .arg("--out")
            .arg(&path)
            .output()
            .expect("export");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        files.push((name, path));
    }
    for (name, path) in &files {
        let bytes = std::fs::read(path).expect("model file");
        assert_eq!(
            bytes.len() as u64,
            stated_size(name),
            "{name}: the size FORMAT.md §13 states"
        );
        let model = lasagna_format::Model::parse(&bytes).expect("parses");
        for (key, _) in model.meta() {
            if key.starts_with("lasagna.") {
                assert!(
                    s12.contains(&format!("| `{key}` |")),
                    "{name} has metadata key {key}, which FORMAT.md §12's table lacks"
                );
            }
        }
        if *name != "mlp.lsn" {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[test]
fn bad_input_gives_a_clear_error_not_a_panic() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["train", "--data", "/nonexistent/mnist", "--quiet"],
            "LASAGNA_DATA",
        ),
        (&["train", "--model", "nosuchpreset"], "neither a preset"),
        (&["train", "--lr=-1"], "--lr"),
        (&["train", "--device", "cuda"], "--device cpu"),
        (&["train", "--schedule", "sometimes"], "schedule"),
        (
            &["eval", "--model-file", "/nonexistent.lsn"],
            "/nonexistent.lsn",
        ),
        (&["inspect", "Cargo.toml"], "not a Lasagna model"),
        (
            &[
                "export",
                "--model-file",
                "/nonexistent.lsn",
                "--out",
                "/tmp/x.lsn",
            ],
            "/nonexistent.lsn",
        ),
        (
            &[
                "export",
                "--model-file",
                "Cargo.toml",
                "--out",
                "/tmp/x.lsn",
            ],
            "not a Lasagna model",
        ),
        (
            &["eval", "--model-file", "Cargo.toml", "--engine", "nostd"],
            "not a Lasagna model",
        ),
    ];
    for (args, needle) in cases {
        let o = lasagna().args(*args).output().expect("run");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in: {err}"
        );
    }
}

/// Trains a preset briefly on a subset, exports it, and checks that the file
/// reads back and evaluates to the accuracy training reported.
fn preset_round_trip(preset: &str, subset: &str, min_acc: f64) {
    let (out, metrics) = (
        tmp(&format!("{preset}.lsn")),
        tmp(&format!("{preset}.json")),
    );
    let o = lasagna()
        .args([
            "train",
            "--model",
            preset,
            "--epochs",
            "1",
            "--train-subset",
            subset,
            "--val",
            "500",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--metrics")
        .arg(&metrics)
        .output()
        .expect("run lasagna");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("json");
    let acc = m["test_accuracy"].as_f64().expect("accuracy");
    assert!(acc >= min_acc, "{preset}: test accuracy {acc} < {min_acc}");
    let bytes = std::fs::read(&out).expect("model file");
    assert!(
        lasagna_format::Model::parse(&bytes).is_ok(),
        "{preset}: exported file does not read back"
    );
    let e = lasagna()
        .arg("eval")
        .arg("--model-file")
        .arg(&out)
        .output()
        .expect("eval");
    let text = String::from_utf8_lossy(&e.stdout);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    assert!(
        text.contains(&format!("{:.2}%", 100.0 * acc)),
        "{preset}: eval disagrees with training: {text}"
    );
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&metrics);
}

#[test]
fn the_cnn_preset_trains_exports_and_evaluates_the_same() {
    // 2,500 training images, one epoch, seed 0: the CNN reaches 87.9%; 85% is the stated bar.
    preset_round_trip("cnn", "3000", 0.85);
}

#[test]
fn the_lstm_preset_trains_exports_and_evaluates_the_same() {
    // 2,500 training images, one epoch, seed 0: the row-LSTM reaches 44.0% (chance
    // is 10%; it needs more data to get going); 35% is the stated bar.
    preset_round_trip("lstm", "3000", 0.35);
}

#[test]
fn info_says_what_this_build_can_run_on_and_exits_0() {
    let o = lasagna().arg("info").output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.starts_with("lasagna ") && out.contains("\ncpu:  ") && out.contains("\ncuda: "),
        "{out}"
    );
    if !cfg!(feature = "cuda") {
        assert!(out.contains("rebuild with --features cuda"), "{out}");
    }
}

/// Without a GPU (CI), `--device auto` says it falls back to the CPU and
/// trains; `--device cuda` refuses with what to do next. With the `cuda`
/// feature on a GPU machine the test says so and only checks that both run.
#[test]
fn the_thread_count_comes_from_the_flag_or_the_environment_and_bad_values_are_refused() {
    let info = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = lasagna();
        c.env_remove("LASAGNA_NUM_THREADS")
            .env_remove("RAYON_NUM_THREADS");
        c.args(args).envs(env.iter().copied());
        let o = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    };
    let (ok, out) = info(&["--threads", "3", "info"], &[]);
    assert!(ok && out.contains("training uses 3 thread(s)"), "{out}");
    let (ok, out) = info(
        &["info"],
        &[("LASAGNA_NUM_THREADS", "2"), ("RAYON_NUM_THREADS", "5")],
    );
    assert!(
        ok && out.contains("training uses 2 thread(s)"),
        "LASAGNA_NUM_THREADS first: {out}"
    );
    let (ok, out) = info(&["info"], &[("RAYON_NUM_THREADS", "1")]);
    assert!(ok && out.contains("training uses 1 thread(s)"), "{out}");
    let (ok, out) = info(&["--threads", "0", "info"], &[]);
    assert!(
        !ok && out.contains("--threads") && !out.contains("panicked"),
        "{out}"
    );
    let (ok, out) = info(&["info"], &[("LASAGNA_NUM_THREADS", "many")]);
    assert!(
        !ok && out.contains("LASAGNA_NUM_THREADS=\"many\" is not a thread count")
            && !out.contains("panicked"),
        "{out}"
    );
}

#[test]
fn device_auto_falls_back_to_the_cpu_with_a_clear_line() {
    let args = [
        "train",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--train-subset",
        "600",
        "--val",
        "100",
        "--quiet",
    ];
    let o = lasagna()
        .args(args)
        .args(["--device", "auto"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    if err.contains("device: cuda:0") {
        skip::skipped("a CUDA device answered; the fallback is not exercised here");
        return;
    }
    assert!(err.contains("device: cpu (auto: "), "{err}");
    let o = lasagna()
        .args(args)
        .args(["--device", "cuda"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("use --device cpu"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `--amp` trains (fp16 GEMM inputs, dynamic loss scaling), says so, and
/// records the scale and the skipped steps in the metrics.
#[test]
fn amp_trains_and_reports_its_loss_scale() {
    let metrics = tmp("amp-metrics.json");
    let o = lasagna()
        .args([
            "train",
            "--model",
            "mlp",
            "--amp",
            "--epochs",
            "1",
            "--train-subset",
            "2000",
            "--val",
            "200",
        ])
        .arg("--metrics")
        .arg(&metrics)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("AMP: loss scale 65536"), "{out}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("json");
    assert_eq!(m["config"]["amp"], true, "{m}");
    assert_eq!(m["epochs"][0]["loss_scale"], 65536.0, "{m}");
    assert_eq!(m["amp_skipped_steps"], 0, "{m}");
}
