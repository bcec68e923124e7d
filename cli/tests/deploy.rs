//! `lasagna deploy` from the command line: the errors a user sees before
//! anything is built, and real deployments on QEMU: the committed int8 test
//! CNN, and an MLP trained, exported and deployed here (skipped, saying
//! why, when `qemu-system-arm` is missing; a failure under `CI=true` or
//! `LASAGNA_REQUIRE_QEMU`, as in `scripts/test.sh`).

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_deploy::BOARDS;
use lasagna_format::{ModelBuilder, Op, TensorData};
use skip::have_qemu;
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

#[test]
fn the_golden_int8_cnn_deploys_on_qemu_and_matches_the_host_bit_for_bit() {
    if !have_qemu() {
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
    // Measured 2026-12-07: 49 of these 50 images right (0.98; 93.43% on all
    // 10,000). The run is deterministic (a committed model, the first 50
    // test images, device == host bit for bit), so the bar is that count
    // less one image: room for an engine change that moves the rounding of
    // one borderline image, while mispaired labels or a wrong input scaling
    // (many images) fail. The old bar, 0.7, let 15 wrong images pass.
    let correct = (r["accuracy"].as_f64().unwrap_or(0.0) * 50.0).round();
    assert!(
        correct >= 48.0,
        "{correct} of 50 right, want at least 48: {r}"
    );
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

// ---- real boards and a real SoC under QEMU ----

/// The ELF header's entry point (`e_entry`): the reset handler's address,
/// so it lies in the flash the firmware was linked for.
fn elf_entry(elf: &[u8]) -> u64 {
    let b: [u8; 4] = elf[0x18..0x1c].try_into().expect("an ELF32 header");
    u64::from(u32::from_le_bytes(b))
}

/// `--build-only` for every real board: the firmware links for the part's
/// own memory map (flash origin and size, RAM origin and size; the
/// RP2040's boot2 in the first 256 bytes) and the budget report says so
/// (skipped, saying why, when the board's Rust target cannot be built;
/// a failure under `CI=true`, which installs the targets).
#[test]
fn every_real_board_builds_for_its_memory_map_and_prints_its_budget() {
    let model_bytes = std::fs::metadata(golden()).expect("golden model").len();
    let boards = [
        ("nucleo-f411re", 512, 0x0800_0000u64, 128, 0u64),
        ("nrf52840-dk", 1024, 0x0000_0000, 256, 0),
        ("rp-pico", 2048, 0x1000_0000, 264, 256),
        ("stm32f746-disco", 1024, 0x0800_0000, 320, 0),
    ];
    for (name, flash_kib, origin, ram_kib, boot2) in boards {
        let board = lasagna_deploy::Board::find(name).expect("a table row");
        if let Err(e) = lasagna_deploy::rust_target::find_core(
            board,
            &lasagna_deploy::firmware::default_firmware_dir(),
        ) {
            skip::skip_unless_required(
                &format!("{name}: its Rust target is missing ({e}); CI installs it"),
                None,
            );
            continue;
        }
        let json = tmp(&format!("{name}-build.json"));
        let o = lasagna()
            .args(["deploy", "--board", name, "--build-only", "--model-file"])
            .arg(golden())
            .arg("--json")
            .arg(&json)
            .output()
            .expect("run lasagna");
        let (out, err) = text(&o);
        assert!(o.status.success(), "{name}:\n{out}\n{err}");
        let memory = format!(
            "memory     flash {flash_kib} KiB at {origin:#010x}, RAM {ram_kib} KiB at 0x20000000"
        );
        for want in [
            &format!("deploy --build-only: {}", golden().display()),
            &format!("for {name} ("),
            &memory,
            &format!("model {} B (int8)", lasagna_deploy::thousands(model_bytes)),
            "budget     fits",
        ] {
            assert!(out.contains(want), "{name}: {want:?} not in:\n{out}");
        }
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).expect("--json written")).expect("json");
        let _ = std::fs::remove_file(&json);
        let int = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {r}"));
        assert_eq!(r["board"]["name"], name);
        assert_eq!(r["fits"], true, "{r}");
        assert_eq!(int(&r["boot2_bytes"]), boot2, "{r}");
        let flash = int(&r["flash"]["bytes"]);
        assert!(
            flash > model_bytes + boot2 && flash <= flash_kib * 1024,
            "{name}: flash {flash}: {r}"
        );
        assert_eq!(int(&r["model_bytes"]), model_bytes);
        let ram = &r["ram"];
        assert!(int(&ram["arena_bytes"]) > 0 && int(&ram["arena_bytes"]) <= int(&ram["bytes"]));
        assert_eq!(
            int(&ram["bytes"]) + int(&ram["stack_room_bytes"]),
            ram_kib * 1024
        );
        // The firmware itself was linked there: its reset handler is in the
        // part's flash, past boot2 on the RP2040.
        let elf = std::fs::read(r["firmware"].as_str().expect("a path")).expect("the ELF");
        let entry = elf_entry(&elf);
        assert!(
            entry >= origin + boot2 && entry < origin + flash_kib * 1024,
            "{name}: entry {entry:#x} outside flash at {origin:#x}"
        );
    }
}

