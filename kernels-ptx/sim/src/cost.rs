//! A roofline cost model over recorded launches: no GPU was timed to make it,
//! so it estimates, and says how.
//!
//! Per launch:
//!
//! ```text
//! roofline = max(bytes / bandwidth, fp32_flops / fp32_peak + tensor_flops / tensor_peak)
//! time     = roofline / fill * tail + launch_overhead
//! ```
//!
//! - `resident`: blocks one SM holds at once, from the kernel's registers and
//!   shared memory in `kernels-ptx/ptxas-snapshot.txt` (the CUDA occupancy
//!   calculator's rule, limits of compute capability 9.0 below). A kernel the
//!   snapshot does not list gets 1 block per SM, the pessimistic choice.
//! - `waves = blocks / (SMs * resident)`; `tail = ceil(waves) / waves` when
//!   there is at least one full wave: the last, partial wave costs as much as
//!   a full one.
//! - `fill`: an SM issues at its peak only with at least one warp per
//!   scheduler (4 per SM), so a grid smaller than one wave runs at
//!   `min(1, warps in flight / (4 * SMs))` of the peak. Counting resident
//!   block slots instead would make a 1-block GEMM thousands of times slower
//!   than its roofline, which no GPU is; 4 warps per SM is optimistic for
//!   latency hiding, so tiny grids are if anything estimated too fast.
//! - Bytes are global loads and stores as the simulator counts them, all
//!   charged at HBM bandwidth: tensors that stay in the 50 MB L2 make this an
//!   upper bound on memory time.
//! - FLOPs: see [`LaunchRecord::fp32_flops`] (float compares and conversions
//!   count as one FLOP each) and [`LaunchRecord::tensor_flops`].

use crate::recording::LaunchRecord;
use crate::resources::MAX_REGS_PER_BLOCK;

/// One GPU's numbers for the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GpuSpec {
    /// Name for reports.
    pub name: &'static str,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// DRAM bandwidth in bytes per second.
    pub bandwidth: f64,
    /// FP32 (non-tensor) peak in FLOP/s.
    pub fp32_peak: f64,
    /// FP16 tensor-core peak with f32 accumulation, dense, in FLOP/s.
    pub tensor_peak: f64,
    /// Host time per eager kernel launch, in seconds.
    pub launch_overhead: f64,
    /// Shared memory per SM usable by blocks, in bytes.
    pub shared_per_sm: u32,
}

/// The GPUs the model knows, in one table.
///
/// Sources:
/// - H100 SXM5: NVIDIA H100 Tensor Core GPU datasheet and the Hopper
///   whitepaper: 132 SMs, 3.35 TB/s HBM3, FP32 66.9 TFLOP/s, FP16/BF16 tensor
///   989.4 TFLOP/s dense (the datasheet's 1,979 is with 2:4 sparsity). As
///   tabulated at <https://glennklockwood.com/garden/processors/h100>.
/// - H200 SXM: the same GH100 die and clocks (so the same SMs and peaks) with
///   141 GB HBM3e at 4.8 TB/s (NVIDIA H200 datasheet, as quoted at
///   <https://lzwjava.github.io/nvidia-h200-gpu-specs-en>).
/// - Shared memory: 228 KB per SM on sm_90 (CUDA C Programming Guide,
///   "Compute Capabilities", table of technical specifications).
/// - Launch overhead: 3 µs per eager launch, the figure issue 19 works with
///   (back-to-back `cuLaunchKernel` is commonly 2–5 µs of host time); a CUDA
///   graph replay costs less per kernel, which this table does not model yet.
pub const GPUS: &[GpuSpec] = &[H100_SXM, H200];

/// NVIDIA H100 SXM5 (see [`GPUS`] for sources).
pub const H100_SXM: GpuSpec = GpuSpec {
    name: "H100 SXM",
    sms: 132,
    bandwidth: 3.35e12,
    fp32_peak: 66.9e12,
    tensor_peak: 989.4e12,
    launch_overhead: 3e-6,
    shared_per_sm: 228 * 1024,
};

