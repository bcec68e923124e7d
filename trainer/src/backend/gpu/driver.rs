//! [`CudaDevice`]: the [`Device`] interface on a real GPU, through the CUDA
//! driver API (feature `cuda`).
//!
//! Every driver call goes through `driver/ffi.rs`: the project's own
//! declarations with `int` results and thin wrappers. Not cust's, because
//! cust_raw's `CUresult` is a Rust enum and a code it does not list (46
//! `CUDA_ERROR_DEVICE_UNAVAILABLE` from a busy GPU, anything newer than its
//! bindings) would be undefined behaviour; cust's error enum also folds codes
//! it does not know, such as `CUDA_ERROR_UNSUPPORTED_PTX_VERSION` (222), into
//! `UnknownError`, and its typed launch takes only typed arguments. cust
//! stays only for the link to libcuda (see `ffi`).
//!
//! Ordering: work goes to one stream created with default flags, so it also
//! synchronizes with the legacy default stream that the blocking copies
//! use; a copy after a launch sees the launch's writes.

use lasagna_kernels::device::{Arg, Device, GraphId};
use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};

mod context;
mod error;
mod ffi;
mod graph;
mod signature;
use context::PrimaryContext;
pub use error::{ptx_hint, CudaStatus, DriverError};
use ffi::{DeviceMem, Failed, Module, Stream};

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
    /// Instantiated graphs by `GraphId`; `None` once dropped. Before the
    /// modules and buffers their kernels use.
    graphs: Vec<Option<graph::GraphExec>>,
    /// Whether the stream is being captured.
    capturing: bool,
    functions: HashMap<String, ffi::CUfunction>,
    /// Parameter sizes of every entry of the loaded modules.
    params: HashMap<String, Vec<u32>>,
    modules: Vec<Module>,
    buffers: Vec<DeviceMem>,
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
        let context = PrimaryContext::retain(device)?;
        // Default (blocking) flags: see the module documentation on ordering.
        let stream = Stream::new()?;
        Ok(CudaDevice {
            graphs: Vec::new(),
            capturing: false,
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

    fn buffer(&self, buf: &CudaBuf) -> Result<&DeviceMem, DriverError> {
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
        Ok(self.buffer(buf)?.address() + offset)
    }

    /// Wraps an error of `call`. A kernel's fault (bad address, trap,
    /// timeout) surfaces at the next call that waits for the stream, and
    /// every call after it fails the same way ("sticky"), so those name the
    /// last kernel launched rather than the call that reported them.
    fn failed(&self, e: Failed) -> DriverError {
        if e.is_kernel_fault() {
            DriverError::Queued {
                last_kernel: self.last_kernel.clone(),
                cause: CudaStatus::new(e.code),
            }
        } else {
            e.into()
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
            if let Some(f) = m.function(&name)? {
                self.functions.insert(kernel.to_owned(), f);
                return Ok(f);
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
        ffi::mem_get_info().ok()
    }

    fn alloc(&mut self, bytes: usize) -> Result<CudaBuf, DriverError> {
        self.bind()?;
        let id = u32::try_from(self.buffers.len()).map_err(|_| DriverError::Handles)?;
        // cuMemAlloc + cuMemsetD8: the interface promises zeroed memory.
        let buf = DeviceMem::zeroed(bytes).map_err(|e| {
            if e.code == ffi::CUDA_ERROR_OUT_OF_MEMORY {
                let (free, total) = ffi::mem_get_info().unwrap_or((0, 0));
                DriverError::OutOfMemory {
                    asked: bytes,
                    free,
                    total,
                }
            } else {
                self.failed(e)
            }
        })?;
        self.buffers.push(buf);
        Ok(CudaBuf(id))
    }

    fn upload(&mut self, buf: &CudaBuf, data: &[u8]) -> Result<(), DriverError> {
        self.bind()?;
        if self.capturing {
            return Err(DriverError::Capture { op: "an upload" });
        }
        self.fits("upload", buf, data.len() as u64)?;
        let dst = self.buffer(buf)?;
        dst.upload(data).map_err(|e| self.failed(e))
    }

    fn download(&mut self, buf: &CudaBuf, out: &mut [u8]) -> Result<(), DriverError> {
        self.bind()?;
        if self.capturing {
            return Err(DriverError::Capture { op: "a download" });
        }
        self.fits("download", buf, out.len() as u64)?;
        self.stream.synchronize().map_err(|e| self.failed(e))?;
        let src = self.buffer(buf)?;
        src.download(out).map_err(|e| self.failed(e))
    }

    fn copy(&mut self, src: &CudaBuf, dst: &CudaBuf, bytes: usize) -> Result<(), DriverError> {
        self.bind()?;
        if self.capturing {
            // The blocking copy runs on the legacy stream, which a capture
            // cannot contain; no captured step copies (cuMemcpyDtoDAsync
            // would be the call if one ever does).
            return Err(DriverError::Capture {
                op: "a device-to-device copy",
            });
        }
        self.fits("copy", src, bytes as u64)?;
        self.fits("copy", dst, bytes as u64)?;
        let (from, to) = (self.buffer(src)?, self.buffer(dst)?);
        from.copy_to(to, bytes).map_err(|e| self.failed(e))
    }

    fn load_module(&mut self, ptx: &str) -> Result<(), DriverError> {
        self.bind()?;
        let image = CString::new(ptx).map_err(|e| DriverError::PtxNul {
            offset: e.nul_position(),
        })?;
        let mut log = vec![0u8; 16 << 10];
        let rc = match Module::load(&image, &mut log) {
            Ok(module) => {
                self.modules.push(module);
                self.params.extend(signature::entries(ptx));
                return Ok(());
            }
            Err(e) => e.code,
        };
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
                self.stream.raw(),
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
        self.stream.synchronize().map_err(|e| self.failed(e))
    }

    fn begin_capture(&mut self) -> Result<bool, DriverError> {
        self.bind()?;
        graph::begin_capture(self.stream.raw()).map_err(|e| self.failed(e))?;
        self.capturing = true;
        Ok(true)
    }

    fn end_capture(&mut self) -> Result<Option<GraphId>, DriverError> {
        self.bind()?;
        if !std::mem::take(&mut self.capturing) {
            return Ok(None);
        }
        let id = u32::try_from(self.graphs.len()).map_err(|_| DriverError::Handles)?;
        let exec = graph::end_capture(self.stream.raw()).map_err(|e| self.failed(e))?;
        self.graphs.push(Some(exec));
        Ok(Some(GraphId(id)))
    }

    fn replay(&mut self, g: GraphId) -> Result<bool, DriverError> {
        self.bind()?;
        let exec = self
            .graphs
            .get(g.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(DriverError::UnknownGraph { graph: g.0 })?;
        exec.launch(self.stream.raw()).map_err(|e| self.failed(e))?;
        Ok(true)
    }

    fn drop_graph(&mut self, g: GraphId) -> Result<(), DriverError> {
        self.bind()?;
        match self.graphs.get_mut(g.0 as usize) {
            // Dropping the executable destroys it (cuGraphExecDestroy).
            Some(slot @ Some(_)) => {
                *slot = None;
                Ok(())
            }
            _ => Err(DriverError::UnknownGraph { graph: g.0 }),
        }
    }
}

/// Initializes the driver and describes device 0 without creating a context
/// (`lasagna info`, `--device auto`), or says why there is none.
pub fn probe() -> Result<String, DriverError> {
    describe(open(0)?)
}

/// `cuInit`, then device `ordinal`.
fn open(ordinal: u32) -> Result<ffi::CUdevice, DriverError> {
    let no_device = |e: Failed| DriverError::NoDevice {
        call: e.call,
        cause: CudaStatus::new(e.code),
    };
    ffi::init().map_err(no_device)?;
    let count = ffi::device_count().map_err(no_device)?;
    if ordinal >= count {
        return Err(DriverError::Ordinal { ordinal, count });
    }
    Ok(ffi::device(ordinal)?)
}

/// "NVIDIA H200, 139.8 GiB, sm_90, 132 SMs, driver 12.8".
fn describe(device: ffi::CUdevice) -> Result<String, DriverError> {
    let name = ffi::device_name(device)?;
    let total = ffi::device_total_mem(device)?;
    let attr = |a| ffi::device_attribute(device, a);
    let major = attr(ffi::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attr(ffi::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let sms = attr(ffi::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let (driver_major, driver_minor) = ffi::driver_version()?;
    Ok(format!(
        "{name}, {:.1} GiB, sm_{major}{minor}, {sms} SMs, driver {driver_major}.{driver_minor}",
        total as f64 / (1u64 << 30) as f64,
    ))
}
