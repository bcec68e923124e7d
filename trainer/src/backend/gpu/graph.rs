//! Training steps captured once and replayed (CUDA Graphs on a GPU, the
//! simulator's record and replay in CI), and the step table that makes a
//! replay stand for a different step each time.
//!
//! A captured launch keeps its arguments, so what changes between steps
//! lives in device memory: the table (`gather.ptx`, `gather_batch_step`)
//! holds one row per step (batch start, dropout offset base, Adam's bias
//! corrections), uploaded once per epoch. `gather_batch_step`, the first
//! launch of every captured step, copies the next row to the table's
//! current row and advances the counter from its last block, so no launch
//! is added; dropout and `adam_step_multi` read the current row. Eager steps
//! do not touch the table: they launch exactly what they launched before.

use lasagna_kernels::device::{Arg, Device, GraphId};
use lasagna_kernels::gather::step_table as st;

use super::Gpu;
use crate::backend::{AdamScalars, StepGraph, StepRow};
use crate::error::Result;

/// The step table and the capture in progress.
pub(crate) struct Steps<B> {
    /// The table's buffer and its capacity in rows.
    table: Option<(B, usize)>,
    /// The rows uploaded last.
    rows: Vec<StepRow>,
    /// While capturing: row 0, whose values the captured ops are given.
    capturing: Option<StepRow>,
}

impl<B> Default for Steps<B> {
    fn default() -> Self {
        Steps {
            table: None,
            rows: Vec::new(),
            capturing: None,
        }
    }
}

/// How the ops of a captured step reach the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Captured<B> {
    /// The table buffer.
    pub table: B,
    /// Row 0: the values the host passed must be these.
    pub row: StepRow,
}

impl<B: Copy> Captured<B> {
    /// Pointer to `field` of the current row.
    pub fn current(&self, field: u64) -> Arg<B> {
        Arg::PtrAt(self.table, st::CURRENT + field)
    }
}

/// The table's bytes: header (counter 0, no arrivals), an empty current row,
/// then `rows` in the layout `gather_batch_step` reads.
fn table_bytes(rows: &[StepRow]) -> Result<Vec<u8>> {
    let mut b = vec![0u8; st::ROWS as usize + rows.len() * st::ROW_BYTES as usize];
    for (k, r) in rows.iter().enumerate() {
        let at = st::ROWS as usize + k * st::ROW_BYTES as usize;
        let start = u32::try_from(r.start).map_err(|_| crate::error::Error::Backend {
            backend: "gpu".into(),
            reason: format!(
                "batch start {} does not fit the kernels' 32-bit indices",
                r.start
            ),
        })?;
        let s = r.adam.unwrap_or(AdamScalars {
            step_size: 0.0,
            bc2_sqrt: 0.0,
            decay: 0.0,
        });
        let row = &mut b[at..at + st::ROW_BYTES as usize];
        let put = |row: &mut [u8], off: u64, v: &[u8]| {
            row[off as usize..off as usize + v.len()].copy_from_slice(v)
        };
        put(row, st::START, &start.to_le_bytes());
        put(row, st::DROPOUT_BASE, &r.dropout_base.to_le_bytes());
        put(row, st::ADAM, &s.step_size.to_le_bytes());
        put(row, st::ADAM + 4, &s.bc2_sqrt.to_le_bytes());
        put(row, st::ADAM + 8, &s.decay.to_le_bytes());
    }
    Ok(b)
}

impl<D: Device + Send + 'static> Gpu<D> {
    fn steps(&self) -> Result<std::sync::MutexGuard<'_, Steps<D::Buf>>> {
        self.steps
            .lock()
            .map_err(|_| self.fail("step table", "poisoned"))
    }

    /// The table and row 0 while a step is being captured.
    pub(crate) fn captured(&self) -> Result<Option<Captured<D::Buf>>> {
        let s = self.steps()?;
        Ok(match (s.capturing, s.table) {
            (Some(row), Some((table, _))) => Some(Captured { table, row }),
            _ => None,
        })
    }

    pub(crate) fn load_table(&self, rows: &[StepRow]) -> Result<bool> {
        let bytes = table_bytes(rows)?;
        let mut s = self.steps()?;
        if s.capturing.is_some() {
            return Err(self.fail("load_step_table", "a step capture is in progress"));
        }
        let table = match s.table {
            Some((b, cap)) if cap >= rows.len() => b,
            // Grown, never shrunk: the device interface has no free.
            _ => {
                let b = self.alloc(bytes.len())?;
                s.table = Some((b, rows.len()));
                b
            }
        };
        self.put(&table, &bytes)?;
        s.rows = rows.to_vec();
        Ok(true)
    }

    pub(crate) fn begin_capture(&self) -> Result<bool> {
        let mut s = self.steps()?;
        let Some(&row) = s.rows.first() else {
            return Err(self.fail("begin_step_capture", "no step table loaded"));
        };
        if s.capturing.is_some() {
            return Err(self.fail("begin_step_capture", "a capture is in progress"));
        }
        let started = self
            .device()?
            .begin_capture()
            .map_err(|e| self.fail("begin_capture", e))?;
        if started {
            s.capturing = Some(row);
        }
        Ok(started)
    }

    pub(crate) fn end_capture(&self) -> Result<Option<StepGraph>> {
        let mut s = self.steps()?;
        let was = s.capturing.take();
        let g = self
            .device()?
            .end_capture()
            .map_err(|e| self.fail("end_capture", e))?;
        Ok(match (was, g) {
            (Some(_), Some(GraphId(id))) => Some(StepGraph(id)),
            _ => None,
        })
    }

    pub(crate) fn replay(&self, g: StepGraph) -> Result<()> {
        let replayed = self
            .device()?
            .replay(GraphId(g.0))
            .map_err(|e| self.fail("replay", e))?;
        if replayed {
            Ok(())
        } else {
            Err(self.fail("replay", "this device cannot replay graphs"))
        }
    }

    pub(crate) fn drop_graph(&self, g: StepGraph) -> Result<()> {
        self.device()?
            .drop_graph(GraphId(g.0))
            .map_err(|e| self.fail("drop_graph", e))
    }
}

/// Dropout's `offset` and `base` arguments: the layer's offset as given
/// eagerly; in a captured step, its difference from row 0's base (the layer
/// index) and a pointer to the current row's base, which the kernel adds.
pub(crate) fn dropout_offset<B: Copy>(c: Option<Captured<B>>, offset: u64) -> [Arg<B>; 2] {
    match c {
        None => [Arg::U64(offset), Arg::U64(0)],
        Some(c) => [
            Arg::U64(offset.wrapping_sub(c.row.dropout_base)),
            c.current(st::DROPOUT_BASE),
        ],
    }
}
