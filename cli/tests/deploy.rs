//! `lasagna deploy` from the command line: the errors a user sees before
//! anything is built, and real deployments on QEMU: the committed int8 test
//! CNN, and an MLP trained, exported and deployed here (skipped, saying
//! why, when `qemu-system-arm` is missing).

use lasagna_deploy::BOARDS;
use lasagna_format::{ModelBuilder, Op, TensorData};
use std::path::PathBuf;
use std::process::{Command, Output};

fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lasagna-deploy-{}-{name}", std::process::id()))
}

fn golden() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infer-nostd/tests/golden/mnist_tiny_cnn_int8.lsn"
    ))
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `lasagna deploy ARGS` and expects a clean failure whose stderr
/// contains every one of `want`.
fn fails_with(args: &[&str], want: &[&str]) {
    let o = lasagna()
        .arg("deploy")
        .args(args)
        .output()
        .expect("run lasagna");
    let (out, err) = text(&o);
    assert!(!o.status.success(), "deploy {args:?} succeeded:\n{out}");
    assert!(
        !err.contains("panicked"),
        "deploy {args:?} panicked:\n{err}"
    );
    for w in want {
        assert!(err.contains(w), "deploy {args:?}: {w:?} not in:\n{err}");
    }
}

/// A Linear model on MNIST-shaped input.
fn linear_model(inputs: u32, outputs: u32) -> Vec<u8> {
    let n = (inputs * outputs) as usize;
    let mut b = ModelBuilder::new(&[inputs]);
    b.op(
        Op::Linear {
            in_features: inputs,
            out_features: outputs,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        vec![
            TensorData::f32(&[outputs, inputs], &vec![0.01; n]),
            TensorData::f32(&[outputs], &vec![0.0; outputs as usize]),
        ],
    );
    b.build().expect("the model builds")
}

// ---- errors before anything is built ----

#[test]
fn bad_inputs_fail_with_clear_errors_before_building() {
    let golden = golden();
    let g = golden.to_str().expect("utf-8 path");
    fails_with(
        &["--model-file", "/nonexistent/m.lsn", "--board", "qemu-m4"],
        &["/nonexistent/m.lsn"],
    );
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    fails_with(
        &["--model-file", manifest, "--board", "qemu-m4"],
        &["not a Lasagna model", "HINT"],
    );
    for n in ["0", "10001"] {
        fails_with(
            &["--model-file", g, "--board", "qemu-m4", "--images", n],
            &["--images", "10,000"],
        );
    }
    fails_with(
        &["--model-file", g, "--board", "esp32"],
        &["qemu-m4", "qemu-m4-small"],
    );
    let tiny = tmp("linear4.lsn");
    std::fs::write(&tiny, linear_model(4, 2)).expect("write");
    fails_with(
        &[
            "--model-file",
            tiny.to_str().expect("utf-8"),
            "--board",
            "qemu-m4",
        ],
        &["784"],
    );
    let _ = std::fs::remove_file(&tiny);
}

#[test]
fn an_f32_model_larger_than_flash_is_refused_with_the_int8_hint() {
    // 784 x 700 f32 weights: 2.2 MB against 512 KiB.
    let big = tmp("linear700.lsn");
    std::fs::write(&big, linear_model(784, 700)).expect("write");
    let size = std::fs::metadata(&big).expect("written").len();
    let over = size - BOARDS[0].flash_bytes();
    let over = lasagna_deploy::thousands(over);
    fails_with(
        &[
            "--model-file",
            big.to_str().expect("utf-8"),
            "--board",
            "qemu-m4",
        ],
        &[
            "does not fit qemu-m4's flash",
            &format!("{over} B more than its 512 KiB"),
            "--quantize int8",
        ],
    );
    let _ = std::fs::remove_file(&big);
}

#[test]
fn a_missing_emulator_is_named_with_how_to_install_it() {
    let golden = golden();
    let o = lasagna()
        .env("PATH", "")
        .args(["deploy", "--board", "qemu-m4", "--model-file"])
        .arg(&golden)
        .output()
        .expect("run lasagna");
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("qemu-system-arm") && err.contains("sudo apt-get install qemu-system-arm"),
        "{err}"
    );
}

