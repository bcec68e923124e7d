//! The BLAS family's vector ops (`add_bias`, `sum_rows`, `axpy`, `scale`)
//! and `fill`: the bias of a Linear layer and its gradient at the MLP's
//! first hidden layer, and the vector ops over its largest weight.
//! Memory-bound.

use lasagna_trainer::backend::Backend;
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// The vector ops at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let (rows, cols) = (s.batch, 256);
    let mut y = buf(b, rows * cols, 1)?;
    let bias = buf(b, cols, 2)?;
    let shape = format!("{rows}x{cols}");
    let mut out = vec![Case::new(
        "blas",
        shape.clone(),
        "add_bias",
        "mlp fc1",
        (
            (rows * cols) as u64,
            f32s(2 * rows * cols + cols),
            Bound::Memory,
        ),
        move || b.add_bias(&mut y, &bias, rows, cols),
    )];
    let x = buf(b, rows * cols, 3)?;
    let mut db = b.zeros(cols)?;
    out.push(Case::new(
        "blas",
        shape,
        "sum_rows",
        "mlp fc1 bias gradient",
        (
            (rows * cols) as u64,
            f32s(rows * cols + cols),
            Bound::Memory,
        ),
        move || b.sum_rows(&x, rows, cols, &mut db, false),
    ));

    let n = 256 * 784;
    let shape = format!("{n}");
    let from = "mlp fc1 weight";
    let x = buf(b, n, 4)?;
    let mut y = buf(b, n, 5)?;
    out.push(Case::new(
        "blas",
        shape.clone(),
        "axpy",
        from,
        ((2 * n) as u64, f32s(3 * n), Bound::Memory),
        move || b.axpy(1e-3, &x, &mut y, n),
    ));
    let mut x = buf(b, n, 6)?;
    out.push(Case::new(
        "blas",
        shape.clone(),
        "scale",
        from,
        // Scale by 1: the multiply is done all the same, and values stay put.
        (n as u64, f32s(2 * n), Bound::Memory),
        move || b.scale(&mut x, 1.0, n),
    ));
    let mut x = b.zeros(n)?;
    out.push(Case::new(
        "blas",
        shape,
        "fill",
        from,
        (0, f32s(n), Bound::Memory),
        move || b.fill(&mut x, 0.0, n),
    ));
    Ok(out)
}
