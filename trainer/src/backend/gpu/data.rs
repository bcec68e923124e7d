//! Batches from a device-resident dataset (`gather.ptx`): the dataset is
//! uploaded once, and each step gathers its rows by a shuffled index list.

use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::gather::{
    self as kg, gather_batch_launch, gather_idx_launch, gather_rows_launch,
};
use lasagna_kernels::gather::{to_index_launch, TO_INDEX};

use super::{u32_arg, u64_arg, Gpu, GpuBuf, GpuIdx};
use crate::backend::{need, DataOps, StepGraph, StepRow};
use crate::error::Result;

impl<D: Device + Send + 'static> DataOps for Gpu<D> {
    fn gather_rows(
        &self,
        src: &Self::Buf,
        idx: &Self::Idx,
        rows: usize,
        cols: usize,
        dst: &mut Self::Buf,
    ) -> Result<()> {
        need(self, "gather_rows idx", rows, &[idx.len])?;
        need(self, "gather_rows dst", rows * cols, &[dst.len])?;
        let src_rows = src.len / cols.max(1);
        let args = [
            src.arg(),
            idx.arg(),
            dst.arg(),
            u64_arg(rows * cols),
            u32_arg("cols", cols)?,
            u32_arg("src_rows", src_rows)?,
        ];
        self.launch(
            &kg::GATHER_ROWS,
            gather_rows_launch(rows, cols, src_rows),
            &args,
        )
    }
    fn gather_idx(
        &self,
        src: &Self::Idx,
        idx: &Self::Idx,
        rows: usize,
        dst: &mut Self::Idx,
    ) -> Result<()> {
        need(self, "gather_idx", rows, &[idx.len, dst.len])?;
        let args = [
            src.arg(),
            idx.arg(),
            dst.arg(),
            u64_arg(rows),
            u32_arg("src_len", src.len)?,
        ];
        self.launch(&kg::GATHER_IDX, gather_idx_launch(rows, src.len), &args)
    }
    fn gather_batch(
        &self,
        x: &Self::Buf,
        y: &Self::Idx,
        order: &Self::Idx,
        start: usize,
        rows: usize,
        cols: usize,
        dst_x: &mut Self::Buf,
        dst_y: &mut Self::Idx,
    ) -> Result<()> {
        need(self, "gather_batch order", start + rows, &[order.len])?;
        need(self, "gather_batch dst_x", rows * cols, &[dst_x.len])?;
        need(self, "gather_batch dst_y", rows, &[dst_y.len])?;
        let idx = order.at(start);
        let src_rows = x.len / cols.max(1);
        if let Some(c) = self.captured()? {
            // A captured step reads its start from the step table.
            if c.row.start != start || cols == 0 {
                return Err(self.fail(
                    "gather_batch in a step capture",
                    format!(
                        "batch start {start} (cols {cols}) is not the step table's row 0 (start {}, cols > 0)",
                        c.row.start
                    ),
                ));
            }
            let args = [
                x.arg(),
                order.arg(),
                dst_x.arg(),
                u64_arg(rows * cols),
                u32_arg("cols", cols)?,
                u32_arg("src_rows", src_rows)?,
                y.arg(),
                dst_y.arg(),
                u32_arg("labels_len", y.len)?,
                Arg::Ptr(c.table),
            ];
            let launch = gather_batch_launch(rows, cols, src_rows, y.len);
            return self.launch(&kg::GATHER_BATCH_STEP, launch, &args);
        }
        if cols > 0 {
            // Samples and labels in one launch.
            let args = [
                x.arg(),
                idx,
                dst_x.arg(),
                u64_arg(rows * cols),
                u32_arg("cols", cols)?,
                u32_arg("src_rows", src_rows)?,
                y.arg(),
                dst_y.arg(),
                u32_arg("labels_len", y.len)?,
            ];
            let launch = gather_batch_launch(rows, cols, src_rows, y.len);
            return self.launch(&kg::GATHER_BATCH, launch, &args);
        }
        // Empty samples: gather_batch writes labels per sample element, so
        // the labels take gather_idx (rows of nothing need no launch).
        let args = [
            y.arg(),
            idx,
            dst_y.arg(),
            u64_arg(rows),
            u32_arg("src_len", y.len)?,
        ];
        self.launch(&kg::GATHER_IDX, gather_idx_launch(rows, y.len), &args)
    }
    fn to_index(&self, x: &Self::Buf, dst: &mut Self::Idx, n: usize) -> Result<()> {
        need(self, "to_index", n, &[x.len, dst.len])?;
        to_index(self, x, dst, n)
    }
    fn load_step_table(&self, rows: &[StepRow]) -> Result<bool> {
        self.load_table(rows)
    }
    fn begin_step_capture(&self) -> Result<bool> {
        self.begin_capture()
    }
    fn end_step_capture(&self) -> Result<Option<StepGraph>> {
        self.end_capture()
    }
    fn replay_step(&self, g: StepGraph) -> Result<()> {
        self.replay(g)
    }
    fn drop_step_graph(&self, g: StepGraph) -> Result<()> {
        self.drop_graph(g)
    }
}

/// Token ids carried in an `f32` buffer, as `u32` indices. A value that is
/// not a non-negative integer below 2^24 fails with the CPU's message; the
/// check costs one 4-byte read back (only Embedding models call this).
fn to_index<D: Device + Send + 'static>(
    g: &Gpu<D>,
    x: &GpuBuf<D::Buf>,
    dst: &GpuIdx<D::Buf>,
    n: usize,
) -> Result<()> {
    let flag = g.flag()?;
    let args = [x.arg(), dst.arg(), Arg::Ptr(flag), u64_arg(n)];
    g.launch(&TO_INDEX, to_index_launch(n), &args)?;
    let mut bad = [0u8; 4];
    let mut d = g.device()?;
    d.download(&flag, &mut bad)
        .map_err(|e| g.fail("to_index flag", e))?;
    if u32::from_le_bytes(bad) == 0 {
        return Ok(());
    }
    d.upload(&flag, &[0; 4])
        .map_err(|e| g.fail("to_index flag", e))?;
    let mut host = vec![0u8; 4 * n];
    d.download(&x.id, &mut host)
        .map_err(|e| g.fail("to_index", e))?;
    let first = host
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .find(|v| !((0.0..16_777_216.0).contains(v) && v.fract() == 0.0))
        .unwrap_or(f32::NAN);
    Err(g.fail(
        "to_index",
        format!("{first} is not a token id (a non-negative integer below 2^24)"),
    ))
}
