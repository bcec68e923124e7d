//! GEMM on the CPU through the `gemm` crate (packed, SIMD micro-kernels),
//! multithreaded with rayon once the product is large enough to pay for it.

use crate::backend::Gemm;

/// From this many multiply-adds on, C's rows are split over two cores
/// (see `threads`): the MLP's 64x784x256 products gain, 64x256x64 do not.
const SPLIT_MIN_FMAS: usize = 1 << 22;

/// `c = alpha * op(a) op(b) + beta * c`; the caller has checked the lengths.
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let (m, n, k) = (g.m, g.n, g.k);
    if m == 0 || n == 0 {
        return;
    }
    if a.len() < m * k || b.len() < k * n || c.len() < m * n {
        debug_assert!(false, "gemm: short buffers");
        return;
    }
    if m * n * k < SPLIT_MIN_FMAS || m < 2 {
        // SAFETY: lengths checked above; `c` holds all m rows.
        unsafe { gemm_rows(g, a, b, c.as_mut_ptr(), 0, m) };
        return;
    }
    let half = m / 2;
    let (top, bottom) = c[..m * n].split_at_mut(half * n);
    super::threads::join(
        // SAFETY: lengths checked above; each half writes its own rows of C.
        || unsafe { gemm_rows(g, a, b, top.as_mut_ptr(), 0, half) },
        || unsafe { gemm_rows(g, a, b, bottom.as_mut_ptr(), half, m) },
    );
}

/// Rows `r0..r1` of C, written through `c` (which points at row `r0`), on
/// the calling thread.
///
/// # Safety
/// `a` and `b` must hold `m*k` and `k*n` elements and `c` must address
/// `(r1 - r0) * n` writable elements.
unsafe fn gemm_rows(g: &Gemm, a: &[f32], b: &[f32], c: *mut f32, r0: usize, r1: usize) {
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
        r1 - r0,
        n,
        k,
        c,
        1,
        n as isize,
        g.beta != 0.0,
        a.as_ptr().offset(r0 as isize * a_rs),
        a_cs,
        a_rs,
        b.as_ptr(),
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
