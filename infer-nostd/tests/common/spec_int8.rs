//! FORMAT.md §6.1's integer arithmetic, written from the spec (not the
//! engine's `quant.rs`): the reference both `spec.rs` and `int8_ops.rs`
//! check the int8 ops against.

/// §6.1 "Requantization": `M = (2^23 + f) · 2^7`, `n = 157 − e` from the
/// bits of `m`, then `(acc · M + 2^(n−1)) >> n`, saturated to `i32`.
pub fn requant(m: f32, acc: i32) -> i32 {
    let b = m.to_bits();
    let e = ((b >> 23) & 0xff) as i32;
    let (big_m, n): (i128, i32) = if b >> 31 != 0 || e == 0 || e == 0xff {
        (0, 1)
    } else if 157 - e <= 0 {
        ((1 << 31) - 1, 1)
    } else if 157 - e > 62 {
        (0, 1)
    } else {
        ((((b & 0x7f_ffff) | 0x80_0000) as i128) << 7, 157 - e)
    };
    let r = (acc as i128 * big_m + (1i128 << (n - 1))) >> n;
    r.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

/// §6.1: `clamp(zp + v)`, the addition saturating.
pub fn level(v: i32, zp: i32) -> i8 {
    v.saturating_add(zp).clamp(-128, 127) as i8
}
