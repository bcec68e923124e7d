//! GEMM on the CPU through the `gemm` crate (packed, SIMD micro-kernels),
//! split over the pool's threads once the product is large enough to pay
//! for the hand-off.

use crate::backend::Gemm;

/// Multiply-adds per part below which splitting does not pay. The pool's
/// hand-off is about a microsecond, so even the MLP's 64x256x64 products
/// (1M multiply-adds, some 30 us) gain from two halves: with 2M here an
/// MLP epoch took 0.52 s, with 512K 0.49 s (2 cores, 2026-12-07).
const PART_MIN_FMAS: usize = 1 << 19;

/// A raw pointer to C that the parts may share: each writes its own block.
#[derive(Clone, Copy)]
struct COut(*mut f32);
// SAFETY: parts write disjoint blocks of C (rows or columns), and `run`
// returns only after every part is done.
unsafe impl Send for COut {}
unsafe impl Sync for COut {}

impl COut {
    /// Through a method, so closures capture the whole (Sync) `COut`.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `c = alpha * op(a) op(b) + beta * c`; the caller has checked the lengths.
/// Each element is computed by one thread in the same order, so the result
/// does not depend on the thread count.
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    if a.len() < m * k || b.len() < k * n || c.len() < m * n {
        debug_assert!(false, "gemm: short buffers");
        return;
    }
    let fmas = m.saturating_mul(n).saturating_mul(k);
    let parts = (fmas / PART_MIN_FMAS)
        .min(super::threads::threads())
        .min(m.max(n));
    let out = COut(c.as_mut_ptr());
    if parts < 2 {
        // SAFETY: lengths checked above; `c` holds all of C.
        unsafe { gemm_block(g, a, b, out.ptr(), 0..m, 0..n) };
        return;
    }
    // Each part packs all of the operand it does not split: rows split
    // repeats B's k x n packing in every part, columns split repeats A's
    // m x k. So split the longer side of C (for the MLP's 64 x 256 x 784
    // forward that is the columns: each thread packs half of the weights).
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    let chunk = len.div_ceil(parts);
    super::threads::run(parts, |i| {
        let (lo, hi) = ((i * chunk).min(len), ((i + 1) * chunk).min(len));
        let (rows, cols) = if by_rows {
            (lo..hi, 0..n)
        } else {
            (0..m, lo..hi)
        };
        // SAFETY: lengths checked above; part i writes only its block.
        unsafe { gemm_block(g, a, b, out.ptr(), rows, cols) }
    });
}

