//! The `cuda` build of `lasagna` on the fake driver (kernels-ptx/sim-driver,
//! a libcuda.so.1 on the PTX simulator), with its fault injection: what the
//! user reads when the GPU is out of memory, a kernel faults, the PTX is
//! refused, there is no device, or the driver answers a code newer than
//! cust knows (from any call); and that none of these crashes the process.
//!
//! Needs `eval "$(bash scripts/sim-driver.sh)"` (or just having run it: the
//! driver is looked up in .tools/sim-driver/lib64). Without it each test
//! prints why it skips; `LASAGNA_REQUIRE_SIM_DRIVER=1` (scripts/test.sh)
//! makes that a failure.
#![cfg(feature = "cuda")]

#[path = "../../tests/src/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KNOBS: &[&str] = &[
    "LASAGNA_SIM_DRIVER_MEM",
    "LASAGNA_SIM_DRIVER_OOM_AT",
    "LASAGNA_SIM_DRIVER_ALLOC_ERROR",
    "LASAGNA_SIM_DRIVER_FAULT",
    "LASAGNA_SIM_DRIVER_JIT_FAULT",
    "LASAGNA_SIM_DRIVER_DEVICES",
    "LASAGNA_SIM_DRIVER_INIT_ERROR",
    "LASAGNA_SIM_DRIVER_CTX_ERROR",
    "CUDA_LAUNCH_BLOCKING",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The folder holding the fake libcuda.so.1, or `None` after saying why.
fn driver() -> Option<PathBuf> {
    let dir = root().join(".tools/sim-driver/lib64");
    if dir.join("libcuda.so.1").exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("LASAGNA_REQUIRE_SIM_DRIVER").is_none(),
        "LASAGNA_REQUIRE_SIM_DRIVER is set but {} has no libcuda.so.1",
        dir.display()
    );
    skip::skipped(&format!(
        "no fake driver in {} (run scripts/sim-driver.sh)",
        dir.display()
    ));
    None
}

/// Runs `lasagna args` on the fake driver with the fault-injection `env`.
fn lasagna(env: &[(&str, &str)], args: &[&str]) -> Option<Output> {
    let dir = driver()?;
    let path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", dir.display()),
        _ => dir.display().to_string(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lasagna"));
    cmd.args(args).env("LD_LIBRARY_PATH", path);
    for k in KNOBS {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("lasagna runs");
    println!("$ {env:?} lasagna {}", args.join(" "));
    println!("status: {:?}", out.status);
    println!("stdout: {}", String::from_utf8_lossy(&out.stdout));
    println!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    Some(out)
}

/// A tiny MLP run on the CUDA backend.
fn train(env: &[(&str, &str)]) -> Option<Output> {
    let data = root().join("data/mnist");
    let data = data.to_str().expect("utf-8 path");
    lasagna(
        env,
        &[
            "train",
            "--device",
            "cuda",
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--train-subset",
            "64",
            "--val",
            "0",
            "--quiet",
            "--data",
            data,
        ],
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Failed with the CLI's error exit, not a signal or a panic.
fn failed_cleanly(out: &Output) {
    assert!(!out.status.success());
    assert!(
        out.status.code().is_some(),
        "killed by a signal: {:?}",
        out.status
    );
    assert!(!stderr(out).contains("panicked"), "{}", stderr(out));
}

#[test]
fn info_names_the_simulated_device() {
    let Some(out) = lasagna(&[], &["info"]) else {
        return;
    };
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Lasagna PTX simulator"), "{text}");
}

#[test]
fn out_of_memory_says_how_much_was_asked_and_free_with_a_hint() {
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_MEM", "65536")]) else {
        return;
    };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(err.contains("out of device memory"), "{err}");
    assert!(err.contains("free of 65536"), "{err}");
    assert!(err.contains("HINT"), "{err}");
}

#[test]
fn out_of_memory_at_the_nth_allocation_is_reported_the_same_way() {
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_OOM_AT", "5")]) else {
        return;
    };
    failed_cleanly(&out);
    assert!(
        stderr(&out).contains("out of device memory"),
        "{}",
        stderr(&out)
    );
}

// The faults go into cross_entropy: the one kernel every classifier's step
// launches whatever the model fuses (the MLP's ReLUs ride in its GEMMs'
// epilogues, forward and backward, and launch nothing).
#[test]
fn a_launch_fault_names_the_kernel_under_launch_blocking() {
    let env = [
        ("LASAGNA_SIM_DRIVER_FAULT", "cross_entropy"),
        ("CUDA_LAUNCH_BLOCKING", "1"),
    ];
    let Some(out) = train(&env) else { return };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(err.contains("launching `cross_entropy`"), "{err}");
    assert!(err.contains("CUDA_ERROR_LAUNCH_FAILED"), "{err}");
}

#[test]
fn a_deferred_kernel_fault_is_reported_as_sticky_with_the_last_kernel() {
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_FAULT", "cross_entropy:700")]) else {
        return;
    };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(
        err.contains("a kernel failed on the GPU (last launched: `"),
        "{err}"
    );
    assert!(err.contains("CUDA_ERROR_ILLEGAL_ADDRESS"), "{err}");
    assert!(err.contains("CUDA_LAUNCH_BLOCKING=1"), "{err}");
    // The driver's own line names the kernel that faulted.
    assert!(err.contains("kernel `cross_entropy` faulted (700"), "{err}");
}

#[test]
fn a_refused_ptx_module_shows_the_jit_log() {
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_JIT_FAULT", "relu_forward")]) else {
        return;
    };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(err.contains("loading the PTX module"), "{err}");
    assert!(err.contains("CUDA_ERROR_INVALID_PTX"), "{err}");
    assert!(
        err.contains("refused by LASAGNA_SIM_DRIVER_JIT_FAULT"),
        "{err}"
    );
}

