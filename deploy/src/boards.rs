//! The boards `lasagna deploy` knows: one table row each, so a new board is
//! one more row (its emulator, Rust target and memory budget).

use std::ffi::OsString;
use std::path::Path;

/// A board to deploy to: how to build for it and how to run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// `--board` value.
    pub name: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// The core (`Cortex-M4`).
    pub cpu: &'static str,
    /// What runs the firmware, in words (`QEMU mps2-an386`).
    pub emulator: &'static str,
    /// The emulator's program.
    pub emulator_bin: &'static str,
    /// QEMU `-machine`.
    pub qemu_machine: &'static str,
    /// QEMU `-cpu`.
    pub qemu_cpu: &'static str,
    /// The Rust target the firmware is built for.
    pub target: &'static str,
    /// Flash the firmware is linked for, in KiB (`LASAGNA_FLASH_KB`).
    pub flash_kib: u32,
    /// RAM the firmware is linked for, in KiB (`LASAGNA_RAM_KB`).
    pub ram_kib: u32,
    /// Where flash starts (`LASAGNA_FLASH_ORIGIN`).
    pub flash_origin: &'static str,
    /// A real part with this budget, for the report.
    pub like: &'static str,
}

/// Every board, in `--help` order.
pub static BOARDS: &[Board] = &[
    Board {
        name: "qemu-m4",
        help: "QEMU's MPS2 AN386 (Cortex-M4F), linked for 512 KiB flash / 128 KiB RAM like an STM32F411",
        cpu: "Cortex-M4",
        emulator: "QEMU mps2-an386",
        emulator_bin: "qemu-system-arm",
        qemu_machine: "mps2-an386",
        qemu_cpu: "cortex-m4",
        target: "thumbv7em-none-eabihf",
        flash_kib: 512,
        ram_kib: 128,
        flash_origin: "0x00000000",
        like: "STM32F411-class",
    },
    Board {
        name: "qemu-m4-small",
        help: "the same emulated Cortex-M4, linked for 256 KiB flash / 64 KiB RAM like an STM32F401CC",
        cpu: "Cortex-M4",
        emulator: "QEMU mps2-an386",
        emulator_bin: "qemu-system-arm",
        qemu_machine: "mps2-an386",
        qemu_cpu: "cortex-m4",
        target: "thumbv7em-none-eabihf",
        flash_kib: 256,
        ram_kib: 64,
        flash_origin: "0x00000000",
        like: "STM32F401CC-class",
    },
    Board {
        name: "qemu-m0plus",
        help: "Cortex-M0+ code (thumbv6m: no FPU, no DSP, portable kernels) run on QEMU's Cortex-M4, which executes ARMv6-M unchanged (QEMU 7.2 has no M0+ board with a SysTick); linked for 512 KiB flash / 32 KiB RAM (an STM32G0B1 has 512 / 144)",
        cpu: "Cortex-M0+ instruction set (ARMv6-M)",
        emulator: "QEMU mps2-an386",
        emulator_bin: "qemu-system-arm",
        qemu_machine: "mps2-an386",
        qemu_cpu: "cortex-m4",
        target: "thumbv6m-none-eabi",
        flash_kib: 512,
        ram_kib: 32,
        flash_origin: "0x00000000",
        like: "STM32G0B1-class flash",
    },
];

impl Board {
    /// The board called `name`, if any.
    pub fn find(name: &str) -> Option<&'static Board> {
        BOARDS.iter().find(|b| b.name == name)
    }

    /// Flash budget in bytes.
    pub fn flash_bytes(&self) -> u64 {
        u64::from(self.flash_kib) * 1024
    }

    /// RAM budget in bytes.
    pub fn ram_bytes(&self) -> u64 {
        u64::from(self.ram_kib) * 1024
    }

    /// The emulator's arguments to run `kernel`: the runner line of
    /// `firmware/.cargo/config.toml` (semihosting for output and files,
    /// `-icount shift=0` so virtual time counts instructions).
    pub fn emulator_args(&self, kernel: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-machine",
            self.qemu_machine,
            "-cpu",
            self.qemu_cpu,
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-icount",
            "shift=0",
            "-kernel",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.push(kernel.as_os_str().to_owned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_names_are_unique_and_budgets_fit_the_emulated_memory() {
        for (i, b) in BOARDS.iter().enumerate() {
            assert_eq!(Board::find(b.name), Some(b));
            assert!(BOARDS[..i].iter().all(|o| o.name != b.name), "{}", b.name);
            // MPS2 AN386: 4 MiB of code memory, 4 MiB of SRAM at 0x20000000.
            assert!(b.flash_kib <= 4096 && b.ram_kib <= 4096, "{}", b.name);
        }
        assert!(Board::find("nosuchboard").is_none());
    }
}
