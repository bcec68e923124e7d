//! `Memory` for the GPU: allocations, host transfers and device copies
//! through the device interface; `fill` is a kernel (`blas.ptx`).

use lasagna_kernels::device::Device;

use super::{blas, Gpu, GpuBuf, GpuIdx};
use crate::backend::{need, Location, Memory};
use crate::error::Result;

impl<D> Memory for Gpu<D>
where
    D: Device + Send + 'static,
{
    type Buf = GpuBuf<D::Buf>;
    type Idx = GpuIdx<D::Buf>;

    fn name(&self) -> String {
        self.name.clone()
    }
    fn location(&self) -> Location {
        Location::Device
    }
    fn zeros(&self, len: usize) -> Result<Self::Buf> {
        Ok(GpuBuf {
            id: self.alloc(len * 4)?,
            len,
        })
    }
    fn upload(&self, host: &[f32]) -> Result<Self::Buf> {
        let b = self.zeros(host.len())?;
        self.put(&b.id, bytemuck::cast_slice(host))?;
        Ok(b)
    }
    fn upload_idx(&self, host: &[u32]) -> Result<Self::Idx> {
        let b = GpuIdx {
            id: self.alloc(host.len() * 4)?,
            len: host.len(),
        };
        self.put(&b.id, bytemuck::cast_slice(host))?;
        Ok(b)
    }
    fn write(&self, dst: &mut Self::Buf, host: &[f32]) -> Result<()> {
        need(self, "write", host.len(), &[dst.len])?;
        self.put(&dst.id, bytemuck::cast_slice(host))
    }
    fn write_idx(&self, dst: &mut Self::Idx, host: &[u32]) -> Result<()> {
        need(self, "write_idx", host.len(), &[dst.len])?;
        self.put(&dst.id, bytemuck::cast_slice(host))
    }
    fn read(&self, src: &Self::Buf, host: &mut [f32]) -> Result<()> {
        need(self, "read", host.len(), &[src.len])?;
        self.device()?
            .download(&src.id, bytemuck::cast_slice_mut(host))
            .map_err(|e| self.fail("download", e))
    }
    fn len(&self, buf: &Self::Buf) -> usize {
        buf.len
    }
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf, n: usize) -> Result<()> {
        need(self, "copy", n, &[src.len, dst.len])?;
        if n == 0 {
            return Ok(());
        }
        self.device()?
            .copy(&src.id, &dst.id, n * 4)
            .map_err(|e| self.fail("device-to-device copy", e))
    }
    fn fill(&self, dst: &mut Self::Buf, value: f32, n: usize) -> Result<()> {
        need(self, "fill", n, &[dst.len])?;
        blas::fill(self, dst, value, n)
    }
    fn sync(&self) -> Result<()> {
        self.device()?
            .synchronize()
            .map_err(|e| self.fail("synchronize", e))
    }
}
