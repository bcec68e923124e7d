//! `DataOps` for the CPU: gathers by index, with an error that names an
//! index past the source, and token ids checked before they become indices.

use super::Cpu;
use crate::backend::{need, DataOps};
use crate::error::{Error, Result};

impl DataOps for Cpu {
    fn gather_rows(
        &self,
        src: &Vec<f32>,
        idx: &Vec<u32>,
        rows: usize,
        cols: usize,
        dst: &mut Vec<f32>,
    ) -> Result<()> {
        need(self, "gather_rows idx", rows, &[idx.len()])?;
        need(self, "gather_rows dst", rows * cols, &[dst.len()])?;
        let src_rows = src.len() / cols.max(1);
        for (r, out) in dst[..rows * cols].chunks_exact_mut(cols).enumerate() {
            let i = idx[r] as usize;
            if i >= src_rows {
                return Err(Error::Backend {
                    backend: "cpu".into(),
                    reason: format!("gather_rows: index {i} past {src_rows} rows"),
                });
            }
            out.copy_from_slice(&src[i * cols..(i + 1) * cols]);
        }
        Ok(())
    }
    fn gather_idx(
        &self,
        src: &Vec<u32>,
        idx: &Vec<u32>,
        rows: usize,
        dst: &mut Vec<u32>,
    ) -> Result<()> {
        need(self, "gather_idx", rows, &[idx.len(), dst.len()])?;
        for r in 0..rows {
            let i = idx[r] as usize;
            dst[r] = *src.get(i).ok_or_else(|| Error::Backend {
                backend: "cpu".into(),
                reason: format!("gather_idx: index {i} past {} entries", src.len()),
            })?;
        }
        Ok(())
    }
    fn gather_batch(
        &self,
        x: &Vec<f32>,
        y: &Vec<u32>,
        order: &Vec<u32>,
        start: usize,
        rows: usize,
        cols: usize,
        dst_x: &mut Vec<f32>,
        dst_y: &mut Vec<u32>,
    ) -> Result<()> {
        need(self, "gather_batch order", start + rows, &[order.len()])?;
        // The same two gathers on a copy of the batch's indices (the CPU
        // reference stays the composition of gather_rows and gather_idx).
        let idx = order[start..start + rows].to_vec();
        self.gather_rows(x, &idx, rows, cols, dst_x)?;
        self.gather_idx(y, &idx, rows, dst_y)
    }
    fn to_index(&self, x: &Vec<f32>, dst: &mut Vec<u32>, n: usize) -> Result<()> {
        need(self, "to_index", n, &[x.len(), dst.len()])?;
        for (d, &v) in dst[..n].iter_mut().zip(&x[..n]) {
            if !((0.0..16_777_216.0).contains(&v) && v.fract() == 0.0) {
                return Err(Error::Backend {
                    backend: "cpu".into(),
                    reason: format!(
                        "to_index: {v} is not a token id (a non-negative integer below 2^24)"
                    ),
                });
            }
            *d = v as u32;
        }
        Ok(())
    }
}
