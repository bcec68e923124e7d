//! `lstm`: the `lstm` preset's cell (128 hidden units, 28 steps), one step's
//! fused element-wise forward and backward (`RnnOps`); the GEMMs around it
//! are in `gemm`. Step 1, so the recurrent input and the previous cell state
//! are both read. Memory-bound.

use lasagna_trainer::backend::{Backend, LstmStep};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// The preset's hidden units and sequence length.
pub const HIDDEN: usize = 128;
/// Rows of an MNIST image, read one per step.
pub const STEPS: usize = 28;

/// The cell's forward and backward at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let (n, h) = (s.batch, HIDDEN);
    let d = LstmStep {
        n,
        hidden: h,
        steps: STEPS,
        t: 1,
    };
    let shape = format!("{n}x{h}_t1of{STEPS}");
    let seq = n * STEPS;

    let rec = buf(b, n * 4 * h, 1)?;
    let mut gates = buf(b, seq * 4 * h, 2)?;
    let mut c = buf(b, seq * h, 3)?;
    let mut h_seq = b.zeros(seq * h)?;
    let mut hh = b.zeros(n * h)?;
    let mut out = vec![Case::new(
        "lstm",
        shape.clone(),
        "forward",
        "lstm cell",
        // Per unit: 4 pre-activation adds, 3 sigmoids and 2 tanh (counted
        // as one each), c = f c + i g (3), h = o tanh(c) (1). Per sample:
        // gates (4H) and rec (4H) and c_{t-1} (H) read; activations (4H),
        // c_t, h_seq and h written.
        ((13 * n * h) as u64, f32s(16 * n * h), Bound::Memory),
        // The activations overwrite the gate pre-activations: repeated runs
        // keep them in (0, 1) and [-1, 1], finite.
        move || b.lstm_cell_forward(d, Some(&rec), &mut gates, &mut c, Some(&mut h_seq), &mut hh),
    )];

    let gates = buf(b, seq * 4 * h, 4)?;
    let c = buf(b, seq * h, 5)?;
    let dh_seq = buf(b, seq * h, 6)?;
    let dh = buf(b, n * h, 7)?;
    let mut dc = buf(b, n * h, 8)?;
    let mut dgates = b.zeros(seq * 4 * h)?;
    let mut dstep = b.zeros(n * 4 * h)?;
    out.push(Case::new(
        "lstm",
        shape,
        "backward",
        "lstm cell",
        // Per unit about 20 multiply/adds (tanh(c) recomputed, the four gate
        // derivatives, dc_{t-1}). Per sample: gates (4H), c_t, c_{t-1},
        // dh_seq, dh and dc read; dc, dgates (4H) and the step's copy (4H) written.
        ((20 * n * h) as u64, f32s(18 * n * h), Bound::Memory),
        move || {
            b.lstm_cell_backward(
                d,
                &gates,
                &c,
                Some(&dh_seq),
                Some(&dh),
                &mut dc,
                &mut dgates,
                &mut dstep,
            )
        },
    ));
    Ok(out)
}
