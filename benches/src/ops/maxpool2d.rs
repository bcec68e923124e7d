//! `maxpool2d`: the `cnn` preset's 2x2, stride-2 max pooling after each
//! block (16 x 28x28, 32 x 14x14, 64 x 7x7 per sample), forward (with the
//! argmax backward needs) and backward. Memory-bound.

use lasagna_trainer::backend::{Backend, Pool2dDims, ReluGate};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// `(from, channels, h = w)` of the planes the preset pools.
pub const LAYERS: [(&str, usize, usize); 3] = [
    ("cnn pool1", 16, 28),
    ("cnn pool2", 32, 14),
    ("cnn pool3", 64, 7),
];

/// Forward and backward of each layer at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let mut out = Vec::new();
    for (from, c, hw) in LAYERS {
        let d = Pool2dDims::new(s.batch, c, (hw, hw), (2, 2), (2, 2), (0, 0))?;
        let (inl, outl) = (d.in_len(), d.out_len());
        let shape = format!("{}x{c}x{hw}x{hw}_k2s2", s.batch);

        let x = buf(b, inl, 1)?;
        let mut y = b.zeros(outl)?;
        let mut arg = b.upload_idx(&vec![0; outl])?;
        out.push(Case::new(
            "maxpool2d",
            shape.clone(),
            "forward",
            from,
            // Three compares per 2x2 window; x read, y and argmax written.
            ((3 * outl) as u64, f32s(inl + 2 * outl), Bound::Memory),
            move || b.maxpool2d_forward(d, &x, &mut y, &mut arg),
        ));

        let dy = buf(b, outl, 2)?;
        // Every window's winner at its top-left corner: a valid argmax.
        let idx: Vec<u32> = (0..outl)
            .map(|o| {
                let (r, col) = ((o % (d.oh * d.ow)) / d.ow, o % d.ow);
                (2 * r * hw + 2 * col) as u32
            })
            .collect();
        let arg = b.upload_idx(&idx)?;
        // The pool's input, for the absorbed ReLU's backward (the cnn preset's path).
        let x = buf(b, inl, 6)?;
        let mut dx = b.zeros(inl)?;
        out.push(Case::new(
            "maxpool2d",
            shape,
            "backward",
            from,
            // dx zeroed, then one add per output; dy, argmax and the
            // ReLU's output at the argmax read.
            (outl as u64, f32s(inl + 3 * outl), Bound::Memory),
            move || {
                let gate = ReluGate { x: &x, scale: 1.0 };
                b.maxpool2d_backward(d, &dy, &arg, Some(gate), &mut dx)
            },
        ));
    }
    Ok(out)
}
