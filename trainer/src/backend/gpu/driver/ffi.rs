//! Every CUDA driver function the trainer calls, declared here with C types
//! and `int` results, and the thin wrappers the rest of `driver` uses.
//!
//! Why not cust: cust_raw's `CUresult` is a Rust enum, so a code it does not
//! list (46 `CUDA_ERROR_DEVICE_UNAVAILABLE` from a busy GPU, anything newer
//! than its bindings) is undefined behaviour the moment it is returned. Read
//! as a `c_int` it is a value, named by `cuGetErrorName` ([`CudaStatus`]).
//!
//! The names are the exported symbols: cuda.h's `#define cuMemAlloc
//! cuMemAlloc_v2` does not exist in Rust, so the `_v2` is spelled out.
//! `scripts/sim-driver-symbols.sh` checks the list against the fake driver.
//!
//! [`CudaStatus`]: super::CudaStatus

use super::{CudaStatus, DriverError};
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int, c_uint};

// The link: cust_raw's build script adds `-lcuda` and the search path
// (CUDA_LIBRARY_PATH entries + lib64, see scripts/cuda-standin.sh). Nothing
// of cust is called; naming it keeps it, and so that link, in the build.
use cust as _;

pub type CUdevice = c_int;
pub type CUdeviceptr = u64;
pub type CUcontext = *mut c_void;
pub type CUmodule = *mut c_void;
pub type CUfunction = *mut c_void;
pub type CUstream = *mut c_void;

// cuda.h: CUresult, CUjit_option and CUdevice_attribute values.
pub const CUDA_ERROR_INVALID_VALUE: c_int = 1;
pub const CUDA_ERROR_OUT_OF_MEMORY: c_int = 2;
pub const CUDA_ERROR_NOT_FOUND: c_int = 500;
pub const CU_JIT_ERROR_LOG_BUFFER: c_int = 5;
pub const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES: c_int = 6;
pub const CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: c_int = 16;
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: c_int = 75;
pub const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: c_int = 76;

#[allow(non_snake_case)]
extern "C" {
    pub fn cuInit(flags: c_uint) -> c_int;
    pub fn cuDriverGetVersion(version: *mut c_int) -> c_int;
    pub fn cuDeviceGetCount(count: *mut c_int) -> c_int;
    pub fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) -> c_int;
    pub fn cuDeviceGetName(name: *mut c_char, len: c_int, device: CUdevice) -> c_int;
    pub fn cuDeviceTotalMem_v2(bytes: *mut usize, device: CUdevice) -> c_int;
    pub fn cuDeviceGetAttribute(value: *mut c_int, attribute: c_int, device: CUdevice) -> c_int;
    pub fn cuDevicePrimaryCtxRetain(ctx: *mut CUcontext, device: CUdevice) -> c_int;
    pub fn cuDevicePrimaryCtxRelease_v2(device: CUdevice) -> c_int;
    pub fn cuCtxSetCurrent(ctx: CUcontext) -> c_int;
    pub fn cuStreamCreateWithPriority(
        stream: *mut CUstream,
        flags: c_uint,
        priority: c_int,
    ) -> c_int;
    pub fn cuStreamDestroy_v2(stream: CUstream) -> c_int;
    pub fn cuStreamSynchronize(stream: CUstream) -> c_int;
    pub fn cuMemAlloc_v2(ptr: *mut CUdeviceptr, bytes: usize) -> c_int;
    pub fn cuMemFree_v2(ptr: CUdeviceptr) -> c_int;
    pub fn cuMemsetD8_v2(ptr: CUdeviceptr, value: u8, n: usize) -> c_int;
    pub fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, n: usize) -> c_int;
    pub fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) -> c_int;
    pub fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> c_int;
    pub fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> c_int;
    pub fn cuModuleLoadDataEx(
        module: *mut CUmodule,
        image: *const c_void,
        num_options: c_uint,
        options: *mut c_int,
        option_values: *mut *mut c_void,
    ) -> c_int;
    pub fn cuModuleGetFunction(f: *mut CUfunction, m: CUmodule, name: *const c_char) -> c_int;
    pub fn cuModuleUnload(m: CUmodule) -> c_int;
    pub fn cuLaunchKernel(
        f: CUfunction,
        grid_x: c_uint,
        grid_y: c_uint,
        grid_z: c_uint,
        block_x: c_uint,
        block_y: c_uint,
        block_z: c_uint,
        shared_bytes: c_uint,
        stream: CUstream,
        params: *mut *mut c_void,
        extra: *mut *mut c_void,
    ) -> c_int;
    pub fn cuGetErrorName(error: c_int, out: *mut *const c_char) -> c_int;
    pub fn cuGetErrorString(error: c_int, out: *mut *const c_char) -> c_int;
}

/// A driver call that did not return `CUDA_SUCCESS`: its name (as cuda.h
/// spells it, without `_v2`) and the code, whatever its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failed {
    pub call: &'static str,
    pub code: c_int,
}