// ---- a real deployment ----

fn have_qemu() -> bool {
    Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_golden_int8_cnn_deploys_on_qemu_and_matches_the_host_bit_for_bit() {
    if !have_qemu() {
        eprintln!(
            "SKIPPED: qemu-system-arm is not installed (sudo apt-get install qemu-system-arm); \
             CI installs it and runs this test"
        );
        return;
    }
    let json = tmp("report.json");
    let o = lasagna()
        .args([
            "deploy",
            "--board",
            "qemu-m4",
            "--images",
            "50",
            "--model-file",
        ])
        .arg(golden())
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run lasagna");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains(
            "host check  predictions identical on 50/50 images; int8 outputs bit-identical"
        ),
        "{out}"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("--json written")).expect("json");
    let _ = std::fs::remove_file(&json);
    let int = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {r}"));
    assert_eq!(r["schema"], 1);
    assert_eq!(r["board"]["name"], "qemu-m4");
    assert_eq!(r["int8"], true);
    assert_eq!(r["weights"], "int8");
    assert_eq!(int(&r["images"]), 50);
    let model_bytes = std::fs::metadata(golden()).expect("golden model").len();
    assert_eq!(int(&r["model_bytes"]), model_bytes);
    let flash = int(&r["flash"]["bytes"]);
    assert!(
        flash > model_bytes && flash <= int(&r["board"]["flash_budget_bytes"]),
        "{r}"
    );
    let ram = &r["ram"];
    assert_eq!(
        int(&ram["bytes"]),
        int(&ram["static_bytes"]) + int(&ram["peak_stack_bytes"])
    );
    assert!(int(&ram["arena_bytes"]) > 0 && int(&ram["arena_bytes"]) <= int(&ram["static_bytes"]));
    assert!(int(&r["instructions_per_inference"]) > 0, "{r}");
    assert!(int(&r["instructions_worst"]) >= int(&r["instructions_per_inference"]));
    // The tiny CNN is about 90% accurate on MNIST; 50 images leave room.
    assert!(r["accuracy"].as_f64().unwrap_or(0.0) >= 0.7, "{r}");
    let h = &r["host_check"];
    assert_eq!(h["passed"], true, "{r}");
    assert_eq!(int(&h["matching_predictions"]), 50);
    assert_eq!(h["outputs_identical"], true);
    assert_eq!(h["outputs_fnv1a_host"], h["outputs_fnv1a_device"]);
}

/// The journey CI proves on every change: an MLP trained here (one epoch
/// on 10,000 images), exported as int8, deployed to the emulated
/// Cortex-M4 on 500 test images; every prediction and output level must
/// equal the host engine's, within the small-part budget (16 KB of RAM,
/// 400,000 instructions per inference, both deterministic counts).
#[test]
fn a_trained_int8_mlp_runs_on_the_emulated_m4_identically_to_the_host() {
    if !have_qemu() {
        eprintln!(
            "SKIPPED: qemu-system-arm is not installed (sudo apt-get install qemu-system-arm); \
             CI installs it and runs this test"
        );
        return;
    }
    let (trained, int8, json) = (tmp("mlp.lsn"), tmp("mlp-int8.lsn"), tmp("mlp.json"));
    let run = |args: Vec<&std::ffi::OsStr>| {
        let o = lasagna().args(args).output().expect("run lasagna");
        let (out, err) = text(&o);
        assert!(o.status.success(), "{out}\n{err}");
        out
    };
    run(vec![
        "train".as_ref(),
        "--model".as_ref(),
        "mlp".as_ref(),
        "--epochs".as_ref(),
        "1".as_ref(),
        "--train-subset".as_ref(),
        "10000".as_ref(),
        "--val".as_ref(),
        "1000".as_ref(),
        "--out".as_ref(),
        trained.as_os_str(),
    ]);
    run(vec![
        "export".as_ref(),
        "--model-file".as_ref(),
        trained.as_os_str(),
        "--quantize".as_ref(),
        "int8".as_ref(),
        "--out".as_ref(),
        int8.as_os_str(),
    ]);
    let out = run(vec![
        "deploy".as_ref(),
        "--model-file".as_ref(),
        int8.as_os_str(),
        "--board".as_ref(),
        "qemu-m4".as_ref(),
        "--images".as_ref(),
        "500".as_ref(),
        "--json".as_ref(),
        json.as_os_str(),
    ]);
    println!("{out}");
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("--json written")).expect("json");
    for f in [&trained, &int8, &json] {
        let _ = std::fs::remove_file(f);
    }
    let int = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {r}"));
    let h = &r["host_check"];
    assert_eq!(h["passed"], true, "{r}");
    assert_eq!(int(&h["matching_predictions"]), 500, "{r}");
    assert_eq!(h["outputs_identical"], true, "{r}");
    assert!(int(&r["ram"]["bytes"]) <= 16 * 1024, "RAM over 16 KB: {r}");
    assert!(
        int(&r["instructions_per_inference"]) <= 400_000,
        "over 400,000 instructions per inference: {r}"
    );
    assert!(r["accuracy"].as_f64().unwrap_or(0.0) >= 0.9, "{r}");
}

