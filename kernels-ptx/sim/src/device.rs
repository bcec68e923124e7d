//! The device interface the CUDA backend will implement too, and the
//! simulator's implementation of it.

use std::collections::HashMap;

use crate::check::race::Shadow;
use crate::error::{Error, Result};
use crate::exec::{run, Launch};
use crate::memory::{write_le, Heap};
use crate::meta::KernelMeta;
use crate::options::{mix, SimOptions};
use crate::parse::{parse_module_meta, Kernel};
use crate::resources::{check_launch, parse_ptxas_report, ResourceUsage};
use crate::stats::LaunchStats;
pub use lasagna_kernels::device::Device;

/// Handle of a device allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufId(pub u32);

/// One kernel argument for the simulator (see [`lasagna_kernels::device::Arg`]).
pub type Arg = lasagna_kernels::device::Arg<BufId>;

/// The PTX interpreter as a `Device`.
#[derive(Debug)]
pub struct Simulator {
    heap: Heap,
    kernels: HashMap<String, Kernel>,
    last: LaunchStats,
    total: LaunchStats,
    /// Warp steps a single block may take before the launch fails with `Error::StepLimit`.
    pub max_steps_per_block: u64,
    opts: SimOptions,
    metas: HashMap<String, KernelMeta>,
    resources: HashMap<String, ResourceUsage>,
    gshadow: Shadow,
    launches: u64,
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator {
    /// An empty device with the options of the environment
    /// (`LASAGNA_SIM_STRICT`, `LASAGNA_SIM_SEED`; see `SimOptions::from_env`) and
    /// the resource usage of `lasagna_kernels`'s ptxas report.
    pub fn new() -> Self {
        Self::with_options(SimOptions::from_env())
    }

    /// An empty device with explicit options (the environment is not read).
    pub fn with_options(opts: SimOptions) -> Self {
        // 2^32 warp steps is far beyond any test kernel yet finite for a runaway loop.
        Simulator {
            heap: Heap::default(),
            kernels: HashMap::new(),
            last: LaunchStats::default(),
            total: LaunchStats::default(),
            max_steps_per_block: 1 << 32,
            opts,
            metas: HashMap::new(),
            resources: parse_ptxas_report(lasagna_kernels::PTXAS_SNAPSHOT),
            gshadow: Shadow::new(0),
            launches: 0,
        }
    }

    /// The options launches run with.
    pub fn options(&self) -> SimOptions {
        self.opts
    }

    /// Changes the options for the following launches.
    pub fn set_options(&mut self, opts: SimOptions) {
        self.opts = opts;
    }

    /// Declares ptxas's resource usage of `kernel` (replacing what the bundled
    /// report said), for the `limits` check.
    pub fn set_resources(&mut self, kernel: &str, usage: ResourceUsage) {
        self.resources.insert(kernel.into(), usage);
    }

    /// The resource usage the `limits` check uses for `kernel`, if known.
    pub fn resources(&self, kernel: &str) -> Option<ResourceUsage> {
        self.resources.get(kernel).copied()
    }

    /// Counters of the most recent launch.
    pub fn last_stats(&self) -> LaunchStats {
        self.last
    }

    /// Counters summed over every launch so far.
    pub fn total_stats(&self) -> LaunchStats {
        self.total
    }

    /// A loaded kernel, for inspecting its parameters or shared-memory size.
    pub fn kernel(&self, name: &str) -> Option<&Kernel> {
        self.kernels.get(name)
    }

    /// Device address of a buffer (what a `.u64` pointer parameter receives).
    pub fn address(&self, buf: BufId) -> Result<u64> {
        self.heap
            .info(buf.0)
            .map(|(a, _)| a)
            .ok_or(Error::BadBuffer {
                id: buf.0,
                msg: "unknown buffer".into(),
            })
    }

    fn param_block(&self, k: &Kernel, args: &[Arg]) -> Result<Vec<u8>> {
        if args.len() != k.params.len() {
            return Err(Error::ArgMismatch {
                kernel: k.name.clone(),
                index: args.len(),
                msg: format!(
                    "{} arguments given, the entry declares {}",
                    args.len(),
                    k.params.len()
                ),
            });
        }
        let mut block = vec![0u8; k.param_bytes as usize];
        for (i, (p, a)) in k.params.iter().zip(args).enumerate() {
            let (v, size) = match *a {
                Arg::Ptr(b) => (self.address(b)?, 8),
                Arg::PtrAt(b, off) => (self.address(b)?.wrapping_add(off), 8),
                Arg::U64(v) => (v, 8),
                Arg::U32(v) => (u64::from(v), 4),
                Arg::I32(v) => (u64::from(v as u32), 4),
                Arg::F32(v) => (u64::from(v.to_bits()), 4),
            };
            if p.size != size {
                return Err(Error::ArgMismatch {
                    kernel: k.name.clone(),
                    index: i,
                    msg: format!(
                        "parameter `{}` is {} bytes but the argument {a:?} is {size}",
                        p.name, p.size
                    ),
                });
            }
            write_le(&mut block, p.offset as usize, size, v).ok_or(Error::ArgMismatch {
                kernel: k.name.clone(),
                index: i,
                msg: "parameter offset outside the parameter block".into(),
            })?;
        }
        Ok(block)
    }
}

impl Device for Simulator {
    type Buf = BufId;
    type Error = Error;

