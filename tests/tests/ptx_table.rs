//! The kernel table of `docs/BENCHMARKS.md`: every PTX kernel launched once
//! on the simulator at a representative training shape (`ptx_table/rows.rs`),
//! next to its ptxas resource usage from `kernels-ptx/ptxas-snapshot.txt`.
//! `bash scripts/kernel-table.sh` runs the ignored test below and rewrites the
//! table. The test fails when an entry of any module has no row or no ptxas
//! line, so a new kernel cannot be left out.

mod ptx_common;
#[path = "ptx_table/rows.rs"]
mod rows;

use std::collections::BTreeMap;

use lasagna_kernels::MODULES;
use lasagna_ptx_sim::{Arg, LaunchStats};
use ptx_common::{launch, sim_with, upload_bytes, upload_f32, upload_u32};
use rows::{In, Row};

/// The architectures of the snapshot, in column order.
const ARCHES: [&str; 2] = ["sm_80", "sm_90"];

/// `kernel -> arch -> [registers, shared bytes, spill stores, spill loads]`.
type Ptxas = BTreeMap<String, BTreeMap<String, [String; 4]>>;

fn ptxas_snapshot() -> Ptxas {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kernels-ptx/ptxas-snapshot.txt"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; HINT: run `bash scripts/ptxas.sh --bless`"));
    let mut out = Ptxas::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if let [kernel, arch, regs, smem, sst, sld] = f[..] {
            out.entry(kernel.into())
                .or_default()
                .insert(arch.into(), [regs, smem, sst, sld].map(String::from));
        }
    }
    out
}

/// Every `.visible .entry` of every module the crate ships.
fn entries() -> Vec<(&'static str, String)> {
    MODULES
        .iter()
        .flat_map(|m| {
            m.ptx
                .lines()
                .filter_map(|l| l.strip_prefix(".visible .entry "))
                .map(|l| (m.name, l.split('(').next().unwrap_or(l).trim().to_string()))
        })
        .collect()
}

/// Runs one row on a fresh simulator and returns its counters.
fn run(row: &Row) -> LaunchStats {
    let mut sim = sim_with(row.kernel.module);
    let args: Vec<Arg> = row
        .args
        .iter()
        .map(|a| match a {
            In::F32s(v) => Arg::Ptr(upload_f32(&mut sim, v)),
            In::U32s(v) => Arg::Ptr(upload_u32(&mut sim, v)),
            In::Bytes(v) => Arg::Ptr(upload_bytes(&mut sim, v)),
            In::Null => Arg::U64(0),
            In::U32(v) => Arg::U32(*v),
            In::U64(v) => Arg::U64(*v),
            In::F32(v) => Arg::F32(*v),
        })
        .collect();
    launch(&mut sim, row.kernel, row.launch, &args)
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `num / fma`, or a dash for kernels without FMAs.
fn per_fma(num: u64, fma: u64) -> String {
    if fma == 0 {
        "—".into()
    } else {
        format!("{:.4}", num as f64 / fma as f64)
    }
}

/// The markdown row of one launch.
fn line(row: &Row, ptxas: &BTreeMap<String, [String; 4]>, s: &LaunchStats) -> String {
    let arch = |f: &dyn Fn(&[String; 4]) -> String, sep| ARCHES.map(|a| f(&ptxas[a])).join(sep);
    let (name, elems) = row.per;
    let e = elems as f64;
    format!(
        "| `{}` | {} | {} | {name}: {} | {} | {} | {} | {} | {} | {:.2} + {:.2} | {} | {} |",
        row.kernel.name,
        row.kernel.module.name,
        row.shape,
        grouped(elems as u64),
        arch(&|p| p[0].clone(), " / "),
        arch(&|p| p[1].clone(), " / "),
        arch(&|p| format!("{}/{}", p[2], p[3]), ", "),
        grouped(s.fma_equivalent()),
        per_fma(
            s.global_bytes_read + s.global_bytes_written,
            s.fma_equivalent()
        ),
        s.global_bytes_read as f64 / e,
        s.global_bytes_written as f64 / e,
        per_fma(s.shared_load, s.fma_equivalent()),
        grouped(s.bank_conflicts),
    )
}

/// Prints the table for `docs/BENCHMARKS.md` (between the markers, by
/// `scripts/kernel-table.sh`); every line of it starts with `|`.
#[test]
#[ignore = "prints the kernel table; run via scripts/kernel-table.sh"]
fn print_kernel_table() {
    let rows = rows::all();
    let ptxas = ptxas_snapshot();
    let missing: Vec<String> = entries()
        .into_iter()
        .filter(|(_, e)| !rows.iter().any(|r| r.kernel.name == e))
        .map(|(m, e)| format!("{m}::{e}"))
        .collect();
    assert!(
        missing.is_empty(),
        "kernels without a row in tests/tests/ptx_table/rows.rs: {missing:?}"
    );
    for name in ptxas.keys() {
        assert!(
            rows.iter().any(|r| r.kernel.name == name),
            "{name} is in ptxas-snapshot.txt but has no row"
        );
    }
    // A blank line first: libtest prints `test print_kernel_table ... ` without a newline.
    println!();
    println!("| kernel | module | shape | elements | registers (sm_80 / sm_90) | shared bytes (sm_80 / sm_90) | spills st/ld (sm_80, sm_90) | FMA (mma: 2048 each) | global B / FMA | global B / element (read + written) | ld.shared / FMA | bank conflicts |");
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let k = row.kernel.name;
        let p = ptxas
            .get(k)
            .filter(|p| ARCHES.iter().all(|a| p.contains_key(*a)));
        let p = p.unwrap_or_else(|| {
            panic!("{k}: no {ARCHES:?} lines in ptxas-snapshot.txt; HINT: run `bash scripts/ptxas.sh --bless`")
        });
        println!("{}", line(row, p, &run(row)));
    }
}
