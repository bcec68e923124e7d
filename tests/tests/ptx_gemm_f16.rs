//! Property: `kernels-ptx/ptx/gemm_f16.ptx` (tensor cores: ldmatrix +
//! mma.m16n8k16, cp.async double buffering), run in the PTX simulator, equals
//! a CPU product of the same f16 inputs for any shape (1, non-multiples of the
//! 64 x 64 x 32 tile and of 8, non-square), all four transposes, both load
//! paths (cp.async and the per-element fallback), any alpha/beta, and never
//! reads C when beta is 0. A second test checks the traffic napkin math.
//!
//! Reference: the f16 inputs converted to f64 (exact), products and sums in
//! f64, then `alpha * acc + beta * c` in f64: the exact result up to one
//! rounding. Tolerance: the kernel's f16 products are exact in f32 and are
//! summed with K rounded f32 adds (in the simulator in k order; on a GPU in an
//! unspecified order), so per element `|err| <= K eps S` with
//! `S = sum_k |a_ik b_kj|` and eps = 2^-24 (the standard gamma_K bound), plus
//! the epilogue's `alpha *` and `fma` (2 more roundings). We allow
//! `|alpha| (K + 2) eps S + 2 eps (|alpha acc| + |beta c|) + 1e-30`.

mod ptx_common;

use lasagna_kernels::gemm_f16::{gemm_f16_launch, GEMM_F16, MODULE};
use lasagna_ptx_sim::{Arg, BufId, Device, LaunchStats, Simulator};
use proptest::prelude::*;
use ptx_common::{download_f32, launch, sim_with, upload_f32};

const EPS: f64 = 1.0 / 16_777_216.0; // 2^-24

#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    alpha: f32,
    beta: f32,
    /// Place A and B 2 bytes past a 16-byte boundary: forces the per-element path.
    misalign: bool,
    seed: u64,
}

/// Deterministic values in [-1, 1], rounded to f16 (returned as their exact f32).
fn random_f16(seed: u64, len: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x % 2001) as f32 / 1000.0 - 1.0;
            half::f16::from_f32(v).to_f32()
        })
        .collect()
}

fn upload_f16(s: &mut Simulator, v: &[f32], pad: usize) -> BufId {
    let b = s.alloc(v.len() * 2 + pad + 16).expect("alloc");
    let mut bytes = vec![0u8; pad];
    bytes.extend(
        v.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes()),
    );
    s.upload(&b, &bytes).expect("upload");
    b
}

/// Runs the kernel; A and B are given as stored (A k x m when trans_a, B n x k when trans_b).
fn run_ptx(t: &Case, a: &[f32], b: &[f32], c: &[f32]) -> (Vec<f32>, LaunchStats) {
    let mut s = sim_with(&MODULE);
    let pad = if t.misalign { 2 } else { 0 };
    let ba = upload_f16(&mut s, a, pad);
    let bb = upload_f16(&mut s, b, pad);
    let bc = upload_f32(&mut s, c);
    let l = gemm_f16_launch(t.m, t.n, t.k).expect("launch rule");
    let stats = launch(
        &mut s,
        &GEMM_F16,
        l,
        &[
            Arg::PtrAt(ba, pad as u64),
            Arg::PtrAt(bb, pad as u64),
            Arg::Ptr(bc),
            Arg::U32(t.m as u32),
            Arg::U32(t.n as u32),
            Arg::U32(t.k as u32),
            Arg::F32(t.alpha),
            Arg::F32(t.beta),
            Arg::U32(t.trans_a as u32),
            Arg::U32(t.trans_b as u32),
        ],
    );
    (download_f32(&mut s, bc, t.m * t.n), stats)
}

/// Checks one case; returns the worst |err| / tolerance.
fn check(t: &Case) -> Result<f64, String> {
    let (m, n, k) = (t.m, t.n, t.k);
    let a = random_f16(t.seed, m * k);
    let b = random_f16(t.seed + 1, k * n);
    let c0 = random_f16(t.seed + 2, m * n);
    let at = |i: usize, p: usize| {
        f64::from(if t.trans_a {
            a[p * m + i]
        } else {
            a[i * k + p]
        })
    };
    let bt = |p: usize, j: usize| {
        f64::from(if t.trans_b {
            b[j * k + p]
        } else {
            b[p * n + j]
        })
    };
    // beta == 0: C holds NaN, which must not reach the result.
    let c_in: Vec<f32> = if t.beta == 0.0 {
        vec![f32::NAN; m * n]
    } else {
        c0.clone()
    };
    let (got, _) = run_ptx(t, &a, &b, &c_in);
    let (alpha, beta) = (f64::from(t.alpha), f64::from(t.beta));
    let mut worst = 0f64;
    for i in 0..m {
        for j in 0..n {
            let (mut acc, mut sabs) = (0f64, 0f64);
            for p in 0..k {
                let x = at(i, p) * bt(p, j);
                acc += x;
                sabs += x.abs();
            }
            let cterm = if t.beta == 0.0 {
                0.0
            } else {
                beta * f64::from(c0[i * n + j])
            };
            let want = alpha * acc + cterm;
            let tol = alpha.abs() * (k as f64 + 2.0) * EPS * sabs
                + 2.0 * EPS * ((alpha * acc).abs() + cterm.abs())
                + 1e-30;
            let g = f64::from(got[i * n + j]);
            let err = (g - want).abs();
            if err.is_nan() || err > tol {
                return Err(format!(
                    "{t:?}: C[{i}][{j}] = {g}, want {want} (|err| {err:.3e} > tol {tol:.3e})"
                ));
            }
            worst = worst.max(err / tol);
        }
    }
    Ok(worst)
}

