//! `conv2d`: the `cnn` preset's three 3x3, padding-1 convolutions
//! (1 -> 16 on 28x28, 16 -> 32 on 14x14, 32 -> 64 on 7x7), forward and
//! backward. The first layer's backward computes no input gradient, as in
//! training (nothing is below it).

use lasagna_trainer::backend::{Backend, Conv2dDims};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// `(from, c_in, h = w, c_out)` of the `cnn` preset's convolutions.
pub const LAYERS: [(&str, usize, usize, usize); 3] = [
    ("cnn conv1", 1, 28, 16),
    ("cnn conv2", 16, 14, 32),
    ("cnn conv3", 32, 7, 64),
];

/// Forward and backward of each layer at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let mut out = Vec::new();
    for (i, (from, c_in, hw, c_out)) in LAYERS.into_iter().enumerate() {
        let n = s.batch;
        let d = Conv2dDims::new(n, [c_in, hw, hw], c_out, [3, 3], [1, 1], [1, 1], [1, 1], 1)?;
        let (xl, yl, wl) = (
            n * c_in * hw * hw,
            n * c_out * d.oh * d.ow,
            c_out * c_in * 9,
        );
        let shape = format!("{n}x{c_in}x{hw}x{hw}_{c_out}_k3p1");
        // One multiply-add per output element, input channel and tap.
        let macs = yl * c_in * 9;

        let x = buf(b, xl, 1)?;
        let w = buf(b, wl, 2)?;
        let bias = buf(b, c_out, 3)?;
        let mut y = b.zeros(yl)?;
        let mut scratch = b.zeros(b.conv2d_scratch_len(&d))?;
        out.push(Case::new(
            "conv2d",
            shape.clone(),
            "forward",
            from,
            (
                (2 * macs + yl) as u64,
                f32s(xl + wl + c_out + yl),
                Bound::Fp32,
            ),
            move || b.conv2d_forward(&d, &x, &w, Some(&bias), &mut y, &mut scratch),
        ));

        let x = buf(b, xl, 1)?;
        let w = buf(b, wl, 2)?;
        let dy = buf(b, yl, 4)?;
        let with_dx = i > 0;
        let mut dx = b.zeros(xl)?;
        let mut dw = b.zeros(wl)?;
        let mut db = b.zeros(c_out)?;
        let mut scratch = b.zeros(b.conv2d_scratch_len(&d))?;
        // dW (and dX when computed) cost one forward's multiply-adds each;
        // dbias sums dy.
        let products = if with_dx { 2 } else { 1 };
        let flops = (2 * macs * products + yl) as u64;
        let bytes = f32s(xl + wl + yl + c_out + wl + if with_dx { xl } else { 0 });
        out.push(Case::new(
            "conv2d",
            shape,
            "backward",
            from,
            (flops, bytes, Bound::Fp32),
            // dW and dbias accumulate over the runs, as they would over
            // micro-batches: values stay finite, and the model's zeroing fill
            // is not part of the op.
            move || {
                let dx = if with_dx { Some(&mut dx) } else { None };
                b.conv2d_backward(&d, &x, &w, &dy, dx, &mut dw, Some(&mut db), &mut scratch)
            },
        ));
    }
    Ok(out)
}
