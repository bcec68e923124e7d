//! `lasagna sweep` and `lasagna plot` end to end on a tiny grid (4 runs,
//! 1 epoch, 1,500 images): the table, resuming, shards merged by --collect,
//! the PNG and SVG charts, and the errors a user sees for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lasagna(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lasagna"))
        .args(args)
        .output()
        .expect("run lasagna")
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn fails_with(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {err}");
    assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
}

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("lasagna-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("tmp dir");
    p
}

const GRID: &str =
    "layers = [2, 3]\nhidden = [16]\ndropout = [0.0, 0.5]\nactivation = [\"relu\"]\n\
                    [training]\nepochs = 1\ntrain_subset = 1500\nval = 300\n";

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The CSV without its `seconds` column (the only one that varies between runs).
fn without_seconds(csv: &Path) -> String {
    std::fs::read_to_string(csv)
        .expect("csv")
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(5);
            f.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_tiny_sweep_ranks_resumes_shards_and_plots() {
    let dir = tmp("grid");
    let grid = dir.join("grid.toml");
    std::fs::write(&grid, GRID).expect("grid");
    let full = dir.join("full");

    let out = ok(&lasagna(&["sweep", "--grid", s(&grid), "--out", s(&full)]));
    assert!(out.contains("4 to train"), "{out}");
    let md = std::fs::read_to_string(full.join("summary.md")).expect("summary.md");
    assert_eq!(md.lines().count(), 2 + 4, "{md}");
    assert!(md.contains("| run | params | val acc | val loss | test acc | seconds | diagnosis |"));
    let csv = std::fs::read_to_string(full.join("summary.csv")).expect("summary.csv");
    let accs: Vec<f32> = csv
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .nth(2)
                .expect("val_acc")
                .parse()
                .expect("number")
        })
        .collect();
    assert!(accs.windows(2).all(|w| w[0] >= w[1]), "not sorted: {csv}");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(full.join("l2-h16-d0-relu.json")).expect("run file"))
            .expect("json");
    assert!(run["diagnosis"]["verdict"].is_string(), "{run}");
    assert_eq!(run["sweep"]["hidden"], 16);
    assert_eq!(run["parameters"], 784 * 16 + 16 + 16 * 10 + 10);

    // Resuming: everything is done, nothing is trained again.
    let again = ok(&lasagna(&["sweep", "--grid", s(&grid), "--out", s(&full)]));
    assert!(again.contains("4 already done, 0 to train"), "{again}");
    // Other shared settings in the same folder are refused, not mixed.
    fails_with(
        &lasagna(&[
            "sweep",
            "--grid",
            s(&grid),
            "--out",
            s(&full),
            "--epochs",
            "2",
        ]),
        "other settings",
    );

    // Two shards in two folders, merged, give the same table.
    let (a, b) = (dir.join("a"), dir.join("b"));
    ok(&lasagna(&[
        "sweep",
        "--grid",
        s(&grid),
        "--out",
        s(&a),
        "--shard",
        "1/2",
    ]));
    ok(&lasagna(&[
        "sweep",
        "--grid",
        s(&grid),
        "--out",
        s(&b),
        "--shard",
        "2/2",
    ]));
    assert!(a.join("summary-shard-1-of-2.csv").is_file());
    let merged = dir.join("merged");
    let c = ok(&lasagna(&[
        "sweep",
        "--collect",
        s(&a),
        s(&b),
        "--out",
        s(&merged),
    ]));
    assert!(c.contains("4 runs from 2 folder(s)"), "{c}");
    assert_eq!(
        without_seconds(&merged.join("summary.csv")),
        without_seconds(&full.join("summary.csv"))
    );

    // Curves (PNG and SVG) and bars (folder and CSV).
    let png = dir.join("curves.png");
    let runs = [
        full.join("l2-h16-d0-relu.json"),
        full.join("l3-h16-d0.5-relu.json"),
    ];
    ok(&lasagna(&[
        "plot",
        s(&runs[0]),
        s(&runs[1]),
        "--out",
        s(&png),
    ]));
    let bytes = std::fs::read(&png).expect("png");
    assert!(
        bytes.len() > 5000 && bytes.starts_with(b"\x89PNG"),
        "{} bytes",
        bytes.len()
    );
    let svg = dir.join("curves.svg");
    ok(&lasagna(&["plot", s(&runs[0]), "--out", s(&svg)]));
    let text = std::fs::read_to_string(&svg).expect("svg");
    assert!(
        text.contains("<svg") && text.contains("epoch"),
        "svg lacks its axis label"
    );
    let bars = dir.join("bars.png");
    ok(&lasagna(&["plot", "--bars", s(&full), "--out", s(&bars)]));
    assert!(std::fs::metadata(&bars).expect("bars").len() > 5000);
    let bars_svg = dir.join("bars.svg");
    let csv_path = full.join("summary.csv");
    ok(&lasagna(&[
        "plot",
        "--bars",
        s(&csv_path),
        "--out",
        s(&bars_svg),
    ]));
    assert!(std::fs::read_to_string(&bars_svg)
        .expect("svg")
        .contains("l2-h16-d0-relu"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_gives_clear_errors_not_panics() {
    let dir = tmp("bad");
    for shard in ["0/2", "3/2", "2", "a/b"] {
        fails_with(
            &lasagna(&["sweep", "--shard", shard, "--out", s(&dir), "--list"]),
            "invalid --shard",
        );
    }
    fails_with(
        &lasagna(&["sweep", "--grid", "/nonexistent/grid.toml"]),
        "/nonexistent/grid.toml",
    );
    let bad_grid = dir.join("bad.toml");
    std::fs::write(&bad_grid, "layers = [3]\nwidth = [8]\n").expect("write");
    fails_with(
        &lasagna(&["sweep", "--grid", s(&bad_grid), "--list"]),
        "not a sweep grid",
    );
    fails_with(
        &lasagna(&["sweep", "--activation", "swish", "--list"]),
        "swish",
    );
    fails_with(
        &lasagna(&["sweep", "--collect", "/nonexistent/sweep"]),
        "is not a folder",
    );
    fails_with(
        &lasagna(&["sweep", "--collect", s(&dir)]),
        "no sweep results",
    );
    fails_with(
        &lasagna(&[
            "plot",
            "/nonexistent/metrics.json",
            "--out",
            s(&dir.join("x.png")),
        ]),
        "/nonexistent/metrics.json",
    );
    let junk = dir.join("junk.json");
    std::fs::write(&junk, "{ not json").expect("write");
    fails_with(
        &lasagna(&["plot", s(&junk), "--out", s(&dir.join("x.png"))]),
        "not valid JSON",
    );
    let wrong = dir.join("wrong.json");
    std::fs::write(&wrong, "{\"epochs\": 3}").expect("write");
    fails_with(
        &lasagna(&["plot", s(&wrong), "--out", s(&dir.join("x.png"))]),
        "epoch metrics",
    );
    fails_with(
        &lasagna(&["plot", s(&junk), "--out", s(&dir.join("x.jpg"))]),
        ".png or .svg",
    );
    fails_with(
        &lasagna(&["plot", "--bars", s(&dir), "--out", s(&dir.join("x.png"))]),
        "not valid JSON",
    );
    // The listing needs no data and trains nothing.
    let list = ok(&lasagna(&[
        "sweep", "--list", "--limit", "5", "--shard", "2/2",
    ]));
    assert_eq!(list.lines().count(), 2, "{list}");
    let chapter = ok(&lasagna(&["sweep", "--list"]));
    assert_eq!(chapter.lines().count(), 108);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_diverging_run_is_a_diagnosed_row_not_a_failed_sweep() {
    // SGD with lr 1e8 overflows within the first steps.
    let dir = tmp("nan");
    let out = ok(&lasagna(&[
        "sweep",
        "--layers",
        "2",
        "--hidden",
        "16",
        "--dropout",
        "0",
        "--activation",
        "relu",
        "--epochs",
        "1",
        "--train-subset",
        "600",
        "--val",
        "100",
        "--optimizer",
        "sgd",
        "--lr",
        "1e8",
        "--out",
        s(&dir),
        "--quiet",
    ]));
    assert!(out.contains("non_finite_loss"), "{out}");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("l2-h16-d0-relu.json")).expect("run"))
            .expect("json");
    assert_eq!(run["diagnosis"]["verdict"], "non_finite_loss");
    assert!(run["diagnosis"]["advice"]
        .as_str()
        .is_some_and(|a| a.contains("lower the learning rate")));
    // It counts as done: a second sweep does not retry it.
    let again = ok(&lasagna(&[
        "sweep",
        "--layers",
        "2",
        "--hidden",
        "16",
        "--dropout",
        "0",
        "--activation",
        "relu",
        "--epochs",
        "1",
        "--train-subset",
        "600",
        "--val",
        "100",
        "--optimizer",
        "sgd",
        "--lr",
        "1e8",
        "--out",
        s(&dir),
    ]));
    assert!(again.contains("1 already done, 0 to train"), "{again}");
    let _ = std::fs::remove_dir_all(&dir);
}
