//! The CUDA backend, written once over the small device interface
//! [`lasagna_kernels::device::Device`]: the driver API implements it on a GPU
//! (`driver`, feature `cuda`) and the PTX simulator implements it in CI, so
//! everything here — which kernel, which launch shape, the argument order,
//! buffer sizes and workspace reuse — runs on every change.
//!
//! Buffers are allocated once (models and the training loop allocate their
//! workspaces when they are built) and ops only launch kernels: nothing is
//! copied to or from the host inside a training step except what the caller
//! asks for (`read`, once per epoch or per progress update).
//!
//! Kernel names, parameter lists and launch shapes come from
//! `lasagna-kernels`; every launch is checked against the kernel's declared
//! parameters first, so a wrong argument is an error naming the kernel, not
//! silent corruption.
//!
//! Each op family's impl is in the family's file, named as in `backend/` and
//! `backend/cpu/` (see `backend/mod.rs`); this file holds [`Gpu`], its
//! buffers and the checked launch they all go through.

mod activation;
mod amp;
mod blas;
mod conv;
mod data;
#[cfg(feature = "cuda")]
pub mod driver;
mod graph;
mod loss;
mod memory;
mod norm;
mod optim;
mod pool;
mod rnn;

use std::sync::{Mutex, MutexGuard};

use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::{Kernel, Launch, LaunchError, ParamKind};

use crate::error::{Error, Result};

/// A GPU backend over device `D`.
pub struct Gpu<D: Device> {
    dev: Mutex<D>,
    name: String,
    /// A zeroed `u32` that kernels set to report bad input (`to_index`).
    flag: D::Buf,
    /// `gemm_f16`'s rounded copies of A and B with their capacities in
    /// elements: allocated on first use, replaced only by larger ones (the
    /// device interface has no free, so a model's largest GEMM sets the size).
    amp_ws: Mutex<Option<[Workspace<D>; 2]>>,
    /// Split-K GEMMs' partial tiles (`f32`) and per-tile arrival counters
    /// (`u32`, zero between launches), grown like `amp_ws`.
    gemm_ws: Mutex<Option<[Workspace<D>; 2]>>,
    /// The step table and the step capture in progress (`graph.rs`).
    steps: Mutex<graph::Steps<D::Buf>>,
}

/// A device buffer and its capacity in `f32` elements.
type Workspace<D> = (<D as Device>::Buf, usize);

/// An `f32` buffer on the device.
#[derive(Debug)]
pub struct GpuBuf<B> {
    id: B,
    len: usize,
}

/// A `u32` buffer on the device.
#[derive(Debug)]
pub struct GpuIdx<B> {
    id: B,
    len: usize,
}

/// A kernel argument before it is checked against the kernel's parameters.
pub(crate) type A<D> = Arg<<D as Device>::Buf>;

impl<D: Device> Gpu<D> {
    /// Wraps `dev` and loads every module of `lasagna-kernels` into it.
    pub fn new(mut dev: D, name: &str) -> Result<Self> {
        for m in lasagna_kernels::MODULES {
            dev.load_module(m.ptx).map_err(|e| Error::Backend {
                backend: name.into(),
                reason: format!(
                    "loading {}.ptx: {e}. HINT: the kernels need PTX ISA 7.0 and sm_80 or newer; update the NVIDIA driver",
                    m.name
                ),
            })?;
        }
        let flag = dev.alloc(4).map_err(|e| Error::Backend {
            backend: name.into(),
            reason: format!("allocating 4 bytes: {e}"),
        })?;
        let name = format!("{name} ({})", dev.describe());
        Ok(Gpu {
            dev: Mutex::new(dev),
            name,
            flag,
            amp_ws: Mutex::new(None),
            gemm_ws: Mutex::new(None),
            steps: Mutex::new(graph::Steps::default()),
        })
    }

