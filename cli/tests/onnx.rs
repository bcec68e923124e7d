//! ONNX both ways from the command line, checked against ONNX Runtime.
//!
//! - Each PyTorch fixture (`onnx/fixtures/*.onnx`) imported with `lasagna
//!   import` gives, on the 10,000 MNIST test images, the logits ONNX Runtime
//!   gives for the ONNX file (`scripts/onnx-ort-check.py`: argmax agreement
//!   at least 99.9%, every logit within 1e-4).
//! - Each preset (mlp, cnn, lstm), trained briefly and written with `lasagna
//!   export --onnx`, runs in ONNX Runtime as in the trainer's layers and
//!   the no_std engine.
//! - import → export --onnx → import gives back the same `.lsn` bytes.
//! - The README's "From PyTorch" commands run as written on the MLP
//!   fixture, ending on the emulated Cortex-M4 with device == host on every
//!   test image.
//! - Bad input files and flags fail cleanly, naming the problem.
//!
//! Without ONNX Runtime in python3 (`bash scripts/setup.sh` installs it) the
//! ONNX Runtime comparisons print `SKIPPED <test>: <reason>` and return;
//! with `CI=true` or `LASAGNA_REQUIRE_ORT=1` (scripts/test.sh) that is a
//! failure instead. Without `qemu-system-arm` the deployment is skipped the
//! same way as in `tests/deploy.rs`. Skips go through `tests/src/skip.rs`,
//! so CI's log lists them.

#[path = "../../tests/src/skip.rs"]
mod skip;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lasagna-onnx-{}-{name}", std::process::id()))
}

fn data() -> PathBuf {
    lasagna_trainer::data::resolve_data_dir(None)
}

/// `onnx/fixtures/NAME.onnx`, which must exist (it is committed).
fn fixture(name: &str) -> PathBuf {
    let p = root().join("onnx/fixtures").join(format!("{name}.onnx"));
    assert!(
        p.is_file(),
        "{} is missing; it is committed, made by onnx/fixtures/make_fixtures.py",
        p.display()
    );
    p
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `lasagna ARGS`, expects success and no panic, returns stdout.
fn lasagna_ok<S: AsRef<OsStr>>(args: &[S]) -> String {
    let o = lasagna().args(args).output().expect("run lasagna");
    let (out, err) = text(&o);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    assert!(
        o.status.success(),
        "lasagna {} failed:\n{out}\n{err}",
        shown.join(" ")
    );
    out
}

/// Runs `lasagna ARGS`, expects a clean failure (non-zero exit, `error:`,
/// no panic) whose stderr contains every one of `want`; returns stderr.
fn lasagna_fails<S: AsRef<OsStr>>(args: &[S], want: &[&str]) -> String {
    let o = lasagna().args(args).output().expect("run lasagna");
    let (out, err) = text(&o);
    let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
    let shown = shown.join(" ");
    assert!(!o.status.success(), "lasagna {shown} succeeded:\n{out}");
    assert!(
        !err.contains("panicked"),
        "lasagna {shown} panicked:\n{err}"
    );
    assert!(
        err.contains("error:"),
        "lasagna {shown}: no `error:` in:\n{err}"
    );
    for w in want {
        assert!(err.contains(w), "lasagna {shown}: {w:?} not in:\n{err}");
    }
    err
}

fn remove(paths: &[&Path]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

// ---- ONNX Runtime ----

/// python3, with `.tools/python` (where scripts/setup.sh installs ONNX
/// Runtime when the system Python lacks it) on its path.
fn python() -> Command {
    let mut c = Command::new("python3");
    let tools = root().join(".tools/python");
    if tools.is_dir() {
        let mut path = std::ffi::OsString::from(tools);
        if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
            path.push(":");
            path.push(old);
        }
        c.env("PYTHONPATH", path);
    }
    c
}

/// Why ONNX Runtime cannot run here, if it cannot.
fn ort_missing() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        match python()
            // What scripts/onnx-ort-check.py imports.
            .args(["-c", "import onnxruntime, numpy"])
            .output()
        {
            Err(e) => Some(format!("python3 does not run ({e})")),
            Ok(o) if !o.status.success() => {
                let err = String::from_utf8_lossy(&o.stderr);
                Some(format!(
                    "python3 cannot import onnxruntime and numpy ({}); \
                     bash scripts/setup.sh installs them",
                    err.lines().last().unwrap_or("no message").trim()
                ))
            }
            Ok(_) => None,
        }
    })
    .as_deref()
}

