//! Gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`
//! defines it (<https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html>):
//! `total_norm = sqrt(sum of squares over all gradients)`,
//! `coef = max_norm / (total_norm + 1e-6)`, and every gradient is scaled by
//! `min(coef, 1)`. The sum is split into a per-buffer reduction
//! ([`sum_squares`]) and a per-buffer scale ([`scale_to_norm`]) so the total
//! never leaves the device.

/// Partial sums kept apart so the additions vectorize and the `f64` chain is
/// not one long dependency.
const LANES: usize = 8;

/// `sum(x^2)`, accumulated in `f64`: a 235k-parameter model's gradients
/// summed in `f32` lose several digits.
pub fn sum_squares(x: &[f32]) -> f64 {
    let mut acc = [0.0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            let v = v as f64;
            *a += v * v;
        }
    }
    let tail: f64 = tail.iter().map(|&v| (v as f64) * (v as f64)).sum();
    acc.iter().sum::<f64>() + tail
}

/// Scales `x` by `max_norm / (sqrt(sumsq) + 1e-6)` when that is below 1.
///
/// The arithmetic is `f32`, as PyTorch's on `f32` gradients. The 1e-6 is
/// PyTorch's, and keeps an all-zero gradient from dividing by zero. A NaN or
/// infinite norm makes a NaN coefficient (or 0 * inf), which is applied, so
/// the gradients turn NaN as they do in PyTorch (error_if_nonfinite=False)
/// and the trainer's non-finite check reports it.
pub fn scale_to_norm(x: &mut [f32], sumsq: f32, max_norm: f32) {
    let coef = max_norm / (sumsq.sqrt() + 1e-6);
    // NaN is tested for explicitly because `coef < 1` is false for it.
    if coef < 1.0 || coef.is_nan() {
        x.iter_mut().for_each(|v| *v *= coef);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_squares_covers_the_lanes_and_the_tail() {
        // 1^2 + 2^2 + ... + 11^2 = 11 * 12 * 23 / 6 = 506 (8 lanes + 3 tail)
        let x: Vec<f32> = (1..=11).map(|i| i as f32).collect();
        assert_eq!(sum_squares(&x), 506.0);
        assert_eq!(sum_squares(&[]), 0.0);
    }

    #[test]
    fn sum_squares_keeps_small_terms_that_f32_would_drop() {
        // 1 + 1e6 * (1e-4)^2 = 1.01 (to 1e-9: 1e-4 is inexact in f32); an f32 sum
        // would stay at 1, since 1 + 1e-8 rounds to 1 every time.
        let mut x = vec![1e-4f32; 1_000_000];
        x.insert(0, 1.0);
        let s = sum_squares(&x);
        assert!((s - 1.01).abs() < 1e-8, "{s}");
    }

    #[test]
    fn gradient_above_max_norm_is_scaled_to_it() {
        // |(3, 4)| = 5; coef = 1 / (5 + 1e-6) = 0.19999996
        // -> (0.59999988, 0.79999984), whose norm is 0.99999980 ~ max_norm.
        let mut x = vec![3.0f32, 4.0];
        scale_to_norm(&mut x, 25.0, 1.0);
        assert!((x[0] as f64 - 3.0 / 5.000001).abs() < 1e-7, "{x:?}");
        assert!((x[1] as f64 - 4.0 / 5.000001).abs() < 1e-7, "{x:?}");
    }

    #[test]
    fn gradient_below_max_norm_is_untouched() {
        // |(0.3, 0.4)| = 0.5; coef = 1 / 0.500001 > 1 -> no change, bit for bit.
        let mut x = vec![0.3f32, 0.4];
        scale_to_norm(&mut x, 0.25, 1.0);
        assert_eq!(x, vec![0.3f32, 0.4]);
    }

    #[test]
    fn zero_gradient_stays_zero_and_nan_norm_propagates() {
        let mut x = vec![0.0f32; 3];
        scale_to_norm(&mut x, 0.0, 1.0);
        assert_eq!(x, vec![0.0; 3]);
        let mut x = vec![1.0f32; 3];
        scale_to_norm(&mut x, f32::NAN, 1.0);
        assert!(x.iter().all(|v| v.is_nan()));
    }
}
