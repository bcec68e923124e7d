//! Allocations, copies and memset. A `CUdeviceptr` is a simulator device
//! address, so pointer arithmetic works as on hardware: any address inside
//! an allocation (base + offset) names that allocation at that offset, and a
//! range that leaves its allocation is refused with 1.

use lasagna_ptx_sim::Device;

use crate::context::{Alloc, Ctx, Driver};
use crate::errors::{Res, INVALID_VALUE, OUT_OF_MEMORY};

/// `cudaMalloc` rounds to (at least) 256 bytes; the cap counts what is held.
const GRANULE: u64 = 256;

fn size(n: u64) -> Res<usize> {
    usize::try_from(n).map_err(|_| INVALID_VALUE)
}

impl Ctx {
    /// The allocation holding `[ptr, ptr + len)` and `ptr`'s offset in it.
    pub fn resolve(&self, ptr: u64, len: u64) -> Res<(Alloc, u64)> {
        let (&base, &a) = self.allocs.range(..=ptr).next_back().ok_or(INVALID_VALUE)?;
        let off = ptr - base;
        match off.checked_add(len) {
            Some(end) if end <= a.len => Ok((a, off)),
            _ => Err(INVALID_VALUE),
        }
    }

    /// Bytes `[off, off + len)` of `a`. The simulator copies from a buffer's
    /// start, so an offset read fetches the prefix and drops it.
    pub fn read(&mut self, a: Alloc, off: u64, len: u64) -> Res<Vec<u8>> {
        let mut bytes = vec![0u8; size(off + len)?];
        self.sim
            .download(&a.buf, &mut bytes)
            .map_err(|_| INVALID_VALUE)?;
        bytes.drain(..size(off)?);
        Ok(bytes)
    }

    /// Writes `data` at `off` in `a` (read-modify-write of the prefix when
    /// `off > 0`, for the same reason as [`Ctx::read`]).
    pub fn write(&mut self, a: Alloc, off: u64, data: &[u8]) -> Res<()> {
        let upload = |sim: &mut lasagna_ptx_sim::Simulator, bytes: &[u8]| {
            sim.upload(&a.buf, bytes).map_err(|_| INVALID_VALUE)
        };
        if off == 0 {
            return upload(&mut self.sim, data);
        }
        let mut bytes = self.read(a, 0, off)?;
        bytes.extend_from_slice(data);
        upload(&mut self.sim, &bytes)
    }
}

impl Driver {
    /// `cuMemAlloc`: zeroed simulator memory, within the memory cap.
    pub fn alloc(&mut self, bytes: u64) -> Res<u64> {
        let (memory, oom_at, alloc_error) = {
            let c = self.config()?;
            (c.memory, c.oom_at, c.alloc_error)
        };
        self.allocs_made += 1;
        let nth = self.allocs_made;
        let ctx = self.usable()?;
        if let Some(code) = alloc_error {
            return Err(code);
        }
        if bytes == 0 {
            return Err(INVALID_VALUE);
        }
        let held = bytes
            .checked_next_multiple_of(GRANULE)
            .ok_or(OUT_OF_MEMORY)?;
        if oom_at == Some(nth) || ctx.used.saturating_add(held) > memory {
            return Err(OUT_OF_MEMORY);
        }
        let buf = ctx.sim.alloc(size(bytes)?).map_err(|_| OUT_OF_MEMORY)?;
        let base = ctx.sim.address(buf).map_err(|_| OUT_OF_MEMORY)?;
        ctx.allocs.insert(base, Alloc { buf, len: bytes });
        ctx.used += held;
        Ok(base)
    }

    /// `cuMemFree`: only an allocation's base address; waits for the device.
    /// The simulator keeps the bytes (it has no free); the cap gets them back.
    pub fn free(&mut self, ptr: u64) -> Res<()> {
        let ctx = self.synced()?;
        let a = ctx.allocs.remove(&ptr).ok_or(INVALID_VALUE)?;
        ctx.used -= a.len.next_multiple_of(GRANULE);
        Ok(())
    }

    /// `cuMemGetInfo`: (free, total) against the cap.
    pub fn mem_info(&mut self) -> Res<(u64, u64)> {
        let memory = self.config()?.memory;
        let ctx = self.usable()?;
        Ok((memory.saturating_sub(ctx.used), memory))
    }

    /// `cuMemsetD8`.
    pub fn memset(&mut self, ptr: u64, value: u8, n: u64) -> Res<()> {
        let ctx = self.usable()?;
        if n == 0 {
            return Ok(());
        }
        let (a, off) = ctx.resolve(ptr, n)?;
        ctx.write(a, off, &vec![value; size(n)?])
    }

    /// `cuMemcpyHtoD`: waits for queued work first, as a blocking copy does.
    pub fn htod(&mut self, dst: u64, src: &[u8]) -> Res<()> {
        let ctx = self.synced()?;
        if src.is_empty() {
            return Ok(());
        }
        let (a, off) = ctx.resolve(dst, src.len() as u64)?;
        ctx.write(a, off, src)
    }

    /// `cuMemcpyDtoH`.
    pub fn dtoh(&mut self, dst: &mut [u8], src: u64) -> Res<()> {
        let ctx = self.synced()?;
        if dst.is_empty() {
            return Ok(());
        }
        let (a, off) = ctx.resolve(src, dst.len() as u64)?;
        let bytes = ctx.read(a, off, dst.len() as u64)?;
        dst.copy_from_slice(&bytes);
        Ok(())
    }

    /// `cuMemcpyDtoD` (overlapping ranges copy as if through a temporary).
    pub fn dtod(&mut self, dst: u64, src: u64, n: u64) -> Res<()> {
        let ctx = self.synced()?;
        if n == 0 {
            return Ok(());
        }
        let (sa, soff) = ctx.resolve(src, n)?;
        let (da, doff) = ctx.resolve(dst, n)?;
        let bytes = ctx.read(sa, soff, n)?;
        ctx.write(da, doff, &bytes)
    }
}
