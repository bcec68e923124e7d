//! `LASAGNA-OUT <index> <hex>`: every output of one image, sent only when
//! `images.bin` asks for it ([`crate::images::FLAG_OUTPUTS`]), so a normal
//! run prints no more than before.
//!
//! The hex is the outputs in order, each as the bytes the checksum
//! ([`crate::checksum::Fnv1a`]) mixes in, written most significant digit
//! first: an int8 output is 2 digits (its two's-complement byte), an f32
//! output 8 digits (`f32::to_bits`, so `3f800000` is 1.0). Which one a line
//! holds follows from the report's `int8=` key. Hex, not decimal, because it
//! is exact for every bit pattern (NaNs, `-0.0`) and needs no float
//! formatting on a Cortex-M0+.

/// Starts an outputs line.
pub const OUT: &str = "LASAGNA-OUT ";

/// Hex digits of one int8 output.
pub const I8_DIGITS: usize = 2;

/// Hex digits of one f32 output.
pub const F32_DIGITS: usize = 8;

/// Bytes a whole line can take for `outputs` values of `digits` hex digits
/// each, the newline included (the index is at most 10 decimal digits).
pub const fn line_bytes(outputs: usize, digits: usize) -> usize {
    OUT.len() + 10 + 1 + outputs * digits + 1
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A `LASAGNA-OUT` line built in the caller's buffer (no allocation), so
/// the firmware writes it to the console in one semihosting call.
pub struct LineWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> LineWriter<'a> {
    /// Starts the line of image `index`.
    pub fn new(buf: &'a mut [u8], index: u32) -> LineWriter<'a> {
        let mut w = LineWriter {
            buf,
            len: 0,
            overflow: false,
        };
        OUT.bytes().for_each(|b| w.push(b));
        // Decimal, most significant digit first, without leading zeros.
        let mut digits = [0u8; 10];
        let (mut n, mut k) = (index, 0);
        loop {
            if let Some(d) = digits.get_mut(k) {
                *d = b'0' + (n % 10) as u8;
            }
            k += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        digits.iter().take(k).rev().for_each(|&d| w.push(d));
        w.push(b' ');
        w
    }

    fn push(&mut self, b: u8) {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = b;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    fn hex(&mut self, v: u32, digits: usize) {
        for k in (0..digits).rev() {
            let nibble = (v >> (4 * k)) & 0xf;
            self.push(HEX.get(nibble as usize).copied().unwrap_or(b'?'));
        }
    }

    /// Appends one int8 output.
    pub fn i8(&mut self, v: i8) {
        self.hex(u32::from(v as u8), I8_DIGITS);
    }

    /// Appends one f32 output (its bits).
    pub fn f32(&mut self, v: f32) {
        self.hex(v.to_bits(), F32_DIGITS);
    }

    /// The line with its newline, or `None` when the buffer was too small
    /// (size it with [`line_bytes`]).
    pub fn finish(mut self) -> Option<&'a [u8]> {
        self.push(b'\n');
        if self.overflow {
            return None;
        }
        let LineWriter { buf, len, .. } = self;
        buf.get(..len)
    }
}

/// The image index and the hex of a line's fields (after [`OUT`]).
pub fn parse_line(fields: &str) -> Option<(u32, &str)> {
    let (index, hex) = fields.trim_end().split_once(' ')?;
    Some((index.parse().ok()?, hex))
}

fn nibble(c: u8) -> Option<u32> {
    char::from(c).to_digit(16)
}

fn values(hex: &str, digits: usize) -> impl Iterator<Item = Option<u32>> + '_ {
    hex.as_bytes().chunks(digits).map(move |chunk| {
        if chunk.len() != digits {
            return None;
        }
        chunk
            .iter()
            .try_fold(0u32, |acc, &c| Some((acc << 4) | nibble(c)?))
    })
}

/// The int8 outputs of a line's hex; `None` for a value that is not
/// [`I8_DIGITS`] hex digits.
pub fn levels(hex: &str) -> impl Iterator<Item = Option<i8>> + '_ {
    values(hex, I8_DIGITS).map(|v| v.map(|b| b as u8 as i8))
}

/// The f32 outputs of a line's hex; `None` for a value that is not
/// [`F32_DIGITS`] hex digits.
pub fn floats(hex: &str) -> impl Iterator<Item = Option<f32>> + '_ {
    values(hex, F32_DIGITS).map(|v| v.map(f32::from_bits))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn an_int8_line_round_trips_every_level() {
        let all: Vec<i8> = (i8::MIN..=i8::MAX).collect();
        let mut buf = [0u8; line_bytes(256, I8_DIGITS)];
        let mut w = LineWriter::new(&mut buf, 4_294_967_295);
        all.iter().for_each(|&v| w.i8(v));
        let line = core::str::from_utf8(w.finish().unwrap()).unwrap();
        assert!(line.starts_with("LASAGNA-OUT 4294967295 808182"), "{line}");
        assert!(line.ends_with("7d7e7f\n"), "{line}");
        let (index, hex) = parse_line(line.strip_prefix(OUT).unwrap()).unwrap();
        assert_eq!(index, u32::MAX);
        let back: Vec<i8> = levels(hex).map(Option::unwrap).collect();
        assert_eq!(back, all);
    }

    #[test]
    fn an_f32_line_keeps_every_bit_even_nans_and_negative_zero() {
        let v = [1.0f32, -0.0, f32::from_bits(0x7fc0_0001), f32::MIN_POSITIVE];
        let mut buf = [0u8; line_bytes(4, F32_DIGITS)];
        let mut w = LineWriter::new(&mut buf, 0);
        v.iter().for_each(|&x| w.f32(x));
        let line = core::str::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(line, "LASAGNA-OUT 0 3f800000800000007fc0000100800000\n");
        let (_, hex) = parse_line(&line[OUT.len()..]).unwrap();
        let back: Vec<u32> = floats(hex).map(|x| x.unwrap().to_bits()).collect();
        let want: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert_eq!(back, want);
    }

    #[test]
    fn a_short_buffer_and_bad_hex_are_refused_not_truncated() {
        let mut buf = [0u8; line_bytes(2, I8_DIGITS) - 1 - 9];
        let mut w = LineWriter::new(&mut buf, 1_000_000_000);
        w.i8(1);
        w.i8(2);
        assert!(w.finish().is_none());
        assert_eq!(levels("0g").collect::<Vec<_>>(), [None]);
        assert_eq!(levels("010").collect::<Vec<_>>(), [Some(1), None]);
        assert_eq!(floats("3f80000").collect::<Vec<_>>(), [None]);
        assert_eq!(parse_line("x 00"), None);
        assert_eq!(parse_line("7"), None);
    }
}
