//! The hostile and careless user of issue 17, as one matrix: `kill -9` at
//! many moments, a full disk under every command that writes, concurrent runs
//! on the same files, and the bad inputs that used to pass silently or abort.
//! Each case is classified by what the user got, and the table is printed:
//!
//! ```text
//! cargo test -p lasagna-cli --test reliability -- --nocapture
//! ```
//!
//! The test fails unless panics, silent wrong results, data loss, aborts and
//! left-over temporary files are all 0. docs/reliability.md lists the cases
//! and the focused test of each fix.

use lasagna_format::{AlignedModel, Model};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lasagna");

/// A run short enough to repeat dozens of times: 1,800 training images, 2 epochs.
const TINY: &[&str] = &[
    "train",
    "--model",
    "mlp",
    "--epochs",
    "2",
    "--train-subset",
    "2000",
    "--val",
    "200",
    "--quiet",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Did what was asked, and every file it left is whole.
    Ok,
    /// Refused or failed with a message (exit 1 or 2, `error:` on stderr).
    ClearError,
    /// Refused, but the message does not name what is wrong.
    Unclear,
    /// A Rust panic reached the user.
    Panic,
    /// Exit 0, but the result is not what was asked (or contradicts itself).
    SilentWrong,
    /// A file the user had (or was promised) is damaged or gone.
    DataLoss,
    /// Killed by a signal of its own (out of memory: SIGABRT) or a crash.
    Abort,
}

struct Case {
    group: &'static str,
    name: String,
    outcome: Outcome,
    /// A temporary file survived the next run in the same folder.
    litter: bool,
    detail: String,
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lasagna-rel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("test folder");
    d
}

fn lasagna(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(cwd);
    c.env("LASAGNA_DATA", data_dir());
    c
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// What a finished process gave the user, before looking at its files.
fn classify(o: &Output) -> (Outcome, String) {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    // The line that says what went wrong (clap follows its own with a
    // usage line and "For more information, try '--help'").
    let last = err
        .lines()
        .find(|l| l.starts_with("error"))
        .or(err.lines().last())
        .unwrap_or("")
        .to_string();
    if err.contains("panicked") {
        return (Outcome::Panic, last);
    }
    if let Some(sig) = o.status.signal() {
        return (Outcome::Abort, format!("signal {sig}: {last}"));
    }
    match o.status.code() {
        Some(0) => (Outcome::Ok, String::new()),
        Some(1 | 2) if err.contains("error") => (Outcome::ClearError, last),
        Some(134) => (Outcome::Abort, last),
        c => (Outcome::Abort, format!("exit {c:?}: {last}")),
    }
}

fn model_is_whole(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| Model::parse(&AlignedModel::new(&b)).is_ok())
}

fn json_is_whole(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| serde_json::from_slice::<serde_json::Value>(&b).is_ok())
}

/// Temporary files in `d` (lock files are kept on purpose and are not litter).
fn temps(d: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.contains("tmp") {
            v.push(n);
        }
        if e.path().is_dir() {
            v.extend(temps(&e.path()));
        }
    }
    v
}

/// A good model, metrics and checkpoint to put in harm's way, made once.
fn fixture() -> (PathBuf, Duration) {
    let d = dir("fixture");
    let t0 = Instant::now();
    let o = lasagna(TINY, &d)
        .args([
            "--out",
            "m.lsn",
            "--metrics",
            "m.json",
            "--checkpoint",
            "c.ckpt",
        ])
        .output()
        .expect("run lasagna");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run = t0.elapsed();
    let o = lasagna(
        &["export", "--model-file", "m.lsn", "--quantize", "int8"],
        &d,
    )
    .args(["--calibration", "200", "--out", "q.lsn"])
    .output()
    .expect("run lasagna");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = lasagna(&["plot", "m.json", "--out", "p.png"], &d)
        .output()
        .expect("run lasagna");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (d, run)
}

fn copy_fixture(fx: &Path, name: &str) -> PathBuf {
    let d = dir(name);
    for f in ["m.lsn", "m.json", "c.ckpt", "q.lsn", "p.png"] {
        std::fs::copy(fx.join(f), d.join(f)).expect("copy fixture");
    }
    d
}

