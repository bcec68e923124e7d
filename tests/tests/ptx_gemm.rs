//! Property: `kernels-ptx/ptx/gemm.ptx`, run in the PTX simulator, equals the
//! CPU reference `Blas::gemm` (plus bias, ReLU and the backward mask of
//! `Blas::gemm_masked`, and the row sums of `Blas::gemm_row_sums`) for any
//! shape, all four transpose combinations, both load paths (128-bit and
//! scalar), any alpha/beta, with and without split-K (whose arrival counters
//! must be left at zero), and never reads C when beta is 0. A second test checks the
//! kernel's napkin math from the simulator's counters, and an ignored one
//! prints the table for `docs/kernels.md`.
//!
//! Tolerance: both sides sum K products in f32, in different orders, so each
//! element may differ by about `2 K eps` times the sum of |products|, which
//! is at most `K max|a| max|b|`. We allow
//! `|gpu - cpu| <= 4 eps K |alpha| max|a| max|b| + 4 eps (|beta C| + |bias|)`
//! (eps = 2^-24 ~ 6e-8), i.e. ~2.4e-7 K for unit inputs: within 1e-5 K.

use lasagna_kernels::gemm::{gemm_launch, gemm_plan, GEMM, MODULE};
use lasagna_ptx_sim::{Arg, BufId, Device, LaunchStats, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{Blas, Gemm, Memory};
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;

/// One problem: shapes, flags and how the operands are placed.
#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    bias: bool,
    relu: bool,
    /// Place A and B 4 bytes past a 16-byte boundary, forcing scalar loads
    /// even when the leading dimensions are multiples of 4.
    misalign: bool,
    /// Split K as the launch rule `gemm_plan` says (else one block per tile).
    split: bool,
    /// Also compute the row sums of op(A).
    sums: bool,
    /// Apply the backward mask (`aux > 0 ? v * 2 : 0`).
    mask: bool,
    seed: u64,
}

/// What the kernel wrote: C, the row sums (when asked) and the launch counters.
struct Out {
    c: Vec<f32>,
    sums: Vec<f32>,
    stats: LaunchStats,
}

/// The mask's scale (a dropout of p = 0.5 after a ReLU).
const MASK_SCALE: f32 = 2.0;

