//! Building `firmware/` for one model and one board: `cargo build --release`
//! with the model and the budget in the environment (see
//! `firmware/build.rs`), and the linker's verdict turned into errors a user
//! can act on.

use super::boards::Board;
use super::budget;
use super::host::Weights;
use super::rust_target::{self, CoreLibs};
use crate::error::{Error, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The firmware of the source tree this binary was built from.
pub fn default_firmware_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../firmware"))
}

/// Checks that `dir` holds the firmware crate.
pub fn check_firmware_dir(dir: &Path) -> Result<()> {
    if dir.join("Cargo.toml").is_file() && dir.join("build.rs").is_file() {
        return Ok(());
    }
    Err(Error::config(
        "--firmware-dir",
        format!(
            "{} is not the firmware crate (no Cargo.toml and build.rs there). \
             HINT: pass --firmware-dir path/to/lasagna/firmware",
            dir.display()
        ),
    ))
}

/// The memory region a link overflowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// `FLASH` in `memory.x`.
    Flash,
    /// `RAM` in `memory.x`.
    Ram,
}

/// A region the linker could not fit the firmware into, and by how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// Which region.
    pub region: Region,
    /// Bytes over (the largest the linker reported for that region).
    pub bytes: u64,
}

/// Finds the linker's overflow messages in a build log, in both spellings:
/// LLD's `section '.rodata' will not fit in region 'FLASH': overflowed by N
/// bytes` and GNU ld's ``region `FLASH' overflowed by N bytes``. LLD
/// reports each section after the first that does not fit; the largest
/// count is the overflow.
pub fn link_overflows(log: &str) -> Vec<Overflow> {
    let mut found: Vec<Overflow> = Vec::new();
    for line in log.lines() {
        let region = if line.contains("region 'FLASH'") || line.contains("region `FLASH'") {
            Region::Flash
        } else if line.contains("region 'RAM'") || line.contains("region `RAM'") {
            Region::Ram
        } else {
            continue;
        };
        let Some(bytes) = line
            .split_once("overflowed by ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        match found.iter_mut().find(|o| o.region == region) {
            Some(o) => o.bytes = o.bytes.max(bytes),
            None => found.push(Overflow { region, bytes }),
        }
    }
    found
}

/// The last `n` lines of `log`.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Turns a failed build's log into the clearest error it supports: an
/// overflowed region, a missing Rust target, or the log's tail. `weights`
/// picks the hint when the model does not fit.
pub fn build_error(
    model: &Path,
    board: &Board,
    firmware_dir: &Path,
    weights: Weights,
    log: &str,
) -> Error {
    if let Some(o) = link_overflows(log).first() {
        let (memory, budget_kib, hint) = match o.region {
            Region::Flash => (
                "flash",
                board.flash_kib,
                budget::flash_hint(weights, board, None),
            ),
            Region::Ram => ("RAM", board.ram_kib, budget::ram_hint(weights, board)),
        };
        return Error::DoesNotFit {
            model: model.to_path_buf(),
            board: board.name,
            memory,
            what: "the linker cannot place the firmware (code + model)".into(),
            over: o.bytes,
            budget_kib,
            hint,
        };
    }
    if log.contains("may not be installed") || log.contains("can't find crate for `core`") {
        return Error::Tool {
            tool: "rustc".into(),
            reason: format!("the Rust target {} is not installed", board.target),
            hint: rust_target::setup_hint(firmware_dir),
        };
    }
    Error::Tool {
        tool: "cargo build".into(),
        reason: format!(
            "building the firmware failed; the end of its log:\n{}\n",
            tail(log, 25)
        ),
        hint: "build it by hand to see everything: cd firmware && LASAGNA_MODEL=... cargo build --release".into(),
    }
}

/// What to build.
pub struct BuildRequest<'a> {
    /// The firmware crate.
    pub firmware_dir: &'a Path,
    /// The model file, as an absolute path (cargo runs elsewhere).
    pub model: &'a Path,
    /// The board: Rust target and memory budget.
    pub board: &'a Board,
    /// How the model stores its weights (for the hint when it does not fit).
    pub weights: Weights,
    /// Where the target's `core` is ([`rust_target::find_core`]).
    pub core: &'a CoreLibs,
}

