//! What one training step of the `mlp` and `cnn` presets launches, counted on
//! the PTX simulator through the trainer's own `fit` and the GPU backend, and
//! the roofline estimate of its time on an H100 (`lasagna_ptx_sim::cost`).
//!
//! One step is isolated as the difference of two `fit` runs of one epoch, of
//! one and of two batches: everything before the first step (model, optimizer,
//! dataset upload) and around the epoch is the same in both, so the second
//! run's launches after the first run's are exactly its second, steady-state
//! step. The presets run at their own batch size on MNIST images.
//!
//! Issue 19's budgets: MLP at most 12, CNN at most 40 launches per step;
//! every GEMM at least 132 blocks, or its launch rule (`gemm_plan`) says why
//! it cannot have them. `scripts/gpu-estimate.sh` runs
//! `estimate_seconds_per_epoch_on_an_h100` for the per-kernel table.

use std::sync::OnceLock;

use lasagna_ptx_sim::cost::{estimate, summarize, H100_SXM};
use lasagna_ptx_sim::{LaunchRecord, Recording, SimOptions, Simulator, Transfers};
use lasagna_trainer::backend::gpu::Gpu;
use lasagna_trainer::config::ModelSpec;
use lasagna_trainer::data::{epoch_batches, load_mnist, resolve_data_dir, Dataset, Normalization};
use lasagna_trainer::model::Model;
use lasagna_trainer::optim::Optimizer;
use lasagna_trainer::run::DEFAULT_VAL;
use lasagna_trainer::train::{fit, DeviceData, Quiet, RunState, TrainConfig};

/// Issue 19's target for the MLP preset.
const MLP_BUDGET: usize = 12;
/// Issue 19's target for the CNN preset.
const CNN_BUDGET: usize = 40;
/// What the MLP step has been cut to so far (35 before issue 19): a step
/// that launches more has lost a fusion.
const MLP_TODAY: usize = 12;
/// What the CNN step has been cut to so far (1,084 before issue 19).
const CNN_TODAY: usize = 40;
/// H100 SXM's SMs: a GEMM with fewer blocks leaves SMs idle.
const MIN_GEMM_BLOCKS: u64 = 132;

/// One preset's steady-state training step.
struct Step {
    preset: &'static str,
    amp: bool,
    batch: usize,
    steps_per_epoch: usize,
    launches: Vec<LaunchRecord>,
    transfers: Transfers,
}

/// `fit` of `preset` over the first `batches * batch` images, one epoch, on a
/// recording simulator: its launches and transfers.
fn fit_on_sim(
    spec: &ModelSpec,
    cfg: &TrainConfig,
    train: &Dataset,
    batches: usize,
) -> (Vec<LaunchRecord>, Transfers, usize) {
    // The counters are all that is wanted: the default strict checks would
    // only slow the simulation down.
    let sim = Simulator::with_options(SimOptions::default());
    let g = Gpu::new(Recording::new(sim), "recording sim").expect("simulator backend");
    let layers = spec.build_layers::<Gpu<Recording>>().expect("layers");
    let mut model = Model::build(&g, layers, &spec.input, cfg.batch_size, cfg.seed).expect("model");
    let mut opt = Optimizer::new(&g, cfg.optimizer, &model.param_sizes()).expect("optimizer");
    let data = DeviceData::upload(&g, &train.subset(batches * cfg.batch_size)).expect("upload");
    // The dataset's upload differs between the runs; only `fit`'s own traffic is compared.
    let before = g.device().expect("device").transfers();
    let mut state = RunState::new();
    fit(
        &g,
        &mut model,
        &mut opt,
        &data,
        None,
        cfg,
        &mut state,
        &mut Quiet,
        &mut |_, _, _| Ok(true),
    )
    .expect("fit");
    // A skipped AMP step launches no optimizer: it would not be a typical step.
    assert_eq!(state.scaler.skipped_steps, 0, "an AMP step overflowed");
    let steps = epoch_batches(
        train.len(),
        cfg.batch_size,
        cfg.seed,
        0,
        true,
        model.has_batchnorm(),
    )
    .len();
    let dev = g.device().expect("device");
    (
        dev.launches().to_vec(),
        since(before, dev.transfers()),
        steps,
    )
}

fn measure(preset: &'static str, amp: bool) -> Step {
    let spec = ModelSpec::load(preset).expect("preset");
    let batch = spec.training.batch_size.unwrap_or(64);
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: batch,
        optimizer: spec.optimizer().expect("optimizer"),
        loss: spec.loss().expect("loss"),
        amp,
        ..TrainConfig::mnist_default()
    };
    let m = load_mnist(&resolve_data_dir(None), Normalization::default()).expect("MNIST");
    // The CLI trains on MNIST's training set less its validation split.
    let train = m.train.subset(m.train.len() - DEFAULT_VAL);
    let (one, t1, steps) = fit_on_sim(&spec, &cfg, &train, 1);
    let (two, t2, _) = fit_on_sim(&spec, &cfg, &train, 2);
    let names = |l: &[LaunchRecord]| l.iter().map(|r| r.kernel.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&one),
        names(&two[..one.len().min(two.len())]),
        "the two-step run does not start like the one-step run"
    );
    Step {
        preset,
        amp,
        batch,
        steps_per_epoch: steps,
        launches: two[one.len()..].to_vec(),
        transfers: since(t1, t2),
    }
}