/// Kills `child` with SIGKILL once `ready(elapsed)` says so, or when it ends.
fn kill_when(mut child: Child, ready: impl Fn(Duration) -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if ready(t0.elapsed()) {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            return true;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn snapshot(d: &Path) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((
                e.file_name().to_string_lossy().to_string(),
                m.len(),
                m.modified().ok(),
            ))
        })
        // A process killed with `kill -9` leaves its lock sidecar (it
        // cannot delete it); the next run reuses it, so it is not a loss.
        .filter(|(n, _, _)| !n.ends_with(".lock"))
        .collect();
    v.sort();
    v
}

/// `kill -9` at a moment, then the checks a user would make: the model and
/// metrics are whole (old or new), the checkpoint resumes, and the next run
/// in the folder leaves no temporary file behind.
fn kill_case(fx: &Path, name: &str, moment: &dyn Fn(&Path, Duration) -> bool) -> Case {
    let d = copy_fixture(fx, name);
    let outputs = [
        "--out",
        "m.lsn",
        "--metrics",
        "m.json",
        "--checkpoint",
        "c.ckpt",
    ];
    let child = lasagna(TINY, &d)
        .args(outputs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn lasagna");
    let killed = kill_when(child, |t| moment(&d, t));
    let mut lost = Vec::new();
    if !model_is_whole(&d.join("m.lsn")) {
        lost.push("m.lsn");
    }
    if d.join("m.json").exists() && !json_is_whole(&d.join("m.json")) {
        lost.push("m.json");
    }
    // The user's next step: resume (or rerun) into the same files.
    let mut next = lasagna(TINY, &d);
    if d.join("c.ckpt").exists() {
        next.args(["--resume", "c.ckpt"]);
    }
    let o = next.args(outputs).output().expect("run lasagna");
    let (outcome, detail) = classify(&o);
    if outcome != Outcome::Ok {
        lost.push("c.ckpt (the next run failed)");
    }
    if !model_is_whole(&d.join("m.lsn")) {
        lost.push("m.lsn after the next run");
    }
    let left = temps(&d);
    Case {
        group: "kill -9",
        name: format!("{name}{}", if killed { "" } else { " (ended first)" }),
        outcome: if lost.is_empty() {
            Outcome::Ok
        } else {
            Outcome::DataLoss
        },
        litter: !left.is_empty(),
        detail: format!("{lost:?} {left:?} {detail}"),
    }
}

fn kill_cases(fx: &Path, run: Duration, cases: &mut Vec<Case>) {
    // Moments spread over a whole run (measured on this machine): loading,
    // each epoch and its checkpoint, the test, the writes at the end.
    for pct in [2u32, 10, 20, 35, 50, 65, 80, 90, 97] {
        let at = run * pct / 100;
        let name = format!("at {pct}% of a run ({} ms)", at.as_millis());
        cases.push(kill_case(fx, &name, &|_, t| t >= at));
    }
    // The moment a file starts to change: the first temporary file to
    // appear, or an output's size or time changing in place.
    for (what, file) in [
        ("checkpoint", "c.ckpt"),
        ("model", "m.lsn"),
        ("metrics", "m.json"),
    ] {
        let before = std::cell::RefCell::new(None);
        let moment = |d: &Path, _t: Duration| {
            let now: Vec<_> = snapshot(d)
                .into_iter()
                .filter(|(n, _, _)| n.contains(file))
                .collect();
            let mut b = before.borrow_mut();
            match &*b {
                None => {
                    *b = Some(now);
                    false
                }
                Some(old) => *old != now,
            }
        };
        cases.push(kill_case(fx, &format!("while writing the {what}"), &moment));
    }
}

/// [`TINY`] with `extra` options added, or replacing the value TINY gives.
fn tiny_with(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = TINY.iter().map(|s| s.to_string()).collect();
    let mut i = 0;
    while i < extra.len() {
        let key = extra[i];
        let value = extra.get(i + 1).filter(|x| !x.starts_with("--"));
        match (v.iter().position(|a| a == key), value) {
            (Some(p), Some(x)) if p + 1 < v.len() => v[p + 1] = x.to_string(),
            (_, Some(x)) => v.extend([key.to_string(), x.to_string()]),
            (_, None) => v.push(key.to_string()),
        }
        i += if value.is_some() { 2 } else { 1 };
    }
    v
}

/// A disk that fills after `kib` KiB: RLIMIT_FSIZE with SIGXFSZ ignored, so
/// a write past it fails with EFBIG as a full disk fails with ENOSPC.
fn full_disk(kib: u64, args: &[&str], cwd: &Path) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f \"$0\"; exec \"$@\"")
        .arg(kib.to_string())
        .arg(BIN)
        .args(args)
        .current_dir(cwd)
        .env("LASAGNA_DATA", data_dir())
        .output()
        .expect("run lasagna under ulimit -f")
}

