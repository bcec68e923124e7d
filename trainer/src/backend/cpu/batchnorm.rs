//! BatchNorm over `(N, C, S)`: `x[(n * C + c) * S + s]`, statistics per channel
//! over `n` and `s` (`S` is 1 for BatchNorm1d on `[N, C]`, `L` on `[N, C, L]`,
//! `H * W` for BatchNorm2d). Sums run in `f64` so the reference stays exact
//! enough to judge the GPU kernels by.

mod kernels;

use super::threads;
use crate::backend::NormDims;

/// From this many elements on, each pass splits over two cores (channels
/// for the per-channel sums, samples for the elementwise pass). The
/// MNIST CNN's BatchNorms hold 200 K and 400 K elements per batch; below
/// about 32 K the hand-off (see `threads`) costs more than half the pass.
const SPLIT_MIN: usize = 1 << 15;

/// Channels per block of [`backward`]: the per-channel means it carries from
/// the sums to the `dx` pass live on the stack.
const BLOCK: usize = 64;

fn split(d: NormDims) -> bool {
    d.n.saturating_mul(d.c).saturating_mul(d.s) >= SPLIT_MIN
}

/// The rows `(n, c)` of channel `c`: `S` contiguous values for each sample.
fn rows(d: NormDims, v: &[f32], c: usize) -> impl Iterator<Item = &[f32]> {
    (0..d.n).map(move |n| &v[(n * d.c + c) * d.s..][..d.s])
}

/// Mean and biased variance of channel `c` (two passes: the one-pass
/// `E[x^2] - E[x]^2` cancels badly when the mean is large).
fn channel_stats(d: NormDims, x: &[f32], c: usize) -> (f64, f64) {
    let count = (d.n * d.s) as f64;
    let mean = rows(d, x, c).map(kernels::sum).sum::<f64>() / count;
    let sq = rows(d, x, c)
        .map(|r| kernels::sum_sq_dev(r, mean))
        .sum::<f64>();
    (mean, sq / count)
}

/// Runs `f(c0, part)` over halves of the per-channel slice `v` (whose
/// first entry is channel `c0`), on two cores when `two`.
fn per_channel<T: Send>(two: bool, c0: usize, v: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    let c = v.len();
    if !two || c < 2 {
        return f(c0, v);
    }
    let (a, b) = v.split_at_mut(c / 2);
    threads::join(|| f(c0, a), || f(c0 + c / 2, b));
}

/// Runs `f(n0, out)` over the samples of `out` (`per` elements each), in two
/// halves on two cores when `two`.
fn per_sample(two: bool, per: usize, out: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    let n = out.len() / per.max(1);
    if !two || n < 2 {
        return f(0, out);
    }
    let (o0, o1) = out.split_at_mut(n / 2 * per);
    threads::join(|| f(0, o0), || f(n / 2, o1));
}

/// `y[n, c, s] = (x - mean[c]) * scale[c] + shift[c]` (then `max(., 0)`
/// with `relu`) for the samples of `y`, which start at sample `n0`.
fn normalize(
    d: NormDims,
    relu: bool,
    x: &[f32],
    n0: usize,
    y: &mut [f32],
    affine: impl Fn(usize) -> (f32, f32, f32),
) {
    let per = d.c * d.s;
    if per == 0 {
        return;
    }
    for (i, yn) in y.chunks_exact_mut(per).enumerate() {
        let xn = &x[(n0 + i) * per..][..per];
        for (c, (yr, xr)) in yn
            .chunks_exact_mut(d.s)
            .zip(xn.chunks_exact(d.s))
            .enumerate()
        {
            let (mean, scale, shift) = affine(c);
            kernels::affine(xr, yr, mean, scale, shift, relu);
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
    if count == 0 || d.c == 0 || d.s == 0 {
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
    let two = split(d);
    // The statistics of a block of channels, split over the cores, then the
    // saved and running ones from their f64 values.
    for c0 in (0..d.c).step_by(BLOCK) {
        let mut stats = [(0.0f64, 0.0f64); BLOCK];
        let stats = &mut stats[..BLOCK.min(d.c - c0)];
        per_channel(two, c0, stats, |c0, part| {
            for (i, st) in part.iter_mut().enumerate() {
                *st = channel_stats(d, x, c0 + i);
            }
        });
        for (i, &(mean, var)) in stats.iter().enumerate() {
            let c = c0 + i;
            let invstd = 1.0 / (var + eps as f64).sqrt();
            save_mean[c] = mean as f32;
            save_invstd[c] = invstd as f32;
            running_mean[c] = ((1.0 - m) * running_mean[c] as f64 + m * mean) as f32;
            running_var[c] = ((1.0 - m) * running_var[c] as f64 + m * var * unbias) as f32;
        }
    }
    let (sm, si): (&[f32], &[f32]) = (save_mean, save_invstd);
    per_sample(two, d.c * d.s, y, |n0, y| {
        normalize(d, relu, x, n0, y, |c| (sm[c], gamma[c] * si[c], beta[c]))
    });
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
    per_sample(split(d), d.c * d.s, y, |n0, y| {
        normalize(d, relu, x, n0, y, |c| {
            let scale = gamma[c] / (running_var[c] + eps).sqrt();
            (running_mean[c], scale, beta[c])
        })
    });
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
    if count == 0 || d.c == 0 || d.s == 0 {
        return;
    }
    let two = split(d);
    for c0 in (0..d.c).step_by(BLOCK) {
        // (sum(dy), sum(dy * xh)) of a block of channels, split over the cores.
        let mut sums = [(0.0f64, 0.0f64); BLOCK];
        let sums = &mut sums[..BLOCK.min(d.c - c0)];
        per_channel(two, c0, sums, |c0, part| {
            for (i, st) in part.iter_mut().enumerate() {
                let c = c0 + i;
                let (mean, invstd) = (save_mean[c], save_invstd[c]);
                *st = rows(d, x, c)
                    .zip(rows(d, dy, c))
                    .map(|(x, g)| kernels::grad_sums(x, g, mean, invstd))
                    .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
            }
        });
        // Per channel of the block: (mean_dy, mean_dy_xh) as f32.
        let mut means = [(0.0f32, 0.0f32); BLOCK];
        for (i, &(sum_dy, sum_dy_xh)) in sums.iter().enumerate() {
            dgamma[c0 + i] = sum_dy_xh as f32;
            dbeta[c0 + i] = sum_dy as f32;
            means[i] = (
                (sum_dy / count as f64) as f32,
                (sum_dy_xh / count as f64) as f32,
            );
        }
        let c1 = c0 + sums.len();
        let per = d.c * d.s;
        per_sample(two, per, dx, |n0, dx| {
            for (i, dxn) in dx.chunks_exact_mut(per).enumerate() {
                let at = (n0 + i) * per;
                for c in c0..c1 {
                    let r = at + c * d.s..at + (c + 1) * d.s;
                    let (mean, invstd) = (save_mean[c], save_invstd[c]);
                    let (mean_dy, mean_dy_xh) = means[c - c0];
                    kernels::grad_dx(
                        &x[r.clone()],
                        &dy[r],
                        &mut dxn[c * d.s..(c + 1) * d.s],
                        mean,
                        invstd,
                        gamma[c] * invstd,
                        mean_dy,
                        mean_dy_xh,
                    );
                }
            }
        });
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
