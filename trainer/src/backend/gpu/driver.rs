//! [`CudaDevice`]: the [`Device`] interface on a real GPU, through the CUDA
//! driver API (`cust`, feature `cuda`).
//!
//! `cust` provides the stream, allocations and device queries. The primary
//! context (`driver/context.rs`), module loading, kernel lookup and launches
//! call the driver directly
//! (declared below, in `ffi`, with `int` results), for three reasons: `cust`'s typed
//! launch takes only typed arguments, its `Function` borrows its `Module` (so
//! it cannot be cached next to it), and its error enum folds codes it does not
//! know, such as `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` (222), into
//! `UnknownError`, which is the one code a PTX/driver mismatch needs.
//!
//! Ordering: work goes to one stream created with default flags, so it also
//! synchronizes with the legacy default stream that `cust`'s blocking copies
//! use; a copy after a launch sees the launch's writes.

use cust::device::{Device as CuDevice, DeviceAttribute};
use cust::error::CudaError;
use cust::memory::{CopyDestination, DeviceBuffer};
use cust::stream::{Stream, StreamFlags};
use lasagna_kernels::device::{Arg, Device};
use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_uint;

mod context;
mod error;
mod signature;
use context::PrimaryContext;
pub use error::{ptx_hint, CudaStatus, DriverError};

/// Handle of one [`CudaDevice`] allocation (an index into its buffer table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CudaBuf(pub u32);

/// One GPU: a context on it, a stream, loaded modules and allocations.
///
/// Everything is released when it is dropped. Allocations live until then:
/// the [`Device`] interface has no `free`, so backends reuse their workspaces.
pub struct CudaDevice {
    // Field order is drop order: kernels and buffers go before the stream,
    // and everything before the context that owns it.
    functions: HashMap<String, ffi::CUfunction>,
    /// Parameter sizes of every entry of the loaded modules.
    params: HashMap<String, Vec<u32>>,
    modules: Vec<LoadedModule>,
    buffers: Vec<DeviceBuffer<u8>>,
    last_kernel: String,
    description: String,
    stream: Stream,
    context: PrimaryContext,
}

// SAFETY: the driver API is thread-safe and its handles (context, module,
// function, stream, device pointers) are process-wide. What is per-thread is
// the current context, and every `&mut self` method makes this device's
// context current first (`bind`). `&self` methods touch only owned Rust data.
unsafe impl Send for CudaDevice {}
// SAFETY: as above; no `&self` method calls the driver.
unsafe impl Sync for CudaDevice {}

impl CudaDevice {
    /// Initializes the driver and opens device `ordinal` (its primary
    /// context, made current on this thread) with one stream.
    pub fn new(ordinal: u32) -> Result<Self, DriverError> {
        let device = open(ordinal)?;
        let description = describe(device)?;
        let context = PrimaryContext::retain(device.as_raw())?;
        // Default (blocking) flags: see the module documentation on ordering.
        let stream =
            Stream::new(StreamFlags::DEFAULT, None).map_err(call("cuStreamCreateWithPriority"))?;
        Ok(CudaDevice {
            functions: HashMap::new(),
            params: HashMap::new(),
            modules: Vec::new(),
            buffers: Vec::new(),
            last_kernel: String::from("none"),
            description,
            stream,
            context,
        })
    }

    /// Makes this device's context current on the calling thread.
    fn bind(&self) -> Result<(), DriverError> {
        self.context.make_current()
    }

    fn buffer(&self, buf: &CudaBuf) -> Result<&DeviceBuffer<u8>, DriverError> {
        self.buffers
            .get(buf.0 as usize)
            .ok_or(DriverError::BadBuffer { buf: *buf })
    }

    /// Checks that `buf` holds `bytes`.
    fn fits(&self, op: &'static str, buf: &CudaBuf, bytes: u64) -> Result<(), DriverError> {
        let len = self.buffer(buf)?.len();
        if bytes <= len as u64 {
            Ok(())
        } else {
            Err(DriverError::OutOfBounds {
                op,
                bytes,
                buf: *buf,
                len,
            })
        }
    }

    /// The device address of `buf` plus `offset` bytes.
    fn address(&self, buf: &CudaBuf, offset: u64) -> Result<u64, DriverError> {
        self.fits("launch", buf, offset)?;
        Ok(self.buffer(buf)?.as_device_ptr().as_raw() + offset)
    }

