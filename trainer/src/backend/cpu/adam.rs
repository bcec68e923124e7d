//! Adam and AdamW steps (amsgrad off), as `torch.optim.Adam` and
//! `torch.optim.AdamW` define them
//! (<https://pytorch.org/docs/stable/generated/torch.optim.Adam.html>,
//! <https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html>):
//!
//! ```text
//! g = grad + weight_decay * p          (Adam: L2 on the gradient)
//! p = p * (1 - lr * weight_decay)      (AdamW: decoupled, instead)
//! m = b1 * m + (1 - b1) * g
//! v = b2 * v + (1 - b2) * g * g
//! p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
//! ```
//!
//! The last line is evaluated as PyTorch's single-tensor kernel does:
//! `step_size = lr / bc1`, `denom = sqrt(v) / sqrt(bc2) + eps`,
//! `p -= step_size * m / denom`, with the bias corrections computed once per
//! call in `f64` (Python floats in PyTorch) so the per-element loop holds only
//! `f32` arithmetic and no allocation.

use crate::backend::AdamStep;

/// Elements per part below which splitting the update over threads costs
/// more than it saves (the hand-off is about a microsecond).
const PART_MIN: usize = 1 << 15;

/// One part's slices of param, grad, m and v.
type Piece<'a> = (&'a mut [f32], &'a [f32], &'a mut [f32], &'a mut [f32]);

/// [`step`] split over the pool's threads in contiguous parts. Each element's
/// update depends on that element alone, so the result is the same bits for
/// any split.
pub fn step_parts(h: &AdamStep, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let n = param.len();
    let parts = (n / PART_MIN).min(super::threads::threads());
    if parts < 2 || grad.len() != n || m.len() != n || v.len() != n {
        return step(h, param, grad, m, v);
    }
    let chunk = n.div_ceil(parts);
    let pieces: Vec<Piece> = param
        .chunks_mut(chunk)
        .zip(grad.chunks(chunk))
        .zip(m.chunks_mut(chunk))
        .zip(v.chunks_mut(chunk))
        .map(|(((p, g), m), v)| (p, g, m, v))
        .collect();
    super::threads::run_pieces(pieces, |_, (p, g, m, v)| step(h, p, g, m, v));
}

/// One update of `param` from `grad` with moment buffers `m` and `v`; all
/// slices have the same length. `h.step` is the 1-based step number.
// Compiled for AVX2+FMA as well as the baseline and chosen at run time: the
// loop is hot and vectorizes twice as wide, and results are identical
// (Rust never contracts a*b+c into an FMA on its own).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512vl+avx512bw+avx512dq",
    "x86_64+avx2+fma"
))]
pub fn step(h: &AdamStep, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let t = i32::try_from(h.step.max(1)).unwrap_or(i32::MAX);
    let bc1 = 1.0 - (h.beta1 as f64).powi(t);
    let bc2 = 1.0 - (h.beta2 as f64).powi(t);
    let k = Consts {
        b1: h.beta1,
        b2: h.beta2,
        one_minus_b1: 1.0 - h.beta1,
        one_minus_b2: 1.0 - h.beta2,
        step_size: (h.lr as f64 / bc1) as f32,
        bc2_sqrt: bc2.sqrt() as f32,
        eps: h.eps,
        wd: h.weight_decay,
        decay: (1.0 - h.lr as f64 * h.weight_decay as f64) as f32,
    };
    // The weight-decay variant is a const parameter so each instance is a
    // branch-free loop, and weight_decay = 0 costs nothing.
    match (h.weight_decay != 0.0, h.decoupled) {
        (false, _) => run::<false, false>(&k, param, grad, m, v),
        (true, false) => run::<true, false>(&k, param, grad, m, v),
        (true, true) => run::<false, true>(&k, param, grad, m, v),
    }
}