/// The transfers between two snapshots of the counters.
fn since(a: Transfers, b: Transfers) -> Transfers {
    Transfers {
        uploads: b.uploads - a.uploads,
        upload_bytes: b.upload_bytes - a.upload_bytes,
        downloads: b.downloads - a.downloads,
        download_bytes: b.download_bytes - a.download_bytes,
        copies: b.copies - a.copies,
        allocs: b.allocs - a.allocs,
    }
}

/// The f32 steps, measured once per test binary (the simulation is the slow part).
fn steps() -> &'static [Step; 2] {
    static S: OnceLock<[Step; 2]> = OnceLock::new();
    S.get_or_init(|| [measure("mlp", false), measure("cnn", false)])
}

fn is_gemm(kernel: &str) -> bool {
    lasagna_kernels::gemm::ALL
        .iter()
        .chain(lasagna_kernels::gemm_f16::ALL)
        .any(|k| k.name == kernel)
}

fn print_counts(s: &Step) {
    let mut per: Vec<(&str, usize, u64, u64)> = Vec::new();
    for r in &s.launches {
        let b = r.blocks();
        match per.iter_mut().find(|p| p.0 == r.kernel) {
            Some(p) => {
                p.1 += 1;
                p.2 = p.2.min(b);
                p.3 = p.3.max(b);
            }
            None => per.push((&r.kernel, 1, b, b)),
        }
    }
    per.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    println!(
        "{}{} (batch {}): {} launches per step; host transfers per step: {} uploads ({} B), {} downloads ({} B), {} copies",
        s.preset,
        if s.amp { " --amp" } else { "" },
        s.batch,
        s.launches.len(),
        s.transfers.uploads,
        s.transfers.upload_bytes,
        s.transfers.downloads,
        s.transfers.download_bytes,
        s.transfers.copies
    );
    for (k, n, lo, hi) in per {
        println!("  {k:<28} {n:>5} launches, {lo}..{hi} blocks");
    }
}

#[test]
fn launches_per_training_step_are_counted_and_printed() {
    for s in steps() {
        print_counts(s);
        assert!(
            !s.launches.is_empty(),
            "{}: a step launches something",
            s.preset
        );
    }
}

#[test]
fn the_steps_keep_the_launches_cut_so_far_and_make_no_host_copy() {
    let [mlp, cnn] = steps();
    let (m, c) = (mlp.launches.len(), cnn.launches.len());
    assert!(
        m <= MLP_TODAY,
        "MLP: {m} launches per step, was {MLP_TODAY}"
    );
    assert!(
        c <= CNN_TODAY,
        "CNN: {c} launches per step, was {CNN_TODAY}"
    );
    // The epoch's order is uploaded once per epoch, so a step neither
    // uploads nor waits for the host.
    for s in [mlp, cnn] {
        assert_eq!(
            (s.transfers.uploads, s.transfers.downloads),
            (0, 0),
            "{}: host transfers per step",
            s.preset
        );
    }
}

#[test]
fn the_mlp_step_fits_issue_19s_launch_budget() {
    let n = steps()[0].launches.len();
    assert!(
        n <= MLP_BUDGET,
        "MLP: {n} launches per step, budget {MLP_BUDGET}"
    );
}

#[test]
fn the_cnn_step_fits_issue_19s_launch_budget() {
    let n = steps()[1].launches.len();
    assert!(
        n <= CNN_BUDGET,
        "CNN: {n} launches per step, budget {CNN_BUDGET}"
    );
}

/// The `gemm` launch's (m, n, k, row sums) from its recorded scalar arguments.
fn gemm_shape(r: &LaunchRecord) -> Option<(usize, usize, usize, bool)> {
    let names = lasagna_kernels::gemm::GEMM.params;
    let at = |name: &str| names.iter().position(|p| p.name == name);
    let get = |name: &str| at(name).and_then(|i| r.scalars.get(i).copied());
    let (m, n, k) = (get("m")??, get("n")??, get("k")??);
    // A buffer (None) is the row-sums output; Some(0) is none.
    let sums = get("sums")? != Some(0);
    Some((m as usize, n as usize, k as usize, sums))
}

