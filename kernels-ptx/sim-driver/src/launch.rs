//! Streams and launches. The simulator runs a kernel to completion inside
//! `cuLaunchKernel`, but a fault is only *queued* there: it is reported by
//! the next synchronizing call and is sticky afterwards, as on hardware,
//! unless `CUDA_LAUNCH_BLOCKING=1` asks for it at the launch.

use std::ffi::c_void;
use std::io::Write;

use lasagna_ptx_sim::{Arg, Device, Error as SimError};

use crate::context::Driver;
use crate::errors::{describe, kernel_fault, Res, INVALID_HANDLE, INVALID_VALUE};

/// A launch's shape: grid, block, dynamic shared bytes.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Blocks per grid.
    pub grid: [u32; 3],
    /// Threads per block.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub shared: u32,
}

/// A line on stderr: a driver has no other channel, and a failed write must
/// not become a panic.
pub fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "lasagna-sim-driver: {msg}");
}

impl Driver {
    /// `cuStreamCreateWithPriority`: the stream's index.
    pub fn stream_create(&mut self) -> Res<usize> {
        let ctx = self.usable()?;
        ctx.streams.push(true);
        Ok(ctx.streams.len() - 1)
    }

    /// `cuStreamDestroy`. Allowed on a faulted context (teardown must work).
    pub fn stream_destroy(&mut self, stream: usize) -> Res<()> {
        let ctx = self.current()?;
        match ctx.streams.get_mut(stream) {
            Some(live @ true) => {
                *live = false;
                Ok(())
            }
            _ => Err(INVALID_HANDLE),
        }
    }

    /// `cuStreamSynchronize`; `None` is the legacy default stream.
    pub fn stream_sync(&mut self, stream: Option<usize>) -> Res<()> {
        let ctx = self.synced()?;
        match stream {
            Some(s) if !ctx.streams.get(s).copied().unwrap_or(false) => Err(INVALID_HANDLE),
            _ => Ok(()),
        }
    }

    /// `cuLaunchKernel`: reads each parameter through its `void*` with the
    /// size the `.entry` declares, then runs the kernel on the simulator.
    ///
    /// # Safety
    /// `params` is null or holds one pointer per kernel parameter, each to
    /// at least that parameter's size in bytes (the driver API's contract).
    pub unsafe fn launch(
        &mut self,
        func: usize,
        shape: Shape,
        stream: Option<usize>,
        params: *const *const c_void,
        extra: bool,
    ) -> Res<()> {
        let (fault, blocking) = {
            let c = self.config()?;
            (c.fault.clone(), c.launch_blocking)
        };
        let ctx = self.usable()?;
        let f = ctx.functions.get(func).ok_or(INVALID_HANDLE)?;
        if !ctx.modules.get(f.module).is_some_and(Option::is_some) {
            return Err(INVALID_HANDLE);
        }
        if let Some(s) = stream {
            if !ctx.streams.get(s).copied().unwrap_or(false) {
                return Err(INVALID_HANDLE);
            }
        }
        if let Some((captured, invalid)) = &mut ctx.capture {
            // Another stream's launch during a global capture is refused.
            if stream != Some(*captured) {
                *invalid = true;
                return Err(crate::errors::STREAM_CAPTURE_IMPLICIT);
            }
        }
        // The limits cuDeviceGetAttribute reports (sm_80), checked as the
        // driver does before anything runs: 1 for a shape no GPU takes.
        let [bx, by, bz] = shape.block.map(u64::from);
        let dims_ok = shape.grid.iter().chain(&shape.block).all(|&d| d > 0)
            && bx * by * bz <= 1024
            && by <= 1024
            && bz <= 64
            && shape.grid[0] <= i32::MAX as u32
            && shape.grid[1] <= 65535
            && shape.grid[2] <= 65535
            && shape.shared <= 48 << 10;
        // `extra` (packed parameter buffers) is not used by the trainer.
        if extra || !dims_ok || (params.is_null() && !f.params.is_empty()) {
            return Err(INVALID_VALUE);
        }
        let mut args = Vec::with_capacity(f.params.len());
        for (i, p) in f.params.iter().enumerate() {
            // SAFETY: `params` has one entry per parameter (caller's promise).
            let slot = unsafe { *params.add(i) };
            if slot.is_null() {
                return Err(INVALID_VALUE);
            }
            // SAFETY: `slot` points to at least `p.size` bytes; the caller's
            // slot need not be aligned, hence read_unaligned.
            let arg = unsafe {
                match p.size {
                    4 => Arg::U32(slot.cast::<u32>().read_unaligned()),
                    8 => Arg::U64(slot.cast::<u64>().read_unaligned()),
                    n => {
                        note(&format!(
                            "kernel `{}` parameter `{}` is {n} bytes; only 4 and 8 are supported",
                            f.name, p.name
                        ));
                        return Err(INVALID_VALUE);
                    }
                }
            };
            args.push(arg);
        }
        if ctx.pending.is_some() {
            // The device is already faulted: nothing after the fault runs.
            return Ok(());
        }
        let name = f.name.clone();
        let failure = match fault {
            Some((kernel, code)) if kernel == name => Some((
                code,
                "fault injected by LASAGNA_SIM_DRIVER_FAULT".to_owned(),
            )),
            _ => match ctx
                .sim
                .launch(&name, shape.grid, shape.block, shape.shared, &args)
            {
                Ok(()) => None,
                // What the hardware refuses before running: not a fault.
                Err(e @ (SimError::BadLaunch { .. } | SimError::ArgMismatch { .. })) => {
                    note(&format!("launch refused: {e}"));
                    return Err(INVALID_VALUE);
                }
                Err(e) => Some((kernel_fault(&e), e.to_string())),
            },
        };
        let Some((code, why)) = failure else {
            return Ok(());
        };
        let code_name =
            describe(code).map_or(String::from("?"), |(n, _)| n.to_string_lossy().into_owned());
        note(&format!(
            "kernel `{name}` faulted ({code} {code_name}): {why}"
        ));
        if blocking {
            ctx.sticky = Some(code);
            Err(code)
        } else {
            ctx.pending = Some(code);
            Ok(())
        }
    }
}
