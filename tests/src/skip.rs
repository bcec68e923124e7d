//! Skipped tests, visible in CI's log. A test that passes has its output
//! captured, so a skip that only prints disappears; [`skipped`] also
//! appends one line `TEST (FILE): REASON` to the file named by
//! `LASAGNA_SKIP_LOG`, which `scripts/test.sh` sets and summarises at the end
//! (`skipped tests: N`, then each line).
//!
//! One file for every test crate, with no dependency: a crate's tests include
//! it by path (`#[path = "../../tests/src/skip.rs"] mod skip;`), and
//! lasagna-tests has it as `lasagna_tests::skip`. Library crates' unit
//! tests include it at the crate root under `#[cfg(test)]`; `std` paths are
//! spelled out so that a `no_std` crate with `extern crate std` (the
//! format reader) can include it too.
#![allow(dead_code)] // Each crate that includes it uses a different part.

use std::io::Write;
use std::process::Command;
use std::string::String;

/// The variable naming the file each skip is appended to.
pub const SKIP_LOG: &str = "LASAGNA_SKIP_LOG";

/// Says that the running test skips (all of it, or the part `reason`
/// names): prints `SKIPPED TEST (FILE): REASON` to stderr and appends
/// `TEST (FILE): REASON` to `$LASAGNA_SKIP_LOG` when it is set. TEST is the
/// running thread's name (libtest names each test's thread after the test),
/// FILE the caller's source file.
///
/// # Panics
///
/// When `LASAGNA_SKIP_LOG` is set but cannot be appended to: the skip would
/// otherwise be invisible where the log was asked for.
#[track_caller]
pub fn skipped(reason: &str) {
    let line = std::format!("{}: {}", test_name(), reason.replace('\n', " "));
    std::eprintln!("SKIPPED {line}");
    let Some(log) = std::env::var_os(SKIP_LOG).filter(|p| !p.is_empty()) else {
        return;
    };
    // One write of one line, opened in append mode: the lines of test
    // processes that skip at the same time do not interleave.
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(std::format!("{line}\n").as_bytes()));
    if let Err(e) = appended {
        std::panic!("cannot append to {SKIP_LOG}={}: {e}", log.to_string_lossy());
    }
}

/// Skips for `reason` ([`skipped`]), or fails when a skip is not allowed:
/// under `CI=true` (CI installs everything the tests need, so a missing
/// tool there is a broken CI, not a skip) or when `require_var` names a
/// variable that is set and not empty.
#[track_caller]
pub fn skip_unless_required(reason: &str, require_var: Option<&str>) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let required = require_var.filter(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if ci || required.is_some() {
        std::panic!(
            "{}: {reason} ({} is set: a skip is a failure here)",
            test_name(),
            required.unwrap_or("CI=true")
        );
    }
    skipped(reason);
}

/// Whether `qemu-system-arm` runs here. When it does not the test skips,
/// saying so, except under `CI=true` or `LASAGNA_REQUIRE_QEMU`
/// (`scripts/test.sh`, after `scripts/setup.sh` installed it), where it fails.
#[track_caller]
pub fn have_qemu() -> bool {
    let found = Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip_unless_required(
            "qemu-system-arm is not installed (sudo apt-get install qemu-system-arm); \
             CI installs it and runs this test",
            Some("LASAGNA_REQUIRE_QEMU"),
        );
    }
    found
}

/// `TEST (FILE)` of the caller.
#[track_caller]
fn test_name() -> String {
    let thread = std::thread::current();
    let test = match thread.name() {
        Some(name) if name != "main" => name,
        _ => "?",
    };
    std::format!("{test} ({})", std::panic::Location::caller().file())
}
