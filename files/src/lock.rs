//! An advisory lock per output file, so two `lasagna` processes never
//! write one file (or train one sweep run) at the same time.

use crate::error::{Error, Result};
use crate::parent_dir;
use fs4::FileExt;
use fs4::TryLockError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Lock files this process holds, by canonical path: a second lock of one
/// of them from this process is granted (a `lasagna sweep` holds a run's
/// lock and trains it through `lasagna train`, which locks its outputs).
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn held() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD.lock().unwrap_or_else(|e| e.into_inner())
}

/// An exclusive advisory lock on the file a path names, released when
/// dropped (or when the process dies, even by `kill -9`).
///
/// The lock is taken on a sidecar `.NAME.lock` in the same folder, never
/// on the file itself: [`crate::write_atomic`] renames a new file over it,
/// which a lock on the old inode would not stop. The sidecar holds the
/// owner's pid for the error message. On Unix the holder deletes it before
/// letting go, so no lock files are left beside the outputs; a process that
/// opened the old sidecar and was waiting on it then finds, once it holds
/// the lock, that the path no longer names the file it locked, and starts
/// over (the usual flock + unlink protocol).
///
/// Locks are between processes. Within one process, locking a file that
/// process already holds succeeds and does nothing.
#[derive(Debug)]
pub struct Lock {
    /// `None` for a lock this process already held.
    file: Option<File>,
    key: PathBuf,
}

/// `.NAME.lock` next to `path`, its folder canonical so that two spellings
/// of one path share one lock.
fn lock_path(path: &Path) -> Result<PathBuf> {
    let dir = parent_dir(path);
    let dir = dir.canonicalize().map_err(|source| Error::Lock {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    Ok(dir.join(format!(".{name}.lock")))
}

fn open(key: &Path) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(key)
        .map_err(|source| Error::Lock {
            path: key.to_path_buf(),
            source,
        })
}

impl Lock {
    /// Locks `path` for this process, or refuses at once with
    /// [`Error::Locked`] (and the holder's pid) when another holds it.
    pub fn try_exclusive(path: &Path) -> Result<Lock> {
        let key = lock_path(path)?;
        let mut held = held();
        if held.contains(&key) {
            return Ok(Lock { file: None, key });
        }
        let file = loop {
            let mut file = open(&key)?;
            match FileExt::try_lock(&file) {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    return Err(Error::Locked {
                        path: path.to_path_buf(),
                        pid: text.trim().parse().ok(),
                    });
                }
                Err(TryLockError::Error(source)) => return Err(Error::Lock { path: key, source }),
            }
            if still_named(&file, &key) {
                break file;
            }
        };
        held.push(key.clone());
        drop(held);
        Ok(Lock::stamped(file, key))
    }

    /// Locks `path` for this process, waiting for another holder to let go.
    pub fn exclusive(path: &Path) -> Result<Lock> {
        let key = lock_path(path)?;
        if held().contains(&key) {
            return Ok(Lock { file: None, key });
        }
        let file = loop {
            let file = open(&key)?;
            FileExt::lock(&file).map_err(|source| Error::Lock {
                path: key.clone(),
                source,
            })?;
            if still_named(&file, &key) {
                break file;
            }
        };
        held().push(key.clone());
        Ok(Lock::stamped(file, key))
    }

    /// Writes our pid into the lock file (best effort: it only feeds the
    /// message another process prints).
    fn stamped(mut file: File, key: PathBuf) -> Lock {
        let _ = file
            .set_len(0)
            .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()));
        Lock {
            file: Some(file),
            key,
        }
    }
}

/// Whether `key` still names the file `file` has open: false when the
/// holder we waited for deleted it (or another process has since made a
/// new one), in which case our lock guards nothing and must be retaken.
#[cfg(unix)]
fn still_named(file: &File, key: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(key)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Elsewhere the sidecar is never deleted, so the file locked is the one
/// the path names.
#[cfg(not(unix))]
fn still_named(_file: &File, _key: &Path) -> bool {
    true
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            held().retain(|k| k != &self.key);
            // Deleted while still locked, so whoever opens the path next
            // makes a new file, and whoever waits on the old one retries.
            #[cfg(unix)]
            let _ = std::fs::remove_file(&self.key);
            // Closing the file releases the lock; unlocking first makes
            // it explicit.
            let _ = FileExt::unlock(&f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lasagna-lock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Another process's lock: flock locks belong to an open file
    /// description, so a second `open` of the sidecar stands for one.
    fn foreign_lock(target: &Path, pid: &str) -> File {
        let mut f = open(&lock_path(target).unwrap()).unwrap();
        FileExt::try_lock(&f).unwrap();
        f.set_len(0).unwrap();
        f.write_all(pid.as_bytes()).unwrap();
        f
    }

    #[test]
    fn a_lock_held_elsewhere_is_refused_with_the_holders_pid() {
        let d = dir("refused");
        let p = d.join("m.lsn");
        let other = foreign_lock(&p, "4242\n");
        let e = Lock::try_exclusive(&p).unwrap_err().to_string();
        assert!(
            e.contains("is in use by another lasagna process (pid 4242)") && e.contains("HINT"),
            "{e}"
        );
        drop(other);
        let l = Lock::try_exclusive(&p).unwrap();
        let pid = std::fs::read_to_string(d.join(".m.lsn.lock")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        assert!(!p.exists(), "the target itself is never created or locked");
        drop(l);
        assert!(
            !d.join(".m.lsn.lock").exists(),
            "the sidecar is deleted on release"
        );
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_lock_is_released_on_drop_and_reentrant_in_one_process() {
        let d = dir("reentrant");
        let p = d.join("run.json");
        let outer = Lock::try_exclusive(&p).unwrap();
        let inner = Lock::try_exclusive(&d.join(".").join("run.json")).unwrap();
        drop(inner);
        // Still held: the inner lock did nothing.
        let mut f = open(&lock_path(&p).unwrap()).unwrap();
        assert!(matches!(
            FileExt::try_lock(&f),
            Err(TryLockError::WouldBlock)
        ));
        drop(outer);
        FileExt::try_lock(&f).unwrap();
        let _ = f.write_all(b"");
        drop(f);
        drop(Lock::exclusive(&p).unwrap());
        std::fs::remove_dir_all(&d).ok();
    }

    /// A waiter that locked the old sidecar after its holder deleted it
    /// holds nothing: the next lock is granted on a new file, and the
    /// waiter's check sees that the path no longer names its file.
    #[cfg(unix)]
    #[test]
    fn a_lock_on_a_deleted_sidecar_guards_nothing_and_is_retaken() {
        let d = dir("stale");
        let p = d.join("m.lsn");
        let key = lock_path(&p).unwrap();
        let held_lock = Lock::try_exclusive(&p).unwrap();
        // Opened while held, as a waiting process would have.
        let waiter = open(&key).unwrap();
        drop(held_lock);
        FileExt::try_lock(&waiter).unwrap();
        assert!(!still_named(&waiter, &key), "the path no longer names it");
        let l = Lock::try_exclusive(&p).unwrap();
        assert!(still_named(l.file.as_ref().unwrap(), &key));
        drop(l);
        drop(waiter);
        std::fs::remove_dir_all(&d).ok();
    }
}
