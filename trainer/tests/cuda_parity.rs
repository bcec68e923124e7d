//! The CUDA backend on a real GPU against the CPU: the same training
//! comparison `gpu_sim.rs` runs on the simulator (`gpu_common/mod.rs`), plus
//! the MNIST presets' shapes. Without a device (or a driver) every test
//! prints why it skipped and passes; a driver that fails on a device fails
//! them (`gpu_common/cuda.rs`). `scripts/gpu-bundle.sh` ships this binary
//! for machines that have one.
#![cfg(feature = "cuda")]

mod gpu_common;

use gpu_common::cuda::{opened_or_skip, skip_reason, NO_DEVICE, STUB_LIBRARY};
use gpu_common::{parity, CNN, MLP, RNN, TOKENS};
use lasagna_trainer::backend::gpu::driver::{CudaStatus, DriverError};
use lasagna_trainer::backend::gpu::{driver::CudaDevice, Gpu};
use std::path::Path;
use std::process::{Command, Output};

/// The CUDA backend on device 0, or `None` (printing why) when there is no
/// device; a driver that fails on one fails the test.
fn cuda() -> Option<Gpu<CudaDevice>> {
    let d = opened_or_skip(CudaDevice::new(0))?;
    Some(Gpu::new(d, "cuda:0").expect("the kernels load on the device"))
}

#[test]
fn mlp_trains_the_same_on_the_gpu_as_on_the_cpu() {
    if let Some(g) = cuda() {
        parity(&g, &MLP.replace("DROPOUT", "0.0"), 16, 3);
        parity(&g, &MLP.replace("DROPOUT", "0.5"), 64, 5);
    }
}

#[test]
fn cnn_trains_the_same_on_the_gpu_as_on_the_cpu() {
    if let Some(g) = cuda() {
        parity(&g, CNN, 8, 3);
        parity(&g, CNN, 64, 5);
    }
}

#[test]
fn lstm_and_layernorm_train_the_same_on_the_gpu_as_on_the_cpu() {
    if let Some(g) = cuda() {
        parity(&g, RNN, 8, 3);
        parity(&g, TOKENS, 8, 3);
    }
}

#[test]
fn only_no_device_or_no_driver_skips_every_other_device_error_fails() {
    let no_device = |code| DriverError::NoDevice {
        call: "cuInit",
        cause: CudaStatus::new(code),
    };
    // No GPU, the toolkit's stub for a driver, a driver that lists none.
    for e in [
        no_device(NO_DEVICE),
        no_device(STUB_LIBRARY),
        DriverError::Ordinal {
            ordinal: 0,
            count: 0,
        },
    ] {
        let reason = skip_reason(&e).unwrap_or_else(|| panic!("{e} does not skip"));
        println!("skips: {reason}");
        assert!(
            reason.contains("cuInit") || reason.contains("0 devices"),
            "{reason}"
        );
    }
    // A driver there and failing: UNKNOWN (a broken install), INSUFFICIENT_DRIVER
    // (older than the PTX needs), NOT_INITIALIZED, DEVICE_UNAVAILABLE (a busy
    // GPU), a code no driver knows; then failures past cuInit.
    let mut fail: Vec<DriverError> = [999, 35, 3, 46, 12345].map(no_device).into();
    fail.push(DriverError::Ordinal {
        ordinal: 1,
        count: 1,
    });
    fail.push(DriverError::Call {
        call: "cuDevicePrimaryCtxRetain",
        cause: CudaStatus::new(46),
    });
    fail.push(DriverError::Call {
        call: "cuDeviceGet",
        cause: CudaStatus::new(NO_DEVICE),
    });
    fail.push(DriverError::OutOfMemory {
        asked: 1 << 30,
        free: 0,
        total: 1 << 30,
    });
    for e in fail {
        println!("fails: {e}");
        assert_eq!(skip_reason(&e), None, "{e} skips");
    }
}