/// NVIDIA H200 SXM (see [`GPUS`] for sources).
pub const H200: GpuSpec = GpuSpec {
    name: "H200",
    bandwidth: 4.8e12,
    ..H100_SXM
};

/// Occupancy limits of compute capability 9.0 (CUDA C Programming Guide,
/// "Compute Capabilities"; the occupancy calculator's allocation rules).
const MAX_THREADS_PER_SM: u32 = 2048;
const MAX_BLOCKS_PER_SM: u32 = 32;
/// Registers are allocated per warp in units of 256.
const REG_ALLOC_UNIT: u32 = 256;
/// The driver reserves 1 KB of shared memory per resident block on sm_80+.
const SHARED_RESERVED_PER_BLOCK: u32 = 1024;
/// Warp schedulers per SM (Hopper whitepaper: 4 sub-partitions per SM).
const SCHEDULERS_PER_SM: u64 = 4;

/// Blocks of `r` one SM holds at once, or `None` when the snapshot does not
/// list the kernel (the caller then assumes 1).
pub fn resident_blocks(r: &LaunchRecord, gpu: &GpuSpec) -> Option<u32> {
    let res = r.resources?;
    let threads = r.threads_per_block().max(1);
    let warps = threads.div_ceil(32);
    let by_threads = MAX_THREADS_PER_SM / (warps * 32);
    let regs_per_warp = (res.regs.max(1) * 32).div_ceil(REG_ALLOC_UNIT) * REG_ALLOC_UNIT;
    let by_regs = MAX_REGS_PER_BLOCK / (regs_per_warp * warps);
    let shared = r.shared_per_block() + SHARED_RESERVED_PER_BLOCK;
    let by_shared = gpu.shared_per_sm / shared;
    Some(
        MAX_BLOCKS_PER_SM
            .min(by_threads)
            .min(by_regs)
            .min(by_shared)
            .max(1),
    )
}

/// The model's numbers for one launch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// Blocks one SM holds at once (1 when the kernel's resources are unknown).
    pub resident: u32,
    /// Whether `resident` came from the ptxas snapshot.
    pub resident_known: bool,
    /// `blocks / (SMs * resident)`: below 1, the grid does not fill the GPU.
    pub waves: f64,
    /// Memory time at full bandwidth, in seconds.
    pub memory_s: f64,
    /// Compute time at full peak, in seconds.
    pub compute_s: f64,
    /// The GPU time: roofline corrected for fill and tail, in seconds.
    pub kernel_s: f64,
    /// `kernel_s` plus the launch overhead, in seconds.
    pub total_s: f64,
}

/// Estimates one launch on `gpu`.
pub fn estimate(r: &LaunchRecord, gpu: &GpuSpec) -> Estimate {
    let known = resident_blocks(r, gpu);
    let resident = known.unwrap_or(1);
    let blocks = r.blocks().max(1) as f64;
    let wave = f64::from(gpu.sms) * f64::from(resident);
    let waves = blocks / wave;
    let tail = if waves >= 1.0 {
        waves.ceil() / waves
    } else {
        1.0
    };
    let warps_per_block = u64::from(r.threads_per_block().div_ceil(32).max(1));
    let warps_in_flight = blocks.min(wave) * warps_per_block as f64;
    let fill = (warps_in_flight / (SCHEDULERS_PER_SM * u64::from(gpu.sms)) as f64).min(1.0);
    let memory_s = r.bytes() as f64 / gpu.bandwidth;
    let compute_s =
        r.fp32_flops() as f64 / gpu.fp32_peak + r.tensor_flops() as f64 / gpu.tensor_peak;
    let kernel_s = memory_s.max(compute_s) / fill * tail;
    Estimate {
        resident,
        resident_known: known.is_some(),
        waves,
        memory_s,
        compute_s,
        kernel_s,
        total_s: kernel_s + gpu.launch_overhead,
    }
}

/// Launches of one kernel within a step, summed.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelSummary {
    /// The `.entry` name.
    pub kernel: String,
    /// Launches.
    pub launches: usize,
    /// Blocks of the smallest and the largest launch.
    pub blocks: (u64, u64),
    /// Waves of the smallest and the largest launch.
    pub waves: (f64, f64),
    /// FLOPs summed.
    pub flops: u64,
    /// Global bytes summed.
    pub bytes: u64,
    /// Estimated seconds summed, launch overhead included.
    pub seconds: f64,
}

