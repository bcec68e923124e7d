//! CUDA Graphs through the driver API: stream capture, instantiation, launch
//! and destruction (cust 0.3.2 has no graph API, and the trainer declares
//! every driver call itself, see `ffi.rs`). The capture mode is global, so
//! a synchronous copy on any thread while capturing is refused by the
//! driver (`CUDA_ERROR_STREAM_CAPTURE_IMPLICIT`/`_UNSUPPORTED`) and the
//! capture is invalidated, rather than silently ordered against it.

use super::ffi::{check, CUstream, Failed};
use std::ffi::c_void;
use std::os::raw::{c_int, c_ulonglong};

pub type CUgraph = *mut c_void;
pub type CUgraphExec = *mut c_void;

/// cuda.h, `CUstreamCaptureMode`: `CU_STREAM_CAPTURE_MODE_GLOBAL`.
pub const CU_STREAM_CAPTURE_MODE_GLOBAL: c_int = 0;

#[allow(non_snake_case)]
extern "C" {
    pub fn cuStreamBeginCapture_v2(stream: CUstream, mode: c_int) -> c_int;
    pub fn cuStreamEndCapture(stream: CUstream, graph: *mut CUgraph) -> c_int;
    pub fn cuGraphInstantiateWithFlags(
        exec: *mut CUgraphExec,
        graph: CUgraph,
        flags: c_ulonglong,
    ) -> c_int;
    pub fn cuGraphLaunch(exec: CUgraphExec, stream: CUstream) -> c_int;
    pub fn cuGraphExecDestroy(exec: CUgraphExec) -> c_int;
    pub fn cuGraphDestroy(graph: CUgraph) -> c_int;
}

/// Starts capturing the work queued on `stream`.
pub fn begin_capture(stream: CUstream) -> Result<(), Failed> {
    // SAFETY: `stream` is a live stream of the current context.
    check("cuStreamBeginCapture", unsafe {
        cuStreamBeginCapture_v2(stream, CU_STREAM_CAPTURE_MODE_GLOBAL)
    })
}

/// Ends the capture on `stream` and instantiates what it recorded. The
/// graph itself is destroyed once instantiated: only the executable is kept.
pub fn end_capture(stream: CUstream) -> Result<GraphExec, Failed> {
    let mut graph: CUgraph = std::ptr::null_mut();
    // SAFETY: `graph` is a valid out-pointer; `stream` is live.
    check("cuStreamEndCapture", unsafe {
        cuStreamEndCapture(stream, &mut graph)
    })?;
    let mut exec: CUgraphExec = std::ptr::null_mut();
    // SAFETY: `graph` was just returned by the driver; flags 0 are the defaults.
    let made = check("cuGraphInstantiateWithFlags", unsafe {
        cuGraphInstantiateWithFlags(&mut exec, graph, 0)
    });
    // SAFETY: `graph` is destroyed once, here; the executable does not need it.
    let destroyed = check("cuGraphDestroy", unsafe { cuGraphDestroy(graph) });
    made?;
    let exec = GraphExec(exec);
    destroyed?;
    Ok(exec)
}

/// An instantiated graph, destroyed on drop.
pub struct GraphExec(CUgraphExec);

impl GraphExec {
    /// Queues the whole graph on `stream`.
    pub fn launch(&self, stream: CUstream) -> Result<(), Failed> {
        // SAFETY: the executable lives until drop; `stream` is live.
        check("cuGraphLaunch", unsafe { cuGraphLaunch(self.0, stream) })
    }
}

impl Drop for GraphExec {
    fn drop(&mut self) {
        // SAFETY: instantiated in `end_capture`, destroyed once here. An
        // error (a context torn down) leaves nothing to clean up.
        let _ = unsafe { cuGraphExecDestroy(self.0) };
    }
}
