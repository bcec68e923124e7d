//! Running the firmware in the board's emulator, with a timeout.

use super::boards::Board;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn install_hint(board: &Board) -> String {
    format!(
        "sudo apt-get install {0} (Debian/Ubuntu), brew install qemu (macOS); \
         {0} must be on PATH",
        board.emulator_bin
    )
}

/// Checks that the board's emulator runs (`qemu-system-arm --version`).
pub fn check_emulator(board: &Board) -> Result<()> {
    match Command::new(board.emulator_bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(Error::Tool {
            tool: board.emulator_bin.into(),
            reason: format!("`--version` failed ({})", o.status),
            hint: install_hint(board),
        }),
        Err(e) => Err(Error::Tool {
            tool: board.emulator_bin.into(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!("not found; {} runs on it", board.emulator)
            } else {
                format!("cannot start it: {e}")
            },
            hint: install_hint(board),
        }),
    }
}

/// What the emulator printed, and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct EmulatorOutput {
    /// The semihosting console.
    pub stdout: String,
    /// QEMU's own messages.
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

/// Runs `kernel` on the board's emulator in `workdir` (where the firmware
/// finds `images.bin`), stopping it after `timeout`.
pub fn run_emulator(
    board: &Board,
    kernel: &Path,
    workdir: &Path,
    timeout: Duration,
) -> Result<EmulatorOutput> {
    let start = Instant::now();
    let mut child = Command::new(board.emulator_bin)
        .args(board.emulator_args(kernel))
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Tool {
            tool: board.emulator_bin.into(),
            reason: format!("cannot start it: {e}"),
            hint: install_hint(board),
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
                        "{} ran longer than the {} s timeout and was stopped. HINT: fewer \
                         --images, or a longer --timeout",
                        board.emulator_bin,
                        timeout.as_secs()
                    ),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                stop(&mut child);
                return Err(Error::Tool {
                    tool: board.emulator_bin.into(),
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
