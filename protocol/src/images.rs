//! `images.bin`: the images the firmware reads from the host through
//! semihosting, one at a time, so they are not part of the flash budget.
//! The header, then per image one label byte and its pixels (`u8`, 0–255).
//! The header's flags ask the firmware for more than the normal run: bit 0
//! ([`FLAG_OUTPUTS`]), every output of every image
//! ([`crate::outputs`]). Unknown bits are refused, so a host never asks for
//! something the firmware silently skips.

/// The file's first four bytes.
pub const MAGIC: [u8; 4] = *b"LSNI";

/// Bytes of the header: the magic, `u32` count, `u32` pixels per image,
/// `u32` flags, little endian.
pub const HEADER_BYTES: usize = 16;

/// Flag bit: send each image's outputs (`LASAGNA-OUT` lines).
pub const FLAG_OUTPUTS: u32 = 1;

/// The header of `images.bin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Images in the file.
    pub count: u32,
    /// Pixels per image (the model's input length).
    pub pixels: u32,
    /// Whether the firmware sends every output ([`FLAG_OUTPUTS`]).
    pub outputs: bool,
}

/// Why a header does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The file does not start with [`MAGIC`].
    BadMagic,
    /// The flags have a bit this protocol does not define.
    UnknownFlags(u32),
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderError::BadMagic => f.write_str("images.bin does not start with LSNI"),
            HeaderError::UnknownFlags(bits) => {
                write!(f, "images.bin asks for unknown flags {bits:#x}")
            }
        }
    }
}

impl Header {
    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        let (magic, rest) = out.split_at_mut(4);
        let (count, rest) = rest.split_at_mut(4);
        let (pixels, flags) = rest.split_at_mut(4);
        magic.copy_from_slice(&MAGIC);
        count.copy_from_slice(&self.count.to_le_bytes());
        pixels.copy_from_slice(&self.pixels.to_le_bytes());
        let bits = if self.outputs { FLAG_OUTPUTS } else { 0 };
        flags.copy_from_slice(&bits.to_le_bytes());
        out
    }

    /// Reads a header.
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Result<Header, HeaderError> {
        let [m0, m1, m2, m3, c0, c1, c2, c3, p0, p1, p2, p3, f0, f1, f2, f3] = *bytes;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let flags = u32::from_le_bytes([f0, f1, f2, f3]);
        if flags & !FLAG_OUTPUTS != 0 {
            return Err(HeaderError::UnknownFlags(flags & !FLAG_OUTPUTS));
        }
        Ok(Header {
            count: u32::from_le_bytes([c0, c1, c2, c3]),
            pixels: u32::from_le_bytes([p0, p1, p2, p3]),
            outputs: flags & FLAG_OUTPUTS != 0,
        })
    }

    /// Bytes of one record: the label byte and the pixels.
    pub fn record_bytes(self) -> usize {
        1 + self.pixels as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_a_wrong_magic_or_unknown_flag_is_refused() {
        let h = Header {
            count: 2,
            pixels: 784,
            outputs: false,
        };
        let b = h.to_bytes();
        assert_eq!(&b, b"LSNI\x02\x00\x00\x00\x10\x03\x00\x00\x00\x00\x00\x00");
        assert_eq!(Header::parse(&b), Ok(h));
        assert_eq!(h.record_bytes(), 785);
        let with = Header { outputs: true, ..h };
        let b = with.to_bytes();
        assert_eq!(&b[12..], &[1, 0, 0, 0]);
        assert_eq!(Header::parse(&b), Ok(with));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Header::parse(&bad), Err(HeaderError::BadMagic));
        let mut unknown = b;
        unknown[12] = 0b101;
        assert_eq!(
            Header::parse(&unknown),
            Err(HeaderError::UnknownFlags(0b100))
        );
    }
}