/// The block `rows x cols` of C (whose first element is at `c`), on the
/// calling thread.
///
/// # Safety
/// `a` and `b` must hold `m*k` and `k*n` elements and `c` must address the
/// `m*n` elements of C, of which no other thread writes this block.
unsafe fn gemm_block(
    g: &Gemm,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) {
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    let (m, n, k) = (g.m, g.n, g.k);
    // Row-major strides: op(A)[i, j] is at i*k + j, or j*m + i when stored transposed.
    let (a_rs, a_cs) = if g.trans_a {
        (1, m as isize)
    } else {
        (k as isize, 1)
    };
    let (b_rs, b_cs) = if g.trans_b {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    // The `gemm` crate computes dst = alpha*dst + beta*lhs*rhs, so our
    // (alpha, beta) map to its (beta, alpha). Its own threading stays off:
    // waking rayon's sleeping workers costs more than it gains here.
    gemm::gemm(
        rows.len(),
        cols.len(),
        k,
        c.offset(rows.start as isize * n as isize + cols.start as isize),
        1,
        n as isize,
        g.beta != 0.0,
        a.as_ptr().offset(rows.start as isize * a_rs),
        a_cs,
        a_rs,
        b.as_ptr().offset(cols.start as isize * b_cs),
        b_cs,
        b_rs,
        g.beta,
        g.alpha,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = 0.0f64;
                for p in 0..g.k {
                    let av = if g.trans_a {
                        a[p * g.m + i]
                    } else {
                        a[i * g.k + p]
                    };
                    let bv = if g.trans_b {
                        b[j * g.k + p]
                    } else {
                        b[p * g.n + j]
                    };
                    s += av as f64 * bv as f64;
                }
                let old = if g.beta != 0.0 {
                    g.beta * c[i * g.n + j]
                } else {
                    0.0
                };
                c[i * g.n + j] = g.alpha * s as f32 + old;
            }
        }
    }

    #[test]
    fn gemm_matches_a_naive_product_for_every_transpose_and_beta() {
        let mut s = crate::philox::Stream::new(3, 0);
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (64, 256, 784),
            (17, 10, 64),
            (130, 3, 2),
            (8, 2048, 512),
        ] {
            for ta in [false, true] {
                for tb in [false, true] {
                    for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-1.0, 0.25)] {
                        let g = Gemm {
                            m,
                            n,
                            k,
                            trans_a: ta,
                            trans_b: tb,
                            alpha,
                            beta,
                        };
                        let a: Vec<f32> = (0..m * k).map(|_| s.uniform_range(-1.0, 1.0)).collect();
                        let b: Vec<f32> = (0..k * n).map(|_| s.uniform_range(-1.0, 1.0)).collect();
                        let c0: Vec<f32> = (0..m * n).map(|_| s.uniform_range(-1.0, 1.0)).collect();
                        let (mut c1, mut c2) = (c0.clone(), c0.clone());
                        gemm(&g, &a, &b, &mut c1);
                        naive(&g, &a, &b, &mut c2);
                        let worst = c1
                            .iter()
                            .zip(&c2)
                            .map(|(x, y)| (x - y).abs())
                            .fold(0.0f32, f32::max);
                        assert!(
                            worst <= 1e-4 * (k as f32).sqrt(),
                            "{g:?}: worst |diff| {worst}"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    /// How a product is split changes only the last bits: the `gemm` crate
    /// picks its K blocking by the block's shape, so a block's sums may be
    /// rounded in another order than the whole product's. The same thread
    /// count gives the same bits on every run.
    #[test]
    fn a_split_product_matches_the_unsplit_one_and_repeats_exactly() {
        let mut s = crate::philox::Stream::new(9, 0);
        for &(m, n, k, ta, tb) in &[
            (64, 256, 784, false, true),
            (784, 256, 64, true, false),
            (8, 2048, 512, false, false),
            (64, 10, 8192, false, true),
        ] {
            let g = Gemm {
                m,
                n,
                k,
                trans_a: ta,
                trans_b: tb,
                alpha: 1.0,
                beta: 0.5,
            };
            let a: Vec<f32> = (0..m * k).map(|_| s.uniform_range(-1.0, 1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| s.uniform_range(-1.0, 1.0)).collect();
            let c0: Vec<f32> = (0..m * n).map(|_| s.uniform_range(-1.0, 1.0)).collect();
            let mut whole = c0.clone();
            // SAFETY: the buffers hold the sizes `g` names.
            unsafe { gemm_block(&g, &a, &b, whole.as_mut_ptr(), 0..m, 0..n) };
            let bound = 1e-6 * (k as f32).sqrt() * whole.iter().fold(1.0f32, |w, v| w.max(v.abs()));
            for (parts, by_rows) in (2..=8).flat_map(|p| [(p, true), (p, false)]) {
                let mut split = c0.clone();
                let len = if by_rows { m } else { n };
                let chunk = len.div_ceil(parts);
                for i in 0..parts {
                    let (lo, hi) = ((i * chunk).min(len), ((i + 1) * chunk).min(len));
                    let (r, c) = if by_rows {
                        (lo..hi, 0..n)
                    } else {
                        (0..m, lo..hi)
                    };
                    // SAFETY: as above; the blocks are disjoint.
                    unsafe { gemm_block(&g, &a, &b, split.as_mut_ptr(), r, c) };
                }
                let worst = whole
                    .iter()
                    .zip(&split)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    worst <= bound,
                    "{m}x{n}x{k} in {parts} parts (rows: {by_rows}): worst |diff| {worst:e} > {bound:e}"
                );
            }
            let (mut once, mut again) = (c0.clone(), c0.clone());
            gemm(&g, &a, &b, &mut once);
            gemm(&g, &a, &b, &mut again);
            assert!(
                once.iter()
                    .zip(&again)
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{m}x{n}x{k}: two runs through the pool differ"
            );
        }
    }
}