/// `--probe` with no probe-rs on PATH names the install command before
/// anything is built; a real board without `--probe` or `--build-only`,
/// and `--probe` on an emulated board, are refused with what to do.
#[test]
fn probe_without_probe_rs_and_real_boards_without_a_probe_are_refused_clearly() {
    let golden = golden();
    let g = golden.to_str().expect("utf-8 path");
    let o = lasagna()
        .env("PATH", "")
        .args([
            "deploy",
            "--board",
            "nucleo-f411re",
            "--probe",
            "--model-file",
            g,
        ])
        .output()
        .expect("run lasagna");
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("probe-rs: not found on PATH")
            && err.contains("nucleo-f411re (STM32F411RETx)")
            && err.contains("cargo install probe-rs-tools"),
        "{err}"
    );
    fails_with(
        &["--model-file", g, "--board", "rp-pico"],
        &["rp-pico is a real board", "--build-only", "--probe"],
    );
    fails_with(
        &["--model-file", g, "--board", "qemu-m4", "--probe"],
        &[
            "qemu-m4 runs in QEMU mps2-an386, not on a probe",
            "nucleo-f411re",
        ],
    );
    fails_with(
        &[
            "--model-file",
            g,
            "--board",
            "qemu-m4",
            "--probe",
            "--build-only",
        ],
        &["--build-only", "--probe", "cannot be used with"],
    );
}

#[test]
fn deploy_help_lists_every_board_with_its_line() {
    let o = lasagna()
        .args(["deploy", "--help"])
        .output()
        .expect("run lasagna");
    let (out, _) = text(&o);
    for b in BOARDS {
        assert!(out.contains(b.name), "{} not in:\n{out}", b.name);
    }
    for w in [
        "STM32F411RE",
        "nRF52840",
        "RP2040",
        "STM32F746NG",
        "STM32F405RG",
    ] {
        assert!(out.contains(w), "{w} not in:\n{out}");
    }
}

/// Runs `deploy --json` for `board` and returns the report.
fn deploy_json(board: &str, model: &std::path::Path, images: &str) -> serde_json::Value {
    let json = tmp(&format!("{board}-run.json"));
    let o = lasagna()
        .args([
            "deploy",
            "--board",
            board,
            "--images",
            images,
            "--model-file",
        ])
        .arg(model)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run lasagna");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{board}:\n{out}\n{err}");
    println!("{out}");
    let r = serde_json::from_slice(&std::fs::read(&json).expect("--json written")).expect("json");
    let _ = std::fs::remove_file(&json);
    r
}

/// QEMU's emulation of a real SoC: the committed int8 CNN on 300 MNIST
/// images on the netduinoplus2 (STM32F405RG: flash at 0x08000000), every
/// output equal to the host's; and its instruction count equal to the
/// MPS2 board's for the same code and images, which holds only if the
/// 168 MHz SysTick is scaled right (a tick is 125/21 instructions there,
/// 40 on the MPS2's 25 MHz; the counts agree within the two resolutions).
#[test]
fn the_int8_cnn_runs_on_the_emulated_stm32f405_like_the_host_and_counts_like_mps2() {
    if !have_qemu() {
        return;
    }
    let st = deploy_json("netduinoplus2", &golden(), "300");
    let int =
        |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    let h = &st["host_check"];
    assert_eq!(h["passed"], true, "{st}");
    assert_eq!(h["matching_predictions"], 300, "{st}");
    assert_eq!(h["outputs_identical"], true, "{st}");
    assert_eq!(st["board"]["like"], "STM32F405RG");
    assert!(int(&st["flash"], "bytes") <= 1024 * 1024);
    let m4 = deploy_json("qemu-m4", &golden(), "300");
    assert_eq!(
        m4["host_check"]["outputs_fnv1a_host"],
        h["outputs_fnv1a_device"]
    );
    let (a, b) = (
        int(&st, "instructions_per_inference"),
        int(&m4, "instructions_per_inference"),
    );
    assert!(
        a > 0 && a.abs_diff(b) <= 40 + 6,
        "netduinoplus2 {a} vs qemu-m4 {b}"
    );
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
