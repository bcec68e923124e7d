//! BatchNorm over `(N, C, S)`: `x[(n * C + c) * S + s]`, statistics per channel
//! over `n` and `s` (`S` is 1 for BatchNorm1d on `[N, C]`, `L` on `[N, C, L]`,
//! `H * W` for BatchNorm2d). Sums run in `f64` so the reference stays exact
//! enough to judge the GPU kernels by.

use crate::backend::NormDims;

/// Mean and biased variance of channel `c` (two passes: the one-pass
/// `E[x^2] - E[x]^2` cancels badly when the mean is large).
fn channel_stats(d: NormDims, x: &[f32], c: usize) -> (f64, f64) {
    let count = (d.n * d.s) as f64;
    let mut sum = 0.0f64;
    for n in 0..d.n {
        let at = (n * d.c + c) * d.s;
        sum += x[at..at + d.s].iter().map(|&v| v as f64).sum::<f64>();
    }
    let mean = sum / count;
    let mut sq = 0.0f64;
    for n in 0..d.n {
        let at = (n * d.c + c) * d.s;
        sq += x[at..at + d.s]
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>();
    }
    (mean, sq / count)
}

/// The affine map of one channel: `(x - mean) * scale + shift`, then
/// `max(., 0)` when a ReLU is fused in.
#[derive(Clone, Copy)]
struct Affine {
    mean: f32,
    scale: f32,
    shift: f32,
    relu: bool,
}

/// `y[n, c, s] = a(x[n, c, s])` for channel `c`.
fn normalize_channel(d: NormDims, x: &[f32], y: &mut [f32], c: usize, a: Affine) {
    for n in 0..d.n {
        let at = (n * d.c + c) * d.s;
        let (ys, xs) = (&mut y[at..at + d.s], &x[at..at + d.s]);
        for (y, &x) in ys.iter_mut().zip(xs) {
            *y = (x - a.mean) * a.scale + a.shift;
        }
        if a.relu {
            // The ReLU layer's own expression (`activation::forward`), so the
            // fused op is bit-identical to BatchNorm followed by ReLU.
            for y in ys {
                *y = y.max(0.0);
            }
        }
    }
}

/// Train mode: normalizes with the batch statistics, saves mean and
/// `1 / sqrt(var + eps)`, and moves the running statistics towards the batch's
/// (PyTorch: the running variance takes the unbiased estimate). With `relu`,
/// `y = max(y, 0)` (a ReLU layer after it, fused in).
pub fn forward_train(
    d: NormDims,
    eps: f32,
    momentum: f32,
    relu: bool,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    save_mean: &mut [f32],
    save_invstd: &mut [f32],
    y: &mut [f32],
) {
    let count = d.n * d.s;
    if count == 0 {
        return;
    }
    // Bessel's correction; a single value has no spread to correct (PyTorch
    // refuses that case before it gets here).
    let unbias = if count > 1 {
        count as f64 / (count - 1) as f64
    } else {
        1.0
    };
    let m = momentum as f64;
    for c in 0..d.c {
        let (mean, var) = channel_stats(d, x, c);
        let invstd = 1.0 / (var + eps as f64).sqrt();
        save_mean[c] = mean as f32;
        save_invstd[c] = invstd as f32;
        running_mean[c] = ((1.0 - m) * running_mean[c] as f64 + m * mean) as f32;
        running_var[c] = ((1.0 - m) * running_var[c] as f64 + m * var * unbias) as f32;
        let a = Affine {
            mean: mean as f32,
            scale: gamma[c] * invstd as f32,
            shift: beta[c],
            relu,
        };
        normalize_channel(d, x, y, c, a);
    }
}

/// Eval mode: normalizes with the running statistics; `relu` as in
/// [`forward_train`].
pub fn forward_eval(
    d: NormDims,
    eps: f32,
    relu: bool,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    for c in 0..d.c {
        let a = Affine {
            mean: running_mean[c],
            scale: gamma[c] / (running_var[c] + eps).sqrt(),
            shift: beta[c],
            relu,
        };
        normalize_channel(d, x, y, c, a);
    }
}