/// Builds the firmware and returns the path of its ELF. `on_line` sees each
/// line cargo prints on stderr as it comes (for a progress line).
pub fn build(req: &BuildRequest<'_>, on_line: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let b = req.board;
    let mut cmd = Command::new("cargo");
    cmd.args(["build", "--release", "--target", b.target])
        // Artifacts as JSON on stdout (to find the ELF wherever the target
        // dir is), diagnostics rendered on stderr as usual.
        .arg("--message-format=json-render-diagnostics")
        .current_dir(req.firmware_dir)
        // The firmware's own target dir, whatever the environment says: a
        // shared CARGO_TARGET_DIR could be locked by the cargo that runs
        // us (`cargo test`), and this keeps the firmware cache in one place.
        .env("CARGO_TARGET_DIR", req.firmware_dir.join("target"))
        .env("LASAGNA_MODEL", req.model)
        .env("LASAGNA_FLASH_KB", b.flash_kib.to_string())
        .env("LASAGNA_RAM_KB", b.ram_kib.to_string())
        .env("LASAGNA_FLASH_ORIGIN", format!("{:#010x}", b.flash_origin))
        .env("LASAGNA_RAM_ORIGIN", format!("{:#010x}", b.ram_origin))
        .env("LASAGNA_TICK_SCALE", {
            let (num, den) = b.tick_scale();
            format!("{num}/{den}")
        })
        // RUSTFLAGS meant for the host (`-Ctarget-cpu=native`, say) would
        // apply to the firmware; a default target from the environment
        // would build the wrong one.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !b.features.is_empty() {
        cmd.arg("--features").arg(b.features.join(","));
    }
    if let Some((var, flags)) = req.core.cargo_env(b.target) {
        cmd.env(var, flags);
    }
    let mut child = cmd.spawn().map_err(|e| Error::Tool {
        tool: "cargo".into(),
        reason: format!("cannot start it: {e}"),
        hint: "install Rust with rustup (https://rustup.rs) and make sure `cargo` is on PATH"
            .into(),
    })?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut out) = stdout {
            let _ = out.read_to_string(&mut s);
        }
        s
    });
    let mut log = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            on_line(&line);
            log.push_str(&line);
            log.push('\n');
        }
    }
    let status = child.wait().map_err(|e| Error::Tool {
        tool: "cargo".into(),
        reason: format!("waiting for it failed: {e}"),
        hint: "run the build again".into(),
    })?;
    let json = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(build_error(
            req.model,
            b,
            req.firmware_dir,
            req.weights,
            &log,
        ));
    }
    executable(&json).ok_or_else(|| Error::Tool {
        tool: "cargo build".into(),
        reason: "it succeeded but reported no firmware executable".into(),
        hint: "check that --firmware-dir is Lasagna's firmware crate".into(),
    })
}

/// The last executable cargo's JSON messages name.
pub fn executable(json: &str) -> Option<PathBuf> {
    json.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::BOARDS;

    #[test]
    fn lld_and_gnu_ld_overflow_messages_both_parse() {
        let lld = "  = note: rust-lld: error: section '.rodata' will not fit in region 'FLASH': overflowed by 52796 bytes\n\
                   rust-lld: error: section '.data' will not fit in region 'FLASH': overflowed by 52796 bytes\n\
                   rust-lld: error: section '.gnu.sgstubs' will not fit in region 'FLASH': overflowed by 52800 bytes\n\
                   rust-lld: error: section '.bss' will not fit in region 'RAM': overflowed by 1344 bytes\n";
        assert_eq!(
            link_overflows(lld),
            vec![
                Overflow {
                    region: Region::Flash,
                    bytes: 52_800
                },
                Overflow {
                    region: Region::Ram,
                    bytes: 1344
                }
            ]
        );
        let gnu =
            "arm-none-eabi-ld: lasagna-firmware section `.rodata' will not fit in region `FLASH'\n\
                   arm-none-eabi-ld: region `FLASH' overflowed by 1234 bytes\n";
        assert_eq!(
            link_overflows(gnu),
            vec![Overflow {
                region: Region::Flash,
                bytes: 1234
            }]
        );
        assert!(link_overflows("error: could not compile").is_empty());
    }

    #[test]
    fn build_errors_say_what_to_do() {
        let b = &BOARDS[0];
        let m = Path::new("m.lsn");
        let fw = Path::new("firmware");
        let e = build_error(
            m,
            b,
            fw,
            Weights::F32,
            "rust-lld: error: section '.rodata' will not fit in region 'FLASH': overflowed by 52800 bytes",
        )
        .to_string();
        assert!(
            e.contains("52,800 B") && e.contains("512 KiB") && e.contains("--quantize int8"),
            "{e}"
        );
        let small = Board::find("qemu-m4-small").unwrap();
        let e = build_error(
            m,
            small,
            fw,
            Weights::Int8,
            "region `RAM' overflowed by 10 bytes",
        )
        .to_string();
        assert!(
            e.contains("RAM") && e.contains("--board qemu-m4 (128 KiB)"),
            "{e}"
        );
        let e = build_error(m, b, fw, Weights::F32, "error[E0463]: can't find crate for `core`\n  = note: the `thumbv7em-none-eabihf` target may not be installed").to_string();
        assert!(
            e.contains("thumbv7em-none-eabihf") && e.contains("scripts/setup.sh"),
            "{e}"
        );
        let e = build_error(m, b, fw, Weights::F32, "line 1\nerror: something else\n").to_string();
        assert!(e.contains("something else"), "{e}");
    }

    #[test]
    fn the_executable_comes_from_the_last_artifact_message() {
        let json = r#"{"reason":"compiler-artifact","executable":null}
{"reason":"compiler-artifact","executable":"/t/release/lasagna-firmware"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable(json),
            Some(PathBuf::from("/t/release/lasagna-firmware"))
        );
        assert_eq!(executable("not json"), None);
    }
}
