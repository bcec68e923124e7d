//! Running the firmware on a real board: `probe-rs run --chip CHIP ELF`
//! flashes it through a debug probe (ST-LINK, J-Link, CMSIS-DAP, a second
//! Pico running debugprobe) and serves its semihosting calls, so the
//! firmware reads `images.bin` and prints its report exactly as under QEMU.

use super::boards::Board;
use super::emulator::{self, EmulatorOutput};
use crate::error::{Error, Result};
use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The program `--probe` runs.
pub const PROBE_RS: &str = "probe-rs";

/// probe-rs opens host files for the target's semihosting `SYS_OPEN` only
/// when this is set (probe-rs-tools, `semihosting_file_manager.rs`); the
/// firmware reads `images.bin` that way.
pub const ALLOW_FILES: &str = "PROBE_RS_SEMIHOSTING_ALLOW_FILE_ACCESS";

/// How to get probe-rs.
pub const INSTALL_HINT: &str = "cargo install probe-rs-tools (https://probe.rs: it installs \
    `probe-rs`, which must be on PATH; on Linux also its udev rules for the probe)";

/// The board's probe-rs chip, or why `--probe` does not apply.
pub fn chip_of(board: &Board) -> Result<&'static str> {
    board.probe_chip().ok_or_else(|| {
        let real: Vec<&str> = crate::BOARDS
            .iter()
            .filter(|b| b.probe_chip().is_some())
            .map(|b| b.name)
            .collect();
        Error::config(
            "--probe",
            format!(
                "{} runs in {}, not on a probe. HINT: drop --probe, or pick a real board: {}",
                board.name,
                board.emulator,
                real.join(", ")
            ),
        )
    })
}

/// Checks that `probe-rs` runs (`probe-rs --version`) and the board has
/// a chip name for it.
pub fn check_probe_rs(board: &Board) -> Result<()> {
    let chip = chip_of(board)?;
    match Command::new(PROBE_RS)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Error::Tool {
            tool: PROBE_RS.into(),
            reason: format!("`--version` failed ({})", o.status),
            hint: INSTALL_HINT.into(),
        }),
        Err(e) => Err(Error::Tool {
            tool: PROBE_RS.into(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "not found on PATH; --probe flashes {} ({chip}) with it",
                    board.name
                )
            } else {
                format!("cannot start it: {e}")
            },
            hint: INSTALL_HINT.into(),
        }),
    }
}

/// `probe-rs`'s arguments: `run --chip CHIP ELF`.
pub fn probe_args(chip: &str, elf: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["run", "--chip", chip].iter().map(OsString::from).collect();
    args.push(elf.as_os_str().to_owned());
    args
}

/// Flashes `elf` to the board on the probe and runs it in `workdir`
/// (where `images.bin` is), stopping after `timeout`.
pub fn run_probe(
    board: &Board,
    elf: &Path,
    workdir: &Path,
    timeout: Duration,
) -> Result<EmulatorOutput> {
    let chip = chip_of(board)?;
    let mut cmd = Command::new(PROBE_RS);
    cmd.args(probe_args(chip, elf))
        .env(ALLOW_FILES, "1")
        .current_dir(workdir);
    emulator::run_until_exit(board, cmd, PROBE_RS, INSTALL_HINT, timeout)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn each_real_board_runs_as_probe_rs_run_with_its_chip() {
        let elf = Path::new("/t/lasagna-firmware");
        let args = |name: &str| {
            let b = Board::find(name).unwrap();
            probe_args(chip_of(b).unwrap(), elf)
        };
        let want = |chip: &str| -> Vec<OsString> {
            ["run", "--chip", chip, "/t/lasagna-firmware"]
                .iter()
                .map(OsString::from)
                .collect()
        };
        assert_eq!(args("nucleo-f411re"), want("STM32F411RETx"));
        assert_eq!(args("nrf52840-dk"), want("nRF52840_xxAA"));
        assert_eq!(args("rp-pico"), want("RP2040"));
        assert_eq!(args("stm32f746-disco"), want("STM32F746NGHx"));
        let e = chip_of(Board::find("netduinoplus2").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("QEMU netduinoplus2") && e.contains("nucleo-f411re"),
            "{e}"
        );
    }
}
