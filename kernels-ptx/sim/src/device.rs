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
pub use lasagna_kernels::device::{Device, GraphId};

/// Handle of a device allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BufId(pub u32);

/// One kernel argument for the simulator (see [`lasagna_kernels::device::Arg`]).
pub type Arg = lasagna_kernels::device::Arg<BufId>;

/// One operation of a captured graph, with the arguments it was captured with.
#[derive(Clone, Debug, PartialEq)]
pub enum GraphOp {
    /// A kernel launch.
    Launch {
        /// The `.entry` name.
        kernel: String,
        /// Blocks per grid dimension.
        grid: [u32; 3],
        /// Threads per block dimension.
        block: [u32; 3],
        /// Dynamic shared memory in bytes.
        shared_bytes: u32,
        /// The arguments, resolved to addresses again at each replay
        /// (allocations never move, so the addresses are the captured ones).
        args: Vec<Arg>,
    },
    /// A device-to-device copy.
    Copy {
        /// Source buffer.
        src: BufId,
        /// Destination buffer.
        dst: BufId,
        /// Bytes from the start of each.
        bytes: usize,
    },
}

/// Runs a recorded graph's ops on `dev` in order: what a replay does, on the
/// simulator itself or through a wrapper that counts the launches.
pub(crate) fn replay_ops<D>(dev: &mut D, ops: &[GraphOp]) -> Result<()>
where
    D: Device<Buf = BufId, Error = Error>,
{
    for op in ops {
        match op {
            GraphOp::Launch {
                kernel,
                grid,
                block,
                shared_bytes,
                args,
            } => dev.launch(kernel, *grid, *block, *shared_bytes, args)?,
            GraphOp::Copy { src, dst, bytes } => dev.copy(src, dst, *bytes)?,
        }
    }
    Ok(())
}

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
    /// The operations recorded since `begin_capture`, while capturing.
    capture: Option<Vec<GraphOp>>,
    /// Captured graphs by `GraphId`; `None` once dropped.
    graphs: Vec<Option<Vec<GraphOp>>>,
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
            capture: None,
            graphs: Vec::new(),
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

    /// The operations of a captured graph, in order (`None` for a graph
    /// never captured or already dropped).
    pub fn graph(&self, id: GraphId) -> Option<&[GraphOp]> {
        self.graphs.get(id.0 as usize)?.as_deref()
    }

    /// Whether a capture is in progress.
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// The error for a host transfer inside a capture: CUDA refuses a
    /// synchronous copy on a capturing stream, so the simulator does too
    /// (a step that needs one cannot be replayed from a graph).
    fn no_capture(&self, what: &str, buf: &BufId) -> Result<()> {
        if self.capturing() {
            return Err(Error::BadBuffer {
                id: buf.0,
                msg: format!(
                    "{what} while a graph capture is in progress: a captured step must not copy to or from the host"
                ),
            });
        }
        Ok(())
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
        if let Some(ops) = &mut self.capture {
            ops.push(GraphOp::Copy {
                src: *src,
                dst: *dst,
                bytes,
            });
            return Ok(());
        }
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
        self.no_capture("upload", buf)?;
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
        self.no_capture("download", buf)?;
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
        if let Some(ops) = &mut self.capture {
            // Checked now (as the driver checks a captured launch), run at replay.
            ops.push(GraphOp::Launch {
                kernel: kernel.into(),
                grid,
                block,
                shared_bytes,
                args: args.to_vec(),
            });
            return Ok(());
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

    fn begin_capture(&mut self) -> Result<bool> {
        if self.capturing() {
            return Err(graph_error("begin_capture while a capture is in progress"));
        }
        self.capture = Some(Vec::new());
        Ok(true)
    }

    fn end_capture(&mut self) -> Result<Option<GraphId>> {
        let Some(ops) = self.capture.take() else {
            return Ok(None);
        };
        let id = u32::try_from(self.graphs.len()).map_err(|_| graph_error("too many graphs"))?;
        self.graphs.push(Some(ops));
        Ok(Some(GraphId(id)))
    }

    fn replay(&mut self, graph: GraphId) -> Result<bool> {
        if self.capturing() {
            return Err(graph_error("replay inside a capture"));
        }
        let ops = self
            .graph(graph)
            .ok_or_else(|| graph_error(&format!("replay of unknown graph {}", graph.0)))?
            .to_vec();
        replay_ops(self, &ops)?;
        Ok(true)
    }

    fn drop_graph(&mut self, graph: GraphId) -> Result<()> {
        match self.graphs.get_mut(graph.0 as usize) {
            Some(g @ Some(_)) => {
                *g = None;
                Ok(())
            }
            _ => Err(graph_error(&format!("drop of unknown graph {}", graph.0))),
        }
    }
}

/// A graph call out of order (the simulator's error type has no graph
/// variant; `BadLaunch` is what the hardware answers with too: an invalid value).
fn graph_error(msg: &str) -> Error {
    Error::BadLaunch {
        kernel: "<graph>".into(),
        msg: msg.into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn with_blas() -> Simulator {
        let mut d = Simulator::new();
        let blas = lasagna_kernels::MODULES
            .iter()
            .find(|m| m.name == "blas")
            .unwrap();
        d.load_module(blas.ptx).unwrap();
        d
    }

    fn read(d: &mut Simulator, b: BufId) -> f32 {
        let mut out = [0u8; 4];
        d.download(&b, &mut out).unwrap();
        f32::from_le_bytes(out)
    }

    #[test]
    fn a_capture_runs_nothing_and_each_replay_runs_it_once_in_order() {
        let mut d = with_blas();
        let (x, y) = (d.alloc(4).unwrap(), d.alloc(4).unwrap());
        d.upload(&x, &1f32.to_le_bytes()).unwrap();
        assert!(d.begin_capture().unwrap());
        // y += 3 x, then x = y: the order shows in the result.
        let args = [Arg::Ptr(x), Arg::Ptr(y), Arg::F32(3.0), Arg::U64(1)];
        d.launch("axpy", [1, 1, 1], [32, 1, 1], 0, &args).unwrap();
        d.copy(&y, &x, 4).unwrap();
        let g = d.end_capture().unwrap().unwrap();
        assert_eq!(d.total_stats(), LaunchStats::default());
        assert_eq!((read(&mut d, x), read(&mut d, y)), (1.0, 0.0));
        d.replay(g).unwrap();
        assert_eq!((read(&mut d, x), read(&mut d, y)), (3.0, 3.0));
        d.replay(g).unwrap();
        assert_eq!((read(&mut d, x), read(&mut d, y)), (12.0, 12.0));
        d.drop_graph(g).unwrap();
        assert!(d.replay(g).is_err(), "a dropped graph is gone");
    }

    #[test]
    fn host_transfers_and_bad_launches_inside_a_capture_are_errors() {
        let mut d = with_blas();
        let x = d.alloc(4).unwrap();
        assert!(d.begin_capture().unwrap());
        assert!(d.begin_capture().is_err(), "captures do not nest");
        let e = d.upload(&x, &[0; 4]).unwrap_err().to_string();
        assert!(e.contains("capture"), "{e}");
        assert!(d.download(&x, &mut [0; 4]).is_err());
        // Checked at capture, as the driver checks a captured launch.
        assert!(d
            .launch("axpy", [1, 1, 1], [32, 1, 1], 0, &[Arg::U64(1)])
            .is_err());
        let g = d.end_capture().unwrap().unwrap();
        assert_eq!(d.graph(g).unwrap(), &[]);
        assert_eq!(d.end_capture().unwrap(), None, "no capture in progress");
        assert!(d.replay(GraphId(7)).is_err());
    }
}