/// Per-kernel sums of `launches`, the most expensive kernel first.
pub fn summarize(launches: &[LaunchRecord], gpu: &GpuSpec) -> Vec<KernelSummary> {
    let mut out: Vec<KernelSummary> = Vec::new();
    for r in launches {
        let e = estimate(r, gpu);
        let b = r.blocks();
        match out.iter_mut().find(|s| s.kernel == r.kernel) {
            Some(s) => {
                s.launches += 1;
                s.blocks = (s.blocks.0.min(b), s.blocks.1.max(b));
                s.waves = (s.waves.0.min(e.waves), s.waves.1.max(e.waves));
                s.flops += r.flops();
                s.bytes += r.bytes();
                s.seconds += e.total_s;
            }
            None => out.push(KernelSummary {
                kernel: r.kernel.clone(),
                launches: 1,
                blocks: (b, b),
                waves: (e.waves, e.waves),
                flops: r.flops(),
                bytes: r.bytes(),
                seconds: e.total_s,
            }),
        }
    }
    out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::ResourceUsage;
    use crate::stats::LaunchStats;

    fn record(blocks: u32, threads: u32, regs: Option<u32>, stats: LaunchStats) -> LaunchRecord {
        LaunchRecord {
            kernel: "k".into(),
            grid: [blocks, 1, 1],
            block: [threads, 1, 1],
            shared_bytes: 0,
            static_shared: 0,
            resources: regs.map(|regs| ResourceUsage {
                regs,
                static_shared: 0,
            }),
            stats,
            scalars: Vec::new(),
        }
    }

    #[test]
    fn resident_blocks_follow_the_tightest_occupancy_limit() {
        let s = LaunchStats::default();
        // 256 threads at 32 registers: 8 blocks fill 2048 threads.
        assert_eq!(
            resident_blocks(&record(1, 256, Some(32), s), &H100_SXM),
            Some(8)
        );
        // 64 registers: 65536 / (64 * 256) = 4 blocks.
        assert_eq!(
            resident_blocks(&record(1, 256, Some(64), s), &H100_SXM),
            Some(4)
        );
        // 32 threads: the 32-blocks-per-SM cap.
        assert_eq!(
            resident_blocks(&record(1, 32, Some(16), s), &H100_SXM),
            Some(32)
        );
        assert_eq!(resident_blocks(&record(1, 32, None, s), &H100_SXM), None);
    }

    #[test]
    fn a_memory_bound_full_grid_costs_bytes_over_bandwidth_plus_the_launch() {
        let stats = LaunchStats {
            global_bytes_read: 2_000_000_000,
            global_bytes_written: 1_350_000_000,
            ..LaunchStats::default()
        };
        // 132 SMs * 8 resident = 1056 blocks: exactly one wave.
        let e = estimate(&record(1056, 256, Some(32), stats), &H100_SXM);
        assert!((e.waves - 1.0).abs() < 1e-12);
        assert!((e.kernel_s - 1e-3).abs() < 1e-9, "{e:?}");
        assert!((e.total_s - e.kernel_s - 3e-6).abs() < 1e-12);
    }

    #[test]
    fn a_second_partial_wave_costs_a_whole_wave_and_a_small_grid_runs_slower() {
        let stats = LaunchStats {
            fma: 1 << 30,
            ..LaunchStats::default()
        };
        let full = estimate(&record(1056, 256, Some(32), stats), &H100_SXM).kernel_s;
        let tail = estimate(&record(1057, 256, Some(32), stats), &H100_SXM).kernel_s;
        assert!((tail / full - 2.0).abs() < 1e-2, "{tail} vs {full}");
        // 1 block of 2 warps: 2 of 528 scheduler slots busy.
        let one = estimate(&record(1, 64, Some(32), stats), &H100_SXM).kernel_s;
        assert!((one / full - 264.0).abs() < 1e-6, "{one} vs {full}");
    }
}