/// True when `test` must skip its ONNX Runtime part: prints why. Under
/// `CI=true` or `LASAGNA_REQUIRE_ORT` a missing ONNX Runtime fails instead.
fn skip_without_ort(test: &str) -> bool {
    let Some(why) = ort_missing() else {
        return false;
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let required = std::env::var_os("LASAGNA_REQUIRE_ORT").is_some_and(|v| !v.is_empty());
    assert!(
        !ci && !required,
        "{test}: {why} (CI=true or LASAGNA_REQUIRE_ORT makes this a failure, not a skip)"
    );
    skip::skipped(&format!("its ONNX Runtime check: {why}; CI runs it"));
    true
}

/// `scripts/onnx-ort-check.py MODEL --predictions CSV` with the bounds
/// every test here holds the converters to: argmax agreement at least
/// 99.9% and every logit within 1e-4 of ONNX Runtime's. Prints its
/// `ort-check` line after `[engine]`, and returns it.
fn ort_check(model: &Path, predictions: &Path, engine: &str) -> String {
    let script = root().join("scripts/onnx-ort-check.py");
    assert!(script.is_file(), "{} is missing", script.display());
    let o = python()
        .arg(&script)
        .arg(model)
        .arg("--data")
        .arg(data())
        .arg("--predictions")
        .arg(predictions)
        .args(["--min-agree", "0.999", "--max-diff", "1e-4"])
        .output()
        .expect("run python3");
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "onnx-ort-check.py {} --predictions {} failed ({}):\n{out}\n{err}",
        model.display(),
        predictions.display(),
        o.status
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("ort-check"))
        .unwrap_or_else(|| panic!("no `ort-check` line in:\n{out}\n{err}"))
        .to_string();
    println!("[{engine}] {line}");
    line
}

/// `lasagna eval --engine ENGINE --predictions CSV` on all 10,000 test
/// images; prints what eval said.
fn eval(model: &Path, engine: &str, csv: &Path) {
    let said = lasagna_ok(&[
        OsStr::new("eval"),
        "--model-file".as_ref(),
        model.as_os_str(),
        "--engine".as_ref(),
        engine.as_ref(),
        "--data".as_ref(),
        data().as_os_str(),
        "--predictions".as_ref(),
        csv.as_os_str(),
    ]);
    print!("{said}");
    assert!(said.contains("(10000 images"), "{said}");
}

fn import(onnx: &Path, lsn: &Path) -> String {
    let said = lasagna_ok(&[
        OsStr::new("import"),
        onnx.as_os_str(),
        "--out".as_ref(),
        lsn.as_os_str(),
    ]);
    print!("{said}");
    said
}

fn export_onnx(lsn: &Path, onnx: &Path) -> String {
    let said = lasagna_ok(&[
        OsStr::new("export"),
        "--model-file".as_ref(),
        lsn.as_os_str(),
        "--onnx".as_ref(),
        onnx.as_os_str(),
    ]);
    print!("{said}");
    let bytes = std::fs::metadata(onnx).expect("--onnx written").len();
    assert!(
        said.contains(&format!(
            "wrote {} ({bytes} bytes, ONNX opset",
            onnx.display()
        )) && said.contains(", f32)"),
        "{said}"
    );
    said
}

// ---- a: PyTorch's files, imported, against ONNX Runtime ----

