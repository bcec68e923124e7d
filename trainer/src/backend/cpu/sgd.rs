//! SGD step, as `torch.optim.SGD` defines it
//! (<https://pytorch.org/docs/stable/generated/torch.optim.SGD.html>):
//!
//! ```text
//! g = grad + weight_decay * p
//! if momentum != 0:
//!     buf = first ? g : momentum * buf + (1 - dampening) * g
//!     g   = nesterov ? g + momentum * buf : buf
//! p -= lr * g
//! ```
//!
//! The first step copies the gradient into the buffer without dampening,
//! because PyTorch starts from `buf = clone(g)`, not from a zero buffer.

use crate::backend::SgdStep;

/// One update of `param` from `grad`; all slices have the same length, except
/// `mom`, which is empty when momentum is 0.
pub fn step(h: &SgdStep, param: &mut [f32], grad: &[f32], mom: &mut [f32]) {
    let (lr, wd) = (h.lr, h.weight_decay);
    if h.momentum == 0.0 {
        for (p, &g) in param.iter_mut().zip(grad) {
            let g = g + wd * *p;
            *p -= lr * g;
        }
        return;
    }
    let (mu, keep) = (h.momentum, 1.0 - h.dampening);
    // Branches on the hyper-parameters sit outside the loops so each loop is
    // a straight line the compiler can vectorize.
    match (h.first, h.nesterov) {
        (true, false) => {
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(mom.iter_mut()) {
                let g = g + wd * *p;
                *b = g;
                *p -= lr * g;
            }
        }
        (true, true) => {
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(mom.iter_mut()) {
                let g = g + wd * *p;
                *b = g;
                *p -= lr * (g + mu * g);
            }
        }
        (false, false) => {
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(mom.iter_mut()) {
                let g = g + wd * *p;
                *b = mu * *b + keep * g;
                *p -= lr * *b;
            }
        }
        (false, true) => {
            for ((p, &g), b) in param.iter_mut().zip(grad).zip(mom.iter_mut()) {
                let g = g + wd * *p;
                *b = mu * *b + keep * g;
                *p -= lr * (g + mu * *b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(
        lr: f32,
        momentum: f32,
        dampening: f32,
        nesterov: bool,
        weight_decay: f32,
        first: bool,
    ) -> SgdStep {
        SgdStep {
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
            first,
        }
    }

    fn close(got: &[f32], want: &[f64]) {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-6 + 1e-6 * w.abs(),
                "element {i}: got {g}, want {w}"
            );
        }
    }

    #[test]
    fn plain_step_moves_against_the_gradient() {
        let mut p = vec![1.0, -2.0];
        step(
            &hp(0.1, 0.0, 0.0, false, 0.0, true),
            &mut p,
            &[0.5, 0.25],
            &mut [],
        );
        // 1 - 0.1 * 0.5 = 0.95; -2 - 0.1 * 0.25 = -2.025
        close(&p, &[0.95, -2.025]);
    }

    #[test]
    fn weight_decay_adds_l2_to_the_gradient() {
        let mut p = vec![1.0, -2.0];
        step(
            &hp(0.1, 0.0, 0.0, false, 0.01, true),
            &mut p,
            &[0.5, 0.25],
            &mut [],
        );
        // g = 0.5 + 0.01 * 1 = 0.51 -> 1 - 0.051 = 0.949
        // g = 0.25 + 0.01 * -2 = 0.23 -> -2 - 0.023 = -2.023
        close(&p, &[0.949, -2.023]);
    }

    #[test]
    fn momentum_first_step_copies_gradient_then_accumulates() {
        let mut p = vec![1.0];
        let mut buf = vec![123.0]; // garbage: the first step must overwrite it
        step(
            &hp(0.1, 0.9, 0.0, false, 0.0, true),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // buf = g = 0.5; p = 1 - 0.1 * 0.5 = 0.95
        close(&buf, &[0.5]);
        close(&p, &[0.95]);
        step(
            &hp(0.1, 0.9, 0.0, false, 0.0, false),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // buf = 0.9 * 0.5 + 0.5 = 0.95; p = 0.95 - 0.1 * 0.95 = 0.855
        close(&buf, &[0.95]);
        close(&p, &[0.855]);
    }

    #[test]
    fn dampening_scales_new_gradients_but_not_the_first() {
        let mut p = vec![1.0];
        let mut buf = vec![0.0];
        step(
            &hp(0.1, 0.9, 0.5, false, 0.0, true),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // First step: buf = g = 0.5 (no dampening); p = 0.95
        close(&buf, &[0.5]);
        close(&p, &[0.95]);
        step(
            &hp(0.1, 0.9, 0.5, false, 0.0, false),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // buf = 0.9 * 0.5 + (1 - 0.5) * 0.5 = 0.7; p = 0.95 - 0.07 = 0.88
        close(&buf, &[0.7]);
        close(&p, &[0.88]);
    }

    #[test]
    fn nesterov_looks_ahead_along_the_buffer() {
        let mut p = vec![1.0];
        let mut buf = vec![0.0];
        step(
            &hp(0.1, 0.9, 0.0, true, 0.0, true),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // buf = 0.5; g = 0.5 + 0.9 * 0.5 = 0.95; p = 1 - 0.095 = 0.905
        close(&buf, &[0.5]);
        close(&p, &[0.905]);
        step(
            &hp(0.1, 0.9, 0.0, true, 0.0, false),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // buf = 0.9 * 0.5 + 0.5 = 0.95; g = 0.5 + 0.9 * 0.95 = 1.355
        // p = 0.905 - 0.1355 = 0.7695
        close(&buf, &[0.95]);
        close(&p, &[0.7695]);
    }

    #[test]
    fn momentum_with_weight_decay_decays_before_the_buffer() {
        let mut p = vec![2.0];
        let mut buf = vec![0.0];
        step(
            &hp(0.1, 0.9, 0.0, false, 0.1, true),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // g = 0.5 + 0.1 * 2 = 0.7; buf = 0.7; p = 2 - 0.07 = 1.93
        close(&buf, &[0.7]);
        close(&p, &[1.93]);
        step(
            &hp(0.1, 0.9, 0.0, false, 0.1, false),
            &mut p,
            &[0.5],
            &mut buf,
        );
        // g = 0.5 + 0.1 * 1.93 = 0.693; buf = 0.9 * 0.7 + 0.693 = 1.323
        // p = 1.93 - 0.1323 = 1.7977
        close(&buf, &[1.323]);
        close(&p, &[1.7977]);
    }
}
