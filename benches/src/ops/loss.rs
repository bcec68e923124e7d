//! Fused losses (`cross_entropy`, `mse`, `bce`): loss, gradient and batch
//! statistics in one pass, at the presets' classifier output (a batch of 10
//! logits; the presets train with cross-entropy, MSE and BCE are benched at
//! the same size). Memory- and launch-bound at these sizes.

use lasagna_trainer::backend::Backend;
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// The three losses at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let (rows, cols) = (s.batch, 10);
    let len = rows * cols;
    let logits = buf(b, len, 1)?;
    let labels: Vec<u32> = (0..rows as u32).map(|r| r % cols as u32).collect();
    let targets = b.upload_idx(&labels)?;
    let mut grad = b.zeros(len)?;
    let mut stats = b.zeros(2)?;
    let mut out = vec![Case::new(
        "cross_entropy",
        format!("{rows}x{cols}"),
        "fused",
        "classifier output",
        // max, exp, sum, log, gradient: about 6 per logit.
        ((6 * len) as u64, f32s(2 * len + rows), Bound::Memory),
        move || b.cross_entropy(&logits, &targets, rows, cols, 0.0, &mut grad, &mut stats),
    )];
    let pred = buf(b, len, 2)?;
    let target = buf(b, len, 3)?;
    let mut grad = b.zeros(len)?;
    let mut stats = b.zeros(2)?;
    out.push(Case::new(
        "mse",
        format!("{len}"),
        "fused",
        "classifier output size",
        ((4 * len) as u64, f32s(3 * len), Bound::Memory),
        move || b.mse(&pred, &target, len, &mut grad, &mut stats),
    ));
    let logits = buf(b, len, 4)?;
    let target = b.upload(&(0..len).map(|i| (i % 2) as f32).collect::<Vec<_>>())?;
    let mut grad = b.zeros(len)?;
    let mut stats = b.zeros(2)?;
    out.push(Case::new(
        "bce",
        format!("{len}"),
        "fused",
        "classifier output size",
        ((8 * len) as u64, f32s(3 * len), Bound::Memory),
        move || b.bce_with_logits(&logits, &target, len, &mut grad, &mut stats),
    ));
    Ok(out)
}
