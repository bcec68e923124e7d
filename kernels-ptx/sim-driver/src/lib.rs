#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The exports are named as cuda.h names them.
#![allow(non_snake_case)]

mod config;
mod context;
mod errors;
mod graph;
mod handles;
mod launch;
mod memory;
mod module;

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use config::Config;
use context::{set_current, with_driver, Ctx};
use errors::{Code, Res, INVALID_CONTEXT, INVALID_VALUE, NO_DEVICE, UNKNOWN};
use launch::Shape;

type CUdevice = c_int;
type CUdeviceptr = u64;
type CUcontext = *mut c_void;
type CUmodule = *mut c_void;
type CUfunction = *mut c_void;
type CUstream = *mut c_void;
type CUgraph = *mut c_void;
type CUgraphExec = *mut c_void;

/// The device's name in `cuDeviceGetName` (and so in `lasagna info`).
const NAME: &CStr = c"Lasagna PTX simulator (libcuda stand-in)";
/// 12.4, as `cuDriverGetVersion` encodes it (1000 * major + 10 * minor).
const DRIVER_VERSION: c_int = 12040;

/// Runs an export's body; a panic becomes 999 instead of unwinding into C.
fn guard(f: impl FnOnce() -> Code) -> Code {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(UNKNOWN)
}

fn code(r: Res<()>) -> Code {
    r.err().unwrap_or(0)
}

/// Writes an out-parameter; a null pointer is 1, as the driver answers.
///
/// # Safety
/// `p` is null or valid for a write of `T`.
unsafe fn put<T>(p: *mut T, v: T) -> Res<()> {
    if p.is_null() {
        return Err(INVALID_VALUE);
    }
    // SAFETY: non-null and valid for writes (caller's promise).
    unsafe { p.write(v) };
    Ok(())
}

/// An opaque handle for index `i` (0 is never a valid handle).
fn handle(i: usize) -> *mut c_void {
    (i + 1) as *mut c_void
}

/// The index behind a handle made by [`handle`]; null gives `None`.
fn index(h: *mut c_void) -> Option<usize> {
    (h as usize).checked_sub(1)
}

/// Defines an export: `#[no_mangle] pub unsafe extern "C"`, its body under
/// [`guard`]. The body returns a `Code`.
macro_rules! export {
    ($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        ///
        /// # Safety
        /// The CUDA driver API's contract for this function: pointers are
        /// null or valid for the sizes the arguments give.
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> c_int {
            guard(move || $body)
        }
    };
}

export! {
    /// Reads the environment (see the README) and initializes the driver.
    fn cuInit(flags: c_uint) {
        with_driver(|d| {
            if flags != 0 {
                return Err(INVALID_VALUE);
            }
            let config = Config::from_env()?;
            if let Some(code) = config.init_error {
                return Err(code);
            }
            if config.devices == 0 {
                return Err(NO_DEVICE);
            }
            if d.config.is_none() {
                d.config = Some(config);
            }
            Ok(())
        })
    }
}

export! {
    /// The driver version; needs no `cuInit`.
    fn cuDriverGetVersion(version: *mut c_int) {
        // SAFETY: `version` is null or writable (the contract).
        code(unsafe { put(version, DRIVER_VERSION) })
    }
}

export! {
    /// Number of devices: 1, or 0 under `LASAGNA_SIM_DRIVER_DEVICES=0`.
    fn cuDeviceGetCount(count: *mut c_int) {
        with_driver(|d| {
            let n = d.config()?.devices as c_int;
            // SAFETY: null or writable.
            unsafe { put(count, n) }
        })
    }
}

export! {
    /// Device `ordinal` (only 0).
    fn cuDeviceGet(device: *mut CUdevice, ordinal: c_int) {
        with_driver(|d| {
            d.device(ordinal)?;
            // SAFETY: null or writable.
            unsafe { put(device, ordinal) }
        })
    }
}

