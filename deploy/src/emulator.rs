//! Running the firmware in the board's emulator, with a timeout; the same
//! wait serves `probe-rs run` on a real board ([`crate::probe`]).

use super::boards::{Board, Qemu};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn install_hint(qemu: &Qemu) -> String {
    format!(
        "sudo apt-get install {0} (Debian/Ubuntu), brew install qemu (macOS); \
         {0} must be on PATH",
        qemu.bin
    )
}

/// The board's QEMU machine, or why there is none: a real board runs only
/// with `--probe` (or is only built, `--build-only`).
pub fn qemu_of(board: &Board) -> Result<&Qemu> {
    board.qemu().ok_or_else(|| {
        Error::config(
            "--board",
            format!(
                "{} is a real board ({}) that nothing here emulates. HINT: `--build-only` \
                 builds its firmware and prints the budget; `--probe` flashes a connected \
                 board with probe-rs and runs it there",
                board.name, board.like
            ),
        )
    })
}

/// Checks that the board's emulator runs (`qemu-system-arm --version`).
pub fn check_emulator(board: &Board) -> Result<()> {
    let qemu = qemu_of(board)?;
    match Command::new(qemu.bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Error::Tool {
            tool: qemu.bin.into(),
            reason: format!("`--version` failed ({})", o.status),
            hint: install_hint(qemu),
        }),
        Err(e) => Err(Error::Tool {
            tool: qemu.bin.into(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!("not found; {} runs on it", board.emulator)
            } else {
                format!("cannot start it: {e}")
            },
            hint: install_hint(qemu),
        }),
    }
}

/// What the emulator (or probe-rs) printed, and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct EmulatorOutput {
    /// The semihosting console.
    pub stdout: String,
    /// The tool's own messages.
    pub stderr: String,
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Wall-clock time.
    pub seconds: f64,
}

fn collect(mut pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Kills and reaps a child we started (ignoring "already exited").
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` (the firmware on `board`: QEMU, or probe-rs on a real
/// board) to its end, stopping it after `timeout`. `hint` says how to
/// install `tool`.
pub fn run_until_exit(
    board: &Board,
    mut cmd: Command,
    tool: &str,
    hint: &str,
    timeout: Duration,
) -> Result<EmulatorOutput> {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Tool {
            tool: tool.into(),
            reason: format!("cannot start it: {e}"),
            hint: hint.into(),
        })?;
    let out = collect(child.stdout.take());
    let err = collect(child.stderr.take());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                stop(&mut child);
                return Err(Error::Device {
                    board: board.name.into(),
                    reason: format!(
                        "{tool} ran longer than the {} s timeout and was stopped. HINT: fewer \
                         --images, or a longer --timeout",
                        timeout.as_secs()
                    ),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                stop(&mut child);
                return Err(Error::Tool {
                    tool: tool.into(),
                    reason: format!("waiting for it failed: {e}"),
                    hint: "run deploy again".into(),
                });
            }
        }
    };
    Ok(EmulatorOutput {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        code: status.code(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Runs `kernel` on the board's emulator in `workdir` (where the firmware
/// finds `images.bin`), stopping it after `timeout`.
pub fn run_emulator(
    board: &Board,
    kernel: &Path,
    workdir: &Path,
    timeout: Duration,
) -> Result<EmulatorOutput> {
    let qemu = qemu_of(board)?;
    let mut cmd = Command::new(qemu.bin);
    cmd.args(qemu.args(kernel)).current_dir(workdir);
    run_until_exit(board, cmd, qemu.bin, &install_hint(qemu), timeout)
}