fn case(m: usize, n: usize, k: usize, ta: bool, tb: bool, misalign: bool) -> Case {
    Case {
        m,
        n,
        k,
        trans_a: ta,
        trans_b: tb,
        alpha: 1.0,
        beta: 0.0,
        misalign,
        seed: (m * 131 + n * 17 + k) as u64,
    }
}

/// Property: the edge shapes (1, tile +- 1, k not a multiple of 8 or 16 or 32)
/// match in every transpose, on both load paths.
#[test]
fn ptx_gemm_f16_matches_cpu_on_edge_shapes_all_transposes() {
    let mut worst = 0f64;
    let shapes = [
        (1, 1, 1),
        (1, 70, 3),
        (65, 1, 33),
        (64, 64, 32),
        (65, 63, 47),
        (17, 130, 8),
        (70, 9, 100),
    ];
    for &(m, n, k) in &shapes {
        for ta in [false, true] {
            for tb in [false, true] {
                for misalign in [false, true] {
                    let w =
                        check(&case(m, n, k, ta, tb, misalign)).unwrap_or_else(|e| panic!("{e}"));
                    worst = worst.max(w);
                }
            }
        }
    }
    println!("worst |err| / tolerance: {worst:.3e}");
}

#[test]
fn ptx_gemm_f16_with_k_zero_scales_c() {
    let mut t = case(5, 7, 0, false, true, false);
    t.beta = 0.5;
    t.alpha = 3.0;
    check(&t).unwrap_or_else(|e| panic!("{e}"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Property: any shape up to 2 x 3 tiles, any transpose, alpha/beta and load path.
    #[test]
    fn ptx_gemm_f16_matches_cpu(
        m in 1usize..=130, n in 1usize..=130, k in 0usize..=100,
        trans_a: bool, trans_b: bool, misalign: bool,
        alpha in prop::sample::select(vec![1.0f32, -0.5, 2.0]),
        beta in prop::sample::select(vec![0.0f32, 1.0, -0.25]),
        seed in 0u64..1000,
    ) {
        let t = Case { m, n, k, trans_a, trans_b, alpha, beta, misalign, seed };
        prop_assert!(check(&t).is_ok(), "{}", check(&t).unwrap_err());
    }
}

/// Counters at `mn x mn x k` with beta 0 (every global read is a tile load).
fn perf_stats(mn: usize, k: usize, ta: bool, tb: bool) -> LaunchStats {
    let t = case(mn, mn, k, ta, tb, false);
    let (a, b) = (random_f16(1, mn * k), random_f16(2, k * mn));
    run_ptx(&t, &a, &b, &vec![0.0; mn * mn]).1
}

/// Property: at 256^3 the kernel does exactly m n k multiply-adds on tensor
/// cores (no scalar FMA), reads 2 * 64 * 32 f16 per 64 * 64 * 32 FMAs, i.e.
/// 1/32 element (1/16 byte) per FMA, does 4 ldmatrix.x4 per 8 mma per warp,
/// and has no shared-memory bank conflicts in any transpose (swizzled tiles).
#[test]
fn ptx_gemm_f16_256_meets_its_traffic_bounds() {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let s = perf_stats(256, 256, ta, tb);
        let fma = s.fma_equivalent();
        let bytes_per_fma = s.global_bytes_read as f64 / fma as f64;
        println!(
            "trans_a {ta} trans_b {tb}: fma-equivalent {fma} (mma thread-insts {}, fma {}), global bytes/FMA {bytes_per_fma:.5}, \
             elements/FMA {:.5}, ldmatrix+ld.shared {} ({:.5}/FMA), cp.async {} , bank conflicts {}",
            s.mma, s.fma, bytes_per_fma / 2.0, s.shared_load, s.shared_load as f64 / fma as f64,
            s.global_load, s.bank_conflicts
        );
        assert_eq!(fma, 256 * 256 * 256);
        assert_eq!(s.fma, 0, "the product runs on mma only");
        assert!(bytes_per_fma <= 1.0 / 16.0, "{bytes_per_fma}");
        // One ldmatrix (32 lanes) per 2 mma (2048 FMA each): 1/128 lane-load per FMA.
        assert!(s.shared_load as f64 / fma as f64 <= 1.0 / 128.0);
        assert_eq!(s.bank_conflicts, 0);
        // Every tile load is one 16-byte cp.async.
        assert_eq!(s.global_bytes_read, 16 * s.global_load);
    }
}