fn disk_cases(fx: &Path, cases: &mut Vec<Case>) {
    let tiny = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = TINY.to_vec();
        v.extend_from_slice(extra);
        v
    };
    let commands: Vec<(&str, Vec<&str>, &str)> = vec![
        ("train --out", tiny(&["--out", "m.lsn"]), "m.lsn"),
        ("train --metrics", tiny(&["--metrics", "m.json"]), "m.json"),
        (
            "train --checkpoint",
            tiny(&["--checkpoint", "c.ckpt"]),
            "c.ckpt",
        ),
        (
            "export int8",
            vec![
                "export",
                "--model-file",
                "m.lsn",
                "--quantize",
                "int8",
                "--calibration",
                "200",
                "--out",
                "q.lsn",
            ],
            "q.lsn",
        ),
        (
            "export f32 over the input",
            vec!["export", "--model-file", "m.lsn", "--out", "m.lsn"],
            "m.lsn",
        ),
        ("plot", vec!["plot", "m.json", "--out", "p.png"], "p.png"),
    ];
    for kib in [0u64, 4, 300, 700] {
        for (name, args, guarded) in &commands {
            let d = copy_fixture(fx, &format!("disk-{kib}-{}", name.replace(' ', "_")));
            let before = std::fs::read(d.join(guarded)).expect("fixture file");
            let o = full_disk(kib, args, &d);
            let (mut outcome, mut detail) = classify(&o);
            let after = std::fs::read(d.join(guarded)).unwrap_or_default();
            if outcome == Outcome::ClearError && after != before {
                outcome = Outcome::DataLoss;
                detail = format!("{guarded} changed by a failed run: {detail}");
            }
            if outcome == Outcome::Ok {
                let whole = if guarded.ends_with(".lsn") {
                    model_is_whole(&d.join(guarded))
                } else if guarded.ends_with(".json") {
                    json_is_whole(&d.join(guarded))
                } else {
                    true
                };
                if !whole {
                    outcome = Outcome::SilentWrong;
                    detail = format!("exit 0 but {guarded} is not whole");
                }
            }
            let left = temps(&d);
            cases.push(Case {
                group: "full disk",
                name: format!("{name} at {kib} KiB"),
                outcome,
                litter: !left.is_empty(),
                detail: format!("{detail} {left:?}"),
            });
        }
    }
}

