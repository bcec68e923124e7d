//! How `lasagna` writes its files (issue 17): atomically, checked before any
//! work, and never two processes on one file. Each test names the failure
//! it guards against.

#[path = "../../tests/src/skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn lasagna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
}

/// A fresh, empty folder for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lasagna-writes-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// A quick run: 500 training images, one epoch.
const QUICK: [&str; 8] = [
    "train",
    "--train-subset",
    "500",
    "--val",
    "100",
    "--epochs",
    "1",
    "--quiet",
];

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The names in `d` that are temporary files of any writer, old or new.
fn temps(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lasagna-tmp") || n.ends_with(".tmp"))
        .collect();
    v.sort();
    v
}

fn train_good_model(out: &Path) -> Vec<u8> {
    let o = lasagna()
        .args(QUICK)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run lasagna");
    assert!(o.status.success(), "{}", text(&o));
    std::fs::read(out).expect("model")
}

#[test]
fn a_model_write_that_fails_midway_keeps_the_old_model_and_leaves_no_temp() {
    let d = dir("midway");
    let out = d.join("m.lsn");
    let good = train_good_model(&out);
    // The model is about 850 KiB; a 100 KiB file size limit makes its write
    // fail midway with EFBIG (SIGXFSZ ignored), as a full disk would.
    let o = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 100; exec \"$@\"")
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_lasagna"))
        .args(QUICK)
        .args(["--seed", "1"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run lasagna under bash");
    let all = text(&o);
    assert!(!o.status.success(), "{all}");
    assert!(all.contains("cannot write"), "{all}");
    assert!(
        std::fs::read(&out).expect("old model") == good,
        "the old model changed: {all}"
    );
    assert_eq!(temps(&d), Vec::<String>::new());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_training_killed_during_a_checkpoint_write_resumes_and_leaves_no_temp() {
    let d = dir("kill");
    let ckpt = d.join("c.ckpt");
    let mut child = lasagna()
        .args([
            "train",
            "--train-subset",
            "300",
            "--val",
            "100",
            "--epochs",
            "3",
            "--quiet",
        ])
        .arg("--checkpoint")
        .arg(&ckpt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lasagna");
    // Once the first checkpoint is in place, kill -9 as soon as the next
    // one is being written (its temporary file exists), or as soon as
    // possible if that write is too quick to see.
    let t0 = Instant::now();
    while !ckpt.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(ckpt.exists(), "no checkpoint after 60 s");
    let t1 = Instant::now();
    while temps(&d).is_empty() && t1.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let killed_mid_write = !temps(&d).is_empty();
    child.kill().expect("kill -9");
    let _ = child.wait();
    println!("killed during a checkpoint write: {killed_mid_write}");

    let metrics = d.join("m.json");
    let o = lasagna()
        .arg("train")
        .arg("--resume")
        .arg(&ckpt)
        .arg("--checkpoint")
        .arg(&ckpt)
        .arg("--metrics")
        .arg(&metrics)
        .arg("--quiet")
        .output()
        .expect("resume");
    assert!(o.status.success(), "the checkpoint must load: {}", text(&o));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics).expect("metrics")).expect("json");
    assert_eq!(m["epochs"].as_array().map(Vec::len), Some(3), "{m}");
    assert_eq!(temps(&d), Vec::<String>::new());
    std::fs::remove_dir_all(&d).ok();
}

/// Runs `lasagna train` with `args` and expects a refusal before training.
fn refused_before_training(args: &[&std::ffi::OsStr]) -> String {
    let t0 = Instant::now();
    let o = lasagna()
        .args(QUICK)
        .args(args)
        .output()
        .expect("run lasagna");
    let took = t0.elapsed();
    let all = text(&o);
    assert!(!o.status.success(), "{all}");
    assert!(!all.contains("test accuracy"), "trained first: {all}");
    assert!(
        took < Duration::from_secs(1),
        "refused only after {took:?}: {all}"
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn out_and_metrics_naming_one_file_are_refused_before_training_and_nothing_is_written() {
    let d = dir("same");
    let x = d.join("x");
    let e = refused_before_training(&[
        "--out".as_ref(),
        x.as_ref(),
        "--metrics".as_ref(),
        x.as_ref(),
    ]);
    assert!(e.contains("--out and --metrics both name"), "{e}");
    assert_eq!(
        std::fs::read_dir(&d).expect("dir").count(),
        0,
        "wrote something"
    );
    // And --resume may not name an output it would overwrite.
    let y = d.join("y");
    std::fs::write(&y, b"not a checkpoint").expect("write");
    let e = refused_before_training(&[
        "--resume".as_ref(),
        y.as_ref(),
        "--out".as_ref(),
        y.as_ref(),
    ]);
    assert!(e.contains("--resume and --out both name"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn an_unwritable_out_is_refused_before_training_with_cannot_write() {
    let d = dir("unwritable");
    let missing = d.join("no/such/folder/m.lsn");
    let e = refused_before_training(&["--out".as_ref(), missing.as_ref()]);
    assert!(
        e.contains("cannot write") && e.contains("does not exist"),
        "{e}"
    );
    let e = refused_before_training(&["--out".as_ref(), d.as_ref()]);
    assert!(
        e.contains("cannot write") && e.contains("is a folder"),
        "{e}"
    );
    if Path::new("/dev/full").exists() {
        let e = refused_before_training(&["--out".as_ref(), "/dev/full".as_ref()]);
        assert!(
            e.contains("cannot write") && e.contains("not a regular file"),
            "{e}"
        );
    } else {
        skip::skipped("/dev/full: this system has none");
    }
    let ro = d.join("read-only");
    std::fs::create_dir_all(&ro).expect("mkdir");
    set_mode(&ro, 0o555);
    // root writes into a read-only folder anyway; then there is nothing to test.
    let probe = ro.join("probe");
    if std::fs::write(&probe, b"").is_ok() {
        std::fs::remove_file(&probe).ok();
        skip::skipped("the read-only folder: this user (root?) can write into it");
    } else {
        let e = refused_before_training(&["--out".as_ref(), ro.join("m.lsn").as_ref()]);
        assert!(
            e.contains("cannot write") && e.contains("cannot create"),
            "{e}"
        );
    }
    set_mode(&ro, 0o755);
    std::fs::remove_dir_all(&d).ok();
}

#[cfg(unix)]
fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

#[test]
fn export_refuses_to_overwrite_its_input() {
    let d = dir("export");
    let m = d.join("m.lsn");
    std::fs::write(&m, b"the only copy of a model").expect("write");
    let o = lasagna()
        .arg("export")
        .arg("--model-file")
        .arg(&m)
        .arg("--out")
        .arg(d.join(".").join("m.lsn"))
        .output()
        .expect("run lasagna");
    let all = text(&o);
    assert!(!o.status.success(), "{all}");
    assert!(all.contains("--model-file and --out both name"), "{all}");
    assert_eq!(
        std::fs::read(&m).expect("input"),
        b"the only copy of a model"
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_second_train_on_the_same_outputs_is_refused_while_the_first_runs() {
    let d = dir("lock");
    let (out, ckpt) = (d.join("m.lsn"), d.join("c.ckpt"));
    let mut first = lasagna()
        .args([
            "train",
            "--train-subset",
            "300",
            "--val",
            "100",
            "--epochs",
            "200",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .arg("--checkpoint")
        .arg(&ckpt)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start lasagna");
    // The first run holds its locks once its pid is in the lock file (before
    // then this waits; a lasagna without locks never writes one, and the
    // second run below then trains and succeeds, failing the test).
    let lock = d.join(".c.ckpt.lock");
    let t0 = Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty())
        && t0.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = lasagna()
        .args(QUICK)
        .arg("--out")
        .arg(&out)
        .arg("--checkpoint")
        .arg(&ckpt)
        .output()
        .expect("run lasagna");
    first.kill().ok();
    let _ = first.wait();
    let all = text(&second);
    assert!(!second.status.success(), "{all}");
    let want = format!("is in use by another lasagna process (pid {})", first.id());
    assert!(all.contains(&want) && all.contains("HINT"), "{all}");
    assert!(!all.contains("test accuracy"), "{all}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn two_sweeps_in_one_folder_train_each_run_once_and_both_summaries_are_complete() {
    let d = dir("sweeps");
    let sweep = || {
        lasagna()
            .args([
                "sweep",
                "--layers",
                "2",
                "--hidden",
                "16,32",
                "--dropout",
                "0",
                "--activation",
                "relu",
                "--epochs",
                "1",
                "--train-subset",
                "300",
                "--val",
                "100",
                "--quiet",
            ])
            .arg("--out")
            .arg(&d)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sweep")
    };
    let (a, b) = (sweep(), sweep());
    let (a, b) = (
        a.wait_with_output().expect("sweep a"),
        b.wait_with_output().expect("sweep b"),
    );
    let mut trained = 0;
    for o in [&a, &b] {
        let all = text(o);
        assert!(o.status.success(), "{all}");
        let out = String::from_utf8_lossy(&o.stdout);
        // "2 runs (N trained now in ...": both see all runs.
        let line = out
            .lines()
            .find(|l| l.contains(" trained now in "))
            .unwrap_or_else(|| panic!("no summary line: {all}"));
        assert!(line.starts_with("2 runs ("), "{line}");
        let n: usize = line["2 runs (".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        trained += n;
    }
    assert_eq!(trained, 2, "each run must be trained exactly once");
    let csv = std::fs::read_to_string(d.join("summary.csv")).expect("summary.csv");
    for run in ["l2-h16-d0-relu", "l2-h32-d0-relu"] {
        assert!(csv.contains(run), "{run} missing from {csv}");
        let v: serde_json::Value = serde_json::from_slice(
            &std::fs::read(d.join(format!("{run}.json"))).expect("run json"),
        )
        .expect("json");
        assert!(v.get("sweep").is_some(), "{v}");
    }
    assert_eq!(temps(&d), Vec::<String>::new());
    assert_eq!(temps(&d.join("models")), Vec::<String>::new());
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn deploy_and_plot_refuse_an_unwritable_output_before_any_work() {
    let d = dir("deploy-plot");
    if Path::new("/dev/full").exists() {
        // Refused before the model is even read (it does not exist), so
        // before the firmware build and the emulator run.
        let o = lasagna()
            .args(["deploy", "--board", "qemu-m4", "--json", "/dev/full"])
            .arg("--model-file")
            .arg(d.join("no-such-model.lsn"))
            .output()
            .expect("run lasagna");
        let all = text(&o);
        assert!(!o.status.success(), "{all}");
        assert!(all.contains("cannot write /dev/full"), "{all}");
    } else {
        skip::skipped("deploy --json /dev/full: this system has none");
    }
    let metrics = d.join("run.json");
    std::fs::write(&metrics, br#"{"epochs": []}"#).expect("write");
    let chart = d.join("chart.png");
    std::fs::create_dir_all(&chart).expect("a folder where the chart should go");
    let o = lasagna()
        .arg("plot")
        .arg(&metrics)
        .arg("--out")
        .arg(&chart)
        .output()
        .expect("run lasagna");
    let all = text(&o);
    assert!(!o.status.success(), "{all}");
    assert!(
        all.contains("cannot write") && all.contains("is a folder"),
        "{all}"
    );
    std::fs::remove_dir_all(&d).ok();
}
