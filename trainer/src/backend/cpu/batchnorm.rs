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

/// `y[n, c, s] = (x - mean) * scale + shift` for channel `c`.
fn normalize_channel(
    d: NormDims,
    x: &[f32],
    y: &mut [f32],
    c: usize,
    mean: f32,
    scale: f32,
    shift: f32,
) {
    for n in 0..d.n {
        let at = (n * d.c + c) * d.s;
        for (y, &x) in y[at..at + d.s].iter_mut().zip(&x[at..at + d.s]) {
            *y = (x - mean) * scale + shift;
        }
    }
}

/// Train mode: normalizes with the batch statistics, saves mean and
/// `1 / sqrt(var + eps)`, and moves the running statistics towards the batch's
/// (PyTorch: the running variance takes the unbiased estimate).
pub fn forward_train(
    d: NormDims,
    eps: f32,
    momentum: f32,
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
        let scale = gamma[c] * invstd as f32;
        normalize_channel(d, x, y, c, mean as f32, scale, beta[c]);
    }
}

/// Eval mode: normalizes with the running statistics.
pub fn forward_eval(
    d: NormDims,
    eps: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    y: &mut [f32],
) {
    for c in 0..d.c {
        let scale = gamma[c] / (running_var[c] + eps).sqrt();
        normalize_channel(d, x, y, c, running_mean[c], scale, beta[c]);
    }
}

/// Backward through the batch statistics (train mode): with `xh` the
/// normalized input and `M = N * S`,
/// `dx = gamma * invstd / M * (M * dy - sum(dy) - xh * sum(dy * xh))`.
/// Accumulates `dgamma += sum(dy * xh)`, `dbeta += sum(dy)`; overwrites `dx`.
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
        dgamma[c] += sum_dy_xh as f32;
        dbeta[c] += sum_dy as f32;
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
            d, 1e-5, 0.1, &x, &g, &b, &mut rm, &mut rv, &mut sm, &mut si, &mut y,
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
            d, 1e-5, 0.1, &x, &g, &b, &mut rm, &mut rv, &mut sm, &mut si, &mut y,
        );
        // Biased variance back from invstd: var = 1/invstd^2 - eps.
        let var: Vec<f32> = si.iter().map(|s| 1.0 / (s * s) - 1e-5).collect();
        let mut y_eval = vec![0.0; 12];
        forward_eval(d, 1e-5, &x, &g, &b, &sm, &var, &mut y_eval);
        for (a, e) in y.iter().zip(&y_eval) {
            assert!((a - e).abs() < 1e-4, "{a} vs {e}");
        }
    }
}
