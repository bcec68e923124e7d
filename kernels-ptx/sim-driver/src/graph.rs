//! CUDA Graphs on the simulator: stream capture records the stream's
//! launches in the simulator's graph (`Device::begin_capture`) instead of
//! running them; a `CUgraphExec` replays them (`Device::replay`) with the
//! launch's fault semantics (a kernel fault is queued, reported later).
//! Blocking calls during the capture are refused and invalidate it
//! (`Driver::synced`), as in global capture mode.

use lasagna_ptx_sim::{Device, Error as SimError, GraphId};

use crate::context::Driver;
use crate::errors::{
    kernel_fault, Res, INVALID_HANDLE, INVALID_VALUE, STREAM_CAPTURE_INVALIDATED,
    STREAM_CAPTURE_UNSUPPORTED,
};
use crate::launch::note;

impl Driver {
    /// `cuStreamBeginCapture`: the legacy stream cannot be captured.
    pub fn begin_capture(&mut self, stream: Option<usize>, mode: i32) -> Res<()> {
        let ctx = self.usable()?;
        let s = stream.ok_or(STREAM_CAPTURE_UNSUPPORTED)?;
        if !ctx.streams.get(s).copied().unwrap_or(false) || !(0..=2).contains(&mode) {
            return Err(INVALID_VALUE);
        }
        if ctx.capture.is_some() {
            return Err(STREAM_CAPTURE_UNSUPPORTED);
        }
        ctx.sim
            .begin_capture()
            .map_err(|_| STREAM_CAPTURE_UNSUPPORTED)?;
        ctx.capture = Some((s, false));
        Ok(())
    }

    /// `cuStreamEndCapture`: the graph's index, or 901 when a refused call
    /// invalidated the capture (which is over either way).
    pub fn end_capture(&mut self, stream: Option<usize>) -> Res<usize> {
        let ctx = self.current()?;
        let (s, invalid) = ctx.capture.ok_or(INVALID_VALUE)?;
        if stream != Some(s) {
            return Err(INVALID_VALUE);
        }
        ctx.capture = None;
        let g = ctx.sim.end_capture().map_err(|_| INVALID_VALUE)?;
        let g = g.ok_or(INVALID_VALUE)?;
        if invalid {
            let _ = ctx.sim.drop_graph(g);
            return Err(STREAM_CAPTURE_INVALIDATED);
        }
        ctx.graphs.push(Some(g));
        Ok(ctx.graphs.len() - 1)
    }

    /// `cuGraphInstantiateWithFlags`: an executable of the same recording.
    pub fn instantiate(&mut self, graph: usize, flags: u64) -> Res<usize> {
        let ctx = self.usable()?;
        let g = ctx
            .graphs
            .get(graph)
            .copied()
            .flatten()
            .ok_or(INVALID_HANDLE)?;
        if flags != 0 {
            return Err(INVALID_VALUE);
        }
        ctx.execs.push(Some(g));
        Ok(ctx.execs.len() - 1)
    }

    /// `cuGraphDestroy` / `cuGraphExecDestroy`: the recording is freed once
    /// neither a graph nor an executable refers to it.
    pub fn destroy_graph(&mut self, index: usize, exec: bool) -> Res<()> {
        let ctx = self.current()?;
        let list = if exec {
            &mut ctx.execs
        } else {
            &mut ctx.graphs
        };
        let g = list
            .get_mut(index)
            .and_then(Option::take)
            .ok_or(INVALID_HANDLE)?;
        let used = ctx.graphs.iter().chain(&ctx.execs).any(|h| *h == Some(g));
        if !used {
            ctx.sim.drop_graph(g).map_err(|_| INVALID_HANDLE)?;
        }
        Ok(())
    }

    /// `cuGraphLaunch`: replays the recording; a kernel fault is queued as
    /// for `cuLaunchKernel` (reported by the next synchronizing call).
    pub fn graph_launch(&mut self, exec: usize, stream: Option<usize>) -> Res<()> {
        let ctx = self.usable()?;
        let g: GraphId = ctx
            .execs
            .get(exec)
            .copied()
            .flatten()
            .ok_or(INVALID_HANDLE)?;
        if let Some(s) = stream {
            if !ctx.streams.get(s).copied().unwrap_or(false) {
                return Err(INVALID_HANDLE);
            }
        }
        if ctx.capture.is_some() {
            return Err(STREAM_CAPTURE_UNSUPPORTED);
        }
        if ctx.pending.is_some() {
            // The device is already faulted: nothing after the fault runs.
            return Ok(());
        }
        match ctx.sim.replay(g) {
            Ok(_) => Ok(()),
            Err(e @ (SimError::BadLaunch { .. } | SimError::ArgMismatch { .. })) => {
                note(&format!("graph launch refused: {e}"));
                Err(INVALID_VALUE)
            }
            Err(e) => {
                note(&format!("graph {exec}: a kernel faulted: {e}"));
                ctx.pending = Some(kernel_fault(&e));
                Ok(())
            }
        }
    }
}