/// Imports fixture `name`, runs it on the no_std engine over the test set,
/// and holds its logits to ONNX Runtime's on the fixture itself.
fn imported_fixture_matches_onnx_runtime(name: &str, test: &str) {
    let onnx = fixture(name);
    let (lsn, csv) = (tmp(&format!("{name}.lsn")), tmp(&format!("{name}.csv")));
    let said = import(&onnx, &lsn);
    for want in ["ONNX opset", "ops ", "folded ", "labels ", "wrote "] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    eval(&lsn, "nostd", &csv);
    if !skip_without_ort(test) {
        ort_check(&onnx, &csv, "nostd");
    }
    remove(&[&lsn, &csv]);
}

#[test]
fn imported_mlp_fixture_matches_onnx_runtime_on_the_test_set() {
    imported_fixture_matches_onnx_runtime(
        "mlp",
        "imported_mlp_fixture_matches_onnx_runtime_on_the_test_set",
    );
}

#[test]
fn imported_cnn_bn_fixture_matches_onnx_runtime_on_the_test_set() {
    imported_fixture_matches_onnx_runtime(
        "cnn_bn",
        "imported_cnn_bn_fixture_matches_onnx_runtime_on_the_test_set",
    );
}

#[test]
fn imported_lstm_fixture_matches_onnx_runtime_on_the_test_set() {
    imported_fixture_matches_onnx_runtime(
        "lstm",
        "imported_lstm_fixture_matches_onnx_runtime_on_the_test_set",
    );
}

// ---- b: Lasagna's models, exported, against ONNX Runtime ----

/// Trains `preset` for one epoch on 2,000 images (500 held out), exports it
/// with `--onnx`, and holds the trainer's layers and the no_std engine on
/// the trained file to ONNX Runtime on the exported one.
fn exported_preset_matches_onnx_runtime(preset: &str, test: &str) {
    let (lsn, onnx) = (
        tmp(&format!("{preset}-trained.lsn")),
        tmp(&format!("{preset}-trained.onnx")),
    );
    let (trainer_csv, nostd_csv) = (
        tmp(&format!("{preset}-trainer.csv")),
        tmp(&format!("{preset}-nostd.csv")),
    );
    lasagna_ok(&[
        OsStr::new("train"),
        "--model".as_ref(),
        preset.as_ref(),
        "--epochs".as_ref(),
        "1".as_ref(),
        "--train-subset".as_ref(),
        "2000".as_ref(),
        "--val".as_ref(),
        "500".as_ref(),
        "--data".as_ref(),
        data().as_os_str(),
        "--quiet".as_ref(),
        "--out".as_ref(),
        lsn.as_os_str(),
    ]);
    export_onnx(&lsn, &onnx);
    eval(&lsn, "trainer", &trainer_csv);
    eval(&lsn, "nostd", &nostd_csv);
    if !skip_without_ort(test) {
        ort_check(&onnx, &trainer_csv, "trainer");
        ort_check(&onnx, &nostd_csv, "nostd");
    }
    remove(&[&lsn, &onnx, &trainer_csv, &nostd_csv]);
}

#[test]
fn exported_mlp_preset_matches_onnx_runtime_on_the_test_set() {
    exported_preset_matches_onnx_runtime(
        "mlp",
        "exported_mlp_preset_matches_onnx_runtime_on_the_test_set",
    );
}

#[test]
fn exported_cnn_preset_matches_onnx_runtime_on_the_test_set() {
    exported_preset_matches_onnx_runtime(
        "cnn",
        "exported_cnn_preset_matches_onnx_runtime_on_the_test_set",
    );
}

#[test]
fn exported_lstm_preset_matches_onnx_runtime_on_the_test_set() {
    exported_preset_matches_onnx_runtime(
        "lstm",
        "exported_lstm_preset_matches_onnx_runtime_on_the_test_set",
    );
}