fn random(r: &mut Stream, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| r.below(2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn upload(s: &mut Simulator, v: &[f32], pad: usize) -> BufId {
    let b = s.alloc((v.len() + pad) * 4 + 16).expect("alloc");
    let mut bytes = vec![0u8; pad * 4];
    bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
    s.upload(&b, &bytes).expect("upload");
    b
}

fn download(s: &mut Simulator, b: BufId, n: usize) -> Vec<f32> {
    let mut out = vec![0u8; n * 4];
    s.download(&b, &mut out).expect("download");
    out.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Runs the kernel; returns C and the launch counters.
fn run_ptx(
    t: &Case,
    a: &[f32],
    b: &[f32],
    c0: &[f32],
    bias: Option<&[f32]>,
    aux: Option<&[f32]>,
    sums0: &[f32],
) -> Out {
    let mut s = Simulator::new();
    s.load_module(MODULE.ptx).expect("gemm.ptx parses");
    let pad = usize::from(t.misalign);
    let (ba, bb) = (upload(&mut s, a, pad), upload(&mut s, b, pad));
    let bc = upload(&mut s, c0, 0);
    let addr =
        |s: &Simulator, id: BufId, pad: usize| s.address(id).expect("address") + 4 * pad as u64;
    let (pa, pb) = (addr(&s, ba, pad), addr(&s, bb, pad));
    let pbias = match bias {
        Some(v) => {
            let id = upload(&mut s, v, 0);
            addr(&s, id, 0)
        }
        None => 0,
    };
    let mut opt = |v: Option<&[f32]>| match v {
        Some(v) => {
            let id = upload(&mut s, v, 0);
            addr(&s, id, 0)
        }
        None => 0,
    };
    let paux = opt(aux);
    let bsums = upload(&mut s, sums0, 0);
    let psums = if t.sums { addr(&s, bsums, 0) } else { 0 };
    let plan = gemm_plan(t.m, t.n, t.k, t.sums).expect("launch rule");
    let (l, k_split, splits) = if t.split {
        (plan.launch, plan.k_split, plan.splits)
    } else {
        assert!(!t.sums, "row sums need the ones column of gemm_plan's grid");
        (
            gemm_launch(t.m, t.n, t.k).expect("launch rule"),
            t.k.max(1),
            1,
        )
    };
    let (pws, sem) = if splits > 1 {
        let ws = s.alloc(plan.workspace * 4).expect("alloc ws");
        let sem = s.alloc(plan.tiles * 4).expect("alloc sem");
        (addr(&s, ws, 0), Some(sem))
    } else {
        (0, None)
    };
    let psem = sem.map_or(0, |b| addr(&s, b, 0));
    let args = [
        Arg::U64(pa),
        Arg::U64(pb),
        Arg::Ptr(bc),
        Arg::U64(pbias),
        Arg::U32(t.m as u32),
        Arg::U32(t.n as u32),
        Arg::U32(t.k as u32),
        Arg::F32(t.alpha),
        Arg::F32(t.beta),
        Arg::U32(t.trans_a.into()),
        Arg::U32(t.trans_b.into()),
        Arg::U32(t.relu.into()),
        Arg::U64(paux),
        Arg::F32(MASK_SCALE),
        Arg::U64(psums),
        Arg::U32(k_split as u32),
        Arg::U64(pws),
        Arg::U64(psem),
    ];
    assert_eq!(args.len(), GEMM.params.len());
    s.launch(
        GEMM.name,
        [l.grid.x, l.grid.y, l.grid.z],
        [l.block.x, l.block.y, l.block.z],
        l.shared_bytes,
        &args,
    )
    .expect("launch");
    s.synchronize().expect("sync");
    if let Some(sem) = sem {
        let mut left = vec![0u8; plan.tiles * 4];
        s.download(&sem, &mut left).expect("download sem");
        assert!(
            left.iter().all(|&b| b == 0),
            "{t:?}: arrival counters left non-zero"
        );
    }
    Out {
        c: download(&mut s, bc, t.m * t.n),
        sums: download(&mut s, bsums, t.m),
        stats: s.last_stats(),
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Runs one case against the CPU reference; returns the worst |diff| / tolerance.
fn check(t: &Case) -> Result<f64, String> {
    let mut r = Stream::new(t.seed, 7);
    let a = random(&mut r, t.m * t.k);
    let b = random(&mut r, t.k * t.n);
    let bias = t.bias.then(|| random(&mut r, t.n));
    let c_in = random(&mut r, t.m * t.n);
    // beta == 0 must not read C: hand the kernel NaNs, the reference zeros.
    let c_dev = if t.beta == 0.0 {
        vec![f32::NAN; c_in.len()]
    } else {
        c_in.clone()
    };
    let aux = t.mask.then(|| random(&mut r, t.m * t.n));
    let sums_in = random(&mut r, t.m);
    let out = run_ptx(t, &a, &b, &c_dev, bias.as_deref(), aux.as_deref(), &sums_in);
    let got = out.c;

    let g = Gemm {
        m: t.m,
        n: t.n,
        k: t.k,
        trans_a: t.trans_a,
        trans_b: t.trans_b,
        alpha: t.alpha,
        beta: t.beta,
    };
    let cpu = Cpu;
    let (da, db) = (cpu.upload(&a).unwrap(), cpu.upload(&b).unwrap());
    let mut dc = cpu.upload(&c_in).unwrap();
    cpu.gemm(&g, &da, &db, &mut dc).unwrap();
    let mut want = cpu.to_vec(&dc).unwrap();
    for (i, w) in want.iter_mut().enumerate() {
        if let Some(bias) = &bias {
            *w += bias[i % t.n];
        }
        if t.relu {
            *w = w.max(0.0);
        }
        if let Some(aux) = &aux {
            *w = if aux[i] > 0.0 { *w * MASK_SCALE } else { 0.0 };
        }
    }
    if t.sums {
        let mut ds = cpu.upload(&sums_in).unwrap();
        let mut scratch = cpu.upload(&c_in).unwrap();
        cpu.gemm_row_sums(&g, &da, &db, &mut scratch, &mut ds)
            .unwrap();
        let want_sums = cpu.to_vec(&ds).unwrap();
        let eps = f32::EPSILON as f64 / 2.0;
        let tol = 4.0
            * eps
            * (t.k as f64 * t.alpha.abs() as f64 * max_abs(&a) as f64
                + t.beta.abs() as f64 * max_abs(&sums_in) as f64)
            + f64::from(f32::MIN_POSITIVE);
        for (r, (&x, &y)) in out.sums.iter().zip(&want_sums).enumerate() {
            let d = (x as f64 - y as f64).abs();
            if d.is_nan() || d > tol {
                return Err(format!("{t:?}: sums[{r}] = {x}, want {y} (tol {tol:.3e})"));
            }
        }
    }

    let eps = f32::EPSILON as f64 / 2.0;
    let prod = t.k as f64 * t.alpha.abs() as f64 * max_abs(&a) as f64 * max_abs(&b) as f64;
    let rest =
        t.beta.abs() as f64 * max_abs(&c_in) as f64 + bias.as_deref().map_or(0.0, max_abs) as f64;
    let scale = if t.mask { f64::from(MASK_SCALE) } else { 1.0 };
    let tol = 4.0 * eps * (prod + rest) * scale + f64::from(f32::MIN_POSITIVE);
    let mut worst = (0.0f64, 0usize);
    for (i, (&x, &y)) in got.iter().zip(&want).enumerate() {
        let d = (x as f64 - y as f64).abs();
        if d.is_nan() {
            return Err(format!("{t:?}: C[{},{}] = {x}, want {y}", i / t.n, i % t.n));
        }
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let (d, i) = worst;
    if d > tol {
        return Err(format!(
            "{t:?}: worst |diff| {d:.3e} > tol {tol:.3e} at C[{},{}] = {}, want {}",
            i / t.n,
            i % t.n,
            got[i],
            want[i]
        ));
    }
    Ok(d / tol)
}

/// Sizes that hit the edges: 1, non-multiples of 8 and of 64, and multiples
/// of 4 (the 128-bit path) just past a tile.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        1usize..=80,
        prop::sample::select(vec![4usize, 8, 12, 60, 64, 68, 72, 76, 128]),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        (dim(), dim(), dim(), any::<bool>(), any::<bool>()),
        prop::sample::select(vec![1.0f32, -0.5, 2.0]),
        prop::sample::select(vec![0.0f32, 1.0, -0.75]),
        (any::<bool>(), any::<bool>(), prop::bool::weighted(0.25)),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        any::<u64>(),
    )
        .prop_map(
            |(
                (m, n, k, trans_a, trans_b),
                alpha,
                beta,
                (bias, relu, misalign),
                (split, sums, mask),
                seed,
            )| Case {
                m,
                n,
                k,
                trans_a,
                trans_b,
                alpha,
                beta,
                bias,
                relu,
                misalign,
                split: split || sums,
                sums,
                mask,
                seed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn ptx_gemm_matches_cpu_for_random_shapes_and_flags(t in case()) {
        let q = check(&t).map_err(TestCaseError::fail)?;
        prop_assert!(q <= 1.0);
    }
}

/// Every transpose combination on both load paths and the small edges.
#[test]
fn ptx_gemm_matches_cpu_on_every_transpose_and_load_path() {
    let mut worst = 0.0f64;
    let shapes = [
        (1, 1, 1),
        (67, 5, 13),
        (8, 68, 12),
        (72, 64, 20),
        (3, 129, 9),
    ];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for ta in [false, true] {
            for tb in [false, true] {
                for misalign in [false, true] {
                    let t = Case {
                        m,
                        n,
                        k,
                        trans_a: ta,
                        trans_b: tb,
                        alpha: 1.5,
                        beta: if i % 2 == 0 { 0.0 } else { 0.5 },
                        bias: i % 2 == 1,
                        relu: i % 3 == 0,
                        misalign,
                        split: i % 2 == 0,
                        sums: i == 2,
                        mask: i == 4,
                        seed: i as u64,
                    };
                    worst = worst.max(check(&t).unwrap_or_else(|e| panic!("{e}")));
                }
            }
        }
    }
    println!("worst |diff| / tolerance: {worst:.3e}");
}

/// Counters of a launch with beta 0 and no epilogue extras, so every
/// global load is a tile load of the main loop.
fn perf_stats(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> LaunchStats {
    let t = Case {
        m,
        n,
        k,
        trans_a,
        trans_b,
        alpha: 1.0,
        beta: 0.0,
        bias: false,
        relu: false,
        misalign: false,
        split: false,
        sums: false,
        mask: false,
        seed: 1,
    };
    let mut r = Stream::new(1, 7);
    let (a, b) = (random(&mut r, m * k), random(&mut r, k * n));
    run_ptx(&t, &a, &b, &vec![0.0; m * n], None, None, &vec![0.0; m]).stats
}

/// The napkin math of `gemm.ptx` at one shape, from the simulator's counters.
struct Ratios {
    fma: u64,
    /// Global elements read per FMA (bytes / 4 / fma).
    global_per_fma: f64,
    /// `ld.shared` thread-instructions per FMA.
    shared_per_fma: f64,
    /// Average bytes per `ld.global` (16 = all 128-bit).
    bytes_per_load: f64,
    bank_conflicts: u64,
    /// Bank conflicts per K-step of the main loop (difference of two K).
    main_loop_conflicts_per_kstep: f64,
}

fn ratios(mn: usize, k: usize) -> Ratios {
    let s = perf_stats(mn, mn, k, false, false);
    // One K-step (k = 8) has the same prologue and epilogue: the difference
    // is k / 8 - 1 main-loop iterations.
    let one = perf_stats(mn, mn, 8, false, false);
    Ratios {
        fma: s.fma,
        global_per_fma: s.global_bytes_read as f64 / 4.0 / s.fma as f64,
        shared_per_fma: s.shared_load as f64 / s.fma as f64,
        bytes_per_load: s.global_bytes_read as f64 / s.global_load as f64,
        bank_conflicts: s.bank_conflicts,
        main_loop_conflicts_per_kstep: (s.bank_conflicts - one.bank_conflicts) as f64
            / (k / 8 - 1) as f64,
    }
}

/// Property: at 512 x 512 x 512 the kernel reads at most 1/32 global element
/// and 1/4 shared load per FMA (64 x 64 tile, 8 x 8 per thread, v4 shared
/// loads), all its global loads are 128-bit, and the main loop has no bank
/// conflicts.
#[test]
fn ptx_gemm_512_meets_its_traffic_bounds() {
    let r = ratios(512, 512);
    println!(
        "fma {} global/fma {:.5} shared/fma {:.4} bytes/ld.global {:.1} conflicts {} (main loop {:.1}/K-step)",
        r.fma, r.global_per_fma, r.shared_per_fma, r.bytes_per_load, r.bank_conflicts,
        r.main_loop_conflicts_per_kstep
    );
    assert_eq!(r.fma, 512 * 512 * 512);
    assert!(r.global_per_fma <= 1.0 / 32.0, "{}", r.global_per_fma);
    assert!(r.shared_per_fma <= 0.25, "{}", r.shared_per_fma);
    assert_eq!(r.bytes_per_load, 16.0, "not every tile load is 128-bit");
    // Tile stores, fragment loads and the epilogue's staging are all
    // conflict-free (128-bit accesses counted per quarter-warp phase).
    assert_eq!(r.bank_conflicts, 0, "bank conflicts in NN");
}

/// Property: the transposed tile loads (TN is Linear's dW, NT its forward)
/// are as conflict-free as NN's, and as vectorized.
#[test]
fn ptx_gemm_transposes_have_no_bank_conflicts() {
    for (ta, tb) in [(false, true), (true, false), (true, true)] {
        let s = perf_stats(256, 256, 64, ta, tb);
        assert_eq!(s.bank_conflicts, 0, "trans_a {ta} trans_b {tb}");
        assert_eq!(
            s.global_bytes_read,
            16 * s.global_load,
            "trans_a {ta} trans_b {tb}: a tile load is not 128-bit"
        );
    }
}

/// One row of `bash scripts/ptxas.sh` output: (arch, registers, shared, spill stores, spill loads).
fn ptxas_rows(kernel: &str) -> Vec<[String; 5]> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../kernels-ptx/ptxas-snapshot.txt"
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 6 && f[0] == kernel).then(|| [1, 2, 3, 4, 5].map(|i| f[i].to_string()))
        })
        .collect()
}

/// The GEMM table in `docs/BENCHMARKS.md`:
/// `cargo test -p lasagna-tests --test ptx_gemm -- --ignored --nocapture`.
#[test]
#[ignore = "prints the docs table; run with --ignored --nocapture"]
fn print_kernel_table() {
    println!("| kernel | shape (NN, beta 0) | arch | registers | shared (bytes) | spills (st/ld) | FMA | global elements / FMA | ld.shared / FMA | bytes / ld.global | bank conflicts (main loop / K-step) |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for mn in [256usize, 512] {
        let r = ratios(mn, mn);
        for [arch, regs, shared, sst, sld] in ptxas_rows(GEMM.name) {
            println!(
                "| `{}` | {mn}x{mn}x{mn} | {arch} | {regs} | {shared} | {sst}/{sld} | {} | {:.5} | {:.4} | {:.1} | {} ({:.0}) |",
                GEMM.name,
                r.fma,
                r.global_per_fma,
                r.shared_per_fma,
                r.bytes_per_load,
                r.bank_conflicts,
                r.main_loop_conflicts_per_kstep
            );
        }
    }
}

/// The presets' skinny products, split as the launch rule says, with the
/// bias gradient as row sums and the absorbed ReLU/dropout mask: equal to the
/// CPU reference, whichever block of a tile arrives last (the simulator runs
/// blocks in a shuffled order under `LASAGNA_SIM_STRICT=1` in CI).
#[test]
fn ptx_gemm_split_k_with_row_sums_and_mask_matches_cpu_at_the_presets_shapes() {
    // (m, n, k, trans_a, trans_b, sums, mask): mlp fc1 forward, dW2 with
    // db2, dx2 with the ReLU+dropout mask; cnn conv3's weight gradient with
    // its bias (NT), a long-K product.
    let shapes = [
        (64, 256, 784, false, true, false, false),
        (64, 256, 64, true, false, true, false),
        (64, 256, 64, false, false, false, true),
        (64, 288, 392, false, true, true, false),
        (16, 9, 3000, false, true, true, false),
    ];
    let mut worst = 0.0f64;
    for (i, &(m, n, k, ta, tb, sums, mask)) in shapes.iter().enumerate() {
        let plan = gemm_plan(m, n, k, sums).expect("plan");
        assert!(plan.splits > 1, "{m}x{n}x{k} is not split");
        let t = Case {
            m,
            n,
            k,
            trans_a: ta,
            trans_b: tb,
            alpha: 1.0,
            beta: 0.0,
            bias: false,
            relu: false,
            misalign: false,
            split: true,
            sums,
            mask,
            seed: 100 + i as u64,
        };
        worst = worst.max(check(&t).unwrap_or_else(|e| panic!("{e}")));
    }
    println!("worst |diff| / tolerance: {worst:.3e}");
}