    /// Wraps an error of `call`. A kernel's fault (bad address, trap,
    /// timeout) surfaces at the next call that waits for the stream, and
    /// every call after it fails the same way ("sticky"), so those name the
    /// last kernel launched rather than the call that reported them.
    fn failed(&self, call: &'static str) -> impl Fn(CudaError) -> DriverError + '_ {
        move |e| match e {
            CudaError::IllegalAddress
            | CudaError::LaunchTimeout
            | CudaError::AssertError
            | CudaError::HardwareStackError
            | CudaError::IllegalInstruction
            | CudaError::MisalignedAddress
            | CudaError::InvalidAddressSpace
            | CudaError::InvalidProgramCounter
            | CudaError::LaunchFailed => DriverError::Queued {
                last_kernel: self.last_kernel.clone(),
                cause: e.into(),
            },
            e => DriverError::Call {
                call,
                cause: e.into(),
            },
        }
    }

    /// Checks `args` against `kernel`'s declared parameters: the driver reads
    /// one pointer per parameter, however many were given.
    fn check_args(&self, kernel: &str, args: &[Arg<CudaBuf>]) -> Result<(), DriverError> {
        let mismatch = |msg: String| DriverError::Args {
            kernel: kernel.into(),
            msg,
        };
        let sizes = self
            .params
            .get(kernel)
            .ok_or_else(|| mismatch("its parameter list could not be read from the PTX".into()))?;
        if sizes.len() != args.len() {
            return Err(mismatch(format!(
                "{} arguments given, the entry declares {}",
                args.len(),
                sizes.len()
            )));
        }
        for (i, (&size, a)) in sizes.iter().zip(args).enumerate() {
            let given = match a {
                Arg::Ptr(_) | Arg::PtrAt(..) | Arg::U64(_) => 8,
                Arg::U32(_) | Arg::I32(_) | Arg::F32(_) => 4,
            };
            if size != given {
                return Err(mismatch(format!(
                    "parameter {i} is {size} bytes but the argument {a:?} is {given}"
                )));
            }
        }
        Ok(())
    }

    /// The cached handle of `kernel`, looked up in the loaded modules.
    fn function(&mut self, kernel: &str) -> Result<ffi::CUfunction, DriverError> {
        if let Some(&f) = self.functions.get(kernel) {
            return Ok(f);
        }
        let name = CString::new(kernel).map_err(|_| DriverError::UnknownKernel {
            kernel: kernel.into(),
        })?;
        for m in &self.modules {
            let mut f: ffi::CUfunction = std::ptr::null_mut();
            // SAFETY: `m.0` is a loaded module and `name` is NUL-terminated.
            match unsafe { ffi::cuModuleGetFunction(&mut f, m.0, name.as_ptr()) } {
                0 => {
                    self.functions.insert(kernel.to_owned(), f);
                    return Ok(f);
                }
                ffi::CUDA_ERROR_NOT_FOUND => continue,
                rc => {
                    return Err(DriverError::Call {
                        call: "cuModuleGetFunction",
                        cause: CudaStatus::new(rc),
                    })
                }
            }
        }
        Err(DriverError::UnknownKernel {
            kernel: kernel.into(),
        })
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        // The fields' destructors (module unload, cuMemFree) act on the
        // current context, which may not be ours on this thread.
        let _ = self.bind();
    }
}

impl Device for CudaDevice {
    type Buf = CudaBuf;
    type Error = DriverError;

    fn describe(&self) -> String {
        self.description.clone()
    }

    fn memory(&mut self) -> Option<(usize, usize)> {
        self.bind().ok()?;
        cust::memory::mem_get_info().ok()
    }

    fn alloc(&mut self, bytes: usize) -> Result<CudaBuf, DriverError> {
        self.bind()?;
        let id = u32::try_from(self.buffers.len()).map_err(|_| DriverError::Handles)?;
        // cuMemAlloc + cuMemsetD8: the interface promises zeroed memory.
        let buf = DeviceBuffer::<u8>::zeroed(bytes).map_err(|e| match e {
            CudaError::OutOfMemory => {
                let (free, total) = cust::memory::mem_get_info().unwrap_or((0, 0));
                DriverError::OutOfMemory {
                    asked: bytes,
                    free,
                    total,
                }
            }
            e => DriverError::Call {
                call: "cuMemAlloc",
                cause: e.into(),
            },
        })?;
        self.buffers.push(buf);
        Ok(CudaBuf(id))
    }

    fn upload(&mut self, buf: &CudaBuf, data: &[u8]) -> Result<(), DriverError> {
        self.bind()?;
        self.fits("upload", buf, data.len() as u64)?;
        let mut dst = self.buffer(buf)?.index(..data.len());
        dst.copy_from(data).map_err(self.failed("cuMemcpyHtoD"))
    }

