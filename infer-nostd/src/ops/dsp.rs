//! Cortex-M4/M7 DSP instructions for the int8 dot products (feature
//! `arm-dsp`, ARMv7E-M only): `SXTAB16`/`SXTB16` widen four `i8` to two
//! pairs of `i16`, `SMLAD` multiplies both pairs and adds both products to
//! an accumulator, so four multiply-accumulates cost about five
//! instructions instead of twelve. This is how CMSIS-NN's `arm_nn_mat_mult`
//! kernels work, and stable Rust has no intrinsics for it, hence `asm!`.
//!
//! Every `asm!` wraps one instruction (two for [`max8`]) on registers
//! only (`pure`, `nomem`, `nostack`): no memory is touched, so there is
//! nothing unsafe to get wrong beyond the instructions' documented
//! arithmetic. The exceptions are whole loops in `global_asm!` where LLVM
//! spills what the loop needs in registers ([`dot4_interleaved`] for the
//! Linear, [`dot2x2_all`] and [`dot5_run`] for the Conv2d): each reads
//! slices whose bounds its safe wrapper checks and passes in. The results
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

/// The larger of each pair of signed bytes: `SSUB8` sets a GE flag per
/// byte where `a ≥ b`, `SEL` takes those bytes from `a`, the rest from `b`.
/// One block, so nothing runs between them that could change the flags.
#[inline(always)]
pub fn max8(a: u32, b: u32) -> u32 {
    let r: u32;
    // SAFETY: two register-only instructions; see the module comment.
    unsafe {
        asm!("ssub8 {t}, {a}, {b}", "sel {r}, {a}, {b}", t = out(reg) _, r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack))
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

/// Two output positions by every pair of output channels of an int8
/// convolution: for pair `k` (weight rows `2k`, `2k + 1`, each `q` words,
/// one after the other in `w`), `out[4k..4k + 4] = [A·w0, A·w1, B·w0,
/// B·w1]`, where `wide` holds the two positions' widened patches side by
/// side (per group of four taps: A's even and odd lane words, then B's, the
/// layout `conv2d_dsp::gather_wide` writes). Bit for bit the sums of
/// [`mac_word`] for each (position, row).
///
/// A whole `global_asm!` loop for the same reason as
/// [`dot4_interleaved`]: the inner loop needs 14 registers (four
/// accumulators, the four patch words, a weight word and its widened
/// lanes, three pointers and a count), so the outer loop's state (patch
/// start, `q`, pairs left, `out`) lives on the stack. Per group: one `LDM`
/// for the four patch words, two `LDR` for the two rows' weight words, four
/// `SXTB16` and eight `SMLAD`, each widened weight feeding both positions:
/// 15 instructions per 16 multiply-accumulates, 62 per 64 with the loop
/// (four groups per branch), and about 20 per channel pair around it.
pub(crate) fn dot2x2_all(wide: &[u32], w: &[u32], q: usize, out: &mut [i32]) {
    if q == 0 || wide.len() < 4 * q {
        return;
    }
    let pairs = (w.len() / (2 * q)).min(out.len() / 4);
    // SAFETY: the function reads `4 · q` words from `wide` and `2 · q`
    // words per pair from `w`, all in bounds by the checks above and
    // word-aligned (`u32` slices, as `LDM` needs), writes `4 · pairs` words
    // of `out`, in bounds by the `min`, and follows the AAPCS (r4-r11 and
    // lr saved and restored, its 16 bytes of locals freed).
    unsafe { lasagna_conv_dot2x2(wide.as_ptr(), w.as_ptr(), q, pairs, out.as_mut_ptr()) };
}

extern "C" {
    /// See [`dot2x2_all`]; `out` is the fifth argument (on the stack).
    fn lasagna_conv_dot2x2(x: *const u32, w: *const u32, q: usize, pairs: usize, out: *mut i32);
}

/// One group: A's lanes (r8, r9) and B's (r10, r11); row 0's weight word
/// (r12, then widened into lr and r12 in place) into r4 (A) and r6 (B),
/// then row 1's into r5 (A) and r7 (B).
macro_rules! dot2x2_group {
    () => {
        "ldmia r0!, {{r8, r9, r10, r11}}
        ldr r12, [r1], #4
        sxtb16 lr, r12
        smlad r4, r8, lr, r4
        smlad r6, r10, lr, r6
        sxtb16 r12, r12, ror #8
        smlad r4, r9, r12, r4
        smlad r6, r11, r12, r6
        ldr r12, [r2], #4
        sxtb16 lr, r12
        smlad r5, r8, lr, r5
        smlad r7, r10, lr, r7
        sxtb16 r12, r12, ror #8
        smlad r5, r9, r12, r5
        smlad r7, r11, r12, r7
        "
    };
}

// Entry: r0 = x, r1 = w, r2 = q, r3 = pairs, out at [sp]. Locals after
// the push and `sub sp, #16`: [sp] patch start, [sp, #4] q, [sp, #8]
// pairs left, [sp, #12] out (the fifth argument is at [sp, #52]). r1 and
// r2 walk rows 2k and 2k + 1; after a pair, r2 is where row 2k + 2 starts.
core::arch::global_asm!(
    ".syntax unified
    .thumb
    .section .text.lasagna_conv_dot2x2,\"ax\",%progbits
    .globl lasagna_conv_dot2x2
    .p2align 2
    .type lasagna_conv_dot2x2,%function
    .thumb_func
lasagna_conv_dot2x2:
    push {{r4, r5, r6, r7, r8, r9, r10, r11, lr}}
    sub sp, sp, #16
    ldr r12, [sp, #52]
    str r0, [sp]
    str r2, [sp, #4]
    str r3, [sp, #8]
    str r12, [sp, #12]
    cmp r3, #0
    beq 9f
    add r2, r1, r2, lsl #2
5:
    ldr r0, [sp]
    ldr r3, [sp, #4]
    movs r4, #0
    movs r5, #0
    movs r6, #0
    movs r7, #0
    subs r3, r3, #4
    blo 2f
1:
    ",
    dot2x2_group!(),
    dot2x2_group!(),
    dot2x2_group!(),
    dot2x2_group!(),
    "subs r3, r3, #4
    bhs 1b
2:
    adds r3, r3, #4
    beq 4f
3:
    ",
    dot2x2_group!(),
    "subs r3, r3, #1
    bne 3b
4:
    ldr r8, [sp, #12]
    stmia r8!, {{r4, r5, r6, r7}}
    str r8, [sp, #12]
    ldr r3, [sp, #4]
    mov r1, r2
    add r2, r2, r3, lsl #2
    ldr r3, [sp, #8]
    subs r3, r3, #1
    str r3, [sp, #8]
    bne 5b
9:
    add sp, sp, #16
    pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}
    .size lasagna_conv_dot2x2, . - lasagna_conv_dot2x2
    "
);

/// The rows kernel's sums for a 3 × 3 one-channel convolution (five
/// widened tap pairs per output): `acc[i] = Σ_j smlad(patches[5i + j],
/// w[j])` for every whole patch that `acc` has room for.
///
/// In `global_asm!` because compiled from Rust the loop spills a weight
/// pair and its pointers (22 instructions per output); here the five
/// weight pairs stay in r4-r8 and each output is one `LDM` of its five
/// patch words, one `SMUAD`, four `SMLAD`, a store and the loop: 9
/// instructions.
pub(crate) fn dot5_run(patches: &[u32], w: &[u32; 5], acc: &mut [i32]) {
    let n = (patches.len() / 5).min(acc.len());
    // SAFETY: the function reads `5 · n` words of `patches` (in bounds by
    // the `min` above, word-aligned as a `u32` slice, as `LDM` needs) and
    // the five words of `w`, writes `n` words of `acc` (in bounds), and
    // follows the AAPCS (r4-r11 and lr saved and restored).
    unsafe { lasagna_dot5_run(patches.as_ptr(), w.as_ptr(), n, acc.as_mut_ptr()) };
}

extern "C" {
    /// See [`dot5_run`].
    fn lasagna_dot5_run(x: *const u32, w: *const u32, n: usize, acc: *mut i32);
}

// r0 = patches, r1 = w (then the sum), r2 = n, r3 = acc; r4-r8 the weight
// pairs, r9-r12 and lr one patch.
core::arch::global_asm!(
    ".syntax unified
    .thumb
    .section .text.lasagna_dot5_run,\"ax\",%progbits
    .globl lasagna_dot5_run
    .p2align 2
    .type lasagna_dot5_run,%function
    .thumb_func
lasagna_dot5_run:
    push {{r4, r5, r6, r7, r8, r9, r10, r11, lr}}
    ldmia r1, {{r4, r5, r6, r7, r8}}
    cmp r2, #0
    beq 2f
1:
    ldmia r0!, {{r9, r10, r11, r12, lr}}
    smuad r1, r9, r4
    smlad r1, r10, r5, r1
    smlad r1, r11, r6, r1
    smlad r1, r12, r7, r1
    smlad r1, lr, r8, r1
    str r1, [r3], #4
    subs r2, r2, #1
    bne 1b
2:
    pop {{r4, r5, r6, r7, r8, r9, r10, r11, pc}}
    .size lasagna_dot5_run, . - lasagna_dot5_run
    "
);
