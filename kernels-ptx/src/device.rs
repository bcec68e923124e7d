//! The small device interface the CUDA backend is written against:
//! allocate, copy in and out, load PTX, launch a named kernel, synchronize.
//!
//! Two implementations exist: the CUDA driver API (trainer feature `cuda`,
//! on a real GPU) and the PTX simulator (`lasagna-ptx-sim`, in CI),
//! so the backend's orchestration — which kernel, which launch shape, the
//! argument order, buffer sizes, workspace reuse — runs on every change.
//!
//! A device may also *capture* a sequence of launches and device-to-device
//! copies and *replay* it (CUDA Graphs: stream capture, then one
//! `cuGraphLaunch` per replay): between [`Device::begin_capture`] and
//! [`Device::end_capture`] work is recorded, not run, and host transfers
//! (`upload`, `download`) are errors, as they are in CUDA stream capture.
//! A replay runs the recorded work with the arguments it was captured with,
//! so whatever must change between replays lives in device memory. Devices
//! that cannot capture keep the defaults, which say so (`Ok(false)`, `None`).

use core::fmt;

/// One kernel argument, in `.entry` parameter order. `B` is the device's
/// buffer handle; a `Ptr` argument passes that buffer's device address.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<B> {
    /// Device address of a buffer (a `.u64` parameter).
    Ptr(B),
    /// Device address of a buffer plus a byte offset (per-sample and
    /// per-group views, e.g. Conv2d's GEMMs).
    PtrAt(B, u64),
    /// `.u32`/`.b32` parameter.
    U32(u32),
    /// `.s32` parameter.
    I32(i32),
    /// `.f32` parameter.
    F32(f32),
    /// `.u64`/`.s64`/`.b64` parameter that is not a buffer.
    U64(u64),
}

/// Handle of a captured graph (an index the device gives out; see
/// [`Device::end_capture`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GraphId(pub u32);

/// What a backend needs from a device to run this crate's kernels.
pub trait Device {
    /// Handle of one allocation.
    type Buf: Copy + fmt::Debug + Send + Sync + 'static;
    /// What goes wrong, with enough context to act on.
    type Error: std::error::Error + Send + Sync + 'static;
    /// A one-line description for logs: name, memory, compute capability.
    fn describe(&self) -> String;
    /// `(free, total)` device memory in bytes, when the device can tell.
    fn memory(&mut self) -> Option<(usize, usize)> {
        None
    }
    /// Allocates `bytes` of zeroed device memory.
    fn alloc(&mut self, bytes: usize) -> Result<Self::Buf, Self::Error>;
    /// Copies `data` to the start of `buf` (`data` may be shorter than the buffer).
    fn upload(&mut self, buf: &Self::Buf, data: &[u8]) -> Result<(), Self::Error>;
    /// Copies the start of `buf` into `out` (waits for queued work first).
    fn download(&mut self, buf: &Self::Buf, out: &mut [u8]) -> Result<(), Self::Error>;
    /// Copies the first `bytes` of `src` to the start of `dst` on the device.
    fn copy(&mut self, src: &Self::Buf, dst: &Self::Buf, bytes: usize) -> Result<(), Self::Error>;
    /// Loads a PTX module and makes its entries launchable by name.
    fn load_module(&mut self, ptx: &str) -> Result<(), Self::Error>;
    /// Queues `kernel` on a `grid` of `block`-shaped blocks with
    /// `shared_bytes` of dynamic shared memory.
    fn launch(
        &mut self,
        kernel: &str,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        args: &[Arg<Self::Buf>],
    ) -> Result<(), Self::Error>;
    /// Waits for all queued work.
    fn synchronize(&mut self) -> Result<(), Self::Error>;
    /// Starts recording launches and copies instead of running them.
    /// `Ok(false)`: this device cannot capture, nothing changed (the default).
    fn begin_capture(&mut self) -> Result<bool, Self::Error> {
        Ok(false)
    }
    /// Ends the capture [`Device::begin_capture`] started and makes what it
    /// recorded replayable. `None` when no capture was in progress (the
    /// default). After an error the capture is over and nothing was kept.
    fn end_capture(&mut self) -> Result<Option<GraphId>, Self::Error> {
        Ok(None)
    }
    /// Queues the work `graph` recorded, in its order, once. `Ok(false)`:
    /// this device cannot replay (the default); a graph this device does not
    /// know is an error.
    fn replay(&mut self, graph: GraphId) -> Result<bool, Self::Error> {
        let _ = graph;
        Ok(false)
    }
    /// Frees a captured graph (nothing to do by default).
    fn drop_graph(&mut self, graph: GraphId) -> Result<(), Self::Error> {
        let _ = graph;
        Ok(())
    }
}