/// Per-call scalars of the update.
struct Consts {
    b1: f32,
    b2: f32,
    one_minus_b1: f32,
    one_minus_b2: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    wd: f32,
    decay: f32,
}

#[inline(always)]
fn run<const L2: bool, const DECOUPLED: bool>(
    k: &Consts,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    for (((p, &g), m), v) in param
        .iter_mut()
        .zip(grad)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        let g = if L2 { g + k.wd * *p } else { g };
        if DECOUPLED {
            *p *= k.decay;
        }
        *m = k.b1 * *m + k.one_minus_b1 * g;
        *v = k.b2 * *v + k.one_minus_b2 * g * g;
        let denom = v.sqrt() / k.bc2_sqrt + k.eps;
        *p -= k.step_size * *m / denom;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(weight_decay: f32, decoupled: bool, step: u64) -> AdamStep {
        AdamStep {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            decoupled,
            step,
        }
    }

    fn close(what: &str, got: f32, want: f64) {
        assert!(
            (got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "{what}: got {got}, want {want}"
        );
    }

    /// Runs steps 1..=3 on one parameter starting at 1.0 with gradients
    /// 0.5, 0.25, -0.5, checking (m, v, p) after each against `want`.
    fn three_steps(weight_decay: f32, decoupled: bool, want: [(f64, f64, f64); 3]) {
        let (mut p, mut m, mut v) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
        for (t, (g, (wm, wv, wp))) in [0.5f32, 0.25, -0.5].into_iter().zip(want).enumerate() {
            step(
                &hp(weight_decay, decoupled, t as u64 + 1),
                &mut p,
                &[g],
                &mut m,
                &mut v,
            );
            close(&format!("m at step {}", t + 1), m[0], wm);
            close(&format!("v at step {}", t + 1), v[0], wv);
            close(&format!("p at step {}", t + 1), p[0], wp);
        }
    }

    #[test]
    fn a_split_update_equals_the_whole_one_bit_for_bit() {
        let n = 3 * PART_MIN + 17;
        let mut s = crate::philox::Stream::new(5, 0);
        let mut r = |_| s.uniform_range(-1.0, 1.0);
        let (g, p0, m0): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            (0..n).map(&mut r).collect(),
            (0..n).map(&mut r).collect(),
            (0..n).map(&mut r).collect(),
        );
        let v0: Vec<f32> = m0.iter().map(|x| x * x).collect();
        let h = hp(0.01, true, 3);
        let (mut p1, mut m1, mut v1) = (p0.clone(), m0.clone(), v0.clone());
        let (mut p2, mut m2, mut v2) = (p0, m0, v0);
        step(&h, &mut p1, &g, &mut m1, &mut v1);
        step_parts(&h, &mut p2, &g, &mut m2, &mut v2);
        for (a, b) in [(&p1, &p2), (&m1, &m2), (&v1, &v2)] {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
        }
    }

    #[test]
    fn adam_three_steps_match_the_documented_rule() {
        // lr 0.1, betas (0.9, 0.999), eps 1e-8, p0 = 1.
        // t=1, g=0.5: m = 0.1*0.5 = 0.05; v = 0.001*0.25 = 0.00025
        //   m_hat = 0.05/0.1 = 0.5; v_hat = 0.00025/0.001 = 0.25; sqrt = 0.5
        //   p = 1 - 0.1*0.5/(0.5 + 1e-8) = 0.900000002
        // t=2, g=0.25: m = 0.9*0.05 + 0.1*0.25 = 0.07
        //   v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225
        //   m_hat = 0.07/(1-0.81) = 0.368421052632
        //   v_hat = 0.00031225/(1-0.998001) = 0.156203101551; sqrt = 0.395225380702
        //   p = 0.900000002 - 0.1*0.368421052632/0.395225380702 = 0.806782040477
        // t=3, g=-0.5: m = 0.9*0.07 - 0.1*0.5 = 0.013
        //   v = 0.999*0.00031225 + 0.001*0.25 = 0.00056193775
        //   m_hat = 0.013/(1-0.729) = 0.0479704797048
        //   v_hat = 0.00056193775/(1-0.997002999) = 0.187500020854; sqrt = 0.433012725973
        //   p = 0.806782040477 - 0.1*0.0479704797048/0.433012725973 = 0.795703733601
        three_steps(
            0.0,
            false,
            [
                (0.05, 0.00025, 0.900000002),
                (0.07, 0.00031225, 0.806782040477),
                (0.013, 0.00056193775, 0.795703733601),
            ],
        );
    }

    #[test]
    fn adam_weight_decay_is_l2_on_the_gradient() {
        // weight_decay 0.1: g <- g + 0.1 * p before the moments.
        // t=1: g = 0.5 + 0.1*1 = 0.6; m = 0.06; v = 0.001*0.36 = 0.00036
        //   m_hat = 0.6; sqrt(v_hat) = 0.6; p = 1 - 0.1*0.6/(0.6+1e-8) = 0.900000001667
        // t=2: g = 0.25 + 0.1*0.900000001667 = 0.340000000167
        //   m = 0.9*0.06 + 0.1*0.34 = 0.0880000000167
        //   v = 0.999*0.00036 + 0.001*0.34^2 = 0.000475240000113
        //   m_hat = 0.088/0.19 = 0.463157894825; sqrt(v_hat) = sqrt(0.000475240000113/0.001999) = 0.487584730577
        //   p = 0.900000001667 - 0.1*0.463157894825/0.487584730577 = 0.805009765861
        // t=3: g = -0.5 + 0.1*0.805009765861 = -0.419499023414
        //   m = 0.9*0.088 + 0.1*g = 0.0372500976736
        //   v = 0.999*0.00047524 + 0.001*g^2 = 0.000650744190758
        //   m_hat = 0.0372500976736/0.271 = 0.137454234958
        //   sqrt(v_hat) = sqrt(0.000650744190758/0.002997001) = 0.465974022522
        //   p = 0.805009765861 - 0.1*0.137454234958/0.465974022522 = 0.775511505151
        three_steps(
            0.1,
            false,
            [
                (0.06, 0.00036, 0.900000001667),
                (0.0880000000167, 0.000475240000113, 0.805009765861),
                (0.0372500976736, 0.000650744190758, 0.775511505151),
            ],
        );
    }

    #[test]
    fn adamw_decays_the_parameter_not_the_gradient() {
        // weight_decay 0.1, lr 0.1: p <- p * (1 - 0.01) first; the moments see
        // the raw gradient, so m and v equal plain Adam's.
        // t=1: p = 0.99; p = 0.99 - 0.1*0.5/(0.5+1e-8) = 0.890000002
        // t=2: p = 0.890000002*0.99 = 0.88110000198
        //   p = 0.88110000198 - 0.1*0.368421052632/0.395225380702 = 0.787882040457
        // t=3: p = 0.787882040457*0.99 = 0.780003220052
        //   p = 0.780003220052 - 0.1*0.0479704797048/0.433012725973 = 0.768924913177
        three_steps(
            0.1,
            true,
            [
                (0.05, 0.00025, 0.890000002),
                (0.07, 0.00031225, 0.787882040457),
                (0.013, 0.00056193775, 0.768924913177),
            ],
        );
    }

    #[test]
    fn eps_bounds_the_step_when_the_second_moment_is_zero() {
        // g = 0 everywhere: m = v = 0, so the update is 0 / (0 + eps) = 0,
        // not NaN.
        let (mut p, mut m, mut v) = (vec![1.0f32, -3.0], vec![0.0f32; 2], vec![0.0f32; 2]);
        step(&hp(0.0, false, 1), &mut p, &[0.0, 0.0], &mut m, &mut v);
        assert_eq!(p, vec![1.0, -3.0]);
    }
}
