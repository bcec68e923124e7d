//! `claim`: every check a command makes on its outputs before any work.

use crate::check::{check_distinct, check_writable};
use crate::error::Result;
use crate::lock::Lock;
use crate::write::remove_stale_temps;
use std::path::Path;

/// A command's outputs, claimed before any work: no two name one file
/// ([`check_distinct`]), each can be written ([`check_writable`]), and each
/// is locked against another process ([`Lock::try_exclusive`]) until the
/// returned locks are dropped. Each output comes with the option that
/// names it (`--out`), for the messages.
///
/// Once an output is locked, the temporary files a killed process left
/// for it are removed: a command may end without writing an output again
/// (a resumed run that was already complete), and its litter must not wait
/// for a write that never comes.
pub fn claim(outputs: &[(&str, &Path)]) -> Result<Vec<Lock>> {
    check_distinct(outputs)?;
    for (_, p) in outputs {
        check_writable(p)?;
    }
    outputs
        .iter()
        .map(|(_, p)| {
            let lock = Lock::try_exclusive(p)?;
            remove_stale_temps(p);
            Ok(lock)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_outputs_are_refused_to_a_second_claim_only_across_processes() {
        let d = std::env::temp_dir().join(format!("lasagna-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let (out, metrics) = (d.join("m.lsn"), d.join("m.json"));
        let e = claim(&[("--out", &out), ("--metrics", &out)])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--out and --metrics both name"), "{e}");
        let locks = claim(&[("--out", &out), ("--metrics", &metrics)]).unwrap();
        assert_eq!(locks.len(), 2);
        assert!(
            !out.exists() && !metrics.exists(),
            "claiming writes no output"
        );
        drop(locks);
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn claiming_an_output_removes_a_dead_processs_temps_without_writing_it() {
        let d = std::env::temp_dir().join(format!("lasagna-claim-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let out = d.join("c.ckpt");
        // A pid above the kernel's pid_max (4194304 at most) is never alive.
        let dead = d.join(".c.ckpt.4999999.3.lasagna-tmp");
        std::fs::write(&dead, b"partial").unwrap();
        let locks = claim(&[("--checkpoint", &out)]).unwrap();
        assert!(!dead.exists(), "the killed run's temp is removed at claim");
        assert!(!out.exists(), "claiming writes no output");
        drop(locks);
        std::fs::remove_dir_all(&d).ok();
    }
}
