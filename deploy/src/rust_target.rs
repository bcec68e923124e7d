//! Can this machine's Rust compiler build for a board's target, and from
//! where does `core` come? Decided by trying it (an empty `#![no_std]`
//! crate compiled for the target), not by asking rustup: the libraries may
//! come from `rustup target add`, or, where rustup no longer serves the
//! thumb targets, from the sysroot `scripts/thumb-sysroot.sh` builds from
//! `rust-src` under `.tools/sysroot/` (docs/toolchain.md).

use super::boards::Board;
use super::TempDir;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the target's `core`, `alloc` and `compiler_builtins` are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreLibs {
    /// In the toolchain's own sysroot (`rustup target add` or a distro).
    Toolchain,
    /// In the project's sysroot, built from `rust-src`: builds for the
    /// target pass it with `--sysroot`.
    Sysroot(PathBuf),
}

impl CoreLibs {
    /// The `CARGO_TARGET_<TRIPLE>_RUSTFLAGS` variable and value that make
    /// cargo build `target` against these libraries; `None` for the
    /// toolchain's own. Target-specific, so build scripts and proc macros
    /// keep the host's std.
    pub fn cargo_env(&self, target: &str) -> Option<(String, String)> {
        let CoreLibs::Sysroot(dir) = self else {
            return None;
        };
        let var = format!(
            "CARGO_TARGET_{}_RUSTFLAGS",
            target.to_ascii_uppercase().replace('-', "_")
        );
        Some((var, format!("--sysroot={}", dir.display())))
    }
}

/// The project sysroot's directory name for the compiler whose `rustc -vV`
/// is `vv`: `rustc-<release>-<first 12 of commit-hash>`, the key
/// `scripts/thumb-sysroot.sh` uses (keep the two in step).
pub fn sysroot_key(vv: &str) -> Option<String> {
    let field = |name: &str| {
        vv.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let release = field("release:")?;
    let hash = field("commit-hash:")?;
    Some(format!(
        "rustc-{release}-{}",
        hash.get(..12).unwrap_or(hash)
    ))
}

/// The one command that makes a missing target usable.
pub fn setup_hint(firmware_dir: &Path) -> String {
    let script = firmware_dir.join("../scripts/setup.sh");
    let script = std::fs::canonicalize(&script).unwrap_or(script);
    format!(
        "bash {} (it installs the target with rustup, or builds it from rust-src when rustup cannot)",
        script.display()
    )
}

fn rustc() -> Command {
    // Cargo runs `$RUSTC` when it is set, so the probe asks the same one.
    Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
}

/// `rustc -vV`, run in `dir` so that a toolchain override there counts.
fn rustc_version(dir: &Path) -> Result<String> {
    let out = rustc()
        .arg("-vV")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Tool {
            tool: "rustc".into(),
            reason: format!("cannot start it: {e}"),
            hint: "install Rust with rustup (https://rustup.rs) and make sure `rustc` is on PATH"
                .into(),
        })?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether rustc, run in `dir`, compiles an empty `#![no_std]` crate for
/// `target` (against `sysroot` when given).
fn core_found(target: &str, sysroot: Option<&Path>, dir: &Path) -> Result<bool> {
    let out = TempDir::new("target-probe")?;
    let mut cmd = rustc();
    cmd.args([
        "-",
        "--crate-name",
        "lasagna_probe",
        "--crate-type",
        "rlib",
        "--emit=metadata",
        "--target",
        target,
    ])
    .arg("--out-dir")
    .arg(out.path());
    if let Some(s) = sysroot {
        cmd.arg("--sysroot").arg(s);
    }
    let child = cmd
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Ok(false);
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows up as a failed compile below.
        let _ = stdin.write_all(b"#![no_std]\n");
    }
    Ok(child.wait().is_ok_and(|s| s.success()))
}

/// Finds the board's target libraries: the toolchain's own, else the
/// project sysroot for this compiler beside `firmware_dir`
/// (`../.tools/sysroot/<key>`). Neither: an error naming the fix.
pub fn find_core(board: &Board, firmware_dir: &Path) -> Result<CoreLibs> {
    if core_found(board.target, None, firmware_dir)? {
        return Ok(CoreLibs::Toolchain);
    }
    let vv = rustc_version(firmware_dir)?;
    let sysroot = sysroot_key(&vv).map(|key| firmware_dir.join("../.tools/sysroot").join(key));
    if let Some(s) = &sysroot {
        if core_found(board.target, Some(s), firmware_dir)? {
            let s = std::fs::canonicalize(s).unwrap_or_else(|_| s.clone());
            return Ok(CoreLibs::Sysroot(s));
        }
    }
    let compiler = vv
        .lines()
        .next()
        .filter(|l| !l.is_empty())
        .unwrap_or("rustc");
    Err(Error::Tool {
        tool: "rustc".into(),
        reason: format!(
            "{compiler} cannot build for {} (the firmware for {} is built for it): \
             its `core` is neither in the toolchain nor in {}",
            board.target,
            board.name,
            sysroot.map_or_else(
                || "a project sysroot (rustc -vV names no release)".to_string(),
                |s| s.display().to_string()
            )
        ),
        hint: setup_hint(firmware_dir),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    const VV: &str = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
        commit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\n\
        host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";

    #[test]
    fn the_sysroot_key_is_release_and_commit_as_the_script_writes_it() {
        assert_eq!(
            sysroot_key(VV).as_deref(),
            Some("rustc-1.95.0-59807616e1fa")
        );
        let distro = "rustc 1.90.0\ncommit-hash: unknown\nrelease: 1.90.0\n";
        assert_eq!(sysroot_key(distro).as_deref(), Some("rustc-1.90.0-unknown"));
        assert_eq!(sysroot_key("rustc 1.95.0\nrelease: 1.95.0\n"), None);
        assert_eq!(sysroot_key(""), None);
    }

    #[test]
    fn only_a_project_sysroot_needs_cargo_flags() {
        assert_eq!(CoreLibs::Toolchain.cargo_env("thumbv7em-none-eabihf"), None);
        let s = CoreLibs::Sysroot(PathBuf::from("/r/.tools/sysroot/k"));
        assert_eq!(
            s.cargo_env("thumbv6m-none-eabi"),
            Some((
                "CARGO_TARGET_THUMBV6M_NONE_EABI_RUSTFLAGS".into(),
                "--sysroot=/r/.tools/sysroot/k".into()
            ))
        );
    }

    #[test]
    fn the_host_target_is_found_and_a_made_up_one_names_the_fix() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let host = rustc_version(here).unwrap();
        let host = host
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .unwrap()
            .to_string();
        assert!(core_found(&host, None, here).unwrap(), "no core for {host}");
        let board = Board {
            target: "thumbv4t-none-eabi",
            ..super::super::BOARDS[0].clone()
        };
        let e = find_core(&board, here).unwrap_err().to_string();
        assert!(
            e.contains("thumbv4t-none-eabi") && e.contains("scripts/setup.sh"),
            "{e}"
        );
    }
}
