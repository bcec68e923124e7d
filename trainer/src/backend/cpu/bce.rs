//! Binary cross-entropy on logits (PyTorch's `BCEWithLogitsLoss`, mean
//! reduction over all elements).
//!
//! logits, target and grad are (n).
//!
//! The loss uses `max(x, 0) - x t + log(1 + exp(-|x|))`, the form PyTorch
//! uses: `exp` only ever sees a non-positive argument, so a logit of ±1000
//! neither overflows nor takes the log of zero as `log(sigmoid(x))` would.

/// `1 / (1 + exp(-x))` without overflowing `exp` for large `|x|`.
#[inline]
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Returns (summed loss, count of `(logit > 0) == (target > 0.5)`) and writes
/// `d(mean loss)/dlogits = (sigmoid(x) - t) / n`.
pub fn forward_backward(logits: &[f32], target: &[f32], grad: &mut [f32]) -> (f64, usize) {
    debug_assert_eq!(logits.len(), target.len());
    debug_assert_eq!(logits.len(), grad.len());
    let inv_n = 1.0 / logits.len().max(1) as f64;
    let mut loss = 0.0f64;
    let mut correct = 0usize;
    for ((g, &x), &t) in grad.iter_mut().zip(logits).zip(target) {
        let (xd, td) = (x as f64, t as f64);
        loss += xd.max(0.0) - xd * td + (-xd.abs()).exp().ln_1p();
        *g = ((sigmoid(xd) - td) * inv_n) as f32;
        correct += usize::from((x > 0.0) == (t > 0.5));
    }
    (loss, correct)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn value_matches_the_definition() {
        let x = [0.3f32, -1.2, 2.0];
        let t = [1.0f32, 0.0, 0.25];
        let want: f64 = x
            .iter()
            .zip(&t)
            .map(|(&x, &t)| {
                let p = 1.0 / (1.0 + (-(x as f64)).exp());
                -(t as f64 * p.ln() + (1.0 - t as f64) * (1.0 - p).ln())
            })
            .sum();
        let mut g = [0.0f32; 3];
        let (loss, correct) = forward_backward(&x, &t, &mut g);
        assert!((loss - want).abs() < 1e-12, "{loss} vs {want}");
        // 0.3 > 0 with t = 1: right; -1.2 with t = 0: right; 2.0 with t = 0.25: wrong.
        assert_eq!(correct, 2);
    }

    #[test]
    fn extreme_logits_stay_finite() {
        let x = [1000.0f32, -1000.0, 1000.0, -1000.0];
        let t = [1.0f32, 0.0, 0.0, 1.0];
        let mut g = [0.0f32; 4];
        let (loss, correct) = forward_backward(&x, &t, &mut g);
        assert!((loss - 2000.0).abs() < 1e-9, "loss {loss}");
        assert_eq!(correct, 2);
        assert_eq!(g, [0.0, 0.0, 0.25, -0.25]);
    }

    proptest! {
        #[test]
        fn gradient_matches_central_finite_differences(
            v in proptest::collection::vec((-8.0f32..8.0, 0.0f32..=1.0), 1..12),
        ) {
            let (x, t): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let n = x.len() as f64;
            let mut g = vec![0.0f32; x.len()];
            forward_backward(&x, &t, &mut g);
            let mut scratch = vec![0.0f32; x.len()];
            let h = 1e-2f32;
            for i in 0..x.len() {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                let fd = (forward_backward(&xp, &t, &mut scratch).0 - forward_backward(&xm, &t, &mut scratch).0)
                    / n / (xp[i] - xm[i]) as f64;
                prop_assert!((fd - g[i] as f64).abs() < 1e-4 + 1e-3 * fd.abs(), "i {} fd {} grad {}", i, fd, g[i]);
            }
        }
    }
}
