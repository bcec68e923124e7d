//! `gather`: a training batch gathered from the dataset on the device
//! (`gather_batch`, what every step of `fit` launches; `gather_rows` and
//! `gather_idx`, its halves) and `to_index` (token ids carried in f32), at
//! MNIST's sizes: rows of 784 pixels.

use lasagna_trainer::backend::Backend;
use lasagna_trainer::error::Result;

use super::{f32s, Bound, Case, Sizes};

/// The gathers at the batch of `s`, from a dataset of `s.dataset_rows` rows.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let (rows, cols, total) = (s.batch, 784, s.dataset_rows);
    // Zeros: the gathers' time does not depend on the pixels.
    let x = b.zeros(total * cols)?;
    let y = b.upload_idx(&(0..total as u32).map(|i| i % 10).collect::<Vec<_>>())?;
    // A scattered order, as a shuffled epoch's.
    let order: Vec<u32> = (0..total as u64)
        .map(|i| ((i * 7919) % total as u64) as u32)
        .collect();
    let order = b.upload_idx(&order)?;
    let (mut bx, mut by) = (b.zeros(rows * cols)?, b.upload_idx(&vec![0; rows])?);
    let shape = format!("{rows}x{cols}_of_{total}");
    let from = "fit batch";
    // Per row: the index (4 bytes) read; the row read and written, its label
    // read and written.
    let bytes = f32s(2 * rows * cols + 3 * rows);
    let mut out = vec![Case::new(
        "gather",
        shape.clone(),
        "gather_batch",
        from,
        (0, bytes, Bound::Memory),
        move || b.gather_batch(&x, &y, &order, 0, rows, cols, &mut bx, &mut by),
    )];

    let x = b.zeros(total * cols)?;
    let idx: Vec<u32> = (0..rows as u64)
        .map(|i| ((i * 7919) % total as u64) as u32)
        .collect();
    let idx = b.upload_idx(&idx)?;
    let mut bx = b.zeros(rows * cols)?;
    out.push(Case::new(
        "gather",
        shape.clone(),
        "gather_rows",
        from,
        (0, f32s(2 * rows * cols + rows), Bound::Memory),
        move || b.gather_rows(&x, &idx, rows, cols, &mut bx),
    ));
    let y = b.upload_idx(&(0..total as u32).map(|i| i % 10).collect::<Vec<_>>())?;
    let idx = b.upload_idx(&(0..rows as u32).collect::<Vec<_>>())?;
    let mut by = b.upload_idx(&vec![0; rows])?;
    out.push(Case::new(
        "gather",
        format!("{rows}_of_{total}"),
        "gather_idx",
        from,
        (0, f32s(3 * rows), Bound::Memory),
        move || b.gather_idx(&y, &idx, rows, &mut by),
    ));

    // One 28-token sequence per sample, ids below 1000.
    let n = s.batch * 28;
    let ids = b.upload(&(0..n).map(|i| (i % 1000) as f32).collect::<Vec<_>>())?;
    let mut dst = b.upload_idx(&vec![0; n])?;
    out.push(Case::new(
        "gather",
        format!("{n}"),
        "to_index",
        "token ids",
        // Checks (integer, range) and a conversion per id.
        ((3 * n) as u64, f32s(2 * n), Bound::Memory),
        move || b.to_index(&ids, &mut dst, n),
    ));
    Ok(out)
}