export! {
    /// The device's name, truncated to `len` bytes with its NUL.
    fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) {
        with_driver(|d| {
            d.device(dev)?;
            let len = usize::try_from(len).map_err(|_| INVALID_VALUE)?;
            if name.is_null() || len == 0 {
                return Err(INVALID_VALUE);
            }
            let n = NAME.to_bytes().len().min(len - 1);
            // SAFETY: `name` holds `len` bytes and `n + 1 <= len`.
            unsafe {
                std::ptr::copy_nonoverlapping(NAME.as_ptr(), name, n);
                name.add(n).write(0);
            }
            Ok(())
        })
    }
}

export! {
    /// Total memory: the cap (`LASAGNA_SIM_DRIVER_MEM`).
    fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) {
        with_driver(|d| {
            d.device(dev)?;
            let total = usize::try_from(d.config()?.memory).map_err(|_| INVALID_VALUE)?;
            // SAFETY: null or writable.
            unsafe { put(bytes, total) }
        })
    }
}

export! {
    /// The attributes a launch or `lasagna info` asks about, as an sm_80
    /// part with one multiprocessor (the simulator runs blocks one at a time).
    fn cuDeviceGetAttribute(value: *mut c_int, attribute: c_int, dev: CUdevice) {
        with_driver(|d| {
            d.device(dev)?;
            // cuda.h, enum CUdevice_attribute; limits of sm_80 (CUDA C
            // Programming Guide, table "Technical Specifications").
            let v = match attribute {
                1..=3 => 1024,           // max threads per block, block x, y
                4 => 64,                 // block z
                5 => i32::MAX,           // grid x
                6 | 7 => 65535,          // grid y, z
                8 => 48 << 10,           // shared memory per block
                10 => 32,                // warp size
                16 => 1,                 // multiprocessors
                75 => 8,                 // compute capability major
                76 => 0,                 // compute capability minor
                97 => 163 << 10,         // shared memory per block, opt-in
                _ => return Err(INVALID_VALUE),
            };
            // SAFETY: null or writable.
            unsafe { put(value, v) }
        })
    }
}

export! {
    /// Retains the primary context, creating it (an empty simulator) if no
    /// one holds it.
    fn cuDevicePrimaryCtxRetain(ctx: *mut CUcontext, dev: CUdevice) {
        with_driver(|d| {
            d.device(dev)?;
            if let Some(code) = d.config()?.ctx_error {
                return Err(code);
            }
            if ctx.is_null() {
                return Err(INVALID_VALUE);
            }
            if d.refs == 0 {
                d.generation += 1;
                d.ctx = Some(Ctx::default());
            }
            d.refs += 1;
            let h = d.handle().ok_or(UNKNOWN)?;
            // SAFETY: non-null, writable.
            unsafe { put(ctx, h as CUcontext) }
        })
    }
}

export! {
    /// Releases the primary context; the last release frees everything in
    /// it (allocations, modules, a sticky fault), as on hardware.
    fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) {
        with_driver(|d| {
            d.device(dev)?;
            d.refs = d.refs.checked_sub(1).ok_or(INVALID_CONTEXT)?;
            if d.refs == 0 {
                d.ctx = None;
            }
            Ok(())
        })
    }
}

export! {
    /// Makes `ctx` (or no context, for null) current on this thread.
    fn cuCtxSetCurrent(ctx: CUcontext) {
        with_driver(|d| {
            d.config()?;
            let h = ctx as usize;
            if h != 0 && d.handle() != Some(h) {
                return Err(INVALID_CONTEXT);
            }
            set_current(h);
            Ok(())
        })
    }
}

export! {
    /// A stream (flags and priority are accepted and ignored: one queue).
    fn cuStreamCreateWithPriority(stream: *mut CUstream, flags: c_uint, priority: c_int) {
        let _ = (flags, priority);
        with_driver(|d| {
            if stream.is_null() {
                return Err(INVALID_VALUE);
            }
            let s = d.stream_create()?;
            // SAFETY: non-null, writable.
            unsafe { put(stream, handle(s)) }
        })
    }
}

export! {
    /// Destroys a stream.
    fn cuStreamDestroy_v2(stream: CUstream) {
        with_driver(|d| d.stream_destroy(index(stream).ok_or(INVALID_VALUE)?))
    }
}

