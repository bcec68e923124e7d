//! Mean squared error (PyTorch's `MSELoss`, mean reduction over all elements).
//!
//! pred, target and grad are (n).

/// Returns `sum((pred - target)^2)` and writes `d(mean loss)/dpred = 2 (pred - target) / n`.
pub fn forward_backward(pred: &[f32], target: &[f32], grad: &mut [f32]) -> f64 {
    debug_assert_eq!(pred.len(), target.len());
    debug_assert_eq!(pred.len(), grad.len());
    let scale = 2.0 / pred.len().max(1) as f32;
    let mut sum = 0.0f64;
    for ((g, &p), &t) in grad.iter_mut().zip(pred).zip(target) {
        let d = p - t;
        sum += (d as f64) * (d as f64);
        *g = scale * d;
    }
    sum
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn value_and_gradient_of_a_small_case() {
        let mut g = [0.0f32; 3];
        let s = forward_backward(&[1.0, 2.0, 3.0], &[1.0, 0.0, 4.0], &mut g);
        assert_eq!(s, 5.0);
        assert_eq!(g, [0.0, 4.0 / 3.0, -2.0 / 3.0]);
    }

    #[test]
    fn extreme_values_stay_finite() {
        let mut g = [0.0f32; 2];
        let s = forward_backward(&[1000.0, -1000.0], &[-1000.0, 1000.0], &mut g);
        assert_eq!(s, 8.0e6);
        assert!(g.iter().all(|v| v.is_finite()));
    }

    proptest! {
        #[test]
        fn gradient_matches_central_finite_differences(
            v in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 1..12),
        ) {
            let (p, t): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let n = p.len() as f64;
            let mut g = vec![0.0f32; p.len()];
            forward_backward(&p, &t, &mut g);
            let mut scratch = vec![0.0f32; p.len()];
            let h = 1e-2f32;
            for i in 0..p.len() {
                let (mut pp, mut pm) = (p.clone(), p.clone());
                pp[i] += h;
                pm[i] -= h;
                let fd = (forward_backward(&pp, &t, &mut scratch) - forward_backward(&pm, &t, &mut scratch))
                    / n / (pp[i] - pm[i]) as f64;
                prop_assert!((fd - g[i] as f64).abs() < 1e-3 + 1e-3 * fd.abs(), "i {} fd {} grad {}", i, fd, g[i]);
            }
        }
    }
}
