//! The small device interface the CUDA backend is written against:
//! allocate, copy in and out, load PTX, launch a named kernel, synchronize.
//!
//! Two implementations exist: the CUDA driver API (trainer feature `cuda`,
//! on a real GPU) and the PTX simulator (`lasagna-ptx-sim`, in CI),
//! so the backend's orchestration — which kernel, which launch shape, the
//! argument order, buffer sizes, workspace reuse — runs on every change.

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
}
