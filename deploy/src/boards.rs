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
    /// How the firmware runs there: emulated, or on a real board over a
    /// debug probe.
    pub runs_on: RunsOn,
    /// The Rust target the firmware is built for.
    pub target: &'static str,
    /// Flash the firmware is linked for, in KiB (`LASAGNA_FLASH_KB`).
    pub flash_kib: u32,
    /// RAM the firmware is linked for, in KiB (`LASAGNA_RAM_KB`).
    pub ram_kib: u32,
    /// Where flash starts (`LASAGNA_FLASH_ORIGIN`).
    pub flash_origin: u32,
    /// Where RAM starts (`LASAGNA_RAM_ORIGIN`).
    pub ram_origin: u32,
    /// Firmware cargo features the board needs (`rp2040-boot2`: the
    /// RP2040's second-stage bootloader in the first 256 bytes of flash).
    pub features: &'static [&'static str],
    /// The real part (or a real part with this budget), for the report.
    pub like: &'static str,
}

/// Where the firmware runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsOn {
    /// An emulator on this machine.
    Qemu(Qemu),
    /// A real board, flashed and run by `probe-rs run --chip CHIP` (only
    /// with `--probe`; `--build-only` needs nothing).
    Probe {
        /// probe-rs's name for the chip (`probe-rs chip list`).
        chip: &'static str,
    },
}

/// A QEMU machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Qemu {
    /// The emulator's program.
    pub bin: &'static str,
    /// QEMU `-machine`.
    pub machine: &'static str,
    /// QEMU `-cpu`.
    pub cpu: &'static str,
    /// The clock QEMU's SysTick counts in this machine (CLKSOURCE = core),
    /// in Hz. With `-icount shift=0` one instruction is one virtual
    /// nanosecond, so a tick is 10^9 / `systick_hz` instructions.
    pub systick_hz: u32,
}

/// What the firmware's SysTick counts, and so what `instructions_per_inference`
/// holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostUnit {
    /// Instructions: QEMU with `-icount shift=0`.
    Instructions,
    /// Core clock cycles: real silicon, SysTick on the core clock.
    Cycles,
}

impl CostUnit {
    /// `instructions` or `cycles`.
    pub fn name(self) -> &'static str {
        match self {
            CostUnit::Instructions => "instructions",
            CostUnit::Cycles => "cycles",
        }
    }
}

/// MPS2 AN386 (Arm's FPGA image of a Cortex-M4): SysTick counts the 25 MHz
/// core clock (QEMU 7.2 hw/arm/mps2.c, SYSCLK_FRQ).
const MPS2_AN386: Qemu = Qemu {
    bin: "qemu-system-arm",
    machine: "mps2-an386",
    cpu: "cortex-m4",
    systick_hz: 25_000_000,
};