export! {
    /// Waits for the stream: reports a queued kernel fault.
    fn cuStreamSynchronize(stream: CUstream) {
        with_driver(|d| d.stream_sync(index(stream)))
    }
}

export! {
    /// Allocates zeroed memory within the cap.
    fn cuMemAlloc_v2(ptr: *mut CUdeviceptr, bytes: usize) {
        with_driver(|d| {
            if ptr.is_null() {
                return Err(INVALID_VALUE);
            }
            let p = d.alloc(bytes as u64)?;
            // SAFETY: non-null, writable.
            unsafe { put(ptr, p) }
        })
    }
}

export! {
    /// Frees an allocation (its base address).
    fn cuMemFree_v2(ptr: CUdeviceptr) {
        with_driver(|d| d.free(ptr))
    }
}

export! {
    /// Sets `n` bytes at `ptr` to `value`.
    fn cuMemsetD8_v2(ptr: CUdeviceptr, value: u8, n: usize) {
        with_driver(|d| d.memset(ptr, value, n as u64))
    }
}

export! {
    /// Host to device.
    fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, n: usize) {
        with_driver(|d| {
            if src.is_null() && n > 0 {
                return Err(INVALID_VALUE);
            }
            let bytes: &[u8] = if n == 0 {
                &[]
            } else {
                // SAFETY: `src` holds `n` readable bytes (the contract).
                unsafe { std::slice::from_raw_parts(src.cast(), n) }
            };
            d.htod(dst, bytes)
        })
    }
}

export! {
    /// Device to host.
    fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) {
        with_driver(|d| {
            if dst.is_null() && n > 0 {
                return Err(INVALID_VALUE);
            }
            let bytes: &mut [u8] = if n == 0 {
                &mut []
            } else {
                // SAFETY: `dst` holds `n` writable bytes (the contract).
                unsafe { std::slice::from_raw_parts_mut(dst.cast(), n) }
            };
            d.dtoh(bytes, src)
        })
    }
}

export! {
    /// Device to device.
    fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize) {
        with_driver(|d| d.dtod(dst, src, n as u64))
    }
}

export! {
    /// Free and total memory against the cap.
    fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) {
        with_driver(|d| {
            let (f, t) = d.mem_info()?;
            let f = usize::try_from(f).map_err(|_| INVALID_VALUE)?;
            let t = usize::try_from(t).map_err(|_| INVALID_VALUE)?;
            // SAFETY: null or writable.
            unsafe {
                put(free, f)?;
                put(total, t)
            }
        })
    }
}

export! {
    /// Loads PTX text; on failure the simulator's parse error goes to the
    /// caller's `CU_JIT_ERROR_LOG_BUFFER`.
    fn cuModuleLoadDataEx(
        module: *mut CUmodule,
        image: *const c_void,
        num_options: c_uint,
        options: *mut c_int,
        values: *mut *mut c_void,
    ) {
        with_driver(|d| {
            if module.is_null() || image.is_null() {
                return Err(INVALID_VALUE);
            }
            // SAFETY: a PTX image is NUL-terminated text (the contract).
            let text = unsafe { CStr::from_ptr(image.cast::<c_char>()) };
            let result = match text.to_str() {
                Ok(ptx) => d.load_module(ptx),
                // cubin/fatbin (or anything not text) is not PTX.
                Err(_) => Err((errors::INVALID_IMAGE, "not PTX text".to_owned())),
            };
            let log = result.as_ref().err().map_or("", |(_, log)| log.as_str());
            // SAFETY: the option arrays follow the contract.
            unsafe { module::write_logs(num_options, options, values, log) }?;
            let m = result.map_err(|(code, _)| code)?;
            // SAFETY: non-null, writable.
            unsafe { put(module, handle(m)) }
        })
    }
}

export! {
    /// Looks up `.entry name` in the module: 500 when it has none.
    fn cuModuleGetFunction(func: *mut CUfunction, module: CUmodule, name: *const c_char) {
        with_driver(|d| {
            if func.is_null() || name.is_null() {
                return Err(INVALID_VALUE);
            }
            // SAFETY: `name` is NUL-terminated (the contract).
            let name = unsafe { CStr::from_ptr(name) };
            let name = name.to_str().map_err(|_| errors::NOT_FOUND)?;
            let m = index(module).ok_or(errors::INVALID_HANDLE)?;
            let f = d.get_function(m, name)?;
            // SAFETY: non-null, writable.
            unsafe { put(func, handle(f)) }
        })
    }
}

