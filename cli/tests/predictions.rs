//! `--predictions FILE.csv` of `lasagna eval` and `lasagna deploy`: the
//! header, one row per image, each label from the data, each prediction
//! the first argmax of its outputs, the accuracy the command printed, and
//! on the device the same columns as on the host (the deploy case is
//! skipped, saying why, when `qemu-system-arm` is missing; a failure under
//! `CI=true` or `LASAGNA_REQUIRE_QEMU`). A path that
//! cannot be written is refused before any work.

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_format::{ModelBuilder, Op, TensorData};
use lasagna_trainer::data::{load_mnist_test_pixels, resolve_data_dir};
use skip::have_qemu;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lasagna-preds-{}-{name}", std::process::id()))
}

fn golden_int8() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infer-nostd/tests/golden/mnist_tiny_cnn_int8.lsn"
    ))
}

fn run_ok(cmd: &mut Command) -> String {
    let o: Output = cmd.output().expect("run lasagna");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{out}\n{err}");
    out
}

fn fails(cmd: &mut Command) -> String {
    let o = cmd.output().expect("run lasagna");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    err
}

/// A Linear 784 -> 10 f32 model; `weight(o, i)` gives its weights, the
/// biases are 0.
fn linear_f32(path: &Path, weight: impl Fn(usize, usize) -> f32) {
    let w: Vec<f32> = (0..10 * 784).map(|k| weight(k / 784, k % 784)).collect();
    let mut b = ModelBuilder::new(&[784]);
    b.op(
        Op::Linear {
            in_features: 784,
            out_features: 10,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        vec![
            TensorData::f32(&[10, 784], &w),
            TensorData::f32(&[10], &[0.0; 10]),
        ],
    );
    std::fs::write(path, b.build().expect("the model builds")).expect("write the model");
}

/// A fixed pseudo-random model: predictions vary from image to image.
fn scrambled(o: usize, i: usize) -> f32 {
    ((o * 7919 + i * 104_729) % 1000) as f32 / 1000.0 - 0.5
}

/// The MNIST test labels, as the commands read them.
fn labels() -> Vec<u8> {
    load_mnist_test_pixels(&resolve_data_dir(None))
        .expect("MNIST test set")
        .1
}

struct Csv {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Csv {
    fn read(path: &Path) -> Csv {
        let text = std::fs::read_to_string(path).expect("the CSV is written");
        assert!(text.ends_with('\n'), "no final newline");
        let mut lines = text
            .lines()
            .map(|l| l.split(',').map(String::from).collect());
        let header: Vec<String> = lines.next().expect("a header row");
        let rows: Vec<Vec<String>> = lines.collect();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.len(), header.len(), "row {i}: {r:?}");
        }
        Csv { header, rows }
    }

    fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", self.header))
    }

    fn ints(&self, row: usize, names: &[String]) -> Vec<i64> {
        names
            .iter()
            .map(|n| self.rows[row][self.col(n)].parse().expect("an integer"))
            .collect()
    }
}

/// `prefix0..prefix9`.
fn names(prefix: &str) -> Vec<String> {
    (0..10).map(|k| format!("{prefix}{k}")).collect()
}

/// The first index of the largest value (the rule `--help` states).
fn first_argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (k, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = k;
        }
    }
    best
}

/// The `NN.NN%` after "test accuracy " in eval's line.
fn printed_accuracy(stdout: &str) -> String {
    let rest = stdout
        .split("test accuracy ")
        .nth(1)
        .unwrap_or_else(|| panic!("no accuracy in {stdout}"));
    rest.split('%').next().unwrap_or_default().to_string()
}