    /// The device, for callers that need it directly (tests read the
    /// simulator's counters through it).
    pub fn device(&self) -> Result<MutexGuard<'_, D>> {
        self.dev.lock().map_err(|_| Error::Backend {
            backend: self.name.clone(),
            reason: "an earlier device call panicked; the device state is unknown".into(),
        })
    }

    /// The error-flag word (zero unless a kernel reported bad input).
    pub(crate) fn flag(&self) -> Result<D::Buf> {
        Ok(self.flag)
    }

    /// The two AMP workspaces, grown to hold at least `a` and `b` elements.
    pub(crate) fn amp_workspaces(&self, a: usize, b: usize) -> Result<[D::Buf; 2]> {
        let mut ws = self
            .amp_ws
            .lock()
            .map_err(|_| self.fail("amp workspace", "poisoned"))?;
        let (old_a, old_b) = match &*ws {
            Some([(wa, ca), (wb, cb)]) if *ca >= a && *cb >= b => return Ok([*wa, *wb]),
            Some([(wa, ca), (wb, cb)]) => (Some((*wa, *ca)), Some((*wb, *cb))),
            None => (None, None),
        };
        let grow = |old: Option<Workspace<D>>, want: usize| -> Result<Workspace<D>> {
            match old {
                Some((w, c)) if c >= want => Ok((w, c)),
                _ => Ok((self.alloc(want * 4)?, want)),
            }
        };
        let new = [grow(old_a, a)?, grow(old_b, b)?];
        *ws = Some(new);
        Ok([new[0].0, new[1].0])
    }

    /// The split-K workspace (at least `partials` floats) and counters (at
    /// least `tiles` zeroed words). Counters are only ever replaced by fresh
    /// zeroed ones: the kernel leaves the ones it used at zero.
    pub(crate) fn gemm_workspace(&self, partials: usize, tiles: usize) -> Result<[D::Buf; 2]> {
        let mut ws = self
            .gemm_ws
            .lock()
            .map_err(|_| self.fail("gemm workspace", "poisoned"))?;
        if let Some([(w, cw), (s, cs)]) = &*ws {
            if *cw >= partials && *cs >= tiles {
                return Ok([*w, *s]);
            }
        }
        let (old_w, old_s) = match &*ws {
            Some([w, s]) => (Some(*w), Some(*s)),
            None => (None, None),
        };
        let grow = |old: Option<Workspace<D>>, want: usize| -> Result<Workspace<D>> {
            match old {
                Some((b, c)) if c >= want => Ok((b, c)),
                _ => Ok((self.alloc(want.max(1) * 4)?, want)),
            }
        };
        let new = [grow(old_w, partials)?, grow(old_s, tiles)?];
        *ws = Some(new);
        Ok([new[0].0, new[1].0])
    }

    pub(crate) fn fail(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Backend {
            backend: self.name.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    /// Launches `k` with the shape `launch` returned by its rule, after
    /// checking `args` against the kernel's declared parameters.
    pub(crate) fn launch(
        &self,
        k: &Kernel,
        launch: std::result::Result<Launch, LaunchError>,
        args: &[A<D>],
    ) -> Result<()> {
        let l = launch.map_err(|e| self.fail(k.name, e))?;
        check_args(k, args).map_err(|e| self.fail(k.name, e))?;
        let dims = |d: lasagna_kernels::Dim3| [d.x, d.y, d.z];
        if l.grid.count() == 0 {
            return Ok(());
        }
        self.device()?
            .launch(k.name, dims(l.grid), dims(l.block), l.shared_bytes, args)
            .map_err(|e| {
                self.fail(
                    &format!(
                        "launching {} (grid {:?}, block {:?})",
                        k.name,
                        dims(l.grid),
                        dims(l.block)
                    ),
                    e,
                )
            })
    }

    fn alloc(&self, bytes: usize) -> Result<D::Buf> {
        let mut d = self.device()?;
        // A zero-length tensor still gets a real allocation (as cudaMalloc callers expect).
        d.alloc(bytes.max(4)).map_err(|e| {
            let free = match d.memory() {
                Some((free, total)) => format!(" ({free} of {total} bytes free)"),
                None => String::new(),
            };
            self.fail(&format!("allocating {bytes} bytes{free}"), e)
        })
    }

    fn put(&self, id: &D::Buf, bytes: &[u8]) -> Result<()> {
        self.device()?
            .upload(id, bytes)
            .map_err(|e| self.fail("upload", e))
    }
}

/// Checks `args` against `k`'s parameter list (count and kind).
fn check_args<B>(k: &Kernel, args: &[Arg<B>]) -> std::result::Result<(), String> {
    if args.len() != k.params.len() {
        return Err(format!(
            "{} arguments for {} parameters",
            args.len(),
            k.params.len()
        ));
    }
    for (i, (p, a)) in k.params.iter().zip(args).enumerate() {
        let ok = match p.kind {
            ParamKind::PtrF32 | ParamKind::PtrU32 | ParamKind::PtrF16 => {
                matches!(a, Arg::Ptr(_) | Arg::PtrAt(..))
            }
            ParamKind::OptPtrF32 => matches!(a, Arg::Ptr(_) | Arg::PtrAt(..) | Arg::U64(0)),
            ParamKind::U32 => matches!(a, Arg::U32(_)),
            ParamKind::U64 => matches!(a, Arg::U64(_)),
            ParamKind::F32 => matches!(a, Arg::F32(_)),
            _ => false,
        };
        if !ok {
            return Err(format!(
                "parameter {i} `{}` is {:?} but the argument is not",
                p.name, p.kind
            ));
        }
    }
    Ok(())
}

/// `u32` kernel argument, or an error naming the value when it does not fit.
pub(crate) fn u32_arg<B>(what: &str, v: usize) -> Result<Arg<B>> {
    u32::try_from(v).map(Arg::U32).map_err(|_| Error::Backend {
        backend: "gpu".into(),
        reason: format!("{what} = {v} does not fit the kernels' 32-bit sizes"),
    })
}

/// `u64` kernel argument.
pub(crate) fn u64_arg<B>(v: usize) -> Arg<B> {
    Arg::U64(v as u64)
}

impl<B: Copy> GpuBuf<B> {
    /// The whole buffer as a pointer argument.
    pub(crate) fn arg(&self) -> Arg<B> {
        Arg::Ptr(self.id)
    }
    /// A pointer `elems` elements into the buffer.
    pub(crate) fn at(&self, elems: usize) -> Arg<B> {
        Arg::PtrAt(self.id, 4 * elems as u64)
    }
}

impl<B: Copy> GpuIdx<B> {
    /// The whole buffer as a pointer argument.
    pub(crate) fn arg(&self) -> Arg<B> {
        Arg::Ptr(self.id)
    }
    /// A pointer `elems` indices into the buffer.
    pub(crate) fn at(&self, elems: usize) -> Arg<B> {
        Arg::PtrAt(self.id, 4 * elems as u64)
    }
}
