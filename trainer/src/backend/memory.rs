//! Memory: buffers on the device, transfers to and from the host, and
//! simple fills. Every other family builds on it.

use crate::error::{Error, Result};

/// Where a backend's buffers live. Decisions that depend on what reading a
/// buffer back costs match on this, not on [`Memory::name`], which is text
/// for people and may change. Exhaustive on purpose: a new place is a
/// compile error at every decision until it is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Host memory: a read is a copy and waits for nothing (the CPU backend).
    Host,
    /// An accelerator's memory: a read is a transfer that waits for the
    /// queued work (the GPU backend, on a GPU or the PTX simulator).
    Device,
}

/// Allocation, transfers and simple fills.
pub trait Memory: Send + Sync + 'static {
    /// An `f32` buffer on the device.
    type Buf: Send + Sync;
    /// A `u32` buffer on the device (labels, token ids, index lists).
    type Idx: Send + Sync;
    /// Short name for messages and metrics (`cpu`, `cuda:0 (H200)`).
    fn name(&self) -> String;
    /// Where the buffers live.
    fn location(&self) -> Location;
    /// A zero-filled buffer of `len` elements.
    fn zeros(&self, len: usize) -> Result<Self::Buf>;
    /// A buffer holding a copy of `host`.
    fn upload(&self, host: &[f32]) -> Result<Self::Buf>;
    /// An index buffer holding a copy of `host`.
    fn upload_idx(&self, host: &[u32]) -> Result<Self::Idx>;
    /// Copies `host` into the start of `dst`.
    fn write(&self, dst: &mut Self::Buf, host: &[f32]) -> Result<()>;
    /// Copies `host` into the start of `dst`.
    fn write_idx(&self, dst: &mut Self::Idx, host: &[u32]) -> Result<()>;
    /// Copies the start of `src` into `host` (waits for pending work).
    fn read(&self, src: &Self::Buf, host: &mut [f32]) -> Result<()>;
    /// Number of elements.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// `dst[..n] = src[..n]`.
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf, n: usize) -> Result<()>;
    /// `dst[..n] = value`.
    fn fill(&self, dst: &mut Self::Buf, value: f32, n: usize) -> Result<()>;
    /// Waits for all queued work.
    fn sync(&self) -> Result<()>;

    /// Reads a whole buffer into a new vector.
    fn to_vec(&self, src: &Self::Buf) -> Result<Vec<f32>> {
        let mut v = vec![0.0; self.len(src)];
        self.read(src, &mut v)?;
        Ok(v)
    }
}

/// Fails unless every length in `lens` is at least `n`. Ops check their
/// buffers with it before touching them, so a buffer too short for the
/// shape (a bug in the caller) is an error naming the backend and the op,
/// not a panic on the CPU or an out-of-bounds access on a GPU. One helper
/// for both backends keeps the message the same wherever the op runs.
pub(crate) fn need<B: Memory + ?Sized>(b: &B, op: &str, n: usize, lens: &[usize]) -> Result<()> {
    match lens.iter().find(|&&l| l < n) {
        Some(l) => Err(Error::Backend {
            backend: b.name(),
            reason: format!("{op}: buffer of {l} elements, {n} needed"),
        }),
        None => Ok(()),
    }
}
