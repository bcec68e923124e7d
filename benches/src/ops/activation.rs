//! `activation` (every activation, forward and backward), `softmax` and
//! `dropout`: the element-wise and row-wise ops between the layers. ReLU at
//! every activation the presets apply it to; the other activations (no
//! preset uses them) at the largest of those, the `cnn` preset's first
//! block. Memory-bound.

use lasagna_trainer::backend::{Act, Backend};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// The kernel-name stem of an activation.
fn name(act: Act) -> &'static str {
    match act {
        Act::Relu => "relu",
        Act::LeakyRelu(_) => "leaky_relu",
        Act::Gelu => "gelu",
        Act::GeluTanh => "gelu_tanh",
        Act::Silu => "silu",
        Act::Sigmoid => "sigmoid",
        Act::Tanh => "tanh",
    }
}

/// Forward and backward of `act` on `len` elements.
fn act_cases<'a, B: Backend>(
    b: &'a B,
    act: Act,
    from: &'static str,
    len: usize,
    out: &mut Vec<Case<'a>>,
) -> Result<()> {
    let shape = format!("{}_{len}", name(act));
    let x = buf(b, len, 1)?;
    let mut y = b.zeros(len)?;
    // Nominal FLOPs per element: one for ReLU, a handful for the others
    // (exp/erf/tanh counted as one each).
    let per = if act == Act::Relu { 1 } else { 5 };
    out.push(Case::new(
        "activation",
        shape.clone(),
        "forward",
        from,
        ((per * len) as u64, f32s(2 * len), Bound::Memory),
        move || b.act_forward(act, &x, &mut y, len),
    ));
    let x = buf(b, len, 1)?;
    let dy = buf(b, len, 2)?;
    let mut dx = b.zeros(len)?;
    out.push(Case::new(
        "activation",
        shape,
        "backward",
        from,
        (((per + 1) * len) as u64, f32s(3 * len), Bound::Memory),
        move || b.act_backward(act, &x, &dy, &mut dx, len),
    ));
    Ok(())
}

/// The activation, softmax and dropout cases at the batch of `s`.
pub fn cases<'a, B: Backend>(b: &'a B, s: &Sizes) -> Result<Vec<Case<'a>>> {
    let n = s.batch;
    let mut out = Vec::new();
    let relus = [
        ("mlp fc1 relu", n * 256),
        ("cnn block1 relu", n * 16 * 28 * 28),
        ("cnn block2 relu", n * 32 * 14 * 14),
        ("cnn block3 relu", n * 64 * 7 * 7),
    ];
    for (from, len) in relus {
        act_cases(b, Act::Relu, from, len, &mut out)?;
    }
    let others = [
        Act::LeakyRelu(0.01),
        Act::Gelu,
        Act::GeluTanh,
        Act::Silu,
        Act::Sigmoid,
        Act::Tanh,
    ];
    for act in others {
        act_cases(b, act, "cnn block1 size", n * 16 * 28 * 28, &mut out)?;
    }

    // Softmax over the 10 classes of a batch (the classifiers' output).
    let (rows, cols) = (n, 10);
    let x = buf(b, rows * cols, 3)?;
    let mut y = b.zeros(rows * cols)?;
    let shape = format!("{rows}x{cols}");
    out.push(Case::new(
        "softmax",
        shape.clone(),
        "forward",
        "classifier output",
        // max, exp, sum, divide.
        (
            (4 * rows * cols) as u64,
            f32s(2 * rows * cols),
            Bound::Memory,
        ),
        move || b.softmax_forward(&x, &mut y, rows, cols),
    ));
    let y = buf(b, rows * cols, 4)?;
    let dy = buf(b, rows * cols, 5)?;
    let mut dx = b.zeros(rows * cols)?;
    out.push(Case::new(
        "softmax",
        shape,
        "backward",
        "classifier output",
        (
            (4 * rows * cols) as u64,
            f32s(3 * rows * cols),
            Bound::Memory,
        ),
        move || b.softmax_backward(&y, &dy, &mut dx, rows, cols),
    ));

    // The MLP preset's Dropout(0.5) after fc1; the mask is regenerated from
    // (seed, offset) in backward, so no mask is read or written.
    let len = n * 256;
    let x = buf(b, len, 6)?;
    let mut y = b.zeros(len)?;
    out.push(Case::new(
        "dropout",
        format!("{len}_p0.5"),
        "forward",
        "mlp dropout",
        // Philox draw (counted as 10) and the scale.
        ((11 * len) as u64, f32s(2 * len), Bound::Memory),
        move || b.dropout_forward(0.5, 42, 0, 1, &x, &mut y, len),
    ));
    let dy = buf(b, len, 7)?;
    let mut dx = b.zeros(len)?;
    out.push(Case::new(
        "dropout",
        format!("{len}_p0.5"),
        "backward",
        "mlp dropout",
        ((11 * len) as u64, f32s(2 * len), Bound::Memory),
        move || b.dropout_backward(0.5, 42, 0, 1, &dy, &mut dx, len),
    ));
    Ok(out)
}
