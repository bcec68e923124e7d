//! Optimizer steps (`sgd_step`, `adam_step`, the multi-tensor Adam the
//! trainer uses for a whole model) and the clipping reductions
//! (`sum_squares`, `clip_by_norm`), over the MLP preset's parameters.
//! Memory-bound: every byte of parameter, gradient and state is touched.

use lasagna_trainer::backend::{AdamStep, AdamTensor, Backend, SgdStep};
use lasagna_trainer::error::Result;

use super::{buf, f32s, Bound, Case, Sizes};

/// The MLP preset's parameter tensors (784-256-64-10, weights then bias).
pub const MLP_PARAMS: [usize; 6] = [256 * 784, 256, 64 * 256, 64, 10 * 64, 10];

const ADAM: AdamStep = AdamStep {
    lr: 1e-3,
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
    weight_decay: 0.0,
    decoupled: false,
    step: 1,
};

/// The optimizer cases (the sizes do not depend on the batch).
pub fn cases<'a, B: Backend>(b: &'a B, _s: &Sizes) -> Result<Vec<Case<'a>>> {
    let n = MLP_PARAMS[0];
    let shape = format!("{n}");
    let from = "mlp fc1 weight";
    let mut p = buf(b, n, 1)?;
    let g = buf(b, n, 2)?;
    let mut mom = b.zeros(n)?;
    let sgd = SgdStep {
        lr: 1e-3,
        momentum: 0.9,
        dampening: 0.0,
        nesterov: false,
        weight_decay: 0.0,
        first: false,
    };
    let mut out = vec![Case::new(
        "optim",
        shape.clone(),
        "sgd_step",
        from,
        // mom = m mom + g; p -= lr mom. Reads p, g, mom; writes p, mom.
        ((4 * n) as u64, f32s(5 * n), Bound::Memory),
        move || b.sgd_step(&sgd, &mut p, &g, &mut mom, n),
    )];
    let mut p = buf(b, n, 1)?;
    let g = buf(b, n, 2)?;
    let (mut m, mut v) = (b.zeros(n)?, b.zeros(n)?);
    out.push(Case::new(
        "optim",
        shape.clone(),
        "adam_step",
        from,
        // About 12 per element (two moment updates, sqrt, divide, update).
        // Reads p, g, m, v; writes p, m, v.
        ((12 * n) as u64, f32s(7 * n), Bound::Memory),
        move || b.adam_step(&ADAM, &mut p, &g, &mut m, &mut v, n),
    ));

    let total: usize = MLP_PARAMS.iter().sum();
    let mut state = Vec::new();
    for (i, &len) in MLP_PARAMS.iter().enumerate() {
        state.push((
            buf(b, len, i)?,
            buf(b, len, i + 7)?,
            b.zeros(len)?,
            b.zeros(len)?,
            len,
        ));
    }
    out.push(Case::new(
        "optim",
        format!("{total}_in_{}", MLP_PARAMS.len()),
        "adam_step_many",
        "mlp all parameters",
        ((12 * total) as u64, f32s(7 * total), Bound::Memory),
        move || {
            let mut tensors: Vec<_> = state
                .iter_mut()
                .map(|(param, grad, m, v, n)| AdamTensor {
                    param,
                    grad: &*grad,
                    m,
                    v,
                    n: *n,
                })
                .collect();
            b.adam_step_many(&ADAM, &mut tensors)
        },
    ));

    let x = buf(b, n, 3)?;
    let mut sum = b.zeros(1)?;
    out.push(Case::new(
        "clip",
        shape.clone(),
        "sum_squares",
        from,
        ((2 * n) as u64, f32s(n), Bound::Memory),
        move || b.sum_squares(&x, n, &mut sum),
    ));
    let mut x = buf(b, n, 4)?;
    // A norm of 1e6 against max_norm 1: every run scales (the kernel's work).
    let sumsq = b.upload(&[1e12])?;
    out.push(Case::new(
        "clip",
        shape,
        "clip_by_norm",
        from,
        (n as u64, f32s(2 * n), Bound::Memory),
        move || b.clip_by_norm(&mut x, n, &sumsq, 1.0),
    ));
    Ok(out)
}
