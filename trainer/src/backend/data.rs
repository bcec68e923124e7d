//! Data: batches gathered from a dataset that lives on the device, and
//! token ids carried in `f32` activations turned into indices.

use super::Memory;
use crate::error::{Error, Result};
pub use lasagna_kernels::optim::AdamScalars;

/// The scalars of one training step that change from step to step, for a
/// step replayed from a captured graph (see [`DataOps::load_step_table`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRow {
    /// The batch's first index into the epoch's order.
    pub start: usize,
    /// The step's part of every dropout offset (the layer adds its index).
    pub dropout_base: u64,
    /// Adam's bias corrections for the step; `None` for SGD.
    pub adam: Option<AdamScalars>,
}

/// A captured training step, replayable with [`DataOps::replay_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepGraph(pub(crate) u32);

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
    /// Uploads the rows of the steps a captured step will stand for (one
    /// upload, before the capture) and resets the device's step counter:
    /// each replay of the captured step takes the next row (the batch is
    /// read at `start` in the order `gather_batch` was given). `Ok(false)`: this
    /// backend does not replay steps (the CPU), nothing changed.
    fn load_step_table(&self, rows: &[StepRow]) -> Result<bool> {
        let _ = rows;
        Ok(false)
    }
    /// Starts capturing one training step that stands for the table's rows:
    /// from here to [`DataOps::end_step_capture`] the ops are recorded, not
    /// run; `gather_batch`, dropout and Adam read the step's scalars from the
    /// table instead of their arguments (which must be row 0's: checked), and
    /// a host transfer is an error. `Ok(false)`: no capture, nothing changed.
    fn begin_step_capture(&self) -> Result<bool> {
        Ok(false)
    }
    /// Ends the capture; `None` when none was in progress. After an error
    /// the capture is over and nothing was kept.
    fn end_step_capture(&self) -> Result<Option<StepGraph>> {
        Ok(None)
    }
    /// Runs a captured step once, for the table's next row.
    fn replay_step(&self, g: StepGraph) -> Result<()> {
        Err(Error::Backend {
            backend: "this backend".into(),
            reason: format!("cannot replay step graph {}: it captures none", g.0),
        })
    }
    /// Frees a captured step.
    fn drop_step_graph(&self, g: StepGraph) -> Result<()> {
        let _ = g;
        Ok(())
    }
    /// `dst[..n] = x[..n] as u32`; fails unless every value is a non-negative
    /// integer below 2^24 (token ids carried in an `f32` activation buffer).
    fn to_index(&self, x: &Self::Buf, dst: &mut Self::Idx, n: usize) -> Result<()>;
}
