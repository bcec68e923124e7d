//! Cortex-M4/M7 DSP instructions for the int8 dot products (feature
//! `arm-dsp`, ARMv7E-M only): `SXTAB16`/`SXTB16` widen four `i8` to two
//! pairs of `i16`, `SMLAD` multiplies both pairs and adds both products to
//! an accumulator, so four multiply-accumulates cost about five
//! instructions instead of twelve. This is how CMSIS-NN's `arm_nn_mat_mult`
//! kernels work, and stable Rust has no intrinsics for it, hence `asm!`.
//!
//! Every function wraps one instruction on registers only (`pure`,
//! `nomem`, `nostack`): no memory is touched, so there is nothing unsafe to
//! get wrong beyond the instruction's documented arithmetic. The results
//! equal the portable code's wrapping `i32` arithmetic exactly: the lane
//! products of `(x − zp) ∈ [−255, 255]` and `w ∈ [−128, 127]` fit `i16 · i16`,
//! and `SMLAD` wraps its sum modulo 2^32 like `wrapping_add` (it only also
//! sets the Q flag, which nothing reads).
#![allow(unsafe_code)]

use core::arch::asm;

/// `[lo16(a) + sext(b.byte0), hi16(a) + sext(b.byte2)]`.
#[inline(always)]
pub fn sxtab16(a: u32, b: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only instruction; see the module comment.
    unsafe {
        asm!("sxtab16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// [`sxtab16`] of the odd bytes: `b` rotated right by 8 first.
#[inline(always)]
pub fn sxtab16_ror8(a: u32, b: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only instruction; see the module comment.
    unsafe {
        asm!("sxtab16 {r}, {a}, {b}, ror #8", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `[sext(b.byte0), sext(b.byte2)]` as two `i16` lanes.
#[inline(always)]
pub fn sxtb16(b: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only instruction; see the module comment.
    unsafe {
        asm!("sxtb16 {r}, {b}", r = lateout(reg) r, b = in(reg) b, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// [`sxtb16`] of the odd bytes.
#[inline(always)]
pub fn sxtb16_ror8(b: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only instruction; see the module comment.
    unsafe {
        asm!("sxtb16 {r}, {b}, ror #8", r = lateout(reg) r, b = in(reg) b, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `acc + lo16(a)·lo16(b) + hi16(a)·hi16(b)` (signed lanes, wrapping).
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: one register-only instruction; see the module comment. SMLAD
    // sets the sticky Q flag on overflow, which nothing in Rust observes.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {c}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, c = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// `−zp` in both 16-bit lanes (added to the widened input bytes).
#[inline(always)]
pub fn neg_pair(zp: i32) -> u32 {
    let n = (zp.wrapping_neg() as u32) & 0xffff;
    n | (n << 16)
}

/// Four consecutive bytes as a little-endian word (0 past the end).
#[inline(always)]
pub fn word(b: &[i8]) -> u32 {
    match *b {
        [a, b, c, d, ..] => u32::from_le_bytes([a as u8, b as u8, c as u8, d as u8]),
        _ => 0,
    }
}

/// Packs two `i16` values into one word of lanes `[lo, hi]`.
#[inline(always)]
pub fn pack(lo: i32, hi: i32) -> u32 {
    (lo as u32 & 0xffff) | ((hi as u32) << 16)
}

#[inline(always)]
pub(crate) fn mac_word(acc: i32, xe: u32, xo: u32, ww: u32) -> i32 {
    smlad(xo, sxtb16_ror8(ww), smlad(xe, sxtb16(ww), acc))
}

/// A weight row as little-endian words, when it starts on a 4-byte
/// boundary (rows of a 16-aligned tensor with `in_features % 4 == 0`).
#[inline(always)]
pub(crate) fn words(w: &[i8]) -> Option<&[u32]> {
    let whole = w.len() / 4 * 4;
    bytemuck::try_cast_slice(w.get(..whole)?).ok()
}

/// Three weight rows against the widened input (whole groups of 4). Rows
/// read as words keep the loop at loads with post-increment; a row that is
/// not word-aligned takes the byte-wise path.
// Not inlined on purpose: in its own function the loop gets all the
// registers; inlined into `forward_i8`, the outer loops' state pushes its
// row pointers onto the stack (measured: 21 vs 18 instructions per 12
// multiply-accumulates).
#[inline(never)]
pub(crate) fn dot3_wide(wide: &[u32], w: [&[i8]; 3]) -> [i32; 3] {
    let [w0, w1, w2] = w;
    let (Some(r0), Some(r1), Some(r2)) = (words(w0), words(w1), words(w2)) else {
        return [
            dot1_wide(wide, w0),
            dot1_wide(wide, w1),
            dot1_wide(wide, w2),
        ];
    };
    let (mut a0, mut a1, mut a2) = (0i32, 0i32, 0i32);
    for (((xp, &q0), &q1), &q2) in wide.chunks_exact(2).zip(r0).zip(r1).zip(r2) {
        let [xe, xo] = match *xp {
            [e, o] => [e, o],
            _ => [0; 2],
        };
        a0 = mac_word(a0, xe, xo, q0);
        a1 = mac_word(a1, xe, xo, q1);
        a2 = mac_word(a2, xe, xo, q2);
    }
    [a0, a1, a2]
}

/// One weight row against the widened input (whole groups of 4).
#[inline(always)]
pub(crate) fn dot1_wide(wide: &[u32], w: &[i8]) -> i32 {
    let mut acc = 0i32;
    for (xp, q) in wide.chunks_exact(2).zip(w.chunks_exact(4)) {
        if let [xe, xo] = *xp {
            acc = mac_word(acc, xe, xo, word(q));
        }
    }
    acc
}