#[test]
#[should_panic(expected = "the driver fails. The error: no device (cuInit: CUresult 999")]
fn a_driver_failing_at_cuinit_panics_with_the_error() {
    // The name is the driver's (CUDA_ERROR_UNKNOWN from a real or the fake
    // driver); the stand-in stub knows none, so the number is what is pinned.
    let e = DriverError::NoDevice {
        call: "cuInit",
        cause: CudaStatus {
            code: 999,
            name: None,
            text: None,
        },
    };
    opened_or_skip::<()>(Err(e));
}

/// This binary's MLP test, re-run on the fake driver (kernels-ptx/sim-driver)
/// with `knob` set: its exit status and everything it printed.
fn mlp_test_on_the_fake_driver(driver: &Path, knob: (&str, &str)) -> (Output, String) {
    let path = match std::env::var("LD_LIBRARY_PATH") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", driver.display()),
        _ => driver.display().to_string(),
    };
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args([
        "mlp_trains_the_same_on_the_gpu_as_on_the_cpu",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LASAGNA_SIM_DRIVER_") {
            cmd.env_remove(k);
        }
    }
    // The child's skip is this test's point, not a skip of the run's.
    cmd.env_remove("LASAGNA_REQUIRE_CUDA")
        .env_remove("LASAGNA_SKIP_LOG")
        .env("LD_LIBRARY_PATH", path)
        .env(knob.0, knob.1);
    let out = cmd.output().expect("the test binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "$ {}={} cuda_parity mlp_trains_...: {:?}",
        knob.0, knob.1, out.status
    );
    for line in text
        .lines()
        .filter(|l| l.to_lowercase().contains("skipped") || l.contains("did not open"))
    {
        println!("    {line}");
    }
    (out, text)
}

/// End to end on the fake driver: a parity test whose `cuInit` fails with
/// 999 (a broken driver) or whose context cannot be created (46, a busy
/// GPU) fails, naming the call and the error; with no device it skips.
/// Needs the fake driver (`scripts/sim-driver.sh`; scripts/test.sh runs
/// that before this test); without it, it says so and passes, and under
/// `LASAGNA_REQUIRE_SIM_DRIVER` fails.
#[test]
fn on_the_fake_driver_a_failing_driver_fails_the_parity_test_and_no_device_skips_it() {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/sim-driver/lib64");
    if !driver.join("libcuda.so.1").exists() {
        assert!(
            std::env::var_os("LASAGNA_REQUIRE_SIM_DRIVER").is_none(),
            "LASAGNA_REQUIRE_SIM_DRIVER is set but {} has no libcuda.so.1",
            driver.display()
        );
        gpu_common::skip::skipped(&format!(
            "no fake driver in {} (run scripts/sim-driver.sh)",
            driver.display()
        ));
        return;
    }
    for (knob, want) in [
        (
            ("LASAGNA_SIM_DRIVER_INIT_ERROR", "999"),
            "no device (cuInit: CUDA_ERROR_UNKNOWN",
        ),
        (
            ("LASAGNA_SIM_DRIVER_CTX_ERROR", "46"),
            "cuDevicePrimaryCtxRetain: CUDA_ERROR_DEVICE_UNAVAILABLE",
        ),
    ] {
        let (out, text) = mlp_test_on_the_fake_driver(&driver, knob);
        // 101: the test harness's "a test failed", not a signal.
        assert_eq!(out.status.code(), Some(101), "{text}");
        assert!(
            text.contains("the driver fails. The error:") && text.contains(want),
            "{text}"
        );
        assert!(!text.to_lowercase().contains("skipped"), "{text}");
    }
    let (out, text) = mlp_test_on_the_fake_driver(&driver, ("LASAGNA_SIM_DRIVER_DEVICES", "0"));
    assert!(out.status.success(), "{text}");
    assert!(
        text.to_lowercase().contains("skipped")
            && text.contains("no CUDA device (cuInit: CUDA_ERROR_NO_DEVICE"),
        "{text}"
    );
}