/// Every board, in `--help` order.
pub static BOARDS: &[Board] = &[
    Board {
        name: "qemu-m4",
        help: "QEMU's MPS2 AN386 (Cortex-M4F), linked for 512 KiB flash / 128 KiB RAM like an STM32F411",
        cpu: "Cortex-M4",
        emulator: "QEMU mps2-an386",
        runs_on: RunsOn::Qemu(MPS2_AN386),
        target: "thumbv7em-none-eabihf",
        flash_kib: 512,
        ram_kib: 128,
        flash_origin: 0x0000_0000,
        ram_origin: 0x2000_0000,
        features: &[],
        like: "STM32F411-class",
    },
    Board {
        name: "qemu-m4-small",
        help: "the same emulated Cortex-M4, linked for 256 KiB flash / 64 KiB RAM like an STM32F401CC",
        cpu: "Cortex-M4",
        emulator: "QEMU mps2-an386",
        runs_on: RunsOn::Qemu(MPS2_AN386),
        target: "thumbv7em-none-eabihf",
        flash_kib: 256,
        ram_kib: 64,
        flash_origin: 0x0000_0000,
        ram_origin: 0x2000_0000,
        features: &[],
        like: "STM32F401CC-class",
    },
    Board {
        name: "qemu-m0plus",
        help: "Cortex-M0+ code (thumbv6m: no FPU, no DSP, portable kernels) run on QEMU's Cortex-M4, which executes ARMv6-M unchanged (QEMU 7.2 has no M0+ board with a SysTick); linked for 512 KiB flash / 32 KiB RAM (an STM32G0B1 has 512 / 144)",
        cpu: "Cortex-M0+ instruction set (ARMv6-M)",
        emulator: "QEMU mps2-an386",
        runs_on: RunsOn::Qemu(MPS2_AN386),
        target: "thumbv6m-none-eabi",
        flash_kib: 512,
        ram_kib: 32,
        flash_origin: 0x0000_0000,
        ram_origin: 0x2000_0000,
        features: &[],
        like: "STM32G0B1-class flash",
    },
    Board {
        name: "netduinoplus2",
        help: "QEMU's emulation of a real SoC: the Netduino Plus 2's STM32F405RG (Cortex-M4F), its memory map (1 MiB flash at 0x08000000, 128 KiB SRAM at 0x20000000; the 64 KiB CCM is not used)",
        cpu: "Cortex-M4",
        emulator: "QEMU netduinoplus2",
        runs_on: RunsOn::Qemu(Qemu {
            bin: "qemu-system-arm",
            machine: "netduinoplus2",
            cpu: "cortex-m4",
            // hw/arm/netduinoplus2.c: SYSCLK_FRQ 168 MHz, wired to the
            // STM32F405 SoC's cpuclk, which SysTick counts with
            // CLKSOURCE = core (hw/arm/stm32f405_soc.c). A tick is then
            // 125/21 instructions.
            systick_hz: 168_000_000,
        }),
        target: "thumbv7em-none-eabihf",
        flash_kib: 1024,
        ram_kib: 128,
        flash_origin: 0x0800_0000,
        ram_origin: 0x2000_0000,
        features: &[],
        like: "STM32F405RG",
    },
    Board {
        name: "nucleo-f411re",
        help: "a real ST Nucleo-F411RE: STM32F411RE (Cortex-M4F), 512 KiB flash at 0x08000000, 128 KiB RAM at 0x20000000 (--build-only, or --probe to flash it)",
        cpu: "Cortex-M4",
        emulator: "probe-rs (a real board)",
        runs_on: RunsOn::Probe {
            chip: "STM32F411RETx",
        },
        target: "thumbv7em-none-eabihf",
        flash_kib: 512,
        ram_kib: 128,
        flash_origin: 0x0800_0000,
        ram_origin: 0x2000_0000,
        features: &[],
        like: "STM32F411RE",
    },
    Board {
        name: "nrf52840-dk",
        help: "a real Nordic nRF52840 DK: nRF52840 (Cortex-M4F), 1 MiB flash at 0x00000000, 256 KiB RAM at 0x20000000 (--build-only, or --probe to flash it)",
        cpu: "Cortex-M4",
        emulator: "probe-rs (a real board)",
        runs_on: RunsOn::Probe {
            chip: "nRF52840_xxAA",
        },
        target: "thumbv7em-none-eabihf",
        flash_kib: 1024,
        ram_kib: 256,
        flash_origin: 0x0000_0000,
        ram_origin: 0x2000_0000,
        features: &[],
        like: "nRF52840",
    },
    Board {
        name: "rp-pico",
        help: "a real Raspberry Pi Pico: RP2040 (Cortex-M0+, thumbv6m), 2 MiB QSPI flash run in place at 0x10000000 (its first 256 B the W25Q080 boot2 from the rp2040-boot2 crate), 264 KiB RAM at 0x20000000 (--build-only, or --probe to flash it)",
        cpu: "Cortex-M0+",
        emulator: "probe-rs (a real board)",
        runs_on: RunsOn::Probe { chip: "RP2040" },
        target: "thumbv6m-none-eabi",
        flash_kib: 2048,
        ram_kib: 264,
        flash_origin: 0x1000_0000,
        ram_origin: 0x2000_0000,
        features: &["rp2040-boot2"],
        like: "RP2040",
    },
    Board {
        name: "stm32f746-disco",
        help: "a real ST 32F746G-DISCOVERY: STM32F746NG (Cortex-M7), 1 MiB flash at 0x08000000, 320 KiB RAM at 0x20000000 (DTCM + SRAM1 + SRAM2) (--build-only, or --probe to flash it)",
        cpu: "Cortex-M7",
        emulator: "probe-rs (a real board)",
        runs_on: RunsOn::Probe {
            chip: "STM32F746NGHx",
        },
        target: "thumbv7em-none-eabihf",
        flash_kib: 1024,
        ram_kib: 320,
        flash_origin: 0x0800_0000,
        ram_origin: 0x2000_0000,
        features: &[],
        like: "STM32F746NG",
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

    /// The QEMU machine that runs this board's firmware, if one does.
    pub fn qemu(&self) -> Option<&Qemu> {
        match &self.runs_on {
            RunsOn::Qemu(q) => Some(q),
            RunsOn::Probe { .. } => None,
        }
    }

    /// The probe-rs chip name, for a real board.
    pub fn probe_chip(&self) -> Option<&'static str> {
        match self.runs_on {
            RunsOn::Probe { chip } => Some(chip),
            RunsOn::Qemu(_) => None,
        }
    }

    /// What the firmware's cost counter measures on this board.
    pub fn cost_unit(&self) -> CostUnit {
        match self.runs_on {
            RunsOn::Qemu(_) => CostUnit::Instructions,
            RunsOn::Probe { .. } => CostUnit::Cycles,
        }
    }

    /// What one SysTick tick is worth in [`Board::cost_unit`], as a
    /// reduced fraction `(numerator, denominator)` (`LASAGNA_TICK_SCALE`):
    /// 10^9 / `systick_hz` instructions under QEMU's `-icount shift=0`
    /// (40/1 at 25 MHz, 125/21 at 168 MHz), one cycle on real silicon.
    pub fn tick_scale(&self) -> (u64, u64) {
        match self.runs_on {
            RunsOn::Qemu(q) => {
                let (n, d) = (1_000_000_000u64, u64::from(q.systick_hz.max(1)));
                let g = gcd(n, d);
                (n / g, d / g)
            }
            RunsOn::Probe { .. } => (1, 1),
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Qemu {
    /// The emulator's arguments to run `kernel`: the runner line of
    /// `firmware/.cargo/config.toml` (semihosting for output and files,
    /// `-icount shift=0` so virtual time counts instructions).
    pub fn args(&self, kernel: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-machine",
            self.machine,
            "-cpu",
            self.cpu,
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

    /// The datasheets' memory maps and probe-rs's chip names: a typo here
    /// links firmware that a real part would not boot.
    #[test]
    fn real_boards_have_their_parts_memory_maps_and_probe_chips() {
        let want = [
            (
                "nucleo-f411re",
                "STM32F411RETx",
                512,
                0x0800_0000,
                128,
                "thumbv7em-none-eabihf",
            ),
            (
                "nrf52840-dk",
                "nRF52840_xxAA",
                1024,
                0x0000_0000,
                256,
                "thumbv7em-none-eabihf",
            ),
            (
                "rp-pico",
                "RP2040",
                2048,
                0x1000_0000,
                264,
                "thumbv6m-none-eabi",
            ),
            (
                "stm32f746-disco",
                "STM32F746NGHx",
                1024,
                0x0800_0000,
                320,
                "thumbv7em-none-eabihf",
            ),
        ];
        for (name, chip, flash, origin, ram, target) in want {
            let b = Board::find(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(b.probe_chip(), Some(chip), "{name}");
            assert_eq!((b.flash_kib, b.flash_origin), (flash, origin), "{name}");
            assert_eq!((b.ram_kib, b.ram_origin), (ram, 0x2000_0000), "{name}");
            assert_eq!(b.target, target, "{name}");
            assert!(b.qemu().is_none() && b.cost_unit() == CostUnit::Cycles);
        }
        assert_eq!(
            Board::find("rp-pico").map(|b| b.features),
            Some(&["rp2040-boot2"][..])
        );
        let n = Board::find("netduinoplus2").unwrap_or_else(|| panic!("netduinoplus2"));
        assert_eq!(
            (n.flash_kib, n.flash_origin, n.ram_kib),
            (1024, 0x0800_0000, 128)
        );
        assert_eq!(n.qemu().map(|q| q.machine), Some("netduinoplus2"));
    }

    #[test]
    fn a_tick_is_a_whole_or_reduced_number_of_instructions() {
        let tick = |name| Board::find(name).map(Board::tick_scale);
        assert_eq!(tick("qemu-m4"), Some((40, 1)));
        assert_eq!(tick("qemu-m0plus"), Some((40, 1)));
        assert_eq!(tick("netduinoplus2"), Some((125, 21)));
        assert_eq!(tick("nucleo-f411re"), Some((1, 1)));
    }
}