// ---- c: import, export, import: the same bytes ----

#[test]
fn import_export_import_gives_the_same_lsn_bytes_for_every_fixture() {
    for name in ["mlp", "cnn_bn", "lstm"] {
        let (a, b, c) = (
            tmp(&format!("{name}-a.lsn")),
            tmp(&format!("{name}-b.onnx")),
            tmp(&format!("{name}-c.lsn")),
        );
        import(&fixture(name), &a);
        export_onnx(&a, &b);
        import(&b, &c);
        let (first, again) = (
            std::fs::read(&a).expect("a.lsn"),
            std::fs::read(&c).expect("c.lsn"),
        );
        remove(&[&a, &b, &c]);
        assert_eq!(first.len(), again.len(), "{name}: lengths differ");
        let at = first.iter().zip(&again).position(|(x, y)| x != y);
        assert_eq!(
            at, None,
            "{name}: the re-imported .lsn differs at byte {at:?}"
        );
    }
}

// ---- d: the README's "From PyTorch" commands ----

/// The `lasagna ...` lines of the first `sh` block under the README's
/// "From PyTorch" heading.
fn readme_from_pytorch_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("From PyTorch"))
        .expect("README.md has a \"## From PyTorch\" section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block in \"From PyTorch\"");
    block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("lasagna "))
        .map(String::from)
        .collect()
}

/// The README's commands on the MLP fixture, as written (only the file
/// names move: `model.onnx` is the fixture, each `.lsn` a temporary file):
/// import, eval, int8 export, and a deployment to the emulated Cortex-M4 on
/// all 10,000 test images where every device prediction and output byte
/// must equal the host engine's.
#[test]
fn the_readme_from_pytorch_commands_run_on_the_mlp_fixture_and_deploy_to_the_m4() {
    let commands = readme_from_pytorch_commands();
    let verbs: Vec<&str> = commands
        .iter()
        .filter_map(|c| c.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        verbs,
        ["import", "eval", "export", "deploy"],
        "the README's \"From PyTorch\" commands: {commands:#?}"
    );
    let onnx = fixture("mlp");
    let mut written = Vec::new();
    for command in &commands {
        let args: Vec<std::ffi::OsString> = command
            .split_whitespace()
            .skip(1)
            .map(|w| {
                if w == "model.onnx" {
                    onnx.clone().into_os_string()
                } else if w.ends_with(".lsn") {
                    let p = tmp(&format!("readme-{}", w.replace('/', "-")));
                    written.push(p.clone());
                    p.into_os_string()
                } else {
                    w.into()
                }
            })
            .collect();
        if command.starts_with("lasagna deploy") {
            // Skips the deploy step, saying why.
            if !skip::have_qemu() {
                break;
            }
            assert!(command.contains("--images 10000"), "{command}");
        }
        println!("$ {command}");
        let said = lasagna_ok(&args);
        println!("{said}");
        if command.starts_with("lasagna deploy") {
            assert!(
                said.contains(
                    "host check  predictions identical on 10,000/10,000 images; \
                     int8 outputs bit-identical"
                ),
                "{said}"
            );
        }
    }
    let written: Vec<&Path> = written.iter().map(PathBuf::as_path).collect();
    remove(&written);
}

// ---- e: errors a user sees ----

