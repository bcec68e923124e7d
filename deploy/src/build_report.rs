//! `lasagna deploy --build-only`: the firmware built for a board, and what
//! it takes of the board's flash and RAM, with nothing run. The one report
//! a real board gets without a probe attached (and the JSON `--json`
//! writes then, its layout stable like [`crate::Report`]'s).

use super::boards::Board;
use super::elf::FirmwareSizes;
use super::host::{ModelFacts, Weights};
use super::report::{BoardInfo, FlashUse};
use super::thousands;
use serde::Serialize;
use std::fmt::Write;
use std::path::Path;

/// Version of the JSON layout.
pub const SCHEMA: u32 = 1;

/// Static RAM from the ELF: what is taken before the stack.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StaticRam {
    /// `.data + .bss + .uninit`.
    pub bytes: u64,
    /// `bytes` / budget.
    pub budget_fraction: f64,
    /// The model's arena (a static, part of `bytes`).
    pub arena_bytes: u64,
    /// RAM left for the stack: budget − `bytes`.
    pub stack_room_bytes: u64,
}

/// What `--build-only` found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BuildReport {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The model file, as given.
    pub model: String,
    /// The model file's bytes.
    pub model_bytes: u64,
    /// How the weights are stored.
    pub weights: Weights,
    /// The board and its budget.
    pub board: BoardInfo,
    /// Where the firmware's flash starts, `0x%08x`.
    pub flash_origin: String,
    /// Where its RAM starts, `0x%08x`.
    pub ram_origin: String,
    /// The firmware ELF that was built (what `probe-rs run` flashes).
    pub firmware: String,
    /// Flash use.
    pub flash: FlashUse,
    /// The RP2040's boot2, counted in `flash.bytes` (0 elsewhere).
    pub boot2_bytes: u64,
    /// Static RAM use.
    pub ram: StaticRam,
    /// Flash within budget, and static RAM under it (the rest is the
    /// stack's; its peak is only measured when the firmware runs).
    pub fits: bool,
}

impl BuildReport {
    /// Assembles the report.
    pub fn new(
        model: &Path,
        facts: &ModelFacts,
        b: &Board,
        elf: &Path,
        s: &FirmwareSizes,
    ) -> BuildReport {
        let flash = s.flash();
        let ram = s.static_ram();
        BuildReport {
            schema: SCHEMA,
            model: model.display().to_string(),
            model_bytes: facts.model_bytes,
            weights: facts.weights,
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
            flash_origin: format!("{:#010x}", b.flash_origin),
            ram_origin: format!("{:#010x}", b.ram_origin),
            firmware: elf.display().to_string(),
            flash: FlashUse {
                bytes: flash,
                budget_fraction: flash as f64 / b.flash_bytes().max(1) as f64,
                model_bytes: facts.model_bytes,
                vector_table: s.vector_table,
                text: s.text,
                rodata: s.rodata,
                data: s.data,
            },
            boot2_bytes: s.boot2,
            ram: StaticRam {
                bytes: ram,
                budget_fraction: ram as f64 / b.ram_bytes().max(1) as f64,
                arena_bytes: facts.arena_bytes,
                stack_room_bytes: b.ram_bytes().saturating_sub(ram),
            },
            fits: flash <= b.flash_bytes() && ram < b.ram_bytes(),
        }
    }

    /// The report for the terminal.
    pub fn render(&self) -> String {
        let b = &self.board;
        let kib = |bytes: u64| bytes / 1024;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "deploy --build-only: {} for {} ({}, {}; {}), nothing run",
            self.model, b.name, b.like, b.cpu, b.target
        );
        let _ = writeln!(
            s,
            "  memory     flash {} KiB at {}, RAM {} KiB at {}",
            kib(b.flash_budget_bytes),
            self.flash_origin,
            kib(b.ram_budget_bytes),
            self.ram_origin
        );
        let _ = writeln!(s, "  firmware   {}", self.firmware);
        let boot2 = if self.boot2_bytes > 0 {
            format!(", boot2 {} B", thousands(self.boot2_bytes))
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "  flash      {:>9} B ({:.1}% of {} KiB)   model {} B ({}), code {} B{boot2}",
            thousands(self.flash.bytes),
            100.0 * self.flash.budget_fraction,
            kib(b.flash_budget_bytes),
            thousands(self.model_bytes),
            self.weights.name(),
            thousands(self.flash.vector_table + self.flash.text),
        );
        let _ = writeln!(
            s,
            "  RAM        {:>9} B static ({:.1}% of {} KiB)   arena {} B; {} B left for the stack",
            thousands(self.ram.bytes),
            100.0 * self.ram.budget_fraction,
            kib(b.ram_budget_bytes),
            thousands(self.ram.arena_bytes),
            thousands(self.ram.stack_room_bytes),
        );
        let _ = writeln!(
            s,
            "  budget     {}",
            if self.fits {
                "fits (the stack's peak is measured only when the firmware runs: QEMU, or --probe)"
            } else {
                "DOES NOT FIT"
            }
        );
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_boot2_and_leaves_the_rest_of_ram_to_the_stack() {
        let pico = Board::find("rp-pico").unwrap();
        let sizes = FirmwareSizes {
            boot2: 256,
            vector_table: 192,
            text: 60_000,
            rodata: 110_000,
            data: 8,
            bss: 4_000,
            uninit: 0,
        };
        let facts = ModelFacts {
            model_bytes: 105_000,
            arena_bytes: 2_000,
            weights: Weights::Int8,
        };
        let r = BuildReport::new(Path::new("m.lsn"), &facts, pico, Path::new("fw"), &sizes);
        assert_eq!(r.flash.bytes, 256 + 192 + 60_000 + 110_000 + 8);
        assert_eq!(r.ram.bytes, 4_008);
        assert_eq!(r.ram.stack_room_bytes, 264 * 1024 - 4_008);
        assert!(r.fits);
        let text = r.render();
        assert!(
            text.contains("flash 2048 KiB at 0x10000000, RAM 264 KiB at 0x20000000")
                && text.contains("boot2 256 B")
                && text.contains("budget     fits"),
            "{text}"
        );
        let full = FirmwareSizes {
            bss: 264 * 1024,
            ..sizes
        };
        let r = BuildReport::new(Path::new("m.lsn"), &facts, pico, Path::new("fw"), &full);
        assert!(!r.fits && r.render().contains("DOES NOT FIT"));
    }
}
