//! `avgpool2d`: average pooling, which no preset uses; benched where the
//! `cnn` preset max-pools (2x2 on 16 x 28x28), and the adaptive average pool
//! to 1x1 on its last block's 64 x 7x7, the usual global pooling.

use lasagna_trainer::backend::{Backend, Pool2dDims};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// Forward and backward of both pools at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let n = s.batch;
    let d = Pool2dDims::new(n, 16, (28, 28), (2, 2), (2, 2), (0, 0))?;
    let (inl, outl) = (d.in_len(), d.out_len());
    let shape = format!("{n}x16x28x28_k2s2");
    let x = buf(b, inl, 1)?;
    let mut y = b.zeros(outl)?;
    let mut out = vec![Case::new(
        "avgpool2d",
        shape.clone(),
        "forward",
        "cnn pool1 (as average)",
        // Three adds and a divide per window.
        ((4 * outl) as u64, f32s(inl + outl), Bound::Memory),
        move || b.avgpool2d_forward(d, true, &x, &mut y),
    )];
    let dy = buf(b, outl, 2)?;
    let mut dx = b.zeros(inl)?;
    out.push(Case::new(
        "avgpool2d",
        shape,
        "backward",
        "cnn pool1 (as average)",
        (inl as u64, f32s(inl + outl), Bound::Memory),
        move || b.avgpool2d_backward(d, true, &dy, &mut dx),
    ));

    let (c, hw) = (64, 7);
    let (inl, outl) = (n * c * hw * hw, n * c);
    let shape = format!("{n}x{c}x{hw}x{hw}_to_1x1");
    let x = buf(b, inl, 3)?;
    let mut y = b.zeros(outl)?;
    out.push(Case::new(
        "adaptive_avgpool2d",
        shape.clone(),
        "forward",
        "cnn block3 (global pool)",
        (inl as u64, f32s(inl + outl), Bound::Memory),
        move || b.adaptive_avgpool2d_forward(n, c, hw, hw, 1, 1, &x, &mut y),
    ));
    let dy = buf(b, outl, 4)?;
    let mut dx = b.zeros(inl)?;
    out.push(Case::new(
        "adaptive_avgpool2d",
        shape,
        "backward",
        "cnn block3 (global pool)",
        (inl as u64, f32s(inl + outl), Bound::Memory),
        move || b.adaptive_avgpool2d_backward(n, c, hw, hw, 1, 1, &dy, &mut dx),
    ));
    Ok(out)
}
