//! Per-lane semantics of the arithmetic instructions on register bit
//! patterns. Registers hold up to 64 bits; a value of a narrower type lives
//! in the low bits (`canon` clears the rest).
//!
//! Float precision: `.rn` ops are Rust's IEEE f32 ops and `fma` is
//! `f32::mul_add`, so they are bit-exact with the GPU. The `.approx` ops use
//! the libm function in f32, which is at least as accurate as the hardware
//! bound in the PTX ISA (e.g. `ex2.approx.f32` ≤ 2 ulp, `rcp/rsqrt.approx`
//! ≤ 1 ulp, `lg2.approx` ≤ 2^-22.6 abs): tests should use a few-ulp tolerance.
//! Integer division by zero is unspecified in PTX; we return all ones.

use crate::inst::{BinOp, Cmp, MulMode, Rnd, Ty, UnOp};

/// Width in bits of a register value of type `ty`.
pub fn bits(ty: Ty) -> u32 {
    if ty == Ty::Pred {
        1
    } else {
        ty.size() * 8
    }
}

/// Clears bits above the type's width.
#[inline]
pub fn canon(ty: Ty, v: u64) -> u64 {
    let b = bits(ty);
    if b >= 64 {
        v
    } else {
        v & ((1u64 << b) - 1)
    }
}

/// Sign-extends the low `b` bits.
#[inline]
fn sext(v: u64, b: u32) -> i64 {
    if b >= 64 {
        v as i64
    } else {
        let s = 64 - b;
        ((v << s) as i64) >> s
    }
}

/// The integer value of `v` as type `ty` (signed types sign-extended).
#[inline]
fn ext(ty: Ty, v: u64) -> i128 {
    if ty.is_signed() {
        i128::from(sext(v, bits(ty)))
    } else {
        i128::from(canon(ty, v))
    }
}

#[inline]
fn f(v: u64) -> f32 {
    f32::from_bits(v as u32)
}

#[inline]
fn fb(x: f32) -> u64 {
    u64::from(x.to_bits())
}