    fn describe(&self) -> String {
        "PTX simulator (lasagna-ptx-sim, functional, no timing)".into()
    }

    fn copy(&mut self, src: &BufId, dst: &BufId, bytes: usize) -> Result<()> {
        let mut tmp = vec![0u8; bytes];
        self.download(src, &mut tmp)?;
        self.upload(dst, &tmp)
    }

    fn alloc(&mut self, bytes: usize) -> Result<BufId> {
        self.heap
            .alloc(bytes)
            .map(|(id, _)| BufId(id))
            .ok_or(Error::BadBuffer {
                id: u32::MAX,
                msg: format!("cannot allocate {bytes} bytes"),
            })
    }

    fn upload(&mut self, buf: &BufId, data: &[u8]) -> Result<()> {
        let dst = self.heap.bytes_mut(buf.0).ok_or(Error::BadBuffer {
            id: buf.0,
            msg: "unknown buffer".into(),
        })?;
        let len = dst.len();
        dst.get_mut(..data.len())
            .ok_or(Error::BadBuffer {
                id: buf.0,
                msg: format!("upload of {} bytes into a {len}-byte buffer", data.len()),
            })?
            .copy_from_slice(data);
        Ok(())
    }

    fn download(&mut self, buf: &BufId, out: &mut [u8]) -> Result<()> {
        let src = self.heap.bytes(buf.0).ok_or(Error::BadBuffer {
            id: buf.0,
            msg: "unknown buffer".into(),
        })?;
        let n = out.len();
        out.copy_from_slice(src.get(..n).ok_or(Error::BadBuffer {
            id: buf.0,
            msg: format!("download of {n} bytes from a {}-byte buffer", src.len()),
        })?);
        Ok(())
    }

    fn load_module(&mut self, ptx: &str) -> Result<()> {
        let (m, metas) = parse_module_meta(ptx)?;
        for (k, meta) in m.kernels.into_iter().zip(metas) {
            self.metas.insert(k.name.clone(), meta);
            self.kernels.insert(k.name.clone(), k);
        }
        Ok(())
    }

    fn launch(
        &mut self,
        kernel: &str,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        args: &[Arg],
    ) -> Result<()> {
        let k = self.kernels.get(kernel).ok_or(Error::UnknownKernel {
            name: kernel.into(),
        })?;
        let params = self.param_block(k, args)?;
        if self.opts.limits {
            let threads = block.iter().fold(1u32, |a, &d| a.saturating_mul(d));
            let usage = self.resources.get(kernel).copied();
            check_launch(kernel, usage, threads, k.static_shared, shared_bytes)?;
        }
        let empty = KernelMeta::default();
        self.launches += 1;
        let l = Launch {
            kernel: k,
            grid,
            block,
            shared_bytes,
            params: &params,
            max_steps: self.max_steps_per_block,
            opts: self.opts,
            meta: self.metas.get(kernel).unwrap_or(&empty),
            seed: mix(self.opts.seed ^ mix(self.launches)),
        };
        let stats = run(&mut self.heap, &mut self.gshadow, &l)?;
        self.last = stats;
        self.total += stats;
        Ok(())
    }

    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }
}
