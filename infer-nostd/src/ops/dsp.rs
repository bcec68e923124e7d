//! Cortex-M4/M7 DSP instructions for the int8 dot products (feature
//! `arm-dsp`, ARMv7E-M only): `SXTAB16`/`SXTB16` widen four `i8` to two
//! pairs of `i16`, `SMLAD` multiplies both pairs and adds both products to
//! an accumulator, so four multiply-accumulates cost about five
//! instructions instead of twelve. This is how CMSIS-NN's `arm_nn_mat_mult`
//! kernels work, and stable Rust has no intrinsics for it, hence `asm!`.
//!
//! Every `asm!` wraps one instruction on registers only (`pure`,
//! `nomem`, `nostack`): no memory is touched, so there is nothing unsafe to
//! get wrong beyond the instruction's documented arithmetic. The one
//! exception, [`dot4_interleaved`], is a whole loop in `global_asm!` that
//! reads two slices whose bounds its safe wrapper passes in. The results
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

/// Four interleaved weight rows (`WeightLayout::Interleaved4`: per group
/// of four inputs, the four rows' words one after the other) against the
/// widened input (whole groups of 4): the `i32` sums of [`mac_word`] for
/// each row, bit for bit.
///
/// The loop is the hand-written `lasagna_dot4_interleaved` below, because
/// LLVM does not find it: compiled from Rust (four accumulators over
/// `chunks_exact`), it loads the two input words and the four weight words
/// with five loads and copies two accumulators each time round, 25
/// instructions per 16 multiply-accumulates. It needs 14 registers (four
/// accumulators, two input words, four weight words, a temporary, two
/// pointers and a count), one more than `asm!` may name when the frame
/// pointer `r7` is reserved, so it is a whole function in `global_asm!`
/// that saves and restores what it uses (AAPCS). Per group: one `LDRD`
/// for the input pair, one `LDM` for the four weight words, eight
/// `SXTB16` and eight `SMLAD`; the loop runs four groups per branch:
/// 74 instructions per 64 multiply-accumulates.
pub(crate) fn dot4_interleaved(wide: &[u32], w: &[u32]) -> [i32; 4] {
    let groups = (wide.len() / 2).min(w.len() / 4);
    let mut acc = [0i32; 4];
    // SAFETY: the function reads `2 · groups` words from `wide` and
    // `4 · groups` from `w`, both in bounds by the `min` above and
    // word-aligned (they are `u32` slices, as `LDRD`/`LDM` need), writes
    // the four words of `acc`, and follows the AAPCS (r4-r11 and lr saved
    // and restored, nothing else touched but its own stack slots).
    unsafe { lasagna_dot4_interleaved(wide.as_ptr(), w.as_ptr(), groups, acc.as_mut_ptr()) };
    acc
}

extern "C" {
    /// `acc[j] = Σ_g smlad(x[2g + 1], sxtb16(w[4g + j] ror 8),
    /// smlad(x[2g], sxtb16(w[4g + j]), ·))` for `g < groups`, `j < 4`.
    fn lasagna_dot4_interleaved(x: *const u32, w: *const u32, groups: usize, acc: *mut i32);
}

/// One group: the input pair (r7, r8) and the four rows' weight words
/// (r9-r12), each word's even then odd bytes into its row's accumulator
/// (r3-r6), lr the widened weights.
macro_rules! dot4_group {
    () => {
        "ldrd r7, r8, [r0], #8
        ldmia r1!, {{r9, r10, r11, r12}}
        sxtb16 lr, r9
        smlad r3, r7, lr, r3
        sxtb16 r9, r9, ror #8
        smlad r3, r8, r9, r3
        sxtb16 lr, r10
        smlad r4, r7, lr, r4
        sxtb16 r10, r10, ror #8
        smlad r4, r8, r10, r4
        sxtb16 lr, r11
        smlad r5, r7, lr, r5
        sxtb16 r11, r11, ror #8
        smlad r5, r8, r11, r5
        sxtb16 lr, r12
        smlad r6, r7, lr, r6
        sxtb16 r12, r12, ror #8
        smlad r6, r8, r12, r6
        "
    };
}

// r0 = x, r1 = w, r2 = groups, r3 = acc (kept on the stack while r3 is an
// accumulator). Four groups per trip while four remain, then one at a time.
core::arch::global_asm!(
    ".syntax unified
    .thumb
    .section .text.lasagna_dot4_interleaved,\"ax\",%progbits
    .globl lasagna_dot4_interleaved
    .p2align 2
    .type lasagna_dot4_interleaved,%function
    .thumb_func
lasagna_dot4_interleaved:
    push {{r3, r4, r5, r6, r7, r8, r9, r10, r11, lr}}
    movs r3, #0
    movs r4, #0
    movs r5, #0
    movs r6, #0
    subs r2, r2, #4
    blo 2f
1:
    ",
    dot4_group!(),
    dot4_group!(),
    dot4_group!(),
    dot4_group!(),
    "subs r2, r2, #4
    bhs 1b
2:
    adds r2, r2, #4
    beq 4f
3:
    ",
    dot4_group!(),
    "subs r2, r2, #1
    bne 3b
4:
    ldr r7, [sp]
    stm r7, {{r3, r4, r5, r6}}
    pop {{r3, r4, r5, r6, r7, r8, r9, r10, r11, pc}}
    .size lasagna_dot4_interleaved, . - lasagna_dot4_interleaved
    "
);