#[test]
fn no_device_says_so_and_suggests_the_cpu() {
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_DEVICES", "0")]) else {
        return;
    };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(err.contains("CUDA_ERROR_NO_DEVICE"), "{err}");
    assert!(err.contains("--device cpu"), "{err}");
}

#[test]
fn auto_falls_back_to_the_cpu_without_a_device() {
    let data = root().join("data/mnist");
    let env = [("LASAGNA_SIM_DRIVER_DEVICES", "0")];
    let args = [
        "train",
        "--device",
        "auto",
        "--epochs",
        "1",
        "--train-subset",
        "64",
        "--val",
        "0",
        "--quiet",
        "--data",
        data.to_str().expect("utf-8 path"),
    ];
    let Some(out) = lasagna(&env, &args) else {
        return;
    };
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("device: cpu (auto:"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_error_code_newer_than_cust_knows_is_named_not_undefined() {
    // 46 (CUDA_ERROR_DEVICE_UNAVAILABLE) is not in cust_raw 0.11's enum: the
    // trainer reads cuInit's result as an int, so it is a value here.
    let env = [("LASAGNA_SIM_DRIVER_INIT_ERROR", "46")];
    let Some(out) = train(&env) else { return };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(err.contains("CUDA_ERROR_DEVICE_UNAVAILABLE"), "{err}");
    let Some(out) = lasagna(&env, &["info"]) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CUDA_ERROR_DEVICE_UNAVAILABLE"), "{text}");
}

#[test]
fn a_busy_device_at_context_creation_is_named_with_the_call() {
    // Where a GPU in exclusive-process mode answers 46: the trainer retains
    // the primary context through its own int FFI, not cust.
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_CTX_ERROR", "46")]) else {
        return;
    };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(
        err.contains("cuDevicePrimaryCtxRetain: CUDA_ERROR_DEVICE_UNAVAILABLE"),
        "{err}"
    );
    assert!(err.contains("--device cpu"), "{err}");
}

#[test]
fn an_unknown_code_from_an_allocation_is_named_with_the_call() {
    // Past cuInit and the context: every driver call is declared with an int
    // result (trainer/src/backend/gpu/driver/ffi.rs), so 46 from cuMemAlloc
    // is named, and a code no driver knows is shown as its number.
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_ALLOC_ERROR", "46")]) else {
        return;
    };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(
        err.contains("cuMemAlloc: CUDA_ERROR_DEVICE_UNAVAILABLE"),
        "{err}"
    );
    let Some(out) = train(&[("LASAGNA_SIM_DRIVER_ALLOC_ERROR", "12345")]) else {
        return;
    };
    failed_cleanly(&out);
    let err = stderr(&out);
    assert!(err.contains("cuMemAlloc: CUresult 12345"), "{err}");
}