export! {
    /// Unloads a module.
    fn cuModuleUnload(module: CUmodule) {
        with_driver(|d| d.unload(index(module).ok_or(errors::INVALID_HANDLE)?))
    }
}

export! {
    /// Runs the kernel on the simulator; a fault is reported later (or now,
    /// under `CUDA_LAUNCH_BLOCKING=1`).
    fn cuLaunchKernel(
        func: CUfunction,
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
    ) {
        with_driver(|d| {
            let f = index(func).ok_or(errors::INVALID_HANDLE)?;
            let shape = Shape {
                grid: [grid_x, grid_y, grid_z],
                block: [block_x, block_y, block_z],
                shared: shared_bytes,
            };
            // SAFETY: `params` holds one pointer per parameter (the contract).
            unsafe { d.launch(f, shape, index(stream), params.cast(), !extra.is_null()) }
        })
    }
}

export! {
    /// Starts capturing `stream` (any mode is treated as global).
    fn cuStreamBeginCapture_v2(stream: CUstream, mode: c_int) {
        with_driver(|d| d.begin_capture(index(stream), mode))
    }
}

export! {
    /// Ends the capture: the recorded graph, or 901 if it was invalidated.
    fn cuStreamEndCapture(stream: CUstream, graph: *mut CUgraph) {
        with_driver(|d| {
            if graph.is_null() {
                return Err(INVALID_VALUE);
            }
            let g = d.end_capture(index(stream))?;
            // SAFETY: non-null, writable.
            unsafe { put(graph, handle(g)) }
        })
    }
}

export! {
    /// An executable graph (flags must be 0).
    fn cuGraphInstantiateWithFlags(exec: *mut CUgraphExec, graph: CUgraph, flags: u64) {
        with_driver(|d| {
            if exec.is_null() {
                return Err(INVALID_VALUE);
            }
            let e = d.instantiate(index(graph).ok_or(errors::INVALID_HANDLE)?, flags)?;
            // SAFETY: non-null, writable.
            unsafe { put(exec, handle(e)) }
        })
    }
}

export! {
    /// Replays an executable graph on `stream`.
    fn cuGraphLaunch(exec: CUgraphExec, stream: CUstream) {
        with_driver(|d| d.graph_launch(index(exec).ok_or(errors::INVALID_HANDLE)?, index(stream)))
    }
}

export! {
    /// Destroys an executable graph.
    fn cuGraphExecDestroy(exec: CUgraphExec) {
        with_driver(|d| d.destroy_graph(index(exec).ok_or(errors::INVALID_HANDLE)?, true))
    }
}

export! {
    /// Destroys a graph (its executables stay valid).
    fn cuGraphDestroy(graph: CUgraph) {
        with_driver(|d| d.destroy_graph(index(graph).ok_or(errors::INVALID_HANDLE)?, false))
    }
}

/// `cuGetErrorName`/`cuGetErrorString`: 1 and null for an unknown code.
fn error_text(error: c_int, out: *mut *const c_char, name: bool) -> Code {
    let found = errors::describe(error).map(|(n, t)| if name { n } else { t });
    let p = found.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: null or writable (the contract); the strings are 'static.
    match unsafe { put(out, p) } {
        Ok(()) if found.is_some() => 0,
        Ok(()) => INVALID_VALUE,
        Err(code) => code,
    }
}

export! {
    /// The code's name, e.g. `CUDA_ERROR_ILLEGAL_ADDRESS`.
    fn cuGetErrorName(error: c_int, out: *mut *const c_char) {
        error_text(error, out, true)
    }
}

export! {
    /// The code's text, e.g. "an illegal memory access was encountered".
    fn cuGetErrorString(error: c_int, out: *mut *const c_char) {
        error_text(error, out, false)
    }
}

#[cfg(test)]
mod tests;