impl Failed {
    /// Whether the code is a kernel's fault (bad address, trap, timeout),
    /// which the driver reports at a later call and then from every call.
    pub fn is_kernel_fault(&self) -> bool {
        // ILLEGAL_ADDRESS, LAUNCH_TIMEOUT, ASSERT, HARDWARE_STACK_ERROR,
        // ILLEGAL_INSTRUCTION, MISALIGNED_ADDRESS, INVALID_ADDRESS_SPACE,
        // INVALID_PC, LAUNCH_FAILED.
        matches!(self.code, 700 | 702 | 710 | 714..=719)
    }
}

impl From<Failed> for DriverError {
    fn from(f: Failed) -> Self {
        DriverError::Call {
            call: f.call,
            cause: CudaStatus::new(f.code),
        }
    }
}

/// `Ok` for `CUDA_SUCCESS`, else the call's name and code.
pub fn check(call: &'static str, rc: c_int) -> Result<(), Failed> {
    match rc {
        0 => Ok(()),
        code => Err(Failed { call, code }),
    }
}

/// `cuInit(0)`.
pub fn init() -> Result<(), Failed> {
    // SAFETY: flags only; 0 is the one defined value.
    check("cuInit", unsafe { cuInit(0) })
}

/// The driver's CUDA version as (major, minor): 12080 is 12.8.
pub fn driver_version() -> Result<(i32, i32), Failed> {
    let mut v: c_int = 0;
    // SAFETY: `v` is a valid out-pointer.
    check("cuDriverGetVersion", unsafe { cuDriverGetVersion(&mut v) })?;
    Ok((v / 1000, v % 1000 / 10))
}

/// How many devices the driver sees.
pub fn device_count() -> Result<u32, Failed> {
    let mut n: c_int = 0;
    // SAFETY: `n` is a valid out-pointer.
    check("cuDeviceGetCount", unsafe { cuDeviceGetCount(&mut n) })?;
    Ok(u32::try_from(n).unwrap_or(0))
}

/// The handle of device `ordinal`.
pub fn device(ordinal: u32) -> Result<CUdevice, Failed> {
    let ordinal = c_int::try_from(ordinal).map_err(|_| Failed {
        call: "cuDeviceGet",
        code: CUDA_ERROR_INVALID_VALUE,
    })?;
    let mut d: CUdevice = 0;
    // SAFETY: `d` is a valid out-pointer.
    check("cuDeviceGet", unsafe { cuDeviceGet(&mut d, ordinal) })?;
    Ok(d)
}

