//! Fused log-softmax + negative log-likelihood with label smoothing
//! (PyTorch's `CrossEntropyLoss(label_smoothing = eps)`, mean reduction).
//!
//! logits is (rows, cols), targets is (rows), grad is (rows, cols).
//!
//! With `lse = log(sum_c exp(x_c))`, `-log p_c = lse - x_c`, so the smoothed
//! loss of a row is `lse - (1 - eps) * x_t - eps * mean_c(x_c)`: one pass for
//! the row maximum, one for the log-sum-exp, one for the gradient. Fusing the
//! two ops means `log p` is never rounded through a probability, so a logit of
//! 1000 gives a finite loss where `log(softmax(x))` would give `-inf`.

/// Returns (summed loss over rows, rows whose first argmax equals the target)
/// and writes `d(mean loss)/dlogits = (softmax - q) / rows` into `grad`, with
/// `q = (1 - eps) * onehot(target) + eps / cols`.
///
/// Every target must be below `cols`; the backend checks that before calling.
pub fn forward_backward(
    logits: &[f32],
    targets: &[u32],
    cols: usize,
    smoothing: f32,
    grad: &mut [f32],
) -> (f64, usize) {
    if cols == 0 {
        return (0.0, 0);
    }
    let rows = targets.len();
    debug_assert_eq!(logits.len(), rows * cols);
    debug_assert_eq!(grad.len(), rows * cols);
    let eps = smoothing as f64;
    let inv_rows = 1.0 / rows.max(1) as f64;
    let off = eps / cols as f64;
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    for ((x, g), &t) in logits
        .chunks_exact(cols)
        .zip(grad.chunks_exact_mut(cols))
        .zip(targets)
    {
        let t = t as usize;
        let (mut arg, mut max) = (0usize, x[0]);
        for (c, &v) in x.iter().enumerate().skip(1) {
            // Strict `>` keeps the first of equal maxima, as torch.argmax does.
            if v > max {
                arg = c;
                max = v;
            }
        }
        correct += usize::from(arg == t);
        // Accumulated in f64: the reference should not lose digits that a
        // GPU kernel's tolerance then has to absorb.
        let m = max as f64;
        let sum_exp: f64 = x.iter().map(|&v| (v as f64 - m).exp()).sum();
        let lse = m + sum_exp.ln();
        let mean_x = x.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        loss += lse - (1.0 - eps) * x[t] as f64 - eps * mean_x;
        for (c, (gc, &v)) in g.iter_mut().zip(x).enumerate() {
            let q = if c == t { 1.0 - eps + off } else { off };
            *gc = (((v as f64 - lse).exp() - q) * inv_rows) as f32;
        }
    }
    (loss, correct)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mean_loss(logits: &[f32], targets: &[u32], cols: usize, eps: f32) -> f64 {
        let mut g = vec![0.0; logits.len()];
        forward_backward(logits, targets, cols, eps, &mut g).0 / targets.len() as f64
    }

    #[test]
    fn value_and_gradient_match_a_hand_computed_row() {
        let mut g = [0.0f32; 3];
        let (loss, correct) = forward_backward(&[1.0, 2.0, 3.0], &[2], 3, 0.0, &mut g);
        let e = [1f64.exp(), 2f64.exp(), 3f64.exp()];
        let z: f64 = e.iter().sum();
        assert!((loss - (z.ln() - 3.0)).abs() < 1e-12, "loss {loss}");
        assert_eq!(correct, 1);
        let want = [e[0] / z, e[1] / z, e[2] / z - 1.0];
        for (g, w) in g.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "grad {g} vs {w}");
        }
    }

    #[test]
    fn label_smoothing_matches_pytorch_formula() {
        let x = [0.5f32, -1.0, 2.0, 0.0];
        // The op takes eps as f32; compare with the same value.
        let eps = 0.1f32 as f64;
        let z: f64 = x.iter().map(|&v| (v as f64).exp()).sum();
        let nll = |c: usize| z.ln() - x[c] as f64;
        let want = (1.0 - eps) * nll(1) + eps * (0..4).map(nll).sum::<f64>() / 4.0;
        let mut g = [0.0f32; 4];
        let (loss, correct) = forward_backward(&x, &[1], 4, eps as f32, &mut g);
        assert!((loss - want).abs() < 1e-9, "{loss} vs {want}");
        assert_eq!(correct, 0);
        // Gradient rows of a softmax minus a distribution sum to zero.
        assert!(g.iter().map(|&v| v as f64).sum::<f64>().abs() < 1e-6);
        assert!((g[1] as f64 - ((x[1] as f64).exp() / z - (1.0 - eps + eps / 4.0))).abs() < 1e-6);
    }

    #[test]
    fn gradient_is_of_the_mean_over_rows() {
        let x = [1.0f32, 2.0, 3.0, 1.0, 2.0, 3.0];
        let mut g = [0.0f32; 6];
        let (loss, _) = forward_backward(&x, &[2, 2], 3, 0.0, &mut g);
        let mut g1 = [0.0f32; 3];
        let (loss1, _) = forward_backward(&x[..3], &[2], 3, 0.0, &mut g1);
        assert!((loss - 2.0 * loss1).abs() < 1e-12);
        for (a, b) in g[..3].iter().zip(&g1) {
            assert!((a * 2.0 - b).abs() < 1e-7);
        }
    }

    #[test]
    fn extreme_logits_stay_finite() {
        let x = [1000.0f32, -1000.0, 0.0, 1000.0, -1000.0, 0.0];
        let mut g = [0.0f32; 6];
        let (loss, correct) = forward_backward(&x, &[0, 1], 3, 0.1, &mut g);
        assert!(loss.is_finite(), "loss {loss}");
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        // lse is 1000 in both rows; mean(x) is 0: row 0 costs 1000 - 0.9 * 1000,
        // row 1 costs 1000 + 0.9 * 1000.
        assert!((loss - 2000.0).abs() < 1e-9, "loss {loss}");
        assert_eq!(correct, 1);
    }

    #[test]
    fn argmax_counts_first_maximum_on_ties() {
        let x = [2.0f32, 2.0, 1.0, 0.0, 5.0, 5.0, 3.0, 3.0, 3.0];
        let mut g = [0.0f32; 9];
        let (_, correct) = forward_backward(&x, &[0, 1, 0], 3, 0.0, &mut g);
        // Row 0: tie at 0 and 1 -> 0 (right); row 1: tie at 1 and 2 -> 1 (right); row 2: all equal -> 0 (right).
        assert_eq!(correct, 3);
        let (_, correct) = forward_backward(&x, &[1, 2, 2], 3, 0.0, &mut g);
        assert_eq!(correct, 0);
    }

    proptest! {
        #[test]
        fn gradient_matches_central_finite_differences(
            rows in 1usize..4,
            cols in 2usize..6,
            eps in prop_oneof![Just(0.0f32), 0.0f32..0.5],
            seed in any::<u64>(),
        ) {
            let mut s = crate::philox::Stream::new(seed, 0);
            let x: Vec<f32> = (0..rows * cols).map(|_| 3.0 * s.normal()).collect();
            let t: Vec<u32> = (0..rows).map(|_| s.below(cols as u32)).collect();
            let mut g = vec![0.0f32; x.len()];
            forward_backward(&x, &t, cols, eps, &mut g);
            let h = 1e-2f32;
            for i in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd = (mean_loss(&xp, &t, cols, eps) - mean_loss(&xm, &t, cols, eps)) / (xp[i] - xm[i]) as f64;
                prop_assert!((fd - g[i] as f64).abs() < 1e-3 + 1e-3 * fd.abs(), "i {} fd {} grad {}", i, fd, g[i]);
            }
        }
    }
}
