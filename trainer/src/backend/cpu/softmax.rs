//! Row-wise softmax and its backward.

/// `y = softmax(x)` over rows of `cols`, with the row max subtracted for stability.
pub fn forward(x: &[f32], y: &mut [f32], cols: usize) {
    for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let max = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for (y, &x) in yr.iter_mut().zip(xr) {
            *y = (x - max).exp();
            sum += *y;
        }
        let inv = 1.0 / sum;
        yr.iter_mut().for_each(|v| *v *= inv);
    }
}

/// `dx = y * (dy - <dy, y>)` per row, with `y` the forward output.
pub fn backward(y: &[f32], dy: &[f32], dx: &mut [f32], cols: usize) {
    for ((yr, dyr), dxr) in y
        .chunks_exact(cols)
        .zip(dy.chunks_exact(cols))
        .zip(dx.chunks_exact_mut(cols))
    {
        let dot: f32 = yr.iter().zip(dyr).map(|(a, b)| a * b).sum();
        for ((dx, &y), &dy) in dxr.iter_mut().zip(yr).zip(dyr) {
            *dx = y * (dy - dot);
        }
    }
}
