//! Strict float behaviour: `.approx` results anywhere inside the PTX ISA's
//! error bound, `.ftz` flushing subnormals, and `mul`+`add` contracted into a
//! fused multiply-add as ptxas may (pairs found in `meta.rs`).
//!
//! Error bounds (PTX ISA 9.7.3, the f32 `.approx` instructions; CUDA Math API
//! for the matching intrinsics): `ex2` 2 ulp; `lg2` 2^-22.6 absolute for
//! x in [0.5, 2], else 2 ulp; `rcp`, `sqrt` 1 ulp; `rsqrt` 2^-22.9 relative;
//! `sin`/`cos` 2^-20.9 absolute (|x| <= pi); `tanh` 2^-10.987 relative;
//! `div.approx`/`div.full` 2 ulp. The reference value is computed in f64.

use super::{Block, Lanes};
use crate::alu;
use crate::inst::{BinOp, Inst, Op, Ty, UnOp};
use crate::meta::KernelMeta;
use crate::options::{mix, ApproxError, SimOptions};
use crate::parse::Kernel;

/// Per pc: does strict mode change this instruction's result?
pub(super) fn special(k: &Kernel, meta: &KernelMeta, opts: &SimOptions) -> Vec<bool> {
    k.insts
        .iter()
        .enumerate()
        .map(|(pc, inst)| {
            let f32_op = matches!(
                inst.op,
                Op::Bin { ty: Ty::F32, .. }
                    | Op::Mad { ty: Ty::F32, .. }
                    | Op::Un { ty: Ty::F32, .. }
            );
            let m = meta.insts.get(pc);
            let approx = opts.approx_error != ApproxError::Exact && m.is_some_and(|m| m.approx);
            let ftz = opts.ftz && m.is_some_and(|m| m.ftz);
            let fuse = opts.fma_contraction && meta.contract.get(pc).is_some_and(|c| c.is_some());
            f32_op && (approx || ftz || fuse)
        })
        .collect()
}

fn f(v: u64) -> f32 {
    f32::from_bits(v as u32)
}