    fn download(&mut self, buf: &CudaBuf, out: &mut [u8]) -> Result<(), DriverError> {
        self.bind()?;
        self.fits("download", buf, out.len() as u64)?;
        self.stream
            .synchronize()
            .map_err(self.failed("cuStreamSynchronize"))?;
        let src = self.buffer(buf)?.index(..out.len());
        src.copy_to(out).map_err(self.failed("cuMemcpyDtoH"))
    }

    fn copy(&mut self, src: &CudaBuf, dst: &CudaBuf, bytes: usize) -> Result<(), DriverError> {
        self.bind()?;
        self.fits("copy", src, bytes as u64)?;
        self.fits("copy", dst, bytes as u64)?;
        let from = self.buffer(src)?.index(..bytes);
        let mut to = self.buffer(dst)?.index(..bytes);
        to.copy_from(&from).map_err(self.failed("cuMemcpyDtoD"))
    }

    fn load_module(&mut self, ptx: &str) -> Result<(), DriverError> {
        self.bind()?;
        let image = CString::new(ptx).map_err(|e| DriverError::PtxNul {
            offset: e.nul_position(),
        })?;
        let mut log = vec![0u8; 16 << 10];
        let mut options = [
            ffi::CU_JIT_ERROR_LOG_BUFFER,
            ffi::CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
        ];
        // The driver reads the size option's *value* as an integer.
        let mut values: [*mut c_void; 2] = [log.as_mut_ptr().cast(), log.len() as *mut c_void];
        let mut module: ffi::CUmodule = std::ptr::null_mut();
        // SAFETY: `image` is NUL-terminated PTX; the options name a buffer of
        // `log.len()` bytes that outlives the call.
        let rc = unsafe {
            ffi::cuModuleLoadDataEx(
                &mut module,
                image.as_ptr().cast(),
                options.len() as c_uint,
                options.as_mut_ptr(),
                values.as_mut_ptr(),
            )
        };
        if rc == 0 {
            self.modules.push(LoadedModule(module));
            self.params.extend(signature::entries(ptx));
            return Ok(());
        }
        let log = CStr::from_bytes_until_nul(&log)
            .map(|s| s.to_string_lossy().trim().to_owned())
            .unwrap_or_default();
        let directive = |d: &str| {
            ptx.lines()
                .find_map(|l| l.trim().strip_prefix(d))
                .map_or_else(|| "?".to_owned(), |v| v.trim().to_owned())
        };
        Err(DriverError::PtxLoad {
            entry: directive(".visible .entry ")
                .split('(')
                .next()
                .unwrap_or("?")
                .to_owned(),
            target: format!(
                "PTX ISA {}, {}",
                directive(".version "),
                directive(".target ")
            ),
            cause: CudaStatus::new(rc),
            log: if log.is_empty() {
                log
            } else {
                format!(": {log}")
            },
        })
    }

