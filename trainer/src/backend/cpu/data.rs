//! `DataOps` for the CPU: gathers by index, with an error that names an
//! index past the source, and token ids checked before they become indices.

use super::Cpu;
use crate::backend::{need, DataOps};
use crate::error::{Error, Result};

/// Elements per part below which a gather stays on one thread.
const GATHER_PART_MIN: usize = 1 << 14;

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
        if let Some(&i) = idx[..rows].iter().find(|&&i| i as usize >= src_rows) {
            return Err(Error::Backend {
                backend: "cpu".into(),
                reason: format!("gather_rows: index {i} past {src_rows} rows"),
            });
        }
        if cols == 0 {
            return Ok(());
        }
        let copy = |first: usize, out: &mut [f32]| {
            for (r, out) in out.chunks_exact_mut(cols).enumerate() {
                let i = idx[first + r] as usize;
                out.copy_from_slice(&src[i * cols..(i + 1) * cols]);
            }
        };
        // A batch's rows sit at random places in a dataset larger than the
        // caches, so each copy waits on memory: two threads wait at once.
        let parts = (rows * cols / GATHER_PART_MIN)
            .min(super::threads::threads())
            .min(rows);
        if parts < 2 {
            copy(0, &mut dst[..rows * cols]);
            return Ok(());
        }
        let per = rows.div_ceil(parts);
        let pieces: Vec<&mut [f32]> = dst[..rows * cols].chunks_mut(per * cols).collect();
        super::threads::run_pieces(pieces, |p, out| copy(p * per, out));
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
