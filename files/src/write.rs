//! `write_atomic`: temp file in the same folder, fsync, rename, fsync the folder.

use crate::error::{Error, Result};
use crate::parent_dir;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The suffix of every temporary file; nothing else ends with it.
pub(crate) const TMP_SUFFIX: &str = ".lasagna-tmp";

/// Tells this process's temporary files apart (threads, repeated writes).
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file for `path`, in the same folder so the rename cannot
/// cross file systems: `.NAME.PID.N.lasagna-tmp`.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_dir(path).join(format!(".{name}.{}.{n}{TMP_SUFFIX}", std::process::id()))
}

/// Removes the file it names when dropped, unless [`TempGuard::keep`] ran:
/// every early return and panic cleans up.
pub(crate) struct TempGuard(pub(crate) Option<PathBuf>);

impl TempGuard {
    pub(crate) fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old file
/// or the new one, never a mix: a temporary file in the same folder is
/// written and fsynced, renamed over `path`, and the folder is fsynced.
/// On error the temporary file is removed and `path` is untouched.
/// Temporary files of the same target left by dead processes (`kill -9`)
/// are removed first. A file that is replaced keeps its permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] with the writing done by `fill` (tests inject failures).
pub(crate) fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<()> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    remove_stale_temps(path);
    let tmp = temp_path(path);
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(err)?;
    let guard = TempGuard(Some(tmp.clone()));
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_file() {
            f.set_permissions(m.permissions()).map_err(err)?;
        }
    }
    fill(&mut f).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    guard.keep();
    sync_dir(parent_dir(path)).map_err(err)
}

/// Makes the rename durable. Some file systems cannot fsync a folder
/// (EINVAL); the rename is done and as durable as they allow.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        r => r,
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The pid in a temporary file's name, if `file` is one of `target`'s.
fn temp_pid(file: &str, target: &str) -> Option<u32> {
    let rest = file
        .strip_prefix('.')?
        .strip_prefix(target)?
        .strip_prefix('.')?
        .strip_suffix(TMP_SUFFIX)?;
    let (pid, n) = rest.split_once('.')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether process `pid` is alive: `Some` only where `/proc` can tell.
fn alive(pid: u32) -> Option<bool> {
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        Some(Path::new("/proc").join(pid.to_string()).exists())
    } else {
        None
    }
}

/// Removes `path`'s temporary files whose process is gone, so a `kill -9`
/// during a write leaves no permanent litter. Best effort: nothing here may
/// fail the write.
pub(crate) fn remove_stale_temps(path: &Path) {
    let Some(target) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent_dir(path)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| temp_pid(n, target)) else {
            continue;
        };
        if pid != std::process::id() && alive(pid) == Some(false) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lasagna-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn names(d: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temp() {
        let d = dir("replace");
        let p = d.join("m.lsn");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new bytes").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new bytes");
        assert_eq!(names(&d), ["m.lsn"]);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_write_that_fails_midway_keeps_the_old_file_and_no_temp() {
        let d = dir("midway");
        let p = d.join("m.lsn");
        std::fs::write(&p, b"the old model").unwrap();
        let r = write_with(&p, |f| {
            f.write_all(b"half of the new")?;
            Err(std::io::Error::other("disk full (injected)"))
        });
        let e = r.unwrap_err().to_string();
        assert!(
            e.starts_with("cannot write ") && e.contains("injected"),
            "{e}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"the old model");
        assert_eq!(names(&d), ["m.lsn"]);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_write_into_a_missing_folder_says_cannot_write() {
        let p = std::env::temp_dir().join("lasagna-files-no-such-dir/x/m.lsn");
        let e = write_atomic(&p, b"x").unwrap_err().to_string();
        assert!(e.starts_with("cannot write "), "{e}");
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_stale_temp_of_a_dead_process_is_removed_and_a_live_ones_kept() {
        let d = dir("stale");
        let p = d.join("m.lsn");
        // A pid above the kernel's pid_max (4194304 at most) is never alive.
        let dead = d.join(".m.lsn.4999999.0.lasagna-tmp");
        let live = d.join(format!(".m.lsn.{}.77.lasagna-tmp", std::process::id()));
        let other = d.join(".other.lsn.4999999.0.lasagna-tmp");
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        write_atomic(&p, b"x").unwrap();
        assert!(!dead.exists(), "the dead process's temp is litter");
        assert!(live.exists(), "a live process may still rename its temp");
        assert!(
            other.exists(),
            "another target's temps are not ours to judge"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn temp_names_parse_back_to_their_pid_only_for_their_target() {
        assert_eq!(temp_pid(".a.json.12.3.lasagna-tmp", "a.json"), Some(12));
        assert_eq!(temp_pid(".a.json.12.3.lasagna-tmp", "a"), None);
        assert_eq!(temp_pid(".a.json.12.lasagna-tmp", "a.json"), None);
        assert_eq!(temp_pid("a.json", "a.json"), None);
    }

    #[test]
    #[cfg(unix)]
    fn a_replaced_file_keeps_its_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir("perm");
        let p = d.join("m.lsn");
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"new").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        std::fs::remove_dir_all(&d).ok();
    }
}