#[test]
fn every_gemm_launch_fills_an_h100_or_its_rule_says_why_not() {
    let mut short = Vec::new();
    for s in steps() {
        for r in s.launches.iter().filter(|r| is_gemm(&r.kernel)) {
            if r.blocks() >= MIN_GEMM_BLOCKS {
                continue;
            }
            let Some((m, n, k, sums)) = gemm_shape(r).filter(|_| r.kernel == "gemm") else {
                short.push(format!(
                    "{} {} grid {:?}: no launch rule to ask",
                    s.preset, r.kernel, r.grid
                ));
                continue;
            };
            let plan = lasagna_kernels::gemm::gemm_plan(m, n, k, sums).expect("plan");
            // The launch must be the rule's, and the rule must say why it is short.
            match plan.under_a_wave(k) {
                Some(why) if plan.blocks() as u64 == r.blocks() => {
                    println!(
                        "{} gemm {m}x{n}x{k}{}: {} blocks: {why}",
                        s.preset,
                        if sums { " +sums" } else { "" },
                        r.blocks()
                    );
                }
                _ => short.push(format!(
                    "{} gemm {m}x{n}x{k} grid {:?} ({} blocks; the rule plans {})",
                    s.preset,
                    r.grid,
                    r.blocks(),
                    plan.blocks()
                )),
            }
        }
    }
    assert!(
        short.is_empty(),
        "{} GEMM launches under {MIN_GEMM_BLOCKS} blocks without a reason:\n{}",
        short.len(),
        short.join("\n")
    );
}

/// Formats FLOPs or bytes with an SI prefix.
fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.2}G", x / 1e9),
        x if x >= 1e6 => format!("{:.2}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// The `nsys`-like table of one step; returns the estimated seconds per epoch.
fn print_estimate(s: &Step) -> f64 {
    let gpu = H100_SXM;
    let step_s: f64 = s.launches.iter().map(|r| estimate(r, &gpu).total_s).sum();
    let kernel_s: f64 = s.launches.iter().map(|r| estimate(r, &gpu).kernel_s).sum();
    let epoch_s = step_s * s.steps_per_epoch as f64;
    println!(
        "\n== {}{} on {} (estimate): batch {}, {} launches/step, step {:.1} us ({:.1} us in kernels, {:.1} us launch overhead), {} steps/epoch -> {:.3} s/epoch",
        s.preset,
        if s.amp { " --amp" } else { "" },
        gpu.name,
        s.batch,
        s.launches.len(),
        step_s * 1e6,
        kernel_s * 1e6,
        s.launches.len() as f64 * gpu.launch_overhead * 1e6,
        s.steps_per_epoch,
        epoch_s
    );
    println!(
        "{:>6}  {:>9}  {:>8}  {:<28} {:>13}  {:>11}  {:>9}  {:>9}",
        "% step", "total us", "launches", "kernel", "blocks", "waves", "FLOPs", "bytes"
    );
    for k in summarize(&s.launches, &gpu) {
        let blocks = if k.blocks.0 == k.blocks.1 {
            k.blocks.0.to_string()
        } else {
            format!("{}..{}", k.blocks.0, k.blocks.1)
        };
        let waves = if k.waves.0 == k.waves.1 {
            format!("{:.3}", k.waves.0)
        } else {
            format!("{:.3}..{:.3}", k.waves.0, k.waves.1)
        };
        println!(
            "{:>6.1}  {:>9.2}  {:>8}  {:<28} {:>13}  {:>11}  {:>9}  {:>9}",
            100.0 * k.seconds / step_s,
            k.seconds * 1e6,
            k.launches,
            k.kernel,
            blocks,
            waves,
            si(k.flops as f64),
            si(k.bytes as f64)
        );
    }
    // The GEMMs one by one: their shapes, splits and what limits each.
    for r in s.launches.iter().filter(|r| r.kernel == "gemm") {
        let e = estimate(r, &gpu);
        let shape = gemm_shape(r).map_or(String::from("?"), |(m, n, k, sums)| {
            format!("{m}x{n}x{k}{}", if sums { "+sums" } else { "" })
        });
        println!(
            "  gemm {shape:<18} grid {:?} {:>5} blocks  {:>7.2} us  (memory {:.2} us, compute {:.2} us at full fill)  {}  {}",
            r.grid,
            r.blocks(),
            e.kernel_s * 1e6,
            e.memory_s * 1e6,
            e.compute_s * 1e6,
            si(r.flops() as f64),
            si(r.bytes() as f64)
        );
    }
    epoch_s
}

/// `scripts/gpu-estimate.sh`: the per-kernel tables of the `mlp` and `cnn`
/// presets, f32 and `--amp`, and the H100 seconds per epoch (f32) last.
#[test]
#[ignore = "slow (four presets on the simulator): run by scripts/gpu-estimate.sh"]
fn estimate_seconds_per_epoch_on_an_h100() {
    let [mlp, cnn] = steps();
    let (mlp_amp, cnn_amp) = (measure("mlp", true), measure("cnn", true));
    let mut epoch = Vec::new();
    for s in [mlp, &mlp_amp, cnn, &cnn_amp] {
        print_counts(s);
        epoch.push(print_estimate(s));
    }
    println!(
        "\nH100 --amp estimate: mlp {:.4} s/epoch, cnn {:.4} s/epoch",
        epoch[1], epoch[3]
    );
    println!(
        "H100 estimate: mlp {:.4} s/epoch, cnn {:.4} s/epoch",
        epoch[0], epoch[2]
    );
}
