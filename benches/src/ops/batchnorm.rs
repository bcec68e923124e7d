//! `batchnorm`: the `cnn` preset's BatchNorm2d after each convolution
//! (16 x 28x28, 32 x 14x14, 64 x 7x7 per sample), training-mode forward and
//! backward, and the eval-mode forward (running statistics) that every
//! epoch's validation runs. Memory-bound: GB/s is the number to read.

use lasagna_trainer::backend::{Backend, NormDims};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// `(from, channels, h = w)` of the activations the preset normalizes.
pub const LAYERS: [(&str, usize, usize); 3] =
    [("cnn bn1", 16, 28), ("cnn bn2", 32, 14), ("cnn bn3", 64, 7)];

/// Forward (train) and backward of each layer at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let mut out = Vec::new();
    for (from, c, hw) in LAYERS {
        let d = NormDims {
            n: s.batch,
            c,
            s: hw * hw,
        };
        let len = d.n * d.c * d.s;
        let shape = format!("{}x{c}x{hw}x{hw}", d.n);

        let x = buf(b, len, 1)?;
        let gamma = buf(b, c, 2)?;
        let beta = buf(b, c, 3)?;
        let (mut rm, mut rv) = (b.zeros(c)?, b.zeros(c)?);
        let (mut sm, mut si) = (b.zeros(c)?, b.zeros(c)?);
        let mut y = b.zeros(len)?;
        out.push(Case::new(
            "batchnorm",
            shape.clone(),
            "forward",
            from,
            // Statistics (sum, sum of squares: 3 per element), then
            // (x - mean) * invstd * gamma + beta (4 per element).
            ((7 * len) as u64, f32s(2 * len + 6 * c), Bound::Memory),
            move || {
                // With the following ReLU fused in, as the cnn preset trains.
                b.batchnorm_forward_train(
                    d, 1e-5, 0.1, true, &x, &gamma, &beta, &mut rm, &mut rv, &mut sm, &mut si,
                    &mut y,
                )
            },
        ));

        let x = buf(b, len, 1)?;
        let gamma = buf(b, c, 2)?;
        let beta = buf(b, c, 3)?;
        let rm = buf(b, c, 4)?;
        // A positive variance.
        let rv = b.upload(&vec![0.5; c])?;
        let mut y = b.zeros(len)?;
        out.push(Case::new(
            "batchnorm",
            shape.clone(),
            "forward_eval",
            from,
            // (x - mean) / sqrt(var + eps) * gamma + beta: 4 per element.
            ((4 * len) as u64, f32s(2 * len + 4 * c), Bound::Memory),
            move || b.batchnorm_forward_eval(d, 1e-5, true, &x, &gamma, &beta, &rm, &rv, &mut y),
        ));

        let x = buf(b, len, 1)?;
        let gamma = buf(b, c, 2)?;
        let mean = buf(b, c, 4)?;
        // A positive 1/std.
        let invstd = b.upload(&vec![1.5; c])?;
        let dy = buf(b, len, 5)?;
        let mut dx = b.zeros(len)?;
        let (mut dg, mut db) = (b.zeros(c)?, b.zeros(c)?);
        out.push(Case::new(
            "batchnorm",
            shape,
            "backward",
            from,
            // Sums of dy and dy * xhat (5 per element), then
            // dx = (dy - mean(dy) - xhat * mean(dy xhat)) * gamma * invstd (6).
            ((11 * len) as u64, f32s(3 * len + 5 * c), Bound::Memory),
            move || {
                b.batchnorm_backward(
                    d, &x, &gamma, &mean, &invstd, &dy, &mut dx, &mut dg, &mut db,
                )
            },
        ));
    }
    Ok(out)
}
