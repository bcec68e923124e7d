//! When a test on a real GPU may skip: only where there is no GPU to test
//! (no device, or no driver: the toolkit's link stub, or
//! scripts/cuda-standin.sh's), never where a driver is there and fails. A
//! broken driver on a GPU machine (cuInit 999, a driver older than the PTX
//! needs, a busy GPU's 46) must turn the run red, not pass it as "skipped".
//!
//! Used by `cuda_parity.rs` and `cuda_driver.rs`; tested in `cuda_parity.rs`
//! (each class, and end to end on the fake driver).

use lasagna_trainer::backend::gpu::driver::DriverError;

/// `CUDA_ERROR_NO_DEVICE` (cuda.h): the driver runs and sees no GPU. Every
/// call of scripts/cuda-standin.sh's stub answers it too.
pub const NO_DEVICE: i32 = 100;
/// `CUDA_ERROR_STUB_LIBRARY` (cuda.h, CUDA 11.1 and newer): the libcuda that
/// was loaded is the toolkit's link stub, so there is no driver.
pub const STUB_LIBRARY: i32 = 34;

/// Why a test skips when opening the device failed with `e`, or `None` when
/// `e` is a driver failing on a device and must fail the test.
///
/// The driver layer returns [`DriverError::NoDevice`] for any failure of
/// `cuInit` or `cuDeviceGetCount`, so its code decides.
pub fn skip_reason(e: &DriverError) -> Option<String> {
    match e {
        DriverError::NoDevice { call, cause } if matches!(cause.code, NO_DEVICE | STUB_LIBRARY) => {
            Some(format!("{call}: {cause}"))
        }
        DriverError::Ordinal { count: 0, .. } => Some("the driver reports 0 devices".into()),
        _ => None,
    }
}

/// The opened device, or `None` after printing why the test skips (a
/// failure instead under `LASAGNA_REQUIRE_CUDA`); panics naming `e` when
/// the error is not one that [`skip_reason`] skips.
#[track_caller]
pub fn opened_or_skip<T>(opened: Result<T, DriverError>) -> Option<T> {
    let e = match opened {
        Ok(d) => return Some(d),
        Err(e) => e,
    };
    let Some(reason) = skip_reason(&e) else {
        panic!(
            "CUDA device 0 did not open, and not for want of a device or a driver (only \
             CUDA_ERROR_NO_DEVICE, 0 devices or CUDA_ERROR_STUB_LIBRARY skip a CUDA test): \
             the driver fails. The error: {e}"
        );
    };
    assert!(
        std::env::var_os("LASAGNA_REQUIRE_CUDA").is_none(),
        "LASAGNA_REQUIRE_CUDA is set but there is no CUDA device ({reason})"
    );
    super::skip::skipped(&format!("no CUDA device ({reason})"));
    None
}
