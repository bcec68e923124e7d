//! `layernorm` and `embedding`, the norm family's ops that no preset uses
//! (BatchNorm is `batchnorm`): LayerNorm over the MLP's 256-wide hidden rows,
//! and an embedding lookup of one 28-token sequence per sample into 128
//! dimensions (the LSTM preset's sizes). Memory-bound.

use lasagna_trainer::backend::Backend;
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// LayerNorm forward and backward, embedding forward and backward.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let (rows, cols) = (s.batch, 256);
    let len = rows * cols;
    let x = buf(b, len, 1)?;
    let gamma = buf(b, cols, 2)?;
    let beta = buf(b, cols, 3)?;
    let (mut mean, mut rstd) = (b.zeros(rows)?, b.zeros(rows)?);
    let mut y = b.zeros(len)?;
    let shape = format!("{rows}x{cols}");
    let mut out = vec![Case::new(
        "layernorm",
        shape.clone(),
        "forward",
        "mlp hidden size",
        // As BatchNorm: statistics (3 per element), then normalize (4).
        (
            (7 * len) as u64,
            f32s(2 * len + 2 * cols + 2 * rows),
            Bound::Memory,
        ),
        move || {
            b.layernorm_forward(
                rows, cols, 1e-5, &x, &gamma, &beta, &mut mean, &mut rstd, &mut y,
            )
        },
    )];
    let x = buf(b, len, 1)?;
    let gamma = buf(b, cols, 2)?;
    let mean = buf(b, rows, 4)?;
    let rstd = b.upload(&vec![1.5; rows])?;
    let dy = buf(b, len, 5)?;
    let mut dx = b.zeros(len)?;
    let (mut dg, mut db) = (b.zeros(cols)?, b.zeros(cols)?);
    out.push(Case::new(
        "layernorm",
        shape,
        "backward",
        "mlp hidden size",
        (
            (11 * len) as u64,
            f32s(3 * len + 3 * cols + 2 * rows),
            Bound::Memory,
        ),
        move || {
            b.layernorm_backward(
                rows, cols, &x, &gamma, &mean, &rstd, &dy, &mut dx, &mut dg, &mut db,
            )
        },
    ));

    let (vocab, dim, count) = (1000, 128, s.batch * 28);
    let ids: Vec<u32> = (0..count as u32).map(|i| (i * 37) % vocab as u32).collect();
    let idx = b.upload_idx(&ids)?;
    let table = buf(b, vocab * dim, 6)?;
    let mut y = b.zeros(count * dim)?;
    let shape = format!("{count}x{dim}_of_{vocab}");
    out.push(Case::new(
        "embedding",
        shape.clone(),
        "forward",
        "lstm sequence size",
        (0, f32s(2 * count * dim + count), Bound::Memory),
        move || b.embedding_forward(&idx, &table, &mut y, count, dim),
    ));
    let idx = b.upload_idx(&ids)?;
    let dy = buf(b, count * dim, 7)?;
    let mut dtable = b.zeros(vocab * dim)?;
    out.push(Case::new(
        "embedding",
        shape,
        "backward",
        "lstm sequence size",
        // One add per element (a scatter-add into the table).
        (
            (count * dim) as u64,
            f32s(3 * count * dim + count),
            Bound::Memory,
        ),
        move || b.embedding_backward(&idx, &dy, &mut dtable, count, dim),
    ));
    Ok(out)
}
