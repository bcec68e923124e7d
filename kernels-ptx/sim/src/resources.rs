//! Per-kernel resource usage (from `ptxas -v`) and the launch limits the
//! driver enforces with it. The simulator cannot know how many hardware
//! registers ptxas allocates, so the numbers come from ptxas's report
//! (`kernels-ptx/ptxas-snapshot.txt`, written by `scripts/ptxas.sh`).

use std::collections::HashMap;

use crate::error::{Error, Result};

/// What ptxas reports for one kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ResourceUsage {
    /// Registers per thread.
    pub regs: u32,
    /// Static shared memory in bytes.
    pub static_shared: u32,
}

/// Registers of one SM (sm_80 and sm_90: 64K 32-bit registers; CUDA C
/// Programming Guide, "Compute Capabilities", "Maximum number of 32-bit
/// registers per thread block").
pub const MAX_REGS_PER_BLOCK: u32 = 65536;
/// Shared memory a block may use without the opt-in attribute
/// (`CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`), same guide.
pub const MAX_SHARED_NO_OPT_IN: u32 = 48 * 1024;
/// Registers are allocated per warp in units of 256 (the CUDA occupancy
/// calculator's "register allocation unit size" for sm_80/sm_90).
const REG_ALLOC_UNIT: u32 = 256;

/// Parses a `ptxas-snapshot.txt` report: `kernel arch regs smem spS spL` rows,
/// `#` comments. A kernel listed for several architectures keeps the largest
/// numbers, so a launch that fits passes on every listed architecture.
pub fn parse_ptxas_report(text: &str) -> HashMap<String, ResourceUsage> {
    let mut out: HashMap<String, ResourceUsage> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(regs), Some(smem)) = (f.first(), f.get(2), f.get(3)) else {
            continue;
        };
        if name.starts_with('#') {
            continue;
        }
        let (Ok(regs), Ok(smem)) = (regs.parse::<u32>(), smem.parse::<u32>()) else {
            continue;
        };
        let e = out.entry((*name).to_string()).or_default();
        e.regs = e.regs.max(regs);
        e.static_shared = e.static_shared.max(smem);
    }
    out
}

/// Refuses a launch the driver would refuse with `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES`.
/// `static_shared` is the parsed kernel's own count, used when ptxas's is unknown.
pub(crate) fn check_launch(
    kernel: &str,
    usage: Option<ResourceUsage>,
    threads: u32,
    static_shared: u32,
    dyn_shared: u32,
) -> Result<()> {
    if let Some(u) = usage {
        let per_warp = (u.regs * 32).div_ceil(REG_ALLOC_UNIT) * REG_ALLOC_UNIT;
        let total = u64::from(per_warp) * u64::from(threads.div_ceil(32));
        if total > u64::from(MAX_REGS_PER_BLOCK) {
            return Err(Error::OutOfResources {
                kernel: kernel.into(),
                msg: format!(
                    "{} registers per thread x {threads} threads needs {total} registers, \
                     the SM has {MAX_REGS_PER_BLOCK}",
                    u.regs
                ),
            });
        }
    }
    let stat = usage.map_or(static_shared, |u| u.static_shared.max(static_shared));
    let total = u64::from(stat) + u64::from(dyn_shared);
    if total > u64::from(MAX_SHARED_NO_OPT_IN) {
        return Err(Error::OutOfResources {
            kernel: kernel.into(),
            msg: format!(
                "{stat} bytes of static and {dyn_shared} of dynamic shared memory exceed \
                 {MAX_SHARED_NO_OPT_IN} without the opt-in attribute"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_keeps_the_largest_numbers_per_kernel() {
        let r = parse_ptxas_report("# c\nk sm_80 23 0 0 0\nk sm_90 26 8 0 0\nbad line\n");
        assert_eq!(
            r.get("k"),
            Some(&ResourceUsage {
                regs: 26,
                static_shared: 8
            })
        );
    }

    #[test]
    fn registers_times_threads_over_64k_is_refused() {
        let u = Some(ResourceUsage {
            regs: 64,
            static_shared: 0,
        });
        assert!(check_launch("k", u, 1024, 0, 0).is_ok());
        let u = Some(ResourceUsage {
            regs: 65,
            static_shared: 0,
        });
        assert!(matches!(
            check_launch("k", u, 1024, 0, 0),
            Err(Error::OutOfResources { .. })
        ));
        assert!(check_launch("k", None, 32, 40_000, 10_000).is_err());
    }
}
