//! The deployment report: what fits, what it costs, and whether the device
//! agrees with the host. [`Report`] is also the `--json` file, whose field
//! names are a stable interface (CI and the docs read them); `schema`
//! changes only when a field changes meaning or disappears.

use super::boards::Board;
use super::elf::FirmwareSizes;
use super::host::{HostRun, ModelFacts, Weights};
use super::protocol::DeviceRun;
use super::thousands;
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

/// Version of the JSON layout.
pub const SCHEMA: u32 = 1;

/// How many mismatching predictions the report lists.
pub const MAX_LISTED: usize = 10;

/// Checks that the device ran the model and images it was given (a stale
/// firmware build would not).
pub fn check_device(
    facts: &ModelFacts,
    images: usize,
    device: &DeviceRun,
) -> std::result::Result<(), String> {
    let r = &device.report;
    let checks = [
        ("images", r.images as u64, images as u64),
        ("model_bytes", r.model_bytes, facts.model_bytes),
        ("arena_bytes", r.arena_bytes, facts.arena_bytes),
        ("int8", u64::from(r.int8), u64::from(facts.int8())),
    ];
    for (key, got, want) in checks {
        if got != want {
            return Err(format!(
                "the firmware reports {key}={got} but the model and images given have {want}; \
                 it is not the firmware that was just built for them"
            ));
        }
    }
    Ok(())
}

/// The board and its budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BoardInfo {
    /// `--board`.
    pub name: String,
    /// The core.
    pub cpu: String,
    /// What ran it.
    pub emulator: String,
    /// Rust target.
    pub target: String,
    /// A real part with the same budget.
    pub like: String,
    /// Flash budget.
    pub flash_budget_bytes: u64,
    /// RAM budget.
    pub ram_budget_bytes: u64,
    /// What `instructions_per_inference` counts here: `instructions`
    /// (QEMU), or `cycles` (a real board on a probe).
    pub cost_unit: String,
}

/// Flash use, from the ELF.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlashUse {
    /// `.vector_table + .text + .rodata + .data`.
    pub bytes: u64,
    /// `bytes` / budget.
    pub budget_fraction: f64,
    /// The embedded model (in `.rodata`).
    pub model_bytes: u64,
    /// `.vector_table`.
    pub vector_table: u64,
    /// `.text`.
    pub text: u64,
    /// `.rodata`.
    pub rodata: u64,
    /// `.data` (its initial values).
    pub data: u64,
}

/// RAM use: statics from the ELF, the stack from the device.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RamUse {
    /// `static_bytes + peak_stack_bytes`.
    pub bytes: u64,
    /// `bytes` / budget.
    pub budget_fraction: f64,
    /// `.data + .bss + .uninit` from the ELF.
    pub static_bytes: u64,
    /// `.data + .bss` as the firmware measured it (linker symbols).
    pub device_static_bytes: u64,
    /// Stack high-water mark on the device.
    pub peak_stack_bytes: u64,
    /// The model's arena (a static, part of `static_bytes`).
    pub arena_bytes: u64,
}

/// One image the host and the device classify differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Index in the MNIST test set.
    pub image: usize,
    /// The host's class.
    pub host: u8,
    /// The device's class.
    pub device: u8,
}

/// The host-vs-device comparison.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HostCheck {
    /// Images compared.
    pub images: usize,
    /// Images where both predict the same class.
    pub matching_predictions: usize,
    /// The first [`MAX_LISTED`] mismatches.
    pub first_mismatches: Vec<Mismatch>,
    /// Host FNV-1a over all outputs, `0x%08x`.
    pub outputs_fnv1a_host: String,
    /// Device FNV-1a over all outputs, `0x%08x`.
    pub outputs_fnv1a_device: String,
    /// Whether every output byte agrees.
    pub outputs_identical: bool,
    /// Whether outputs must agree bit for bit (the int8 path is
    /// integer-only; f32 only has to agree on predictions).
    pub outputs_must_match: bool,
    /// All predictions agree, and the outputs when they must.
    pub passed: bool,
}