fn concurrency_cases(fx: &Path, cases: &mut Vec<Case>) {
    for (name, shared) in [
        ("two trains, one --out", ["--out", "m.lsn"]),
        ("two trains, one --checkpoint", ["--checkpoint", "c.ckpt"]),
    ] {
        let d = copy_fixture(fx, &name.replace([' ', ','], "_"));
        let spawn = |i: usize| {
            lasagna(TINY, &d)
                .args(shared)
                .args(["--metrics", &format!("m{i}.json")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn lasagna")
        };
        let (a, b) = (spawn(0), spawn(1));
        let outs = [a, b].map(|c| c.wait_with_output().expect("wait"));
        let results: Vec<_> = outs.iter().map(classify).collect();
        let oks = results.iter().filter(|r| r.0 == Outcome::Ok).count();
        let refused = results
            .iter()
            .filter(|r| r.0 == Outcome::ClearError)
            .count();
        let worst = results
            .iter()
            .map(|r| r.0)
            .find(|o| !matches!(o, Outcome::Ok | Outcome::ClearError));
        let whole = match shared[1] {
            "m.lsn" => model_is_whole(&d.join("m.lsn")),
            _ => d.join("c.ckpt").exists(),
        };
        let outcome = match worst {
            Some(o) => o,
            None if !whole => Outcome::DataLoss,
            // Both wrote the same file at once: the last writer won, silently.
            None if oks == 2 => Outcome::SilentWrong,
            None if oks == 1 && refused == 1 => Outcome::ClearError,
            None => Outcome::ClearError,
        };
        let left = temps(&d);
        cases.push(Case {
            group: "concurrent",
            name: name.into(),
            outcome,
            litter: !left.is_empty(),
            detail: format!("{:?} {left:?}", results),
        });
    }
    for n in [2usize, 3] {
        let d = dir(&format!("sweeps-{n}"));
        let args = [
            "sweep",
            "--out",
            "s",
            "--layers",
            "2",
            "--hidden",
            "16,32,64",
            "--dropout",
            "0",
            "--activation",
            "relu,tanh",
            "--epochs",
            "1",
            "--train-subset",
            "600",
            "--val",
            "100",
            "--quiet",
        ];
        let children: Vec<_> = (0..n)
            .map(|_| {
                lasagna(&args, &d)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("spawn lasagna")
            })
            .collect();
        let outs: Vec<_> = children
            .into_iter()
            .map(|c| c.wait_with_output().expect("wait"))
            .collect();
        let results: Vec<_> = outs.iter().map(classify).collect();
        let mut outcome = results
            .iter()
            .map(|r| r.0)
            .find(|o| *o != Outcome::Ok)
            .unwrap_or(Outcome::Ok);
        let runs = std::fs::read_dir(d.join("s"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.ends_with(".json") && n.starts_with("l2-")
            })
            .filter(|e| json_is_whole(&e.path()))
            .count();
        let summary = std::fs::read_to_string(d.join("s/summary.csv")).unwrap_or_default();
        let rows = summary.lines().count().saturating_sub(1);
        if outcome == Outcome::Ok && (runs != 6 || rows != 6) {
            outcome = Outcome::DataLoss;
        }
        let left = temps(&d);
        cases.push(Case {
            group: "concurrent",
            name: format!("{n} sweeps in one folder"),
            outcome,
            litter: !left.is_empty(),
            detail: format!("{runs} run files, {rows} summary rows, {results:?} {left:?}"),
        });
    }
}

/// Inputs that must be refused before any work; exit 0 is a silent wrong result.
fn input_cases(fx: &Path, cases: &mut Vec<Case>) {
    let d = copy_fixture(fx, "inputs");
    let toml = |name: &str, layers: &str, extra: &str| {
        let text = format!("input = [1, 28, 28]\n{layers}\n{extra}");
        std::fs::write(d.join(name), text).expect("write toml");
    };
    let flat = "[[layers]]\ntype = \"flatten\"\n";
    toml(
        "out9.toml",
        &format!("{flat}[[layers]]\ntype = \"linear\"\nout = 9\n"),
        "",
    );
    toml("flatten.toml", flat, "");
    toml(
        "lr.toml",
        &format!("{flat}[[layers]]\ntype = \"linear\"\nout = 10\n"),
        "[optimizer]\ntype = \"sgd\"\nlr = -1\n",
    );
    for (name, out) in [("huge", "1000000000"), ("u32", "4294967296")] {
        toml(
            &format!("{name}.toml"),
            &format!("{flat}[[layers]]\ntype = \"linear\"\nout = {out}\n[[layers]]\ntype = \"linear\"\nout = 10\n"),
            "",
        );
    }
    toml(
        "square.toml",
        &format!("{flat}[[layers]]\ntype = \"linear\"\nout = 100000\n[[layers]]\ntype = \"linear\"\nout = 100000\n[[layers]]\ntype = \"linear\"\nout = 10\n"),
        "",
    );
    std::fs::write(
        d.join("lstm.toml"),
        "input = [28, 28]\n[[layers]]\ntype = \"lstm\"\nhidden = 100000\n[[layers]]\ntype = \"linear\"\nout = 10\n",
    )
    .expect("write toml");
    // A checkpoint changed by hand, in ways that keep it valid JSON, with its
    // header line rewritten to match (as a careful hand, or a bug in another
    // tool, would): the values themselves must be refused, not the checksum.
    let ckpt = std::fs::read_to_string(d.join("c.ckpt")).expect("checkpoint");
    let (_, payload) = ckpt.split_once('\n').expect("checkpoint header line");
    let reframe = |p: &str| {
        format!(
            "LASAGNA-CKPT 2 crc32={:08x} len={}\n{p}",
            crc32fast::hash(p.as_bytes()),
            p.len()
        )
    };
    assert_eq!(
        reframe(payload),
        ckpt,
        "the checkpoint header changed its layout"
    );
    let tamper = |name: &str, from: &str, to: &str| {
        let changed = payload.replacen(from, to, 1);
        assert_ne!(changed, payload, "{from} is not in the checkpoint");
        std::fs::write(d.join(name), reframe(&changed)).expect("write checkpoint");
    };
    tamper("epochs.ckpt", "\"epochs_done\":2", "\"epochs_done\":99");
    let step = ckpt
        .split("\"step\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .unwrap_or("0")
        .to_string();
    tamper("step.ckpt", &format!("\"step\":{step}"), "\"step\":1e15");
    let first = ckpt
        .split("\"weights\":[[")
        .nth(1)
        .and_then(|s| s.split([',', ']']).next())
        .unwrap_or("0")
        .to_string();
    tamper(
        "inf.ckpt",
        &format!("\"weights\":[[{first}"),
        "\"weights\":[[1e39",
    );
    // One digit changed and the header left alone: the checksum's case.
    let digit = ckpt.replacen(
        &format!("\"weights\":[[{first}"),
        &format!(
            "\"weights\":[[{}",
            first.replacen(|c: char| c.is_ascii_digit() && c != '0', "7", 1)
        ),
        1,
    );
    assert_ne!(digit, ckpt);
    std::fs::write(d.join("digit.ckpt"), digit).expect("write checkpoint");
    // 5 GB that start like a real model (its header, then holes), so only
    // the size gives it away; and 5 GB of nothing.
    let head = std::fs::read(d.join("m.lsn")).expect("model");
    let f = std::fs::File::create(d.join("sparse.lsn")).expect("sparse");
    (&f).write_all(&head[..64.min(head.len())]).expect("header");
    f.set_len(5_000_000_000).expect("set_len");
    std::fs::File::create(d.join("zeros.lsn"))
        .and_then(|f| f.set_len(5_000_000_000))
        .expect("zeros");
    let mut bomb_dir = d.join("bomb");
    std::fs::create_dir_all(&bomb_dir).expect("bomb dir");
    write_gzip_bomb(&bomb_dir);
    bomb_dir.push("");

    let with = |extra: &[&str]| tiny_with(extra);
    let resume = |opt: &[&str]| with(&[&["--resume", "c.ckpt"], opt].concat());
    let bomb = bomb_dir.display().to_string();
    let list: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "--out X --metrics X",
            "--metrics",
            with(&["--out", "x", "--metrics", "x"]),
        ),
        (
            "--out into a missing folder",
            "cannot write",
            with(&["--out", "no/such/m.lsn"]),
        ),
        (
            "--out onto a folder",
            "cannot write",
            with(&["--out", "bomb"]),
        ),
        (
            "--out /dev/full",
            "cannot write",
            with(&["--out", "/dev/full"]),
        ),
        (
            "--metrics /dev/full",
            "cannot write",
            with(&["--metrics", "/dev/full"]),
        ),
        ("last layer out = 9", "10", with(&["--model", "out9.toml"])),
        ("a single flatten", "10", with(&["--model", "flatten.toml"])),
        (
            "[optimizer] lr = -1",
            "lr.toml",
            with(&["--model", "lr.toml"]),
        ),
        (
            "linear out = 10^9",
            "bytes",
            with(&["--model", "huge.toml"]),
        ),
        ("linear out = 2^32", "bytes", with(&["--model", "u32.toml"])),
        (
            "linear 10^5 x 10^5",
            "bytes",
            with(&["--model", "square.toml"]),
        ),
        ("lstm hidden 10^5", "bytes", with(&["--model", "lstm.toml"])),
        ("--max-memory 1M", "bytes", with(&["--max-memory", "1M"])),
        ("resume --model cnn", "--model", resume(&["--model", "cnn"])),
        (
            "resume --norm-mean 0.5",
            "--norm-mean",
            resume(&["--norm-mean", "0.5"]),
        ),
        ("resume --lr 0.5", "--lr", resume(&["--lr", "0.5"])),
        ("resume --seed 3", "--seed", resume(&["--seed", "3"])),
        (
            "resume --batch-size 32",
            "--batch-size",
            resume(&["--batch-size", "32"]),
        ),
        (
            "resume --optimizer sgd",
            "--optimizer",
            resume(&["--optimizer", "sgd"]),
        ),
        (
            "resume epochs_done = 99",
            "epochs_done = 99",
            with(&["--resume", "epochs.ckpt"]),
        ),
        (
            "resume step = 1e15",
            "1000000000000000",
            with(&["--resume", "step.ckpt"]),
        ),
        (
            "resume weight 1e39",
            "weights[0][0] = inf",
            with(&["--resume", "inf.ckpt"]),
        ),
        (
            "resume a changed digit",
            "CRC-32",
            with(&["--resume", "digit.ckpt"]),
        ),
        (
            "gzip bomb as MNIST",
            "train-images",
            with(&["--data", &bomb]),
        ),
        (
            "deploy --timeout 0",
            "--timeout",
            [
                "deploy",
                "--model-file",
                "q.lsn",
                "--board",
                "qemu-m4",
                "--timeout",
                "0",
            ]
            .map(String::from)
            .to_vec(),
        ),
        (
            "eval a 5 GB sparse .lsn",
            "5000000000",
            ["eval", "--model-file", "sparse.lsn"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "eval 5 GB of zeros as .lsn",
            "not a Lasagna model",
            ["eval", "--model-file", "zeros.lsn"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "export a 5 GB sparse .lsn",
            "5000000000",
            ["export", "--model-file", "sparse.lsn", "--out", "e.lsn"]
                .map(String::from)
                .to_vec(),
        ),
    ];
    for (name, expect, args) in list {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t0 = Instant::now();
        let o = lasagna(&args, &d).output().expect("run lasagna");
        let (mut outcome, detail) = classify(&o);
        if outcome == Outcome::Ok {
            outcome = Outcome::SilentWrong;
        }
        // An error that does not name what is wrong (a write reported as
        // `cannot read`, an internal index instead of the layer) is no help.
        if outcome == Outcome::ClearError && !detail.contains(expect) {
            outcome = Outcome::Unclear;
        }
        let detail = format!("{} ms: {detail}", t0.elapsed().as_millis());
        cases.push(Case {
            group: "bad input",
            name: name.into(),
            outcome,
            litter: false,
            detail,
        });
    }
}

/// A folder whose train-images file declares 60,000 images but inflates to
/// 400 MB: the reader must stop at the declared size, not at a global cap.
fn write_gzip_bomb(d: &Path) {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let gz = |name: &str, header: &[u8], body: u64| {
        let f = std::fs::File::create(d.join(name)).expect("bomb file");
        let mut e = GzEncoder::new(f, flate2::Compression::best());
        e.write_all(header).expect("gzip");
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..body >> 20 {
            e.write_all(&zeros).expect("gzip");
        }
        e.finish().expect("gzip");
    };
    let images = |n: u32| {
        [
            &0x0803u32.to_be_bytes()[..],
            &n.to_be_bytes(),
            &28u32.to_be_bytes(),
            &28u32.to_be_bytes(),
        ]
        .concat()
    };
    let labels = |n: u32| [&0x0801u32.to_be_bytes()[..], &n.to_be_bytes()].concat();
    gz("train-images-idx3-ubyte.gz", &images(60_000), 400 << 20);
    gz("train-labels-idx1-ubyte.gz", &labels(60_000), 60_000);
    gz("t10k-images-idx3-ubyte.gz", &images(10_000), 7_840_000);
    gz("t10k-labels-idx1-ubyte.gz", &labels(10_000), 10_000);
}

#[test]
fn a_hostile_user_gets_clear_errors_and_never_loses_data() {
    let (fx, run) = fixture();
    let mut cases = Vec::new();
    kill_cases(&fx, run, &mut cases);
    disk_cases(&fx, &mut cases);
    concurrency_cases(&fx, &mut cases);
    input_cases(&fx, &mut cases);

    let mut bad = Vec::new();
    for c in &cases {
        let flag = !matches!(c.outcome, Outcome::Ok | Outcome::ClearError) || c.litter;
        println!(
            "{:<10} {:<40} {:?}{}  {}",
            c.group,
            c.name,
            c.outcome,
            if c.litter { " +temp left" } else { "" },
            c.detail
        );
        if flag {
            bad.push(&c.name);
        }
    }
    let count = |o: Outcome| cases.iter().filter(|c| c.outcome == o).count();
    println!(
        "\ntried {} | ok {} | clear error {} | unclear error {} | panic {} | silent wrong {} | data loss {} | abort {} | temp left {}",
        cases.len(),
        count(Outcome::Ok),
        count(Outcome::ClearError),
        count(Outcome::Unclear),
        count(Outcome::Panic),
        count(Outcome::SilentWrong),
        count(Outcome::DataLoss),
        count(Outcome::Abort),
        cases.iter().filter(|c| c.litter).count(),
    );
    assert!(bad.is_empty(), "cases that failed the user: {bad:?}");
}
