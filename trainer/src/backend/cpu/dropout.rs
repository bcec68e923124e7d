//! Inverted dropout with a counter-based mask.
//!
//! The mask is never stored: element `i` is kept iff
//! `to_unit(random_u32(seed, offset, i / group)) >= p`, so backward (and the
//! GPU, and the simulator) regenerate exactly the forward's mask from
//! `(seed, offset)`. That costs one Philox block per four elements instead of
//! a mask buffer per layer and its memory traffic.

use crate::philox::{philox4x32_10_x8, random_u32, to_unit};

/// Whether element-group `g` is kept.
#[inline]
pub fn keep(p: f32, seed: u64, offset: u64, g: u64) -> bool {
    to_unit(random_u32(seed, offset, g)) >= p
}

/// `y = x * mask / (1 - p)`; used for forward (on x) and backward (on dy).
pub fn apply(p: f32, seed: u64, offset: u64, group: usize, x: &[f32], y: &mut [f32]) {
    if p <= 0.0 {
        y.copy_from_slice(x);
        return;
    }
    if p >= 1.0 {
        y.fill(0.0);
        return;
    }
    let scale = 1.0 / (1.0 - p);
    let group = group.max(1);
    if group == 1 {
        let n = y.len().min(x.len());
        let parts = (n / PART_MIN).min(super::threads::threads());
        if parts < 2 {
            blocked(p, scale, seed, offset, 0, &x[..n], &mut y[..n]);
            return;
        }
        // Whole 32-element rounds per part, so each element draws from the
        // same Philox block as unsplit: the same bits for any split.
        let per = n.div_ceil(parts).div_ceil(32) * 32;
        let pieces: Vec<(&[f32], &mut [f32])> =
            x[..n].chunks(per).zip(y[..n].chunks_mut(per)).collect();
        super::threads::run_pieces(pieces, |i, (xs, ys)| {
            blocked(p, scale, seed, offset, (i * per / 32) as u64, xs, ys)
        });
        return;
    }
    for (g, (yc, xc)) in y.chunks_mut(group).zip(x.chunks(group)).enumerate() {
        let k = if keep(p, seed, offset, g as u64) {
            scale
        } else {
            0.0
        };
        for (y, &x) in yc.iter_mut().zip(xc) {
            *y = x * k;
        }
    }
}

/// Elements per part below which dropout stays on one thread.
const PART_MIN: usize = 1 << 13;

/// Group size 1: 32 elements per round of eight SIMD Philox blocks. Element
/// `i` takes lane `i % 4` of block `i / 4`, exactly as `keep` defines; `x`
/// and `y` start at round `first_round` (element `32 * first_round`).
// Compiled for AVX2+FMA as well as the baseline and chosen at run time: the
// loop is hot and vectorizes twice as wide, and results are identical
// (Rust never contracts a*b+c into an FMA on its own).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma"
))]
fn blocked(p: f32, scale: f32, seed: u64, offset: u64, first_round: u64, x: &[f32], y: &mut [f32]) {
    let key = [seed as u32, (seed >> 32) as u32];
    let (o0, o1) = (offset as u32, (offset >> 32) as u32);
    for (chunk, (yc, xc)) in y.chunks_mut(32).zip(x.chunks(32)).enumerate() {
        let first = (first_round + chunk as u64) * 8;
        let mut c = [[0u32; 8]; 4];
        #[allow(clippy::needless_range_loop)] // lane loops are what the vectorizer wants
        for l in 0..8 {
            let b = first + l as u64;
            c[0][l] = b as u32;
            c[1][l] = (b >> 32) as u32;
            c[2][l] = o0;
            c[3][l] = o1;
        }
        let r = philox4x32_10_x8(c, key);
        for (i, (y, &x)) in yc.iter_mut().zip(xc).enumerate() {
            *y = if to_unit(r[i % 4][i / 4]) >= p {
                x * scale
            } else {
                0.0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_fraction_is_within_a_binomial_bound_and_scale_is_inverse() {
        let n = 100_000;
        let p = 0.3f32;
        let x = vec![1.0f32; n];
        let mut y = vec![0.0f32; n];
        apply(p, 42, 7, 1, &x, &mut y);
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64;
        let expect = n as f64 * (1.0 - p as f64);
        let sd = (n as f64 * p as f64 * (1.0 - p as f64)).sqrt();
        assert!(
            (kept - expect).abs() < 5.0 * sd,
            "kept {kept}, expected {expect} ± {}",
            5.0 * sd
        );
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        // Same (seed, offset) -> same mask; another offset -> another mask.
        let mut y2 = vec![0.0f32; n];
        apply(p, 42, 7, 1, &x, &mut y2);
        assert_eq!(y, y2);
        // The blocked fast path draws exactly what `keep` defines per element.
        for (i, &v) in y.iter().enumerate().take(1000) {
            assert_eq!(v != 0.0, keep(p, 42, 7, i as u64), "element {i}");
        }
        apply(p, 42, 8, 1, &x, &mut y2);
        assert_ne!(y, y2);
        // The split path (n is above PART_MIN) agrees with `keep` everywhere.
        for (i, &v) in y.iter().enumerate().skip(n - 1000) {
            assert_eq!(v != 0.0, keep(p, 42, 7, i as u64), "element {i}");
        }
    }

    #[test]
    fn grouped_dropout_drops_whole_channels() {
        let x = vec![1.0f32; 64 * 9];
        let mut y = vec![0.0f32; 64 * 9];
        apply(0.5, 1, 0, 9, &x, &mut y);
        for ch in y.chunks(9) {
            assert!(ch.iter().all(|&v| v == ch[0]));
        }
    }
}
