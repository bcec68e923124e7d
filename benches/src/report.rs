//! What the benches print: throughput next to time, "% of peak" against the
//! GPU table of the cost model (`lasagna_ptx_sim::cost::GPUS`, one table for
//! the estimate and the measurement), and one JSON line per case that
//! `benches/peers/gemm_ratio.py` joins with `torch_gemm.py`'s.

use lasagna_ptx_sim::cost::{GpuSpec, H100_SXM, H200};

use crate::ops::{Bound, Case};

/// The name `cuDeviceGetName` gives LASAGNA's simulator driver
/// (`kernels-ptx/sim-driver`): its timings are an interpreter's, not a GPU's.
pub const SIM_DRIVER_NAME: &str = "Lasagna PTX simulator";

/// Which peak table entry a device gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Peak {
    /// A GPU of the table.
    Known(&'static GpuSpec),
    /// A real GPU the table does not describe: no "% of peak".
    Unknown,
    /// LASAGNA's simulator driver answered: nothing may be timed.
    Simulator,
}

/// The peak entry for a device described as `lasagna info` does ("NVIDIA
/// H100 80GB HBM3, 79.1 GiB, sm_90, 132 SMs, driver 12.8"). The table holds
/// the SXM parts: an H100 PCIe or NVL (other clocks, HBM2e) is `Unknown`
/// rather than measured against the wrong peak. The SXM H100's name is
/// "NVIDIA H100 80GB HBM3" (the PCIe card's says "PCIe").
pub fn peak_for(description: &str) -> Peak {
    let d = description.to_ascii_uppercase();
    if description.starts_with(SIM_DRIVER_NAME) {
        Peak::Simulator
    } else if d.contains("H200") {
        Peak::Known(&H200)
    } else if d.contains("H100") && (d.contains("SXM") || d.contains("HBM3")) && !d.contains("PCIE")
    {
        Peak::Known(&H100_SXM)
    } else {
        Peak::Unknown
    }
}

/// The peak `bound` is measured against on `gpu`, in FLOP/s or bytes/s, and its name.
pub fn peak_of(gpu: &GpuSpec, bound: Bound) -> (f64, &'static str) {
    match bound {
        Bound::Fp32 => (gpu.fp32_peak, "fp32"),
        Bound::Tensor => (gpu.tensor_peak, "fp16 tensor"),
        Bound::Memory => (gpu.bandwidth, "memory bandwidth"),
    }
}

/// Percent of `gpu`'s peak that `case` reached in `secs` per run.
pub fn percent_of_peak(case: &Case<'_>, gpu: &GpuSpec, secs: f64) -> f64 {
    let (peak, _) = peak_of(gpu, case.bound);
    let done = match case.bound {
        Bound::Fp32 | Bound::Tensor => case.flops as f64,
        Bound::Memory => case.bytes as f64,
    };
    100.0 * done / secs / peak
}

/// `"12.3 GFLOP/s, 4.56 GB/s"` for `flops` and `bytes` in `secs`.
pub fn throughput(flops: u64, bytes: u64, secs: f64) -> String {
    format!(
        "{:.2} GFLOP/s, {:.2} GB/s",
        flops as f64 / secs / 1e9,
        bytes as f64 / secs / 1e9
    )
}

/// `s` as a JSON string (quotes and backslashes escaped; control characters dropped).
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One JSON line for `case` timed at `secs` per run on `device`.
pub fn json_line(case: &Case<'_>, device: &str, gpu: Option<&GpuSpec>, secs: f64) -> String {
    let mut f = vec![
        ("what", json_str("lasagna-kernel")),
        ("backend", json_str("cuda")),
        ("op", json_str(case.op)),
        ("pass", json_str(case.pass)),
        ("shape", json_str(&case.shape)),
        ("from", json_str(case.from)),
        ("dtype", json_str(case.dtype)),
    ];
    if let Some([m, n, k]) = case.mnk {
        f.extend([
            ("m", m.to_string()),
            ("n", n.to_string()),
            ("k", k.to_string()),
        ]);
    }
    f.extend([
        ("us", format!("{:.3}", secs * 1e6)),
        ("flops", case.flops.to_string()),
        ("bytes", case.bytes.to_string()),
        ("gflops", format!("{:.3}", case.flops as f64 / secs / 1e9)),
        ("gbs", format!("{:.3}", case.bytes as f64 / secs / 1e9)),
    ]);
    match gpu {
        Some(g) => f.extend([
            ("peak", json_str(peak_of(g, case.bound).1)),
            ("pct_peak", format!("{:.2}", percent_of_peak(case, g, secs))),
            ("peak_table", json_str(g.name)),
        ]),
        None => f.push(("pct_peak", "null".into())),
    }
    f.push(("device", json_str(device)));
    let body: Vec<String> = f.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    format!("{{{}}}", body.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Case;

    #[test]
    fn devices_get_the_peak_of_their_own_part_or_none() {
        let h100 = "NVIDIA H100 80GB HBM3, 79.1 GiB, sm_90, 132 SMs, driver 12.8";
        assert_eq!(peak_for(h100), Peak::Known(&H100_SXM));
        let h200 = "NVIDIA H200, 139.8 GiB, sm_90, 132 SMs, driver 12.8";
        assert_eq!(peak_for(h200), Peak::Known(&H200));
        assert_eq!(peak_for("NVIDIA H100 PCIe, 79.1 GiB, sm_90"), Peak::Unknown);
        assert_eq!(peak_for("NVIDIA A100-SXM4-80GB, sm_80"), Peak::Unknown);
        let sim = "Lasagna PTX simulator (libcuda stand-in), 1.0 GiB, sm_90, 1 SMs, driver 12.4";
        assert_eq!(peak_for(sim), Peak::Simulator);
    }

    #[test]
    fn a_json_line_parses_back_with_its_numbers() {
        let mut case = Case::new(
            "gemm",
            "2x3x4_nn".into(),
            "nn",
            "square",
            (48, 104, Bound::Fp32),
            || Ok(()),
        );
        case.mnk = Some([2, 3, 4]);
        let line = json_line(&case, "NVIDIA \"H200\"", Some(&H200), 1e-6);
        assert!(line.starts_with("{\"what\": \"lasagna-kernel\""), "{line}");
        assert!(line.contains("\"m\": 2, \"n\": 3, \"k\": 4"), "{line}");
        assert!(line.contains("\"gflops\": 0.048"), "{line}");
        assert!(line.contains("\\\"H200\\\""), "{line}");
        // 48 FLOP in 1 us against 66.9 TFLOP/s.
        let pct = 100.0 * 48e6 / H200.fp32_peak;
        assert!(line.contains(&format!("\"pct_peak\": {pct:.2}")), "{line}");
    }
}
