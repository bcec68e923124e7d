//! Data: batches gathered from a dataset that lives on the device, and
//! token ids carried in `f32` activations turned into indices.

use super::Memory;
use crate::error::Result;

/// Batches from a device-resident dataset.
pub trait DataOps: Memory {
    /// `dst[r, :] = src[idx[r], :]` for `r < rows`, rows of `cols` elements.
    fn gather_rows(
        &self,
        src: &Self::Buf,
        idx: &Self::Idx,
        rows: usize,
        cols: usize,
        dst: &mut Self::Buf,
    ) -> Result<()>;
    /// `dst[r] = src[idx[r]]` for `r < rows`.
    fn gather_idx(
        &self,
        src: &Self::Idx,
        idx: &Self::Idx,
        rows: usize,
        dst: &mut Self::Idx,
    ) -> Result<()>;
    /// One training batch: `gather_rows(x, order[start..start + rows])` into
    /// `dst_x` and `gather_idx(y, same)` into `dst_y`. The indices are read
    /// at an offset into `order`, the whole epoch's shuffled order, so the
    /// order is uploaded once per epoch and a step makes no host copy (a
    /// pageable upload per step synchronizes the host with the GPU).
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<()>;
    /// `dst[..n] = x[..n] as u32`; fails unless every value is a non-negative
    /// integer below 2^24 (token ids carried in an `f32` activation buffer).
    fn to_index(&self, x: &Self::Buf, dst: &mut Self::Idx, n: usize) -> Result<()>;
}
