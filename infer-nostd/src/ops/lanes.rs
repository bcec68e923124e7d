//! The DSP instructions' lane arithmetic in portable Rust (ARM ARM A7.7:
//! SXTAB16, SXTB16, SMLAD), so that the host tests run the Cortex-M4
//! kernels' loops (`conv2d_dsp`, `lstm_i8_dsp`) with the same lane layouts.
fn lanes(v: u32) -> (i32, i32) {
    (
        i32::from(v as u16 as i16),
        i32::from((v >> 16) as u16 as i16),
    )
}

fn join(lo: i32, hi: i32) -> u32 {
    (lo as u32 & 0xffff) | ((hi as u32 & 0xffff) << 16)
}

pub fn sxtab16(a: u32, b: u32) -> u32 {
    let (lo, hi) = lanes(a);
    join(
        lo + i32::from(b as u8 as i8),
        hi + i32::from((b >> 16) as u8 as i8),
    )
}

pub fn sxtab16_ror8(a: u32, b: u32) -> u32 {
    sxtab16(a, b.rotate_right(8))
}

pub fn sxtb16(b: u32) -> u32 {
    sxtab16(0, b)
}

pub fn sxtb16_ror8(b: u32) -> u32 {
    sxtab16(0, b.rotate_right(8))
}

pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let ((a0, a1), (b0, b1)) = (lanes(a), lanes(b));
    acc.wrapping_add(a0 * b0).wrapping_add(a1 * b1)
}

pub fn neg_pair(zp: i32) -> u32 {
    join(-zp, -zp)
}
