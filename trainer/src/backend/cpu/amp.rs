//! Mixed precision on the CPU: the reference for `ptx/amp.ptx`.
//!
//! `gemm_f16` is an *emulation* for testing, not a speed-up: A and B are
//! rounded to fp16 into a per-thread scratch (grown on demand, so the steady
//! state allocates nothing; a thread-local keeps `Cpu` a unit struct and
//! needs no lock), then the f32 GEMM runs on the rounded copies. Because the
//! product of two fp16 values has at most 22 significant bits, it is exact
//! in f32, so this equals tensor-core math (fp16 inputs, f32 accumulation)
//! up to summation order.

use super::{gemm, Cpu};
use crate::backend::{need, AmpOps, Gemm};
use crate::error::Result;
use half::f16;
use std::cell::RefCell;

thread_local! {
    /// Rounded copies of A and B, reused by every `gemm_f16` on this thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f32(f16(v))`: round to nearest even, overflow to ±inf, subnormals kept
/// (`cvt.rn.f16.f32`); NaN stays NaN.
pub fn round_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// True for inf and NaN (exponent bits all ones), the test `amp.ptx` makes.
pub fn non_finite(v: f32) -> bool {
    v.to_bits() & 0x7f80_0000 == 0x7f80_0000
}

/// `g *= inv_scale`; true when any element was inf/NaN before or after.
pub fn unscale_check(g: &mut [f32], inv_scale: f32) -> bool {
    let mut bad = false;
    for v in g {
        let before = non_finite(*v);
        *v *= inv_scale;
        bad |= before | non_finite(*v);
    }
    bad
}

impl AmpOps for Cpu {
    fn round_f16(&self, x: &Vec<f32>, y: &mut Vec<f32>, n: usize) -> Result<()> {
        need(self, "round_f16", n, &[x.len(), y.len()])?;
        for (d, s) in y[..n].iter_mut().zip(&x[..n]) {
            *d = round_f16(*s);
        }
        Ok(())
    }

    fn gemm_f16(&self, g: &Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) -> Result<()> {
        let (la, lb) = (g.m * g.k, g.k * g.n);
        need(self, "gemm_f16 A", la, &[a.len()])?;
        need(self, "gemm_f16 B", lb, &[b.len()])?;
        need(self, "gemm_f16 C", g.m * g.n, &[c.len()])?;
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < la + lb {
                s.resize(la + lb, 0.0);
            }
            let (ra, rest) = s.split_at_mut(la);
            let rb = &mut rest[..lb];
            ra.iter_mut()
                .zip(&a[..la])
                .for_each(|(d, v)| *d = round_f16(*v));
            rb.iter_mut()
                .zip(&b[..lb])
                .for_each(|(d, v)| *d = round_f16(*v));
            gemm::gemm(g, ra, rb, c);
        });
        Ok(())
    }

    fn unscale_check(
        &self,
        grads: &mut Vec<f32>,
        n: usize,
        inv_scale: f32,
        found_inf: &mut Vec<f32>,
    ) -> Result<()> {
        need(self, "unscale_check", n, &[grads.len()])?;
        need(self, "unscale_check found_inf", 1, &[found_inf.len()])?;
        if unscale_check(&mut grads[..n], inv_scale) {
            found_inf[0] = 1.0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Blas;

    #[test]
    fn round_f16_matches_known_values() {
        assert_eq!(round_f16(1.0), 1.0);
        // 1 + 2^-11 is the tie between 1 and 1 + 2^-10: to even (1).
        assert_eq!(round_f16(1.0 + 2f32.powi(-11)), 1.0);
        assert_eq!(round_f16(65504.0), 65504.0);
        // From 65520 on, round to nearest overflows to inf (IEEE, cvt.rn).
        assert_eq!(round_f16(65519.0), 65504.0);
        assert_eq!(round_f16(65520.0), f32::INFINITY);
        assert_eq!(round_f16(-1e6), f32::NEG_INFINITY);
        // The smallest f16 subnormal, 2^-24, is kept; half of it ties to 0.
        assert_eq!(round_f16(2f32.powi(-24)), 2f32.powi(-24));
        assert_eq!(round_f16(2f32.powi(-25)), 0.0);
        assert!(round_f16(f32::NAN).is_nan());
    }

    #[test]
    fn gemm_f16_equals_gemm_on_rounded_inputs_and_leaves_inputs_alone() -> Result<()> {
        let g = Gemm {
            m: 3,
            n: 4,
            k: 5,
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.5,
        };
        let a: Vec<f32> = (0..15).map(|i| 0.1 + i as f32 * 0.3337).collect();
        let b: Vec<f32> = (0..20).map(|i| 1.0 / (1.0 + i as f32)).collect();
        let c0: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut c = c0.clone();
        Cpu.gemm_f16(&g, &a, &b, &mut c)?;
        let ra: Vec<f32> = a.iter().map(|&v| round_f16(v)).collect();
        let rb: Vec<f32> = b.iter().map(|&v| round_f16(v)).collect();
        let mut want = c0.clone();
        Cpu.gemm(&g, &ra, &rb, &mut want)?;
        assert_eq!(c, want);
        let mut plain = c0;
        Cpu.gemm(&g, &a, &b, &mut plain)?;
        assert_ne!(c, plain, "the rounding must be visible on these inputs");
        assert!(a.iter().zip(&ra).any(|(x, r)| x != r));
        Ok(())
    }

    #[test]
    fn unscale_check_flags_inf_and_nan_before_or_after_and_never_clears() -> Result<()> {
        let mut flag = vec![0.0];
        let mut g = vec![2.0, -4.0, 8.0];
        Cpu.unscale_check(&mut g, 3, 0.5, &mut flag)?;
        assert_eq!((g.as_slice(), flag[0]), (&[1.0, -2.0, 4.0][..], 0.0));
        // Overflow caused by the scaling itself (inv_scale > 1 after backoff).
        let mut g = vec![3e38, 1.0];
        Cpu.unscale_check(&mut g, 2, 2.0, &mut flag)?;
        assert_eq!(flag[0], 1.0);
        // A finite buffer afterwards leaves the flag set.
        let mut g = vec![1.0];
        Cpu.unscale_check(&mut g, 1, 0.5, &mut flag)?;
        assert_eq!(flag[0], 1.0);
        let mut flag = vec![0.0];
        let mut g = vec![f32::NAN, 1.0];
        Cpu.unscale_check(&mut g, 2, 0.5, &mut flag)?;
        assert_eq!(flag[0], 1.0);
        // Only the first n elements count.
        let mut flag = vec![0.0];
        let mut g = vec![1.0, f32::INFINITY];
        Cpu.unscale_check(&mut g, 1, 0.5, &mut flag)?;
        assert_eq!(flag[0], 0.0);
        Ok(())
    }
}
