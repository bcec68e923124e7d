//! Checks run before any work: can this file be written, and do two
//! outputs name the same file.

use crate::error::{Error, Result};
use crate::parent_dir;
use crate::write::{temp_path, TempGuard};
use std::path::{Path, PathBuf};

/// Refuses, before any work, a `path` that [`crate::write_atomic`] could not
/// write: its folder is missing or no folder, `path` is a folder, or it
/// exists and is no regular file (`/dev/full`, a pipe: a rename would
/// replace the device node, not write to it) or is read-only (a rename
/// would replace it anyway), or no file can be created
/// in the folder (read-only, no permission). Creates and removes one
/// temporary file.
pub fn check_writable(path: &Path) -> Result<()> {
    let refuse = |reason: String, hint: &str| Error::NotWritable {
        path: path.to_path_buf(),
        reason,
        hint: hint.to_string(),
    };
    if path.file_name().is_none() {
        return Err(refuse(
            "it names no file".into(),
            "give a file name, e.g. model.lsn",
        ));
    }
    let dir = parent_dir(path);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(refuse(
                format!("{} is not a folder", dir.display()),
                "pick a path inside a folder",
            ))
        }
        Err(e) => {
            return Err(refuse(
                format!("its folder {} does not exist ({e})", dir.display()),
                &format!(
                    "create it first (mkdir -p {}), or pick another path",
                    dir.display()
                ),
            ))
        }
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_dir() {
            return Err(refuse(
                "it is a folder".into(),
                "name a file, e.g. inside that folder",
            ));
        }
        if !m.is_file() {
            return Err(refuse(
                "it is not a regular file (a device, pipe or socket), and lasagna writes a new file and renames it into place".into(),
                "write to a regular file",
            ));
        }
        // A rename would replace it regardless (even for root): a file
        // someone made read-only is one they meant to keep.
        if m.permissions().readonly() {
            return Err(refuse(
                "it is read-only".into(),
                "make it writable (chmod u+w) if it may be replaced, or pick another path",
            ));
        }
    }
    let tmp = temp_path(path);
    match std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
    {
        Ok(f) => {
            drop(f);
            drop(TempGuard(Some(tmp)));
            Ok(())
        }
        Err(e) => Err(refuse(
            format!("cannot create a file in {} ({e})", dir.display()),
            "pick a folder you can write to",
        )),
    }
}

/// Where `path` will be, spelled one way: the file itself when it exists
/// (symbolic links followed), else its canonical folder and its name.
fn resolved(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    let name = path.file_name().unwrap_or_default();
    match parent_dir(path).canonicalize() {
        Ok(d) => d.join(name),
        Err(_) => std::env::current_dir()
            .map(|c| c.join(path))
            .unwrap_or_else(|_| path.to_path_buf()),
    }
}

/// Refuses two outputs that name the same file (`--out X --metrics X`, or
/// `X` and `./X`), each given with the option that names it. The files
/// need not exist yet.
pub fn check_distinct(outputs: &[(&str, &Path)]) -> Result<()> {
    let resolved: Vec<PathBuf> = outputs.iter().map(|(_, p)| resolved(p)).collect();
    for (i, a) in resolved.iter().enumerate() {
        for (j, b) in resolved.iter().enumerate().skip(i + 1) {
            if a == b {
                return Err(Error::SameFile {
                    first: outputs[i].0.to_string(),
                    second: outputs[j].0.to_string(),
                    path: outputs[i].1.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lasagna-check-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn refusal(p: &Path) -> String {
        check_writable(p).unwrap_err().to_string()
    }

    #[test]
    fn a_new_file_in_a_folder_is_writable_and_the_check_leaves_nothing() {
        let d = dir("ok");
        check_writable(&d.join("m.lsn")).unwrap();
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_missing_folder_a_folder_and_a_device_are_refused_with_a_hint() {
        let d = dir("refused");
        let e = refusal(&d.join("nope/m.lsn"));
        assert!(
            e.starts_with("cannot write") && e.contains("does not exist") && e.contains("HINT"),
            "{e}"
        );
        let e = refusal(&d);
        assert!(e.contains("is a folder"), "{e}");
        std::fs::write(d.join("file"), b"").unwrap();
        let e = refusal(&d.join("file/m.lsn"));
        assert!(e.contains("is not a folder"), "{e}");
        let ro = d.join("kept.lsn");
        std::fs::write(&ro, b"").unwrap();
        let mut perm = std::fs::metadata(&ro).unwrap().permissions();
        perm.set_readonly(true);
        std::fs::set_permissions(&ro, perm).unwrap();
        let e = refusal(&ro);
        assert!(e.contains("is read-only"), "{e}");
        if Path::new("/dev/full").exists() {
            let e = refusal(Path::new("/dev/full"));
            assert!(e.contains("not a regular file"), "{e}");
        }
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn two_spellings_of_one_file_are_refused_even_before_it_exists() {
        let d = dir("distinct");
        let a = d.join("m.lsn");
        let b = d.join(".").join("m.lsn");
        let e = check_distinct(&[("--out", &a), ("--metrics", &b)])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--out and --metrics both name"), "{e}");
        check_distinct(&[("--out", &a), ("--metrics", &d.join("m.json"))]).unwrap();
        std::fs::remove_dir_all(&d).ok();
    }
}
