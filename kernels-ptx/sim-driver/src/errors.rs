//! `CUresult` codes, with the names and texts of `cuGetErrorName` and
//! `cuGetErrorString` (the CUDA 12 driver's own spellings).

use std::ffi::CStr;

/// A `CUresult` value: what every export returns across the C ABI.
pub type Code = i32;

/// Inside the driver a failure is a value; only the export turns it into a code.
pub type Res<T> = Result<T, Code>;

pub const INVALID_VALUE: Code = 1;
pub const OUT_OF_MEMORY: Code = 2;
pub const NOT_INITIALIZED: Code = 3;
pub const NO_DEVICE: Code = 100;
pub const INVALID_DEVICE: Code = 101;
pub const INVALID_IMAGE: Code = 200;
pub const INVALID_CONTEXT: Code = 201;
pub const INVALID_PTX: Code = 218;
pub const INVALID_HANDLE: Code = 400;
pub const NOT_FOUND: Code = 500;
pub const ILLEGAL_ADDRESS: Code = 700;
pub const LAUNCH_TIMEOUT: Code = 702;
pub const MISALIGNED_ADDRESS: Code = 716;
pub const LAUNCH_FAILED: Code = 719;
pub const STREAM_CAPTURE_UNSUPPORTED: Code = 900;
pub const STREAM_CAPTURE_INVALIDATED: Code = 901;
pub const STREAM_CAPTURE_IMPLICIT: Code = 906;
pub const UNKNOWN: Code = 999;

/// (code, name, text), from cuda.h and `cuGetErrorString` of CUDA 12. 46 is
/// in the table on purpose: it is newer than cust_raw 0.11's `CUresult` enum,
/// so the fault injection can return a code the trainer must not pass
/// through cust.
const CODES: &[(Code, &CStr, &CStr)] = &[
    (0, c"CUDA_SUCCESS", c"no error"),
    (1, c"CUDA_ERROR_INVALID_VALUE", c"invalid argument"),
    (2, c"CUDA_ERROR_OUT_OF_MEMORY", c"out of memory"),
    (3, c"CUDA_ERROR_NOT_INITIALIZED", c"initialization error"),
    (4, c"CUDA_ERROR_DEINITIALIZED", c"driver shutting down"),
    (
        34,
        c"CUDA_ERROR_STUB_LIBRARY",
        c"CUDA driver is a stub library",
    ),
    (
        35,
        c"CUDA_ERROR_INSUFFICIENT_DRIVER",
        c"CUDA driver version is insufficient for CUDA runtime version",
    ),
    (
        46,
        c"CUDA_ERROR_DEVICE_UNAVAILABLE",
        c"CUDA-capable device(s) is/are busy or unavailable",
    ),
    (
        100,
        c"CUDA_ERROR_NO_DEVICE",
        c"no CUDA-capable device is detected",
    ),
    (101, c"CUDA_ERROR_INVALID_DEVICE", c"invalid device ordinal"),
    (
        200,
        c"CUDA_ERROR_INVALID_IMAGE",
        c"device kernel image is invalid",
    ),
    (
        201,
        c"CUDA_ERROR_INVALID_CONTEXT",
        c"invalid device context",
    ),
    (
        209,
        c"CUDA_ERROR_NO_BINARY_FOR_GPU",
        c"no kernel image is available for execution on the device",
    ),
    (
        218,
        c"CUDA_ERROR_INVALID_PTX",
        c"a PTX JIT compilation failed",
    ),
    (
        222,
        c"CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        c"the provided PTX was compiled with an unsupported toolchain.",
    ),
    (
        400,
        c"CUDA_ERROR_INVALID_HANDLE",
        c"invalid resource handle",
    ),
    (500, c"CUDA_ERROR_NOT_FOUND", c"named symbol not found"),
    (
        700,
        c"CUDA_ERROR_ILLEGAL_ADDRESS",
        c"an illegal memory access was encountered",
    ),
    (
        701,
        c"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
        c"too many resources requested for launch",
    ),
    (
        702,
        c"CUDA_ERROR_LAUNCH_TIMEOUT",
        c"the launch timed out and was terminated",
    ),
    (716, c"CUDA_ERROR_MISALIGNED_ADDRESS", c"misaligned address"),
    (
        719,
        c"CUDA_ERROR_LAUNCH_FAILED",
        c"unspecified launch failure",
    ),
    (
        900,
        c"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
        c"operation not permitted when stream is capturing",
    ),
    (
        901,
        c"CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
        c"operation failed due to a previous error during capture",
    ),
    (
        906,
        c"CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
        c"operation would make the legacy stream depend on a capturing blocking stream",
    ),
    (999, c"CUDA_ERROR_UNKNOWN", c"unknown error"),
];

/// Name and text of `code`, when the table has it.
pub fn describe(code: Code) -> Option<(&'static CStr, &'static CStr)> {
    CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|&(_, name, text)| (name, text))
}

/// The codes a simulator failure inside a kernel maps to, as the hardware
/// reports them: a bad address is 700, a misaligned one 716, a runaway loop
/// the watchdog's 702, and anything else (deadlocked barrier, divergent
/// shuffle, an instruction the simulator lacks) the generic 719.
pub fn kernel_fault(e: &lasagna_ptx_sim::Error) -> Code {
    use lasagna_ptx_sim::Error as E;
    match e {
        E::OutOfBounds { .. } => ILLEGAL_ADDRESS,
        E::Misaligned { .. } => MISALIGNED_ADDRESS,
        E::StepLimit { .. } => LAUNCH_TIMEOUT,
        _ => LAUNCH_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_entry_and_a_driver_style_name() {
        for (i, (c, name, _)) in CODES.iter().enumerate() {
            assert!(name.to_bytes().starts_with(b"CUDA_"), "{c}");
            assert!(CODES[i + 1..].iter().all(|(d, _, _)| d != c), "{c} twice");
        }
        assert!(describe(12345).is_none());
    }
}