/// Checks an eval CSV against the data and the printed accuracy; `q`:
/// int8 levels (else f32 logits). Returns the predictions.
fn check_eval_csv(csv: &Csv, stdout: &str, q: bool) -> Vec<usize> {
    let labels = labels();
    let outs = names(if q { "q" } else { "out" });
    let mut want = vec!["index", "label", "prediction"];
    if q {
        want.extend(["scale", "zero_point"]);
    }
    let mut want: Vec<String> = want.into_iter().map(String::from).collect();
    want.extend(outs.iter().cloned());
    assert_eq!(csv.header, want);
    assert_eq!(csv.rows.len(), labels.len(), "one row per test image");
    let (mut correct, mut preds) = (0usize, Vec::new());
    for (i, r) in csv.rows.iter().enumerate() {
        assert_eq!(r[0], i.to_string());
        assert_eq!(
            r[1],
            labels[i].to_string(),
            "row {i}: the label is not the data's"
        );
        let pred: usize = r[2].parse().expect("a class");
        let best = if q {
            let levels = csv.ints(i, &outs);
            assert!(levels.iter().all(|l| (-128..=127).contains(l)), "{r:?}");
            let scale: f32 = r[csv.col("scale")].parse().expect("scale");
            assert!(scale > 0.0 && r[csv.col("zero_point")].parse::<i32>().is_ok());
            first_argmax(&levels)
        } else {
            let v: Vec<f32> = outs
                .iter()
                .map(|n| r[csv.col(n)].parse().expect("an f32"))
                .collect();
            first_argmax(&v)
        };
        assert_eq!(
            pred, best,
            "row {i}: prediction is not the first argmax: {r:?}"
        );
        correct += usize::from(pred == usize::from(labels[i]));
        preds.push(pred);
    }
    let from_csv = format!("{:.2}", 100.0 * correct as f64 / labels.len() as f64);
    assert_eq!(from_csv, printed_accuracy(stdout), "{stdout}");
    preds
}

fn eval(model: &Path, engine: &str, csv: &Path) -> String {
    run_ok(
        lasagna()
            .args(["eval", "--engine", engine, "--model-file"])
            .arg(model)
            .arg("--predictions")
            .arg(csv),
    )
}

#[test]
fn eval_predictions_of_an_f32_model_match_the_data_and_the_printed_accuracy() {
    let (model, csv) = (tmp("scrambled.lsn"), tmp("scrambled.csv"));
    linear_f32(&model, scrambled);
    for engine in ["trainer", "nostd"] {
        let out = eval(&model, engine, &csv);
        let preds = check_eval_csv(&Csv::read(&csv), &out, false);
        let distinct = preds
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        assert!(
            distinct > 1,
            "{engine}: every image predicted the same class"
        );
    }
    let _ = std::fs::remove_file(&model);
    let _ = std::fs::remove_file(&csv);
}

#[test]
fn eval_predictions_give_every_tie_to_the_first_index() {
    // Zero weights and biases: ten equal outputs for every image, so every
    // prediction is class 0, and the accuracy is the share of zeros (980
    // of MNIST's 10,000 test images).
    let (model, csv) = (tmp("zeros.lsn"), tmp("zeros.csv"));
    linear_f32(&model, |_, _| 0.0);
    for engine in ["trainer", "nostd"] {
        let out = eval(&model, engine, &csv);
        let preds = check_eval_csv(&Csv::read(&csv), &out, false);
        assert!(preds.iter().all(|&p| p == 0), "{engine}");
        assert!(out.contains("test accuracy 9.80%"), "{engine}: {out}");
    }
    let _ = std::fs::remove_file(&model);
    let _ = std::fs::remove_file(&csv);
}

#[test]
fn eval_predictions_of_an_int8_model_are_its_levels_with_scale_and_zero_point() {
    let csv = tmp("int8.csv");
    let out = eval(&golden_int8(), "nostd", &csv);
    let table = Csv::read(&csv);
    check_eval_csv(&table, &out, true);
    // One scale and zero point for the whole model.
    let (s, z) = (table.col("scale"), table.col("zero_point"));
    assert!(table
        .rows
        .iter()
        .all(|r| r[s] == table.rows[0][s] && r[z] == table.rows[0][z]));
    // The default engine hands an int8 file to the no_std engine (the
    // trainer's layers compute in f32): the same levels, and it says so.
    let out = eval(&golden_int8(), "trainer", &csv);
    assert!(out.contains("evaluated on the no_std engine"), "{out}");
    check_eval_csv(&Csv::read(&csv), &out, true);
    let _ = std::fs::remove_file(&csv);
}