    fn launch(
        &mut self,
        kernel: &str,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        args: &[Arg<CudaBuf>],
    ) -> Result<(), DriverError> {
        self.bind()?;
        let f = self.function(kernel)?;
        self.check_args(kernel, args)?;
        // One 8-byte, 8-aligned slot per parameter; the driver copies the
        // parameter's size (4 or 8 bytes) from the start of the slot, so a
        // 32-bit value goes in the slot's first four bytes.
        let low = |b: [u8; 4]| u64::from_ne_bytes([b[0], b[1], b[2], b[3], 0, 0, 0, 0]);
        let mut slots = args
            .iter()
            .map(|a| match *a {
                Arg::Ptr(b) => self.address(&b, 0),
                Arg::PtrAt(b, offset) => self.address(&b, offset),
                Arg::U32(v) => Ok(low(v.to_ne_bytes())),
                Arg::I32(v) => Ok(low(v.to_ne_bytes())),
                Arg::F32(v) => Ok(low(v.to_ne_bytes())),
                Arg::U64(v) => Ok(v),
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let mut params: Vec<*mut c_void> =
            slots.iter_mut().map(|s| (s as *mut u64).cast()).collect();
        self.last_kernel.clear();
        self.last_kernel.push_str(kernel);
        // SAFETY: `f` comes from a module this device keeps loaded; `params`
        // holds one pointer per kernel parameter, each to a live slot; the
        // stream belongs to the current context.
        let rc = unsafe {
            ffi::cuLaunchKernel(
                f,
                grid[0],
                grid[1],
                grid[2],
                block[0],
                block[1],
                block[2],
                shared_bytes,
                self.stream.as_inner().cast(),
                params.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(DriverError::Launch {
                kernel: kernel.into(),
                grid,
                block,
                shared_bytes,
                cause: CudaStatus::new(rc),
            })
        }
    }

    fn synchronize(&mut self) -> Result<(), DriverError> {
        self.bind()?;
        self.stream
            .synchronize()
            .map_err(self.failed("cuStreamSynchronize"))
    }
}

/// Initializes the driver and describes device 0 without creating a context
/// (`lasagna info`, `--device auto`), or says why there is none.
pub fn probe() -> Result<String, DriverError> {
    describe(open(0)?)
}

/// `cuInit`, then device `ordinal`.
fn open(ordinal: u32) -> Result<CuDevice, DriverError> {
    // Raw cuInit: cust maps codes it does not know (CUDA_ERROR_STUB_LIBRARY,
    // _INSUFFICIENT_DRIVER on new drivers) to UnknownError, losing the reason.
    // SAFETY: cuInit takes flags only (0 is the only defined value).
    let rc = unsafe { ffi::cuInit(0) };
    if rc != 0 {
        return Err(DriverError::NoDevice {
            call: "cuInit",
            cause: CudaStatus::new(rc),
        });
    }
    let count = CuDevice::num_devices().map_err(|e| DriverError::NoDevice {
        call: "cuDeviceGetCount",
        cause: e.into(),
    })?;
    if ordinal >= count {
        return Err(DriverError::Ordinal { ordinal, count });
    }
    CuDevice::get_device(ordinal).map_err(call("cuDeviceGet"))
}

/// "NVIDIA H200, 139.8 GiB, sm_90, 132 SMs, driver 12.8".
fn describe(device: CuDevice) -> Result<String, DriverError> {
    let name = device.name().map_err(call("cuDeviceGetName"))?;
    let total = device.total_memory().map_err(call("cuDeviceTotalMem"))?;
    let attr = |a| {
        device
            .get_attribute(a)
            .map_err(call("cuDeviceGetAttribute"))
    };
    let major = attr(DeviceAttribute::ComputeCapabilityMajor)?;
    let minor = attr(DeviceAttribute::ComputeCapabilityMinor)?;
    let sms = attr(DeviceAttribute::MultiprocessorCount)?;
    let driver = cust::CudaApiVersion::get().map_err(call("cuDriverGetVersion"))?;
    Ok(format!(
        "{name}, {:.1} GiB, sm_{major}{minor}, {sms} SMs, driver {}.{}",
        total as f64 / (1u64 << 30) as f64,
        driver.major(),
        driver.minor()
    ))
}

/// Wraps a `cust` error with the driver call that returned it.
fn call(call: &'static str) -> impl Fn(CudaError) -> DriverError {
    move |e| DriverError::Call {
        call,
        cause: e.into(),
    }
}

/// A loaded module, unloaded on drop.
struct LoadedModule(ffi::CUmodule);

impl Drop for LoadedModule {
    fn drop(&mut self) {
        // SAFETY: loaded by cuModuleLoadDataEx and unloaded only here; the
        // device's context is current (`CudaDevice::drop`). An error here
        // (e.g. a context already torn down) leaves nothing to clean up.
        let _ = unsafe { ffi::cuModuleUnload(self.0) };
    }
}

/// The few driver entry points called directly, declared with `int` results
/// so that any code a newer driver returns is a value, not undefined
/// behaviour in a Rust enum. `cust_raw` links libcuda.
///
/// Declared here: `cuInit` and the primary context (where a busy GPU says
/// 46, newer than cust_raw 0.11's enum). The rest goes through cust, where
/// a code its enum lacks is undefined behaviour; the fake driver of CI
/// (kernels-ptx/sim-driver) returns such codes only from the calls declared
/// here. Moving the rest here too is what is left of issue 18's "own
/// int-returning FFI".
#[allow(non_snake_case)]
mod ffi {
    use std::ffi::c_void;
    use std::os::raw::{c_char, c_int, c_uint};

    pub type CUmodule = *mut c_void;
    pub type CUfunction = *mut c_void;
    pub type CUstream = *mut c_void;
    pub type CUcontext = *mut c_void;

    // cuda.h: CUresult and CUjit_option values.
    pub const CUDA_ERROR_NOT_FOUND: c_int = 500;
    pub const CU_JIT_ERROR_LOG_BUFFER: c_int = 5;
    pub const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES: c_int = 6;

    extern "C" {
        pub fn cuInit(flags: c_uint) -> c_int;
        pub fn cuDevicePrimaryCtxRetain(ctx: *mut CUcontext, device: c_int) -> c_int;
        pub fn cuDevicePrimaryCtxRelease_v2(device: c_int) -> c_int;
        pub fn cuCtxSetCurrent(ctx: CUcontext) -> c_int;
        pub fn cuGetErrorName(error: c_int, out: *mut *const c_char) -> c_int;
        pub fn cuGetErrorString(error: c_int, out: *mut *const c_char) -> c_int;
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
    }
}
