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
    /// `dst[..n] = x[..n] as u32`; fails unless every value is a non-negative
    /// integer below 2^24 (token ids carried in an `f32` activation buffer).
    fn to_index(&self, x: &Self::Buf, dst: &mut Self::Idx, n: usize) -> Result<()>;
}