impl HostCheck {
    /// Compares the host's run with the device's.
    pub fn new(host: &HostRun, device: &DeviceRun, int8: bool) -> HostCheck {
        let mismatches: Vec<Mismatch> = host
            .predictions
            .iter()
            .zip(&device.predictions)
            .enumerate()
            .filter(|(_, (h, d))| h != d)
            .map(|(image, (&host, &device))| Mismatch {
                image,
                host,
                device,
            })
            .collect();
        let images = host.predictions.len().min(device.predictions.len());
        let lengths_agree = host.predictions.len() == device.predictions.len();
        let outputs_identical = host.outputs_fnv1a == device.report.outputs_fnv1a;
        HostCheck {
            images,
            matching_predictions: images - mismatches.len(),
            passed: lengths_agree && mismatches.is_empty() && (outputs_identical || !int8),
            first_mismatches: mismatches.into_iter().take(MAX_LISTED).collect(),
            outputs_fnv1a_host: format!("{:#010x}", host.outputs_fnv1a),
            outputs_fnv1a_device: format!("{:#010x}", device.report.outputs_fnv1a),
            outputs_identical,
            outputs_must_match: int8,
        }
    }
}

/// Seconds each stage took.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timings {
    /// `cargo build` (0.x when cached).
    pub build_seconds: f64,
    /// The emulator, all images.
    pub run_seconds: f64,
}

/// Everything `lasagna deploy` measured (and `--json` writes).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The model file, as given.
    pub model: String,
    /// The model file's bytes.
    pub model_bytes: u64,
    /// Whether it ran on the int8 path.
    pub int8: bool,
    /// How the weights are stored: `f32`, `f16` or `int8`.
    pub weights: Weights,
    /// Where it ran.
    pub board: BoardInfo,
    /// Flash use.
    pub flash: FlashUse,
    /// RAM use.
    pub ram: RamUse,
    /// Test images run (the first N of MNIST's test set).
    pub images: u32,
    /// Correct predictions on the device.
    pub correct: u32,
    /// `correct / images`.
    pub accuracy: f64,
    /// Mean instructions per inference.
    pub instructions_per_inference: u64,
    /// Most instructions of one inference.
    pub instructions_worst: u64,
    /// Host vs device.
    pub host_check: HostCheck,
    /// How long it took.
    pub timings: Timings,
}

/// The parts a report is made of.
pub struct Parts<'a> {
    /// The model file, as given.
    pub model: &'a Path,
    /// What deploy checked about it.
    pub facts: &'a ModelFacts,
    /// The board.
    pub board: &'a Board,
    /// Section sizes of the firmware ELF.
    pub sizes: &'a FirmwareSizes,
    /// The device's run.
    pub device: &'a DeviceRun,
    /// The host's run.
    pub host: &'a HostRun,
    /// Stage timings.
    pub timings: Timings,
}

impl Report {
    /// Assembles the report.
    pub fn new(p: Parts<'_>) -> Report {
        let (b, s, d) = (p.board, p.sizes, &p.device.report);
        let flash = s.flash();
        let ram = s.static_ram() + d.peak_stack_bytes;
        Report {
            schema: SCHEMA,
            model: p.model.display().to_string(),
            model_bytes: p.facts.model_bytes,
            int8: p.facts.int8(),
            weights: p.facts.weights,
            board: BoardInfo {
                name: b.name.into(),
                cpu: b.cpu.into(),
                emulator: b.emulator.into(),
                target: b.target.into(),
                like: b.like.into(),
                flash_budget_bytes: b.flash_bytes(),
                ram_budget_bytes: b.ram_bytes(),
                cost_unit: b.cost_unit().name().into(),
            },
            flash: FlashUse {
                bytes: flash,
                budget_fraction: flash as f64 / b.flash_bytes().max(1) as f64,
                model_bytes: p.facts.model_bytes,
                vector_table: s.vector_table,
                text: s.text,
                rodata: s.rodata,
                data: s.data,
            },
            ram: RamUse {
                bytes: ram,
                budget_fraction: ram as f64 / b.ram_bytes().max(1) as f64,
                static_bytes: s.static_ram(),
                device_static_bytes: d.static_ram_bytes,
                peak_stack_bytes: d.peak_stack_bytes,
                arena_bytes: d.arena_bytes,
            },
            images: d.images,
            correct: d.correct,
            accuracy: f64::from(d.correct) / f64::from(d.images.max(1)),
            instructions_per_inference: d.instructions_per_inference,
            instructions_worst: d.instructions_worst,
            host_check: HostCheck::new(p.host, p.device, p.facts.int8()),
            timings: p.timings,
        }
    }