#[test]
fn import_refuses_bad_files_and_flags_by_name_without_panicking() {
    let out = tmp("refused.lsn");
    let o = out.to_str().expect("UTF-8 temporary path");
    // Not ONNX: the converter's decode error, under the file's name.
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    lasagna_fails(
        &["import", manifest, "--out", o],
        &["cannot import", "Cargo.toml", "not an ONNX model"],
    );
    // A .lsn given where ONNX is expected is named as such.
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infer-nostd/tests/golden/mnist_tiny_cnn_int8.lsn"
    );
    lasagna_fails(
        &["import", golden, "--out", o],
        &["Lasagna model file (.lsn), not ONNX", "--onnx"],
    );
    // Missing.
    lasagna_fails(
        &["import", "/nonexistent/model.onnx", "--out", o],
        &["cannot read /nonexistent/model.onnx"],
    );
    // Over the 256 MiB cap: refused from its length, nothing read (sparse).
    let big = tmp("big.onnx");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(300 << 20))
        .expect("a sparse file");
    lasagna_fails(
        &[
            "import",
            big.to_str().expect("UTF-8 temporary path"),
            "--out",
            o,
        ],
        &["314572800 bytes", "268435456 bytes (256 MiB)"],
    );
    remove(&[&big]);
    // Flags, refused before the file is read.
    let mlp = fixture("mlp");
    let m = mlp.to_str().expect("UTF-8 fixture path");
    for (flag, value, want) in [
        ("--input-std", "0", "not above 0"),
        ("--input-std", "-0.3", "not above 0"),
        ("--input-std", "nan", "not a finite number"),
        ("--input-std", "1e39", "not a finite number"),
        ("--input-mean", "inf", "not a finite number"),
        ("--input-mean", "zero", "not a number"),
        ("--labels", "", "label 1 of `` is empty"),
        ("--labels", "0,1,,3", "label 3 of `0,1,,3` is empty"),
    ] {
        lasagna_fails(
            &["import", m, "--out", o, flag, value],
            &[&format!("'{value}' for '{flag}"), want],
        );
    }
    lasagna_fails(&["import", m], &["--out"]);
    // Labels that do not match the outputs: the converter says so.
    lasagna_fails(
        &["import", m, "--out", o, "--labels", "a,b"],
        &["cannot import", "2 labels for 10 outputs", "--labels"],
    );
    // Writing over the input.
    lasagna_fails(&["import", m, "--out", m], &["MODEL.onnx", "--out"]);
    assert!(!out.exists(), "a refused import wrote {}", out.display());
}

#[test]
fn export_needs_an_output_and_quantizes_only_the_deployment_file() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infer-nostd/tests/golden/mnist_tiny_cnn_int8.lsn"
    );
    let onnx = tmp("refused.onnx");
    let x = onnx.to_str().expect("UTF-8 temporary path");
    lasagna_fails(
        &["export", "--model-file", golden],
        &["--out", "--onnx", "nothing to write"],
    );
    for (flag, value) in [
        ("--quantize", "int8"),
        ("--quantize", "f16"),
        ("--calibration", "100"),
    ] {
        lasagna_fails(
            &["export", "--model-file", golden, "--onnx", x, flag, value],
            &[
                &format!("invalid {flag}"),
                "always the trained model in f32",
            ],
        );
    }
    lasagna_fails(
        &["export", "--model-file", golden, "--onnx", golden],
        &["--model-file", "--onnx"],
    );
    lasagna_fails(
        &["export", "--model-file", golden, "--onnx", x, "--out", x],
        &["--out", "--onnx"],
    );
    assert!(!onnx.exists(), "a refused export wrote {}", onnx.display());
}

#[test]
fn import_help_lists_the_ops_opsets_and_next_steps() {
    let said = lasagna_ok(&["import", "--help"]);
    for want in [
        "torch.onnx.export",
        "Gemm",
        "MatMul + Add",
        "Conv",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "BatchNormalization",
        "LeakyRelu",
        "Gelu",
        "Softmax",
        "Reshape",
        "Dropout",
        "Identity",
        "LSTM",
        "Gather",
        "opsets 13 to 21",
        "lasagna.input.mean",
        "win over",
        "lasagna export --model-file model.lsn --quantize int8",
        "lasagna deploy",
    ] {
        assert!(said.contains(want), "{want:?} not in:\n{said}");
    }
    let said = lasagna_ok(&["export", "--help"]);
    assert!(
        said.contains("--onnx <FILE>") && said.contains("always the trained model in f32"),
        "{said}"
    );
}
