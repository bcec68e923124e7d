//! Batches from a device-resident dataset (`gather.ptx`): the dataset is
//! uploaded once, and each step gathers its rows by a shuffled index list.

use lasagna_kernels::device::Device;
use lasagna_kernels::gather::{self as kg, gather_idx_launch, gather_rows_launch};

use super::{need, u32_arg, u64_arg, Gpu};
use crate::backend::DataOps;
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
        need(&self.name, "gather_rows idx", rows, &[idx.len])?;
        need(&self.name, "gather_rows dst", rows * cols, &[dst.len])?;
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
        need(&self.name, "gather_idx", rows, &[idx.len, dst.len])?;
        let args = [
            src.arg(),
            idx.arg(),
            dst.arg(),
            u64_arg(rows),
            u32_arg("src_len", src.len)?,
        ];
        self.launch(&kg::GATHER_IDX, gather_idx_launch(rows, src.len), &args)
    }
    fn to_index(&self, x: &Self::Buf, dst: &mut Self::Idx, n: usize) -> Result<()> {
        need(&self.name, "to_index", n, &[x.len, dst.len])?;
        super::blas::to_index(self, x, dst, n)
    }
}
