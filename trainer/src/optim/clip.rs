//! Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`,
//! norm type 2), entirely on the device: the total is reduced into a
//! one-element buffer that the scaling op reads in place, so a CUDA step
//! never waits on a host round trip.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layers::Param;

/// Scales all gradients together so their global L2 norm is at most
/// `max_norm` (`coef = max_norm / (norm + 1e-6)`, applied when below 1).
///
/// `scratch` needs at least one element; afterwards `scratch[0]` holds the
/// sum of squares of the gradients *before* clipping, for callers that want to
/// log the norm (`sqrt(scratch[0])`, what PyTorch returns).
pub fn clip_grad_norm<B: Backend>(
    b: &B,
    params: &mut [&mut Param<B>],
    max_norm: f32,
    scratch: &mut B::Buf,
) -> Result<()> {
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Err(Error::config(
            "gradient clipping max_norm",
            format!("{max_norm} must be finite and > 0"),
        ));
    }
    b.fill(scratch, 0.0, 1)?;
    for p in params.iter() {
        b.sum_squares(&p.grad, p.numel(), scratch)?;
    }
    for p in params.iter_mut() {
        let n = p.numel();
        b.clip_by_norm(&mut p.grad, n, scratch, max_norm)?;
    }
    Ok(())
}

#[cfg(test)]
// A failed expect is a failed test; the crate-wide deny is for library code.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    fn param(grad: &[f32]) -> Param<Cpu> {
        let mut p =
            Param::new(&Cpu, "weight", vec![grad.len()], &vec![0.0; grad.len()]).expect("param");
        p.grad = grad.to_vec();
        p
    }

    #[test]
    fn global_norm_above_max_scales_every_gradient_to_max_norm() {
        // Norm over both parameters: sqrt(3^2 + 4^2) = sqrt(9 + 16) = 5.
        // coef = 2 / (5 + 1e-6) = 0.39999992 -> (1.19999976, 1.59999968): norm ~2.
        let (mut a, mut c) = (param(&[3.0]), param(&[4.0]));
        let mut scratch = vec![123.0f32]; // stale: must be zeroed first
        clip_grad_norm(&Cpu, &mut [&mut a, &mut c], 2.0, &mut scratch).expect("clips");
        assert_eq!(scratch[0], 25.0);
        assert!(
            (a.grad[0] as f64 - 6.0 / 5.000001).abs() < 1e-6,
            "{:?}",
            a.grad
        );
        assert!(
            (c.grad[0] as f64 - 8.0 / 5.000001).abs() < 1e-6,
            "{:?}",
            c.grad
        );
        let norm = ((a.grad[0] as f64).powi(2) + (c.grad[0] as f64).powi(2)).sqrt();
        assert!((norm - 2.0).abs() < 1e-6, "{norm}");
    }

    #[test]
    fn global_norm_below_max_leaves_gradients_untouched() {
        // sqrt(0.3^2 + 0.4^2 + 0^2) = 0.5 < 1: coef = 1 / 0.500001 > 1.
        let (mut a, mut c) = (param(&[0.3, 0.4]), param(&[0.0]));
        let mut scratch = vec![0.0f32];
        clip_grad_norm(&Cpu, &mut [&mut a, &mut c], 1.0, &mut scratch).expect("clips");
        assert_eq!(a.grad, vec![0.3, 0.4]);
        assert_eq!(c.grad, vec![0.0]);
    }

    #[test]
    fn bad_max_norm_or_scratch_is_an_error() {
        let mut a = param(&[1.0]);
        assert!(matches!(
            clip_grad_norm(&Cpu, &mut [&mut a], 0.0, &mut vec![0.0]),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            clip_grad_norm(&Cpu, &mut [&mut a], 1.0, &mut Vec::new()),
            Err(Error::Backend { .. })
        ));
    }
}