fn sat01(x: f32) -> f32 {
    // `.sat` clamps to [0, 1] and flushes NaN to 0 (PTX ISA 9.7.3).
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

/// Two-operand op.
#[inline]
pub fn bin(op: BinOp, ty: Ty, sat: bool, a: u64, b: u64) -> u64 {
    if ty == Ty::F32 {
        let (x, y) = (f(a), f(b));
        let r = match op {
            BinOp::Add => x + y,
            BinOp::Sub => x - y,
            BinOp::Mul(_) => x * y,
            BinOp::Div => x / y,
            BinOp::Min => x.min(y),
            BinOp::Max => x.max(y),
            _ => f32::NAN, // rejected by the decoder
        };
        return fb(if sat { sat01(r) } else { r });
    }
    let w = bits(ty);
    let r: u64 = match op {
        BinOp::Add | BinOp::Sub if sat => {
            let (x, y) = (ext(ty, a), ext(ty, b));
            let r = if op == BinOp::Add { x + y } else { x - y };
            r.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as u64
        }
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul(MulMode::Lo) => a.wrapping_mul(b),
        BinOp::Mul(MulMode::Hi) => ((ext(ty, a) * ext(ty, b)) >> w) as u64,
        BinOp::Mul(MulMode::Wide) => {
            let p = (ext(ty, a) * ext(ty, b)) as u64;
            return if w >= 32 {
                p
            } else {
                p & ((1u64 << (2 * w)) - 1)
            };
        }
        BinOp::Div | BinOp::Rem => {
            let (x, y) = (ext(ty, a), ext(ty, b));
            if y == 0 {
                u64::MAX
            } else if op == BinOp::Div {
                x.wrapping_div(y) as u64
            } else {
                x.wrapping_rem(y) as u64
            }
        }
        BinOp::Min => ext(ty, a).min(ext(ty, b)) as u64,
        BinOp::Max => ext(ty, a).max(ext(ty, b)) as u64,
        BinOp::And => a & b,
        BinOp::Or => a | b,
        BinOp::Xor => a ^ b,
        BinOp::Shl => {
            let s = b as u32;
            if s >= w {
                0
            } else {
                a << s
            }
        }
        BinOp::Shr => {
            // Shift amounts past the width clamp (PTX ISA 9.7.8.8): zero or sign fill.
            let s = (b as u32).min(w);
            if ty.is_signed() {
                (sext(a, w) >> s.min(63)) as u64
            } else if s >= w {
                0
            } else {
                canon(ty, a) >> s
            }
        }
    };
    canon(ty, r)
}

/// `mad`/`fma`.
#[inline]
pub fn mad(mode: MulMode, ty: Ty, sat: bool, a: u64, b: u64, c: u64) -> u64 {
    if ty == Ty::F32 {
        let r = f(a).mul_add(f(b), f(c));
        return fb(if sat { sat01(r) } else { r });
    }
    let p = bin(BinOp::Mul(mode), ty, false, a, b);
    let rty = match (mode, ty) {
        (MulMode::Wide, Ty::S16 | Ty::U16) => Ty::U32,
        (MulMode::Wide, _) => Ty::U64,
        _ => ty,
    };
    canon(rty, p.wrapping_add(c))
}

/// One-operand op.
#[inline]
pub fn un(op: UnOp, ty: Ty, a: u64) -> u64 {
    if ty == Ty::F32 {
        let x = f(a);
        return fb(match op {
            UnOp::Neg => -x,
            UnOp::Abs => x.abs(),
            UnOp::Rcp => 1.0 / x,
            UnOp::Sqrt => x.sqrt(),
            UnOp::Rsqrt => 1.0 / x.sqrt(),
            UnOp::Ex2 => x.exp2(),
            UnOp::Lg2 => x.log2(),
            UnOp::Sin => x.sin(),
            UnOp::Cos => x.cos(),
            UnOp::Tanh => x.tanh(),
            UnOp::Not => f32::NAN, // rejected by the decoder
        });
    }
    let r = match op {
        UnOp::Neg => (ext(ty, a) as i64).wrapping_neg() as u64,
        UnOp::Abs => (ext(ty, a) as i64).wrapping_abs() as u64,
        _ => !a,
    };
    canon(ty, r)
}

fn to_f64(ty: Ty, v: u64) -> f64 {
    match ty {
        Ty::F16 => half::f16::from_bits(v as u16).to_f64(),
        Ty::F32 => f64::from(f(v)),
        _ => f64::from_bits(v),
    }
}

/// `setp` comparison (before the optional boolean combine).
#[inline]
pub fn setp(cmp: Cmp, unordered: bool, unsigned: bool, ty: Ty, a: u64, b: u64) -> bool {
    if ty.is_float() {
        let (x, y) = if ty == Ty::F32 {
            (f64::from(f(a)), f64::from(f(b)))
        } else {
            (to_f64(ty, a), to_f64(ty, b))
        };
        let nan = x.is_nan() || y.is_nan();
        return match cmp {
            Cmp::Num => !nan,
            Cmp::Nan => nan,
            _ if nan => unordered,
            Cmp::Eq => x == y,
            Cmp::Ne => x != y,
            Cmp::Lt => x < y,
            Cmp::Le => x <= y,
            Cmp::Gt => x > y,
            Cmp::Ge => x >= y,
        };
    }
    let (x, y) = if unsigned {
        (i128::from(canon(ty, a)), i128::from(canon(ty, b)))
    } else {
        (ext(ty, a), ext(ty, b))
    };
    match cmp {
        Cmp::Eq => x == y,
        Cmp::Ne => x != y,
        Cmp::Lt => x < y,
        Cmp::Le => x <= y,
        Cmp::Gt => x > y,
        Cmp::Ge => x >= y,
        Cmp::Num | Cmp::Nan => false,
    }
}

/// Rounds an f64 to f32 in the given direction (the f64 is exact for every 32-bit source).
fn f64_to_f32(x: f64, rnd: Rnd) -> f32 {
    let r = x as f32; // round to nearest even
    if x.is_nan() || f64::from(r) == x {
        return r;
    }
    let up = |v: f32| next_toward(v, true);
    let down = |v: f32| next_toward(v, false);
    match rnd {
        Rnd::Rz if f64::from(r).abs() > x.abs() => {
            if r > 0.0 {
                down(r)
            } else {
                up(r)
            }
        }
        Rnd::Rm if f64::from(r) > x => down(r),
        Rnd::Rp if f64::from(r) < x => up(r),
        _ => r,
    }
}

/// The adjacent f32 toward +inf (`up`) or -inf; `f32::next_up` needs Rust 1.86 (MSRV is 1.85).
pub(crate) fn next_toward(v: f32, up: bool) -> f32 {
    if v.is_nan() || (v.is_infinite() && (v > 0.0) == up) {
        return v;
    }
    if v == 0.0 {
        let tiny = f32::from_bits(1);
        return if up { tiny } else { -tiny };
    }
    let b = v.to_bits();
    // Moving away from zero increments the magnitude bits, toward zero decrements them.
    f32::from_bits(if (v > 0.0) == up { b + 1 } else { b - 1 })
}

fn round_int(x: f64, rnd: Rnd) -> f64 {
    match rnd {
        Rnd::Rni => x.round_ties_even(),
        Rnd::Rmi => x.floor(),
        Rnd::Rpi => x.ceil(),
        Rnd::Rzi => x.trunc(),
        _ => x,
    }
}

/// `cvt.rnd.sat.dty.sty`.
pub fn cvt(dty: Ty, sty: Ty, rnd: Rnd, sat: bool, a: u64) -> u64 {
    if !dty.is_float() {
        let w = bits(dty);
        let (lo, hi) = if dty.is_signed() {
            (-(1i128 << (w - 1)), (1i128 << (w - 1)) - 1)
        } else {
            (0, (1i128 << w) - 1)
        };
        let v: i128 = if sty.is_float() {
            // Float → int always saturates and NaN becomes 0 (PTX ISA 9.7.9.21); `as` does both.
            let x = round_int(
                to_f64(sty, a),
                if rnd == Rnd::None { Rnd::Rzi } else { rnd },
            );
            if x.is_nan() {
                0
            } else {
                (x as i128).clamp(lo, hi)
            }
        } else {
            let v = ext(sty, a);
            if sat {
                v.clamp(lo, hi)
            } else {
                v
            }
        };
        return canon(dty, v as u64);
    }
    let x: f64 = if sty.is_float() {
        round_int(to_f64(sty, a), rnd)
    } else if bits(sty) == 64 {
        // 64-bit integers may not be exact in f64; only round-to-nearest is modelled for them.
        let v = ext(sty, a);
        return finish_float(
            dty,
            sat,
            if dty == Ty::F32 {
                f64::from(v as f32)
            } else {
                v as f64
            },
            Rnd::Rn,
        );
    } else {
        ext(sty, a) as f64
    };
    finish_float(dty, sat, x, rnd)
}

fn finish_float(dty: Ty, sat: bool, x: f64, rnd: Rnd) -> u64 {
    let x = if sat {
        if x.is_nan() {
            0.0
        } else {
            x.clamp(0.0, 1.0)
        }
    } else {
        x
    };
    match dty {
        Ty::F16 => u64::from(half::f16::from_f64(x).to_bits()),
        Ty::F32 => fb(f64_to_f32(x, rnd)),
        _ => x.to_bits(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvt_int_to_f32_directed_rounding_brackets_the_exact_value() {
        let x = 16_777_217u64; // 2^24 + 1: not representable in f32
        let rn = f32::from_bits(cvt(Ty::F32, Ty::S32, Rnd::Rn, false, x) as u32);
        let rz = f32::from_bits(cvt(Ty::F32, Ty::S32, Rnd::Rz, false, x) as u32);
        let rp = f32::from_bits(cvt(Ty::F32, Ty::S32, Rnd::Rp, false, x) as u32);
        assert_eq!((rn, rz, rp), (16_777_216.0, 16_777_216.0, 16_777_218.0));
        let neg = (-16_777_217i64) as u64;
        assert_eq!(
            f32::from_bits(cvt(Ty::F32, Ty::S32, Rnd::Rm, false, neg) as u32),
            -16_777_218.0
        );
    }

    #[test]
    fn shifts_past_the_width_clamp() {
        assert_eq!(bin(BinOp::Shl, Ty::B32, false, 1, 40), 0);
        assert_eq!(bin(BinOp::Shr, Ty::U32, false, 0x8000_0000, 40), 0);
        assert_eq!(
            bin(BinOp::Shr, Ty::S32, false, 0x8000_0000, 40),
            0xffff_ffff
        );
    }

    #[test]
    fn integer_division_by_zero_does_not_panic() {
        assert_eq!(bin(BinOp::Div, Ty::S32, false, 7, 0), 0xffff_ffff);
        assert_eq!(
            bin(BinOp::Div, Ty::S32, false, 0x8000_0000, 0xffff_ffff),
            0x8000_0000
        );
    }

    #[test]
    fn mul_hi_and_wide() {
        assert_eq!(
            bin(BinOp::Mul(MulMode::Hi), Ty::U32, false, 0xffff_ffff, 2),
            1
        );
        assert_eq!(
            bin(
                BinOp::Mul(MulMode::Wide),
                Ty::S32,
                false,
                (-3i32) as u32 as u64,
                5
            ),
            (-15i64) as u64
        );
        assert_eq!(
            mad(MulMode::Wide, Ty::U32, false, 0x8000_0000, 4, 1),
            0x2_0000_0001
        );
    }

    #[test]
    fn float_setp_ordered_vs_unordered() {
        let nan = u64::from(f32::NAN.to_bits());
        assert!(!setp(Cmp::Ne, false, false, Ty::F32, nan, 0));
        assert!(setp(Cmp::Ne, true, false, Ty::F32, nan, 0));
        assert!(
            setp(Cmp::Lt, false, true, Ty::S32, 1, 0xffff_ffff),
            "lo compares unsigned"
        );
        assert!(!setp(Cmp::Lt, false, false, Ty::S32, 1, 0xffff_ffff));
    }
}