/// The device's marketing name.
pub fn device_name(device: CUdevice) -> Result<String, Failed> {
    let mut name = [0 as c_char; 256];
    // SAFETY: the driver writes at most `len` bytes, NUL included.
    check("cuDeviceGetName", unsafe {
        cuDeviceGetName(name.as_mut_ptr(), name.len() as c_int, device)
    })?;
    let bytes: Vec<u8> = name.iter().map(|&c| c as u8).collect();
    Ok(CStr::from_bytes_until_nul(&bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default())
}

/// The device's memory in bytes.
pub fn device_total_mem(device: CUdevice) -> Result<usize, Failed> {
    let mut bytes = 0usize;
    // SAFETY: `bytes` is a valid out-pointer.
    check("cuDeviceTotalMem", unsafe {
        cuDeviceTotalMem_v2(&mut bytes, device)
    })?;
    Ok(bytes)
}

/// One `CU_DEVICE_ATTRIBUTE_*` of the device.
pub fn device_attribute(device: CUdevice, attribute: c_int) -> Result<i32, Failed> {
    let mut v: c_int = 0;
    // SAFETY: `v` is a valid out-pointer.
    check("cuDeviceGetAttribute", unsafe {
        cuDeviceGetAttribute(&mut v, attribute, device)
    })?;
    Ok(v)
}

/// (free, total) device memory of the current context, in bytes.
pub fn mem_get_info() -> Result<(usize, usize), Failed> {
    let (mut free, mut total) = (0usize, 0usize);
    // SAFETY: both are valid out-pointers.
    check("cuMemGetInfo", unsafe {
        cuMemGetInfo_v2(&mut free, &mut total)
    })?;
    Ok((free, total))
}

/// A stream of the current context, destroyed on drop.
pub struct Stream(CUstream);

impl Stream {
    /// A stream with default flags and priority: it synchronizes with the
    /// legacy default stream (see `driver`'s note on ordering).
    pub fn new() -> Result<Self, Failed> {
        let mut s: CUstream = std::ptr::null_mut();
        // SAFETY: `s` is a valid out-pointer; flags 0 and priority 0 are the
        // defaults.
        check("cuStreamCreateWithPriority", unsafe {
            cuStreamCreateWithPriority(&mut s, 0, 0)
        })?;
        Ok(Stream(s))
    }

    /// Waits for everything queued on the stream.
    pub fn synchronize(&self) -> Result<(), Failed> {
        // SAFETY: the stream lives until drop.
        check("cuStreamSynchronize", unsafe {
            cuStreamSynchronize(self.0)
        })
    }

    /// The handle, for `cuLaunchKernel`.
    pub fn raw(&self) -> CUstream {
        self.0
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created in `new`, destroyed once here. An error (a context
        // already torn down) leaves nothing to clean up.
        let _ = unsafe { cuStreamDestroy_v2(self.0) };
    }
}

/// A zeroed device allocation, freed on drop. Copies are bounded by its
/// length, so these wrappers cannot write outside it.
pub struct DeviceMem {
    ptr: CUdeviceptr,
    len: usize,
}

impl DeviceMem {
    /// `cuMemAlloc` and `cuMemsetD8` to zero. Zero bytes allocate nothing
    /// (the driver refuses a zero-size allocation).
    pub fn zeroed(len: usize) -> Result<Self, Failed> {
        if len == 0 {
            return Ok(DeviceMem { ptr: 0, len });
        }
        let mut ptr: CUdeviceptr = 0;
        // SAFETY: `ptr` is a valid out-pointer.
        check("cuMemAlloc", unsafe { cuMemAlloc_v2(&mut ptr, len) })?;
        let mem = DeviceMem { ptr, len };
        // SAFETY: `ptr` holds `len` bytes, just allocated.
        check("cuMemsetD8", unsafe { cuMemsetD8_v2(ptr, 0, len) })?;
        Ok(mem)
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Its device address.
    pub fn address(&self) -> CUdeviceptr {
        self.ptr
    }

    /// Refuses `n` bytes that do not fit, as the driver would for a range
    /// outside an allocation.
    fn holds(&self, call: &'static str, n: usize) -> Result<(), Failed> {
        if n <= self.len {
            Ok(())
        } else {
            Err(Failed {
                call,
                code: CUDA_ERROR_INVALID_VALUE,
            })
        }
    }

    /// Copies `data` to the start of the allocation (blocking).
    pub fn upload(&self, data: &[u8]) -> Result<(), Failed> {
        self.holds("cuMemcpyHtoD", data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: `data.len()` bytes are readable and fit the allocation.
        check("cuMemcpyHtoD", unsafe {
            cuMemcpyHtoD_v2(self.ptr, data.as_ptr().cast(), data.len())
        })
    }

    /// Copies the first `out.len()` bytes into `out` (blocking).
    pub fn download(&self, out: &mut [u8]) -> Result<(), Failed> {
        self.holds("cuMemcpyDtoH", out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        // SAFETY: `out.len()` bytes are writable and fit the allocation.
        check("cuMemcpyDtoH", unsafe {
            cuMemcpyDtoH_v2(out.as_mut_ptr().cast(), self.ptr, out.len())
        })
    }

    /// Copies the first `n` bytes into the start of `dst`.
    pub fn copy_to(&self, dst: &DeviceMem, n: usize) -> Result<(), Failed> {
        self.holds("cuMemcpyDtoD", n)?;
        dst.holds("cuMemcpyDtoD", n)?;
        if n == 0 {
            return Ok(());
        }
        // SAFETY: both allocations hold `n` bytes.
        check("cuMemcpyDtoD", unsafe {
            cuMemcpyDtoD_v2(dst.ptr, self.ptr, n)
        })
    }
}

impl Drop for DeviceMem {
    fn drop(&mut self) {
        if self.ptr != 0 {
            // SAFETY: allocated in `zeroed`, freed once here. An error (a
            // sticky kernel fault, a context torn down) leaves nothing to do.
            let _ = unsafe { cuMemFree_v2(self.ptr) };
        }
    }
}

/// A loaded module, unloaded on drop.
pub struct Module(CUmodule);

impl Module {
    /// `cuModuleLoadDataEx` of NUL-terminated PTX, with the JIT's error log
    /// written into `log` (NUL-terminated by the driver).
    pub fn load(image: &CStr, log: &mut [u8]) -> Result<Self, Failed> {
        let mut options = [CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES];
        // The driver reads the size option's *value* as an integer.
        let mut values: [*mut c_void; 2] = [log.as_mut_ptr().cast(), log.len() as *mut c_void];
        let mut m: CUmodule = std::ptr::null_mut();
        // SAFETY: `image` is NUL-terminated; the options name a buffer of
        // `log.len()` bytes that outlives the call.
        check("cuModuleLoadDataEx", unsafe {
            cuModuleLoadDataEx(
                &mut m,
                image.as_ptr().cast(),
                options.len() as c_uint,
                options.as_mut_ptr(),
                values.as_mut_ptr(),
            )
        })?;
        Ok(Module(m))
    }

    /// The entry `name`, or `None` if this module does not define it.
    pub fn function(&self, name: &CStr) -> Result<Option<CUfunction>, Failed> {
        let mut f: CUfunction = std::ptr::null_mut();
        // SAFETY: the module is loaded until drop; `name` is NUL-terminated.
        match unsafe { cuModuleGetFunction(&mut f, self.0, name.as_ptr()) } {
            0 => Ok(Some(f)),
            CUDA_ERROR_NOT_FOUND => Ok(None),
            code => Err(Failed {
                call: "cuModuleGetFunction",
                code,
            }),
        }
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: loaded in `load`, unloaded once here; the owner's context
        // is current (`CudaDevice::drop`). An error leaves nothing to do.
        let _ = unsafe { cuModuleUnload(self.0) };
    }
}
