//! [`DriverError`] and the driver status it carries ([`CudaStatus`]).

use super::{ffi, CudaBuf};
use std::ffi::CStr;
use std::fmt;
use std::os::raw::{c_char, c_int};

/// A driver status code with its name and message, as the driver spells them
/// (`CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaStatus {
    /// The `CUresult` value, whatever it is: read as an `int`, never as an
    /// enum (driver/ffi.rs).
    pub code: i32,
    /// `cuGetErrorName`, when the driver knows the code.
    pub name: Option<&'static str>,
    /// `cuGetErrorString`, when the driver knows the code.
    pub text: Option<&'static str>,
}

impl CudaStatus {
    /// Looks up the name and message of `code`.
    pub fn new(code: i32) -> Self {
        let lookup = |f: unsafe extern "C" fn(c_int, *mut *const c_char) -> c_int| {
            let mut p: *const c_char = std::ptr::null();
            // SAFETY: the driver writes a pointer to a NUL-terminated string
            // in its own static storage, or leaves `p` null, which is checked.
            // libcuda is linked (not dlopen'ed), so it is never unloaded and
            // the string lives as long as the program: 'static.
            let rc = unsafe { f(code, &mut p) };
            (rc == 0 && !p.is_null())
                .then(|| unsafe { CStr::from_ptr::<'static>(p) }.to_str().ok())
                .flatten()
        };
        CudaStatus {
            code,
            name: lookup(ffi::cuGetErrorName),
            text: lookup(ffi::cuGetErrorString),
        }
    }
}

impl fmt::Display for CudaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name, self.text) {
            // Some texts end in a period, others not; messages add their own.
            (Some(name), Some(text)) => write!(f, "{name}: {}", text.trim_end_matches('.')),
            (Some(name), None) => f.write_str(name),
            (None, _) => write!(f, "CUresult {}", self.code),
        }
    }
}

/// What went wrong on the GPU, with what was being done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The driver did not initialize or sees no GPU.
    #[error(
        "no device ({call}: {cause}). HINT: the NVIDIA driver (libcuda.so.1) is missing \
         or sees no GPU; `nvidia-smi` tells which"
    )]
    NoDevice {
        /// The call that failed.
        call: &'static str,
        /// The driver's status.
        cause: CudaStatus,
    },
    /// The ordinal asked for is not one of the driver's devices.
    #[error("no CUDA device {ordinal}: the driver reports {count}")]
    Ordinal {
        /// The ordinal asked for.
        ordinal: u32,
        /// How many devices the driver sees.
        count: u32,
    },
    /// An allocation did not fit.
    #[error(
        "out of device memory: asked for {asked} bytes, {free} free of {total}. HINT: a \
         smaller --batch-size or model; `nvidia-smi` shows what else holds the GPU's memory"
    )]
    OutOfMemory {
        /// The allocation's size in bytes.
        asked: usize,
        /// Free device memory in bytes, at the time of the failure.
        free: usize,
        /// Total device memory in bytes.
        total: usize,
    },
    /// The driver rejected a PTX module.
    #[error(
        "loading the PTX module with entry `{entry}` ({target}) failed: {cause}{log}. HINT: {}",
        ptx_hint(.cause.code)
    )]
    PtxLoad {
        /// The module's first `.entry`, to say which module it was.
        entry: String,
        /// Its `.version` and `.target`: "PTX ISA 7.0, sm_80".
        target: String,
        /// The driver's status.
        cause: CudaStatus,
        /// The JIT compiler's error log (with a leading `: `), or empty.
        log: String,
    },
    /// The PTX text cannot be passed to the C API.
    #[error("PTX text has a NUL byte at offset {offset}")]
    PtxNul {
        /// Byte offset of the NUL.
        offset: usize,
    },
    /// No loaded module defines the kernel.
    #[error("kernel `{kernel}` is not in any loaded module. HINT: load_module its PTX first")]
    UnknownKernel {
        /// The entry name asked for.
        kernel: String,
    },
    /// A launch's arguments do not match the entry's parameters.
    #[error("launching `{kernel}`: {msg}")]
    Args {
        /// The kernel.
        kernel: String,
        /// What does not match.
        msg: String,
    },
    /// The driver refused a launch.
    #[error("launching `{kernel}` (grid {grid:?}, block {block:?}, {shared_bytes} B dynamic shared) failed: {cause}")]
    Launch {
        /// The kernel.
        kernel: String,
        /// Blocks per grid.
        grid: [u32; 3],
        /// Threads per block.
        block: [u32; 3],
        /// Dynamic shared memory in bytes.
        shared_bytes: u32,
        /// The driver's status.
        cause: CudaStatus,
    },
    /// A kernel faulted (reported by a later call; the context is unusable
    /// from then on, so every later call fails the same way).
    #[error(
        "a kernel failed on the GPU (last launched: `{last_kernel}`): {cause}. HINT: \
         CUDA_LAUNCH_BLOCKING=1 makes the faulting launch itself report it (the last one \
         launched may be a later kernel); compute-sanitizer finds the faulting access; the \
         GPU context stays unusable until the process restarts"
    )]
    Queued {
        /// The most recently launched kernel, or `none`.
        last_kernel: String,
        /// The driver's status.
        cause: CudaStatus,
    },
    /// A handle that this device did not hand out.
    #[error("buffer {buf:?} was not allocated by this device")]
    BadBuffer {
        /// The handle.
        buf: CudaBuf,
    },
    /// A copy or pointer offset past the end of a buffer.
    #[error("{op}: {bytes} bytes do not fit buffer {buf:?} of {len} bytes")]
    OutOfBounds {
        /// `upload`, `download`, `copy` or `launch` (a `PtrAt` offset).
        op: &'static str,
        /// The bytes or offset asked for.
        bytes: u64,
        /// The buffer.
        buf: CudaBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// Every `u32` buffer handle is taken.
    #[error("2^32 allocations made; no buffer handle is left")]
    Handles,
    /// Work a stream capture cannot hold, asked for while capturing.
    #[error("{op} inside a graph capture: a captured step must not copy to or from the host or across streams")]
    Capture {
        /// What was asked for.
        op: &'static str,
    },
    /// A graph handle that this device did not hand out, or already dropped.
    #[error("graph {graph} is not a live graph of this device")]
    UnknownGraph {
        /// The handle.
        graph: u32,
    },
    /// Any other driver call that failed.
    #[error("{call}: {cause}")]
    Call {
        /// The call.
        call: &'static str,
        /// The driver's status.
        cause: CudaStatus,
    },
}

/// The hint for a failed PTX load with status `code`.
pub fn ptx_hint(code: i32) -> &'static str {
    match code {
        // UNSUPPORTED_PTX_VERSION, NO_BINARY_FOR_GPU, JIT_COMPILER_NOT_FOUND,
        // JIT_COMPILATION_DISABLED, INVALID_IMAGE: the text is fine, the
        // driver or the GPU cannot take it.
        222 | 209 | 221 | 223 | 200 => {
            "PTX/driver mismatch: the driver must support the module's PTX ISA (7.0 needs \
             CUDA 11.0 or newer) and the GPU must be its target or newer; `lasagna info` \
             shows both"
        }
        _ => {
            "the JIT log names the failing line; `bash scripts/ptxas.sh` assembles the same \
             PTX without a GPU. If ptxas accepts it, suspect a PTX/driver mismatch \
             (`lasagna info` shows the driver and the GPU)"
        }
    }
}