fn flush(x: f32) -> f32 {
    if x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

fn ulp(v: f32) -> f64 {
    let a = v.abs();
    f64::from(alu::next_toward(a, true)) - f64::from(a)
}

/// The exact value (in f64) and the allowed absolute error of an approximate op.
fn bound(op: UnOp, x: f32, r: f32) -> Option<(f64, f64)> {
    let xd = f64::from(x);
    let u = ulp(r);
    Some(match op {
        UnOp::Ex2 => (xd.exp2(), 2.0 * u),
        UnOp::Lg2 if (0.5..=2.0).contains(&x) => (xd.log2(), 2f64.powf(-22.6)),
        UnOp::Lg2 => (xd.log2(), 2.0 * u),
        UnOp::Rcp => (1.0 / xd, u),
        UnOp::Sqrt => (xd.sqrt(), u),
        UnOp::Rsqrt => {
            let e = 1.0 / xd.sqrt();
            (e, 2f64.powf(-22.9) * e.abs())
        }
        UnOp::Sin => (xd.sin(), 2f64.powf(-20.9)),
        UnOp::Cos => (xd.cos(), 2f64.powf(-20.9)),
        UnOp::Tanh => {
            let e = xd.tanh();
            (e, 2f64.powf(-10.987) * e.abs())
        }
        UnOp::Neg | UnOp::Abs | UnOp::Not => return None,
    })
}

/// A result within `err` of `exact`, chosen by `mode` from `h` (a hash of seed,
/// pc and inputs, so the choice does not depend on the schedule). Non-finite
/// results and values with no room inside the bound are returned unchanged.
fn perturb(mode: ApproxError, r: f32, exact: f64, err: f64, h: u64) -> f32 {
    if !r.is_finite() || !exact.is_finite() || r == 0.0 {
        return r;
    }
    let inside = |v: f32| v.is_finite() && (f64::from(v) - exact).abs() <= err;
    let up = h & 1 == 1;
    // Walk away from r in the chosen direction while staying inside the bound.
    let far = |up: bool| {
        let mut v = r;
        for _ in 0..64 {
            let n = alu::next_toward(v, up);
            if !inside(n) {
                break;
            }
            v = n;
        }
        v
    };
    match mode {
        ApproxError::Exact => r,
        ApproxError::Max => {
            let v = far(up);
            if v == r {
                far(!up)
            } else {
                v
            }
        }
        ApproxError::Random => {
            let (lo, hi) = (far(false), far(true));
            let span = u64::from(hi.to_bits().abs_diff(lo.to_bits()));
            if span == 0 || lo.is_sign_negative() != hi.is_sign_negative() {
                return r;
            }
            let k = (h >> 1) % (span + 1);
            let base = lo.to_bits().min(hi.to_bits());
            f32::from_bits(base + k as u32)
        }
    }
}

impl Block<'_> {
    /// Executes a strict-float instruction (see `special`); false when `inst`
    /// turns out not to need it, so the caller runs the normal path.
    pub(super) fn fp_op(&mut self, inst: &Inst, lo: usize, act: u32) -> bool {
        let pc = self.pc_now;
        let (approx, ftz, contract) = match self.meta.insts.get(pc as usize) {
            Some(m) => (
                self.opts.approx_error != ApproxError::Exact && m.approx,
                self.opts.ftz && m.ftz,
                if self.opts.fma_contraction {
                    self.meta.contract.get(pc as usize).copied().flatten()
                } else {
                    None
                },
            ),
            None => return false,
        };
        let fl = |x: f32| if ftz { flush(x) } else { x };
        let seed = self.opts.seed;
        match inst.op {
            Op::Bin {
                op,
                ty: Ty::F32,
                sat,
                dst,
                a,
                b,
            } => {
                for l in Lanes(act) {
                    let t = lo + l;
                    let (x, y) = (fl(f(self.val(t, a))), fl(f(self.val(t, b))));
                    let r = if let Some(c) = contract {
                        // d = p + y, d = x + p, d = p - y, d = x - p with p = ma * mb, one rounding.
                        let (ma, mb) = (fl(f(self.val(t, c.a))), fl(f(self.val(t, c.b))));
                        match (op, c.which) {
                            (BinOp::Sub, 0) => ma.mul_add(mb, -y),
                            (BinOp::Sub, _) => (-ma).mul_add(mb, x),
                            (_, 0) => ma.mul_add(mb, y),
                            _ => ma.mul_add(mb, x),
                        }
                    } else {
                        let v = alu::bin(
                            op,
                            Ty::F32,
                            sat,
                            u64::from(x.to_bits()),
                            u64::from(y.to_bits()),
                        );
                        let r = f(v);
                        if approx && op == BinOp::Div {
                            let exact = f64::from(x) / f64::from(y);
                            let h = mix(seed
                                ^ mix(u64::from(pc) << 32
                                    ^ u64::from(x.to_bits())
                                    ^ (u64::from(y.to_bits()) << 16)));
                            perturb(self.opts.approx_error, r, exact, 2.0 * ulp(r), h)
                        } else {
                            r
                        }
                    };
                    self.set(t, dst, u64::from(fl(r).to_bits()));
                }
                true
            }
            Op::Mad {
                mode,
                ty: Ty::F32,
                sat,
                dst,
                a,
                b,
                c,
            } => {
                for l in Lanes(act) {
                    let t = lo + l;
                    let [x, y, z] = [a, b, c].map(|o| u64::from(fl(f(self.val(t, o))).to_bits()));
                    let r = f(alu::mad(mode, Ty::F32, sat, x, y, z));
                    self.set(t, dst, u64::from(fl(r).to_bits()));
                }
                true
            }
            Op::Un {
                op,
                ty: Ty::F32,
                dst,
                a,
            } => {
                for l in Lanes(act) {
                    let t = lo + l;
                    let x = fl(f(self.val(t, a)));
                    let mut r = f(alu::un(op, Ty::F32, u64::from(x.to_bits())));
                    if approx {
                        if let Some((exact, err)) = bound(op, x, r) {
                            let h = mix(seed ^ mix((u64::from(pc) << 32) ^ u64::from(x.to_bits())));
                            r = perturb(self.opts.approx_error, r, exact, err, h);
                        }
                    }
                    self.set(t, dst, u64::from(fl(r).to_bits()));
                }
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perturbation_stays_inside_the_bound_and_max_moves() {
        let x = 0.3f32;
        let r = x.exp2();
        let (exact, err) = bound(UnOp::Ex2, x, r).unwrap_or((0.0, 0.0));
        for h in 0..64 {
            for mode in [ApproxError::Max, ApproxError::Random] {
                let v = perturb(mode, r, exact, err, h);
                assert!(
                    (f64::from(v) - exact).abs() <= err,
                    "{mode:?} {h}: {v} vs {exact}"
                );
            }
        }
        assert_ne!(perturb(ApproxError::Max, r, exact, err, 0), r);
    }

    #[test]
    fn ftz_flushes_subnormals_keeping_the_sign() {
        let s = f32::from_bits(1);
        assert_eq!(flush(s).to_bits(), 0);
        assert_eq!(flush(-s).to_bits(), 0x8000_0000);
        assert_eq!(flush(1.5), 1.5);
    }
}
