//! The driver's global state: initialization, the one device's primary
//! context (its simulator, allocations, modules, streams and fault state) and
//! the per-thread current context.
//!
//! One lock guards everything, as the issue asks: the simulator is not
//! thread-safe, and the trainer's tests open devices from several threads.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Mutex;

use lasagna_ptx_sim::{BufId, Simulator};

use crate::config::Config;
use crate::errors::{Code, Res, INVALID_CONTEXT, INVALID_DEVICE, NOT_INITIALIZED, UNKNOWN};
use crate::handles::{Func, ModuleEntry};

/// Everything behind the lock.
#[derive(Debug, Default)]
pub struct Driver {
    /// `Some` once `cuInit` succeeded.
    pub config: Option<Config>,
    /// `cuMemAlloc` calls since `cuInit` (for `LASAGNA_SIM_DRIVER_OOM_AT`).
    pub allocs_made: u64,
    /// `cuDevicePrimaryCtxRetain` count not yet released.
    pub refs: u32,
    /// Bumped each time the primary context is created anew, so a handle
    /// kept from a released context is refused (201), not silently reused.
    pub generation: usize,
    /// The primary context, while `refs > 0`.
    pub ctx: Option<Ctx>,
}

/// One allocation: the simulator buffer behind a device address range.
#[derive(Clone, Copy, Debug)]
pub struct Alloc {
    /// The simulator's handle.
    pub buf: BufId,
    /// Bytes asked for.
    pub len: u64,
}

/// The primary context's resources.
#[derive(Debug, Default)]
pub struct Ctx {
    /// The device itself.
    pub sim: Simulator,
    /// Live allocations by base address (the simulator's device address).
    pub allocs: BTreeMap<u64, Alloc>,
    /// Bytes held by live allocations, counted against the memory cap.
    pub used: u64,
    /// Loaded modules; a `CUmodule` is index + 1, `None` once unloaded.
    pub modules: Vec<Option<ModuleEntry>>,
    /// Looked-up functions; a `CUfunction` is index + 1.
    pub functions: Vec<Func>,
    /// Created streams; a `CUstream` is index + 1, `false` once destroyed.
    pub streams: Vec<bool>,
    /// A kernel fault not yet reported: the next synchronizing call does.
    pub pending: Option<Code>,
    /// A reported fault: the context is unusable, every call returns it.
    pub sticky: Option<Code>,
    /// The stream being captured (global mode) and whether a refused call
    /// has invalidated the capture.
    pub capture: Option<(usize, bool)>,
    /// `CUgraph`s (index + 1): the simulator's graph, `None` once destroyed.
    pub graphs: Vec<Option<lasagna_ptx_sim::GraphId>>,
    /// `CUgraphExec`s (index + 1), likewise.
    pub execs: Vec<Option<lasagna_ptx_sim::GraphId>>,
}

static DRIVER: Mutex<Driver> = Mutex::new(Driver {
    config: None,
    allocs_made: 0,
    refs: 0,
    generation: 0,
    ctx: None,
});

thread_local! {
    /// This thread's current context handle (0: none), as `cuCtxSetCurrent` set it.
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` on the locked driver state. A poisoned lock means an earlier
/// call panicked half-way (caught at its export): nothing is trusted after
/// that, so every later call fails with 999.
pub fn with_driver(f: impl FnOnce(&mut Driver) -> Res<()>) -> Code {
    match DRIVER.lock() {
        Ok(mut d) => match f(&mut d) {
            Ok(()) => 0,
            Err(code) => code,
        },
        Err(_) => UNKNOWN,
    }
}

/// Sets this thread's current context handle.
pub fn set_current(handle: usize) {
    CURRENT.with(|c| c.set(handle));
}

impl Driver {
    /// The configuration, or 3 before `cuInit`.
    pub fn config(&self) -> Res<&Config> {
        self.config.as_ref().ok_or(NOT_INITIALIZED)
    }

    /// Checks a `CUdevice` ordinal: 101 for anything but 0 on the one device.
    pub fn device(&self, ordinal: i32) -> Res<()> {
        let c = self.config()?;
        if ordinal == 0 && c.devices > 0 {
            Ok(())
        } else {
            Err(INVALID_DEVICE)
        }
    }

    /// The primary context's handle while it exists.
    pub fn handle(&self) -> Option<usize> {
        self.ctx.as_ref().map(|_| (self.generation << 4) | 0x8)
    }

    /// The calling thread's current context, or 201 when it has none (or
    /// holds a handle of a context that was released since).
    pub fn current(&mut self) -> Res<&mut Ctx> {
        self.config()?;
        let current = CURRENT.with(Cell::get);
        match self.handle() {
            Some(h) if h == current => self.ctx.as_mut().ok_or(INVALID_CONTEXT),
            _ => Err(INVALID_CONTEXT),
        }
    }

    /// The current context for a call that may run or observe device work:
    /// fails with the sticky fault once one was reported.
    pub fn usable(&mut self) -> Res<&mut Ctx> {
        let ctx = self.current()?;
        ctx.sticky.map_or(Ok(()), Err)?;
        Ok(ctx)
    }

    /// The current context for a call that waits for the device (stream
    /// synchronize, copies to and from the host, free): a queued kernel
    /// fault surfaces here and becomes sticky, as on hardware.
    pub fn synced(&mut self) -> Res<&mut Ctx> {
        let ctx = self.current()?;
        // A blocking call while a stream is captured in global mode is
        // refused and invalidates the capture, as on hardware.
        if let Some((_, invalid)) = &mut ctx.capture {
            *invalid = true;
            return Err(crate::errors::STREAM_CAPTURE_IMPLICIT);
        }
        if let Some(code) = ctx.pending.take() {
            ctx.sticky = Some(code);
        }
        ctx.sticky.map_or(Ok(()), Err)?;
        Ok(ctx)
    }
}

/// Resets the global state to "after `cuInit` with `config`" for a unit test.
#[cfg(test)]
pub fn reset_for_test(config: Option<Config>) {
    if let Ok(mut d) = DRIVER.lock() {
        *d = Driver {
            config,
            ..Driver::default()
        };
    }
    set_current(0);
}
