//! The device's primary context, retained, made current and released
//! through the project's own `int`-returning FFI (`ffi.rs`): context
//! creation is where a GPU in exclusive-process or prohibited mode answers
//! `CUDA_ERROR_DEVICE_UNAVAILABLE` (46), a code cust_raw 0.11's `CUresult`
//! enum lacks, so through cust it would be undefined behaviour.

use super::{ffi, CudaStatus, DriverError};
use std::os::raw::c_int;

/// A retained primary context, released on drop.
pub(super) struct PrimaryContext {
    ctx: ffi::CUcontext,
    device: c_int,
}

impl PrimaryContext {
    /// Retains `device`'s primary context and makes it current.
    pub(super) fn retain(device: c_int) -> Result<Self, DriverError> {
        let mut ctx: ffi::CUcontext = std::ptr::null_mut();
        // SAFETY: `ctx` is a valid out-pointer; `device` came from cuDeviceGet.
        let rc = unsafe { ffi::cuDevicePrimaryCtxRetain(&mut ctx, device) };
        if rc != 0 {
            return Err(DriverError::Call {
                call: "cuDevicePrimaryCtxRetain",
                cause: CudaStatus::new(rc),
            });
        }
        let c = PrimaryContext { ctx, device };
        c.make_current()?;
        Ok(c)
    }

    /// Makes this context current on the calling thread.
    pub(super) fn make_current(&self) -> Result<(), DriverError> {
        // SAFETY: `self.ctx` is retained until `drop`.
        match unsafe { ffi::cuCtxSetCurrent(self.ctx) } {
            0 => Ok(()),
            rc => Err(DriverError::Call {
                call: "cuCtxSetCurrent",
                cause: CudaStatus::new(rc),
            }),
        }
    }
}

impl Drop for PrimaryContext {
    fn drop(&mut self) {
        // SAFETY: retained once in `retain`, released once here. An error
        // (a driver shutting down) leaves nothing to clean up.
        let _ = unsafe { ffi::cuDevicePrimaryCtxRelease_v2(self.device) };
    }
}