    /// Whether the run can be trusted: the stack did not fill the RAM (the
    /// results could be corrupt), and the device agreed with the host.
    /// Checked after the report is shown, so the user sees what was
    /// measured either way.
    pub fn verdict(&self, board: &Board) -> crate::Result<()> {
        if self.ram.bytes >= board.ram_bytes() {
            return Err(crate::Error::Device {
                board: board.name.into(),
                reason: format!(
                    "the stack reached the statics: static {} B + peak stack {} B fill all {} KiB \
                     of RAM, so the results above may be corrupt. HINT: a smaller model (its arena \
                     and stack), or a board with more RAM",
                    thousands(self.ram.static_bytes),
                    thousands(self.ram.peak_stack_bytes),
                    board.ram_kib
                ),
            });
        }
        if !self.host_check.passed {
            return Err(crate::Error::Device {
                board: board.name.into(),
                reason: "the device disagrees with the host (see `host check` above). HINT: this \
                         is a bug in lasagna-infer on this target; please report it with the model"
                    .into(),
            });
        }
        Ok(())
    }

    /// The report for the terminal.
    pub fn render(&self) -> String {
        let b = &self.board;
        let kib = |bytes: u64| bytes / 1024;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "deploy: {} on {} ({}, {}; budget {} KiB flash, {} KiB RAM, {})",
            self.model,
            b.name,
            b.cpu,
            b.emulator,
            kib(b.flash_budget_bytes),
            kib(b.ram_budget_bytes),
            b.like
        );
        let _ = writeln!(
            s,
            "  flash      {:>9} B ({:.1}% of {} KiB)   model {} B, code {} B",
            thousands(self.flash.bytes),
            100.0 * self.flash.budget_fraction,
            kib(b.flash_budget_bytes),
            thousands(self.model_bytes),
            thousands(self.flash.vector_table + self.flash.text),
        );
        let _ = writeln!(
            s,
            "  RAM        {:>9} B ({:.1}% of {} KiB)    static {} B + peak stack {} B (arena {} B)",
            thousands(self.ram.bytes),
            100.0 * self.ram.budget_fraction,
            kib(b.ram_budget_bytes),
            thousands(self.ram.static_bytes),
            thousands(self.ram.peak_stack_bytes),
            thousands(self.ram.arena_bytes),
        );
        let _ = writeln!(
            s,
            "  accuracy   {:>8.2}% on {} test images (device, {})",
            100.0 * self.accuracy,
            thousands(u64::from(self.images)),
            self.weights.name()
        );
        let _ = writeln!(
            s,
            "  cost       {:>9} {} per inference (worst {})",
            thousands(self.instructions_per_inference),
            b.cost_unit,
            thousands(self.instructions_worst)
        );
        let _ = writeln!(s, "  host check  {}", self.host_check_line());
        s
    }

    fn host_check_line(&self) -> String {
        let h = &self.host_check;
        let preds = if h.matching_predictions == h.images {
            format!(
                "predictions identical on {0}/{0} images",
                thousands(h.images as u64)
            )
        } else {
            let list: Vec<String> = h
                .first_mismatches
                .iter()
                .map(|m| format!("image {} host {} device {}", m.image, m.host, m.device))
                .collect();
            format!(
                "predictions DIFFER on {} of {} images (first: {})",
                h.images - h.matching_predictions,
                h.images,
                list.join(", ")
            )
        };
        let kind = if self.int8 { "int8" } else { "f32" };
        let outputs = if h.outputs_identical {
            format!(
                "{kind} outputs bit-identical (fnv1a {})",
                h.outputs_fnv1a_host
            )
        } else if h.outputs_must_match {
            format!(
                "int8 outputs DIFFER (fnv1a host {} vs device {})",
                h.outputs_fnv1a_host, h.outputs_fnv1a_device
            )
        } else {
            format!(
                "f32 outputs differ in their last bits (fnv1a host {} vs device {}; \
                 only predictions must agree)",
                h.outputs_fnv1a_host, h.outputs_fnv1a_device
            )
        };
        format!("{preds}; {outputs}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::boards::BOARDS;
    use crate::protocol::DeviceReport;

    fn device(preds: Vec<u8>, fnv: u32) -> DeviceRun {
        DeviceRun {
            report: DeviceReport {
                images: preds.len() as u32,
                correct: 2,
                instructions_per_inference: 385_072,
                instructions_worst: 385_080,
                arena_bytes: 2608,
                static_ram_bytes: 3392,
                peak_stack_bytes: 3960,
                model_bytes: 221_192,
                int8: true,
                outputs_fnv1a: fnv,
            },
            predictions: preds,
            outputs: None,
        }
    }

    fn no_outputs() -> crate::predictions::Outputs {
        crate::predictions::Outputs {
            per_image: 10,
            values: crate::predictions::Values::Levels(Vec::new()),
        }
    }

    fn facts(model_bytes: u64) -> ModelFacts {
        ModelFacts {
            model_bytes,
            arena_bytes: 2608,
            weights: Weights::Int8,
        }
    }

    #[test]
    fn int8_outputs_must_match_f32_outputs_need_not() {
        let host = HostRun {
            predictions: vec![7, 2, 1],
            correct: 3,
            outputs_fnv1a: 1,
            outputs: no_outputs(),
            output_quant: None,
        };
        let same = HostCheck::new(&host, &device(vec![7, 2, 1], 1), true);
        assert!(same.passed && same.outputs_identical);
        assert_eq!(same.outputs_fnv1a_host, "0x00000001");
        assert!(!HostCheck::new(&host, &device(vec![7, 2, 1], 2), true).passed);
        assert!(HostCheck::new(&host, &device(vec![7, 2, 1], 2), false).passed);
        let off = HostCheck::new(&host, &device(vec![7, 3, 1], 1), false);
        assert!(!off.passed);
        assert_eq!(off.matching_predictions, 2);
        assert_eq!(
            off.first_mismatches,
            vec![Mismatch {
                image: 1,
                host: 2,
                device: 3
            }]
        );
    }

    #[test]
    fn the_report_adds_up_and_renders_every_line() {
        let b = &BOARDS[0];
        let sizes = FirmwareSizes {
            boot2: 0,
            vector_table: 1024,
            text: 73_048,
            rodata: 240_860,
            data: 0,
            bss: 3392,
            uninit: 0,
        };
        let d = device(vec![7, 2, 1], 5);
        let host = HostRun {
            predictions: vec![7, 2, 1],
            correct: 2,
            outputs_fnv1a: 5,
            outputs: no_outputs(),
            output_quant: None,
        };
        let r = Report::new(Parts {
            model: Path::new("m.lsn"),
            facts: &facts(221_192),
            board: b,
            sizes: &sizes,
            device: &d,
            host: &host,
            timings: Timings {
                build_seconds: 1.0,
                run_seconds: 0.1,
            },
        });
        assert_eq!(r.flash.bytes, 314_932);
        assert_eq!(r.ram.bytes, 3392 + 3960);
        let text = r.render();
        for want in [
            "314,932 B",
            "7,352 B",
            "385,072 instructions",
            "identical on 3/3",
            "bit-identical (fnv1a 0x00000005)",
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["host_check"]["passed"], true);
        assert_eq!(json["board"]["flash_budget_bytes"], 524_288);
    }

    #[test]
    fn a_device_that_ran_another_model_is_caught() {
        let d = device(vec![7, 2, 1], 5);
        assert!(check_device(&facts(221_192), 3, &d).is_ok());
        let e = check_device(&facts(3000), 3, &d).unwrap_err();
        assert!(e.contains("model_bytes=221192"), "{e}");
        assert!(check_device(&facts(221_192), 4, &d).is_err());
    }
}
