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

/// §6.1 AvgPool: `round(sum / count)`, ties away from zero.
pub fn div_away(sum: i32, count: i32) -> i32 {
    let half = count / 2;
    if sum >= 0 {
        (sum + half) / count
    } else {
        (sum - half) / count
    }
}

/// §6.1 AvgPool2d's windows over `[c, h, w]` levels (square kernel `k`,
/// stride `s`, padding `p`), in output order: `Σ(q − zp)` over the taps
/// inside the input, and the divisor (the taps inside the padded input
/// with `include_pad`, else those inside the input).
pub fn avg_windows(
    x: &[i8],
    (c, h, w): (usize, usize, usize),
    (k, s, p): (usize, usize, usize),
    include_pad: bool,
    zp: i32,
) -> Vec<(i32, i32)> {
    let out = |n: usize| (n + 2 * p - k) / s + 1;
    let clip = |o: usize, n: usize| ((o * s + k).min(n + 2 * p) - o * s) as i32;
    let mut windows = Vec::new();
    for ch in 0..c {
        for oy in 0..out(h) {
            for ox in 0..out(w) {
                let (mut sum, mut inside) = (0i32, 0i32);
                for ky in 0..k {
                    for kx in 0..k {
                        let (iy, ix) = (
                            (oy * s + ky) as i64 - p as i64,
                            (ox * s + kx) as i64 - p as i64,
                        );
                        if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                            sum += i32::from(x[(ch * h + iy as usize) * w + ix as usize]) - zp;
                            inside += 1;
                        }
                    }
                }
                let count = if include_pad {
                    clip(oy, h) * clip(ox, w)
                } else {
                    inside
                };
                windows.push((sum, count));
            }
        }
    }
    windows
}