/// Backward through the batch statistics (train mode): with `xh` the
/// normalized input and `M = N * S`,
/// `dx = gamma * invstd / M * (M * dy - sum(dy) - xh * sum(dy * xh))`.
/// Overwrites `dgamma = sum(dy * xh)`, `dbeta = sum(dy)` and `dx` (gamma and
/// beta get gradient from here alone: `Layer::overwrites_grads`). Reads `x`,
/// not the forward's output, so a fused ReLU does not change it.
pub fn backward(
    d: NormDims,
    x: &[f32],
    gamma: &[f32],
    save_mean: &[f32],
    save_invstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let count = d.n * d.s;
    if count == 0 {
        return;
    }
    for c in 0..d.c {
        let (mean, invstd) = (save_mean[c], save_invstd[c]);
        let (mut sum_dy, mut sum_dy_xh) = (0.0f64, 0.0f64);
        for n in 0..d.n {
            let at = (n * d.c + c) * d.s;
            for (&x, &g) in x[at..at + d.s].iter().zip(&dy[at..at + d.s]) {
                sum_dy += g as f64;
                sum_dy_xh += g as f64 * ((x - mean) * invstd) as f64;
            }
        }
        dgamma[c] = sum_dy_xh as f32;
        dbeta[c] = sum_dy as f32;
        let mean_dy = (sum_dy / count as f64) as f32;
        let mean_dy_xh = (sum_dy_xh / count as f64) as f32;
        let k = gamma[c] * invstd;
        for n in 0..d.n {
            let at = (n * d.c + c) * d.s;
            let rows = dx[at..at + d.s]
                .iter_mut()
                .zip(&x[at..at + d.s])
                .zip(&dy[at..at + d.s]);
            for ((dx, &x), &g) in rows {
                let xh = (x - mean) * invstd;
                *dx = k * (g - mean_dy - xh * mean_dy_xh);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_output_has_zero_mean_and_unit_variance_per_channel() {
        let d = NormDims { n: 3, c: 2, s: 4 };
        let x: Vec<f32> = (0..24)
            .map(|i| ((i * 7919) % 23) as f32 * 0.37 + 100.0)
            .collect();
        let (g, b) = (vec![1.0; 2], vec![0.0; 2]);
        let (mut rm, mut rv) = (vec![0.0; 2], vec![1.0; 2]);
        let (mut sm, mut si, mut y) = (vec![0.0; 2], vec![0.0; 2], vec![0.0; 24]);
        forward_train(
            d, 1e-5, 0.1, false, &x, &g, &b, &mut rm, &mut rv, &mut sm, &mut si, &mut y,
        );
        for c in 0..2 {
            let vals: Vec<f64> = (0..3)
                .flat_map(|n| (0..4).map(move |s| (n * 2 + c) * 4 + s))
                .map(|i| y[i] as f64)
                .collect();
            let mean = vals.iter().sum::<f64>() / 12.0;
            let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 12.0;
            assert!(mean.abs() < 1e-4, "channel {c} mean {mean}");
            assert!((var - 1.0).abs() < 1e-3, "channel {c} variance {var}");
        }
    }

    #[test]
    fn eval_with_the_batch_statistics_reproduces_train_output() {
        let d = NormDims { n: 4, c: 3, s: 1 };
        let x: Vec<f32> = (0..12)
            .map(|i| (i as f32 * 1.3).sin() * 2.0 + 0.5)
            .collect();
        let (g, b) = (vec![0.5, 2.0, -1.0], vec![0.1, -0.2, 0.3]);
        let (mut rm, mut rv) = (vec![0.0; 3], vec![1.0; 3]);
        let (mut sm, mut si, mut y) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 12]);
        forward_train(
            d, 1e-5, 0.1, false, &x, &g, &b, &mut rm, &mut rv, &mut sm, &mut si, &mut y,
        );
        // Biased variance back from invstd: var = 1/invstd^2 - eps.
        let var: Vec<f32> = si.iter().map(|s| 1.0 / (s * s) - 1e-5).collect();
        let mut y_eval = vec![0.0; 12];
        forward_eval(d, 1e-5, false, &x, &g, &b, &sm, &var, &mut y_eval);
        for (a, e) in y.iter().zip(&y_eval) {
            assert!((a - e).abs() < 1e-4, "{a} vs {e}");
        }
    }

    /// Mixed-sign outputs (offsets, negative gamma and beta) with a NaN and
    /// infinities among the inputs, so ReLU's edge cases are exercised.
    fn relu_case() -> (NormDims, Vec<f32>, Vec<f32>, Vec<f32>) {
        let d = NormDims { n: 3, c: 3, s: 5 };
        let mut x: Vec<f32> = (0..45)
            .map(|i| (i as f32 * 0.77).sin() * 3.0 + 0.2)
            .collect();
        x[7] = f32::NAN;
        (d, x, vec![0.5, -2.0, 1.25], vec![0.3, -0.1, -0.0])
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn a_fused_relu_is_bit_identical_to_batchnorm_then_the_relu_layer_in_both_modes() {
        use crate::backend::cpu::activation;
        use crate::backend::Act;
        let (d, x, g, b) = relu_case();
        let train = |relu: bool| {
            let (mut rm, mut rv) = (vec![0.1, -0.2, 0.0], vec![1.0, 0.5, 2.0]);
            let (mut sm, mut si, mut y) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 45]);
            forward_train(
                d, 1e-5, 0.1, relu, &x, &g, &b, &mut rm, &mut rv, &mut sm, &mut si, &mut y,
            );
            (y, [rm, rv, sm, si])
        };
        let (plain, stats) = train(false);
        let (fused, fused_stats) = train(true);
        let mut want = vec![0.0; 45];
        activation::forward(Act::Relu, &plain, &mut want);
        assert!(plain.iter().any(|&v| v < 0.0) && plain.iter().any(|&v| v > 0.0));
        assert_eq!(bits(&fused), bits(&want));
        // The statistics do not depend on the ReLU.
        for (a, b) in stats.iter().zip(&fused_stats) {
            assert_eq!(bits(a), bits(b));
        }

        let (rm, rv) = (vec![0.5, -0.25, 1.0], vec![0.8, 1.5, 0.3]);
        let eval = |relu: bool| {
            let mut y = vec![0.0; 45];
            forward_eval(d, 1e-5, relu, &x, &g, &b, &rm, &rv, &mut y);
            y
        };
        let plain = eval(false);
        activation::forward(Act::Relu, &plain, &mut want);
        assert!(plain.iter().any(|&v| v < 0.0));
        assert_eq!(bits(&eval(true)), bits(&want));
    }

    #[test]
    fn backward_overwrites_the_parameter_gradients_and_ignores_what_was_there() {
        let (d, x, g, b) = relu_case();
        let x: Vec<f32> = x
            .iter()
            .map(|v| if v.is_nan() { 1.5 } else { *v })
            .collect();
        let (mut rm, mut rv) = (vec![0.0; 3], vec![1.0; 3]);
        let (mut sm, mut si, mut y) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 45]);
        forward_train(
            d, 1e-5, 0.1, false, &x, &g, &b, &mut rm, &mut rv, &mut sm, &mut si, &mut y,
        );
        let dy: Vec<f32> = (0..45).map(|i| (i as f32 * 0.31).cos()).collect();
        let run = |start: f32| {
            let (mut dx, mut dg, mut db) = (vec![start; 45], vec![start; 3], vec![start; 3]);
            backward(d, &x, &g, &sm, &si, &dy, &mut dx, &mut dg, &mut db);
            [dx, dg, db]
        };
        let (zero, garbage) = (run(0.0), run(f32::NAN));
        for (a, b) in zero.iter().zip(&garbage) {
            assert_eq!(bits(a), bits(b));
        }
        // Twice in a row gives the same gradient, not twice it.
        let once = run(0.0);
        let (mut dx, mut dg, mut db) = (vec![0.0; 45], once[1].clone(), once[2].clone());
        backward(d, &x, &g, &sm, &si, &dy, &mut dx, &mut dg, &mut db);
        assert_eq!((bits(&dg), bits(&db)), (bits(&once[1]), bits(&once[2])));
    }
}
