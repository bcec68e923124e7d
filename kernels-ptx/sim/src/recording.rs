//! The simulator, recording every launch: kernel name, launch shape, the
//! kernel's ptxas resources and the simulator's counters. The trainer's GPU
//! backend runs over it unchanged (it is a `Device`), so a test or a tool can
//! count what one training step launches and feed [`crate::cost`] with it.

use crate::device::{replay_ops, Arg, BufId, Device, GraphId, Simulator};
use crate::error::Result;
use crate::resources::ResourceUsage;
use crate::stats::LaunchStats;

/// What one launch did.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchRecord {
    /// The `.entry` name.
    pub kernel: String,
    /// Blocks per grid dimension.
    pub grid: [u32; 3],
    /// Threads per block dimension.
    pub block: [u32; 3],
    /// Dynamic shared memory in bytes.
    pub shared_bytes: u32,
    /// Static shared memory the parsed kernel declares, in bytes.
    pub static_shared: u32,
    /// ptxas's registers and static shared memory, when the bundled report lists the kernel.
    pub resources: Option<ResourceUsage>,
    /// The simulator's counters for this launch.
    pub stats: LaunchStats,
    /// The scalar arguments in parameter order (`None` for a buffer), so a
    /// test can ask the launch rule why a launch has the shape it has.
    pub scalars: Vec<Option<u64>>,
}

impl LaunchRecord {
    /// Blocks in the grid.
    pub fn blocks(&self) -> u64 {
        self.grid.iter().map(|&d| u64::from(d)).product()
    }

    /// Threads per block.
    pub fn threads_per_block(&self) -> u32 {
        self.block.iter().fold(1u32, |a, &d| a.saturating_mul(d))
    }

    /// Shared memory per block: static (ptxas's number when known) plus dynamic.
    pub fn shared_per_block(&self) -> u32 {
        let stat = self.resources.map_or(self.static_shared, |r| {
            r.static_shared.max(self.static_shared)
        });
        stat.saturating_add(self.shared_bytes)
    }

    /// FLOPs on the FP32 pipes: one per float ALU thread-instruction, two per
    /// `fma`. The simulator's `fp` class also holds float `setp`/`cvt`/`ex2`
    /// and the like (see `LaunchStats::fp`), so this counts them as one FLOP
    /// each: an upper bound, close for GEMMs where `fma` dominates.
    pub fn fp32_flops(&self) -> u64 {
        self.stats.fp + 2 * self.stats.fma
    }

    /// FLOPs on the tensor cores: one warp-level `mma.m16n8k16` is
    /// 2 * 16 * 8 * 16 = 4096 FLOPs, counted as 32 thread-instructions, so
    /// 128 per thread-instruction (PTX ISA, "Matrix shape" of `mma`).
    pub fn tensor_flops(&self) -> u64 {
        128 * self.stats.mma
    }

    /// All FLOPs, FP32 pipes and tensor cores.
    pub fn flops(&self) -> u64 {
        self.fp32_flops() + self.tensor_flops()
    }

    /// Global bytes read plus written.
    pub fn bytes(&self) -> u64 {
        self.stats.global_bytes_read + self.stats.global_bytes_written
    }
}

/// Host–device traffic that is not a launch, counted because every download
/// (and, on the real driver, a pageable upload) makes the host wait for the GPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfers {
    /// `upload` calls.
    pub uploads: u64,
    /// Bytes uploaded.
    pub upload_bytes: u64,
    /// `download` calls.
    pub downloads: u64,
    /// Bytes downloaded.
    pub download_bytes: u64,
    /// Device-to-device `copy` calls.
    pub copies: u64,
    /// `alloc` calls.
    pub allocs: u64,
}

/// A [`Simulator`] that keeps a [`LaunchRecord`] per launch.
#[derive(Debug)]
pub struct Recording {
    sim: Simulator,
    launches: Vec<LaunchRecord>,
    transfers: Transfers,
}

impl Recording {
    /// Records the launches run on `sim`.
    pub fn new(sim: Simulator) -> Self {
        Recording {
            sim,
            launches: Vec::new(),
            transfers: Transfers::default(),
        }
    }

    /// Every launch so far, in order.
    pub fn launches(&self) -> &[LaunchRecord] {
        &self.launches
    }

    /// Uploads, downloads, copies and allocations so far.
    pub fn transfers(&self) -> Transfers {
        self.transfers
    }

    /// The simulator underneath.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }
}

impl Device for Recording {
    type Buf = BufId;
    type Error = crate::error::Error;

    fn describe(&self) -> String {
        format!("{} (recording launches)", self.sim.describe())
    }

    fn alloc(&mut self, bytes: usize) -> Result<BufId> {
        self.transfers.allocs += 1;
        self.sim.alloc(bytes)
    }

    fn upload(&mut self, buf: &BufId, data: &[u8]) -> Result<()> {
        self.transfers.uploads += 1;
        self.transfers.upload_bytes += data.len() as u64;
        self.sim.upload(buf, data)
    }

    fn download(&mut self, buf: &BufId, out: &mut [u8]) -> Result<()> {
        self.transfers.downloads += 1;
        self.transfers.download_bytes += out.len() as u64;
        self.sim.download(buf, out)
    }

    fn copy(&mut self, src: &BufId, dst: &BufId, bytes: usize) -> Result<()> {
        // A captured copy is counted when a replay runs it.
        self.transfers.copies += u64::from(!self.sim.capturing());
        self.sim.copy(src, dst, bytes)
    }

