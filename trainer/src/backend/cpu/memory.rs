//! `Memory` for the CPU: buffers are `Vec<f32>` and `Vec<u32>`, so
//! transfers are copies and `sync` has nothing to wait for.

use super::Cpu;
use crate::alloc::{try_copied, try_filled};
use crate::backend::{need, Location, Memory};
use crate::error::Result;

impl Memory for Cpu {
    type Buf = Vec<f32>;
    type Idx = Vec<u32>;

    fn name(&self) -> String {
        "cpu".into()
    }
    fn location(&self) -> Location {
        Location::Host
    }
    // Sizes come from the model description: an allocation the system
    // refuses is an error, not an abort.
    fn zeros(&self, len: usize) -> Result<Vec<f32>> {
        try_filled(len, 0.0, "cpu", "a buffer")
    }
    fn upload(&self, host: &[f32]) -> Result<Vec<f32>> {
        try_copied(host, "cpu", "a buffer")
    }
    fn upload_idx(&self, host: &[u32]) -> Result<Vec<u32>> {
        try_copied(host, "cpu", "an index buffer")
    }
    fn write(&self, dst: &mut Vec<f32>, host: &[f32]) -> Result<()> {
        need(self, "write", host.len(), &[dst.len()])?;
        dst[..host.len()].copy_from_slice(host);
        Ok(())
    }
    fn write_idx(&self, dst: &mut Vec<u32>, host: &[u32]) -> Result<()> {
        need(self, "write_idx", host.len(), &[dst.len()])?;
        dst[..host.len()].copy_from_slice(host);
        Ok(())
    }
    fn read(&self, src: &Vec<f32>, host: &mut [f32]) -> Result<()> {
        need(self, "read", host.len(), &[src.len()])?;
        host.copy_from_slice(&src[..host.len()]);
        Ok(())
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }
    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>, n: usize) -> Result<()> {
        need(self, "copy", n, &[src.len(), dst.len()])?;
        dst[..n].copy_from_slice(&src[..n]);
        Ok(())
    }
    fn fill(&self, dst: &mut Vec<f32>, value: f32, n: usize) -> Result<()> {
        need(self, "fill", n, &[dst.len()])?;
        dst[..n].fill(value);
        Ok(())
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }
}