/// An int8 MLP whose Linear weights are interleaved (FORMAT.md 6.2) with
/// shapes the MNIST presets never have: 784 -> 31 (a last block of 3 rows)
/// -> 10 (31 inputs: 3 tail columns; a last block of 2 rows). The
/// Cortex-M4's DSP kernel (one `LDM` per 4-row block, word-by-word for the
/// last block, byte-wise tail columns) must give the host's bits.
#[test]
fn interleaved_int8_linears_with_tail_rows_and_columns_match_the_host_on_the_m4() {
    use lasagna_format::{OpSpec, ValueType, WeightLayout};
    if !have_qemu() {
        eprintln!(
            "SKIPPED: qemu-system-arm is not installed (sudo apt-get install qemu-system-arm); \
             CI installs it and runs this test"
        );
        return;
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let layout = WeightLayout::Interleaved4;
    let mut b = ModelBuilder::new(&[784]);
    // MNIST pixels as levels p - 128 (FORMAT.md 6.1).
    b.input_type(ValueType::I8 {
        scale: 1.0 / 255.0,
        zero_point: -128,
    });
    let mut shape = lasagna_format::Shape::d1(784);
    for (i, o, out) in [(784u32, 31u32, (0.05, -20)), (31, 10, (0.1, 3))] {
        let op = Op::Linear {
            in_features: i,
            out_features: o,
            bias: true,
            layout,
        };
        let w: Vec<i8> = (0..i * o).map(|_| (next() % 255) as i8).collect();
        let bias: Vec<i32> = (0..o).map(|_| (next() % 2001) as i32 - 1000).collect();
        let scales = (0..o).map(|c| 0.002 + 0.0001 * c as f32).collect();
        b.push(OpSpec {
            op,
            tensors: vec![
                TensorData::i8_per_channel(
                    &[o, i],
                    &layout.store(&w, o as usize, i as usize),
                    scales,
                ),
                TensorData::i32(&[o], &bias),
            ],
            output: ValueType::I8 {
                scale: out.0,
                zero_point: out.1,
            },
            scratch_bytes: lasagna_infer::scratch_bytes_int8(&op, &shape) as u32,
        });
        shape = lasagna_format::Shape::d1(o);
    }
    b.labels((0..10).map(|d| d.to_string()));
    let file = tmp("tails-int8.lsn");
    std::fs::write(&file, b.build().expect("valid model")).expect("write");
    let o = lasagna()
        .args([
            "deploy",
            "--board",
            "qemu-m4",
            "--images",
            "100",
            "--model-file",
        ])
        .arg(&file)
        .output()
        .expect("run lasagna");
    let _ = std::fs::remove_file(&file);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        out.contains(
            "host check  predictions identical on 100/100 images; int8 outputs bit-identical"
        ),
        "{out}"
    );
}
