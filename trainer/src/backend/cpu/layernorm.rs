//! LayerNorm over rows of `cols` values (biased variance, PyTorch's
//! definition), with per-column affine parameters. Row statistics run in `f64`.

/// `y = (x - mean) * rstd * gamma + beta` per row; saves each row's mean and
/// `rstd = 1 / sqrt(var + eps)` for backward.
pub fn forward(
    cols: usize,
    eps: f32,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    save_mean: &mut [f32],
    save_rstd: &mut [f32],
    y: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    let rows = x.chunks_exact(cols).zip(y.chunks_exact_mut(cols));
    for ((xr, yr), (sm, sr)) in rows.zip(save_mean.iter_mut().zip(save_rstd.iter_mut())) {
        let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        // Two passes: `E[x^2] - E[x]^2` cancels badly when the mean is large.
        let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        let rstd = (1.0 / (var + eps as f64).sqrt()) as f32;
        let mean = mean as f32;
        *sm = mean;
        *sr = rstd;
        for (((y, &x), &g), &b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
            *y = (x - mean) * rstd * g + b;
        }
    }
}

/// With `xh` the normalized row and `g = dy * gamma`:
/// `dx = rstd * (g - mean(g) - xh * mean(g * xh))`.
/// Accumulates `dgamma += sum_rows(dy * xh)`, `dbeta += sum_rows(dy)`; overwrites `dx`.
pub fn backward(
    cols: usize,
    x: &[f32],
    gamma: &[f32],
    save_mean: &[f32],
    save_rstd: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    let rows = x
        .chunks_exact(cols)
        .zip(dy.chunks_exact(cols))
        .zip(dx.chunks_exact_mut(cols));
    for (((xr, dyr), dxr), (&mean, &rstd)) in rows.zip(save_mean.iter().zip(save_rstd)) {
        let (mut sum_g, mut sum_g_xh) = (0.0f64, 0.0f64);
        for (((&x, &d), &gm), (dg, db)) in xr
            .iter()
            .zip(dyr)
            .zip(gamma)
            .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
        {
            let xh = (x - mean) * rstd;
            let g = d * gm;
            sum_g += g as f64;
            sum_g_xh += (g * xh) as f64;
            *dg += d * xh;
            *db += d;
        }
        let mean_g = (sum_g / cols as f64) as f32;
        let mean_g_xh = (sum_g_xh / cols as f64) as f32;
        for (((dx, &x), &d), &gm) in dxr.iter_mut().zip(xr).zip(dyr).zip(gamma) {
            let xh = (x - mean) * rstd;
            *dx = rstd * (d * gm - mean_g - xh * mean_g_xh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_come_out_with_zero_mean_and_unit_variance() {
        let cols = 7;
        let x: Vec<f32> = (0..21).map(|i| ((i * 31) % 11) as f32 - 1000.0).collect();
        let (g, b) = (vec![1.0; cols], vec![0.0; cols]);
        let (mut sm, mut sr, mut y) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 21]);
        forward(cols, 1e-5, &x, &g, &b, &mut sm, &mut sr, &mut y);
        for (r, row) in y.chunks(cols).enumerate() {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
            assert!(mean.abs() < 1e-5, "row {r} mean {mean}");
            assert!((var - 1.0).abs() < 1e-4, "row {r} variance {var}");
        }
    }
}