    fn load_module(&mut self, ptx: &str) -> Result<()> {
        self.sim.load_module(ptx)
    }

    fn launch(
        &mut self,
        kernel: &str,
        grid: [u32; 3],
        block: [u32; 3],
        shared_bytes: u32,
        args: &[Arg],
    ) -> Result<()> {
        self.sim.launch(kernel, grid, block, shared_bytes, args)?;
        if self.sim.capturing() {
            // Recorded by the simulator, run (and so recorded here) at replay.
            return Ok(());
        }
        self.launches.push(LaunchRecord {
            kernel: kernel.into(),
            grid,
            block,
            shared_bytes,
            static_shared: self.sim.kernel(kernel).map_or(0, |k| k.static_shared),
            resources: self.sim.resources(kernel),
            stats: self.sim.last_stats(),
            scalars: args
                .iter()
                .map(|a| match *a {
                    Arg::Ptr(_) | Arg::PtrAt(..) => None,
                    Arg::U32(v) => Some(u64::from(v)),
                    Arg::I32(v) => Some(v as u32 as u64),
                    Arg::F32(v) => Some(u64::from(v.to_bits())),
                    Arg::U64(v) => Some(v),
                })
                .collect(),
        });
        Ok(())
    }

    fn synchronize(&mut self) -> Result<()> {
        self.sim.synchronize()
    }

    fn begin_capture(&mut self) -> Result<bool> {
        self.sim.begin_capture()
    }

    fn end_capture(&mut self) -> Result<Option<GraphId>> {
        self.sim.end_capture()
    }

    /// Runs the graph's operations one by one through this wrapper, so a
    /// replayed launch or copy is counted like an eager one.
    fn replay(&mut self, graph: GraphId) -> Result<bool> {
        let ops = match self.sim.graph(graph) {
            Some(ops) if !self.sim.capturing() => ops.to_vec(),
            // The simulator's own error: an unknown graph, or a replay inside a capture.
            _ => return self.sim.replay(graph),
        };
        replay_ops(self, &ops)?;
        Ok(true)
    }

    fn drop_graph(&mut self, graph: GraphId) -> Result<()> {
        self.sim.drop_graph(graph)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn a_launch_is_recorded_with_its_shape_counters_and_resources() {
        let mut d = Recording::new(Simulator::new());
        let blas = lasagna_kernels::MODULES
            .iter()
            .find(|m| m.name == "blas")
            .unwrap();
        d.load_module(blas.ptx).unwrap();
        let y = d.alloc(4 * 100).unwrap();
        d.upload(&y, &[0u8; 400]).unwrap();
        d.launch(
            "axpy",
            [1, 1, 1],
            [128, 1, 1],
            0,
            &[Arg::Ptr(y), Arg::Ptr(y), Arg::F32(2.0), Arg::U64(100)],
        )
        .unwrap();
        let mut out = [0u8; 8];
        d.download(&y, &mut out).unwrap();
        let r = &d.launches()[0];
        assert_eq!(
            (r.kernel.as_str(), r.blocks(), r.threads_per_block()),
            ("axpy", 1, 128)
        );
        assert!(r.resources.is_some(), "axpy is in the ptxas snapshot");
        // y += 2 x: a mul and an add per element (axpy rounds like the CPU,
        // no fma), 8 bytes read and 4 written.
        assert_eq!((r.stats.fp, r.stats.fma), (200, 0));
        assert_eq!(r.flops(), 200);
        assert_eq!(r.bytes(), 1200);
        let t = d.transfers();
        assert_eq!((t.allocs, t.uploads, t.downloads), (1, 1, 1));
        assert_eq!((t.upload_bytes, t.download_bytes), (400, 8));
    }

    #[test]
    fn a_captured_launch_is_recorded_at_each_replay_not_at_capture() {
        let mut d = Recording::new(Simulator::new());
        let blas = lasagna_kernels::MODULES
            .iter()
            .find(|m| m.name == "blas")
            .unwrap();
        d.load_module(blas.ptx).unwrap();
        let (x, y) = (d.alloc(16).unwrap(), d.alloc(16).unwrap());
        d.upload(&x, &1f32.to_le_bytes()).unwrap();
        assert!(d.begin_capture().unwrap());
        let args = [Arg::Ptr(x), Arg::Ptr(y), Arg::F32(2.0), Arg::U64(1)];
        d.launch("axpy", [1, 1, 1], [32, 1, 1], 0, &args).unwrap();
        d.copy(&y, &x, 4).unwrap();
        let g = d.end_capture().unwrap().unwrap();
        assert!(d.launches().is_empty(), "capture runs nothing");
        assert_eq!(d.transfers().copies, 0);
        for _ in 0..2 {
            assert!(d.replay(g).unwrap());
        }
        // y = 0 + 2 * 1 = 2, x = 2; then y = 2 + 2 * 2 = 6.
        let mut out = [0u8; 4];
        d.download(&y, &mut out).unwrap();
        assert_eq!(f32::from_le_bytes(out), 6.0);
        let names: Vec<&str> = d.launches().iter().map(|r| r.kernel.as_str()).collect();
        assert_eq!(names, ["axpy", "axpy"]);
        assert_eq!(d.transfers().copies, 2);
    }
}
