//! BatchNorm's inner loops over one `(n, c)` row of `S` positions, compiled
//! for AVX2+FMA as well as the baseline and chosen at run time.
//!
//! The `f64` sums run in eight lanes: one running sum is a serial chain of
//! dependent adds that neither the compiler nor the CPU can overlap, and
//! made the reference's statistics passes slower than the convolution GEMMs
//! they follow. Eight `f64` lanes change only the summation order of `f64`
//! partial sums (errors near 1e-16 relative, far below `f32` precision).
//! The `f32` expressions are the reference's own, and Rust never contracts
//! `a * b + c` into an FMA, so the outputs keep their exact values.

const LANES: usize = 8;

/// `sum(v)` in `f64`.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
pub fn sum(v: &[f32]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&x| x as f64).sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `sum((v - mean)^2)` in `f64`.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
pub fn sum_sq_dev(v: &[f32], mean: f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f64 = chunks
        .remainder()
        .iter()
        .map(|&x| (x as f64 - mean) * (x as f64 - mean))
        .sum();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            let t = x as f64 - mean;
            *a += t * t;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `y = (x - mean) * scale + shift`, then `max(y, 0)` with `relu`, in one pass.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
pub fn affine(x: &[f32], y: &mut [f32], mean: f32, scale: f32, shift: f32, relu: bool) {
    if relu {
        // The ReLU layer's own expression (`activation::forward`), so the
        // fused op is bit-identical to BatchNorm followed by ReLU.
        for (y, &x) in y.iter_mut().zip(x) {
            *y = ((x - mean) * scale + shift).max(0.0);
        }
    } else {
        for (y, &x) in y.iter_mut().zip(x) {
            *y = (x - mean) * scale + shift;
        }
    }
}

/// `(sum(dy), sum(dy * xh))` in `f64`, with `xh = (x - mean) * invstd` in `f32`.
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
pub fn grad_sums(x: &[f32], dy: &[f32], mean: f32, invstd: f32) -> (f64, f64) {
    let (mut s, mut sx) = ([0.0f64; LANES], [0.0f64; LANES]);
    let (xc, gc) = (x.chunks_exact(LANES), dy.chunks_exact(LANES));
    let (mut ts, mut tsx) = (0.0f64, 0.0f64);
    for (&x, &g) in xc.remainder().iter().zip(gc.remainder()) {
        ts += g as f64;
        tsx += g as f64 * ((x - mean) * invstd) as f64;
    }
    for (xs, gs) in xc.zip(gc) {
        for l in 0..LANES {
            let g = gs[l] as f64;
            s[l] += g;
            sx[l] += g * ((xs[l] - mean) * invstd) as f64;
        }
    }
    (s.iter().sum::<f64>() + ts, sx.iter().sum::<f64>() + tsx)
}

/// `dx = k * (dy - mean_dy - xh * mean_dy_xh)`, `xh` as in [`grad_sums`].
#[multiversion::multiversion(targets("x86_64+avx2+fma"))]
pub fn grad_dx(
    x: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    mean: f32,
    invstd: f32,
    k: f32,
    mean_dy: f32,
    mean_dy_xh: f32,
) {
    for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
        let xh = (x - mean) * invstd;
        *dx = k * (g - mean_dy - xh * mean_dy_xh);
    }
}