#[test]
fn a_predictions_path_that_cannot_be_written_is_refused_before_any_work() {
    let golden = golden_int8();
    let bad = "/nonexistent-lasagna-dir/p.csv";
    // The data folder is bad too: the CSV must be refused first.
    let err = fails(
        lasagna()
            .args(["eval", "--data", "/nonexistent/mnist", "--model-file"])
            .arg(&golden)
            .args(["--predictions", bad]),
    );
    assert!(err.contains(bad) && err.contains("does not exist"), "{err}");
    let err = fails(
        lasagna()
            .args(["eval", "--model-file"])
            .arg(&golden)
            .arg("--predictions")
            .arg(&golden),
    );
    assert!(err.contains("--model-file and --predictions"), "{err}");
    // deploy: refused before the build (and before the emulator is looked for).
    let err = fails(
        lasagna()
            .env("PATH", "")
            .args(["deploy", "--board", "qemu-m4", "--model-file"])
            .arg(&golden)
            .args(["--predictions", bad]),
    );
    assert!(err.contains(bad) && err.contains("does not exist"), "{err}");
    let same = tmp("same.out");
    let err = fails(
        lasagna()
            .args(["deploy", "--board", "qemu-m4", "--model-file"])
            .arg(&golden)
            .arg("--json")
            .arg(&same)
            .arg("--predictions")
            .arg(&same),
    );
    assert!(err.contains("--json and --predictions"), "{err}");
}

fn deploy(model: &Path, csv: &Path, images: usize) -> String {
    run_ok(
        lasagna()
            .args(["deploy", "--board", "qemu-m4", "--images"])
            .arg(images.to_string())
            .arg("--model-file")
            .arg(model)
            .arg("--predictions")
            .arg(csv),
    )
}

/// Checks a deploy CSV: header, rows, labels, and each side's prediction
/// the first argmax of its outputs. Returns (host, device) outputs per row.
fn check_deploy_csv(csv: &Csv, images: usize, q: bool) -> Vec<(Vec<String>, Vec<String>)> {
    let labels = labels();
    let kind = if q { "q" } else { "out" };
    let (host, device) = (
        names(&format!("host_{kind}")),
        names(&format!("device_{kind}")),
    );
    let mut want: Vec<String> = ["index", "label", "host_prediction", "device_prediction"]
        .map(String::from)
        .to_vec();
    if q {
        want.extend(["scale".to_string(), "zero_point".to_string()]);
    }
    want.extend(host.iter().cloned());
    want.extend(device.iter().cloned());
    assert_eq!(csv.header, want);
    assert_eq!(csv.rows.len(), images);
    let mut sides = Vec::new();
    for (i, r) in csv.rows.iter().enumerate() {
        assert_eq!(r[0], i.to_string());
        assert_eq!(r[1], labels[i].to_string());
        let get = |cols: &[String]| -> Vec<String> {
            cols.iter().map(|c| r[csv.col(c)].clone()).collect()
        };
        for (pred, cols) in [("host_prediction", &host), ("device_prediction", &device)] {
            let v: Vec<f64> = get(cols)
                .iter()
                .map(|x| x.parse().expect("a number"))
                .collect();
            let p: usize = r[csv.col(pred)].parse().expect("a class");
            assert_eq!(p, first_argmax(&v), "row {i}, {pred}: {r:?}");
        }
        assert_eq!(
            r[csv.col("host_prediction")],
            r[csv.col("device_prediction")],
            "row {i}"
        );
        sides.push((get(&host), get(&device)));
    }
    sides
}

#[test]
fn deploy_predictions_show_the_device_outputs_next_to_the_host() {
    if !have_qemu() {
        return;
    }
    // int8: the device's levels must be the host's, bit for bit.
    let csv = tmp("deploy-int8.csv");
    let out = deploy(&golden_int8(), &csv, 50);
    assert!(out.contains("int8 outputs bit-identical"), "{out}");
    for (i, (host, device)) in check_deploy_csv(&Csv::read(&csv), 50, true)
        .iter()
        .enumerate()
    {
        assert_eq!(
            host, device,
            "row {i}: device levels differ from the host's"
        );
    }
    // f32: the device sends its f32 bits; every prediction must agree.
    let model = tmp("deploy-f32.lsn");
    linear_f32(&model, scrambled);
    let out = deploy(&model, &csv, 20);
    assert!(out.contains("predictions identical on 20/20"), "{out}");
    check_deploy_csv(&Csv::read(&csv), 20, false);
    let _ = std::fs::remove_file(&model);
    let _ = std::fs::remove_file(&csv);
}
