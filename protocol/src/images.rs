//! `images.bin`: the images the firmware reads from the host through
//! semihosting, one at a time, so they are not part of the flash budget.
//! The header, then per image one label byte and its pixels (`u8`, 0–255).

/// The file's first four bytes.
pub const MAGIC: [u8; 4] = *b"LSNI";

/// Bytes of the header: the magic, `u32` count, `u32` pixels per image,
/// little endian.
pub const HEADER_BYTES: usize = 12;

/// The header of `images.bin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Images in the file.
    pub count: u32,
    /// Pixels per image (the model's input length).
    pub pixels: u32,
}

/// Why a header does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The file does not start with [`MAGIC`].
    BadMagic,
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HeaderError::BadMagic => f.write_str("images.bin does not start with LSNI"),
        }
    }
}

impl Header {
    /// The header's bytes.
    pub fn to_bytes(self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        let (magic, rest) = out.split_at_mut(4);
        let (count, pixels) = rest.split_at_mut(4);
        magic.copy_from_slice(&MAGIC);
        count.copy_from_slice(&self.count.to_le_bytes());
        pixels.copy_from_slice(&self.pixels.to_le_bytes());
        out
    }

    /// Reads a header.
    pub fn parse(bytes: &[u8; HEADER_BYTES]) -> Result<Header, HeaderError> {
        let [m0, m1, m2, m3, c0, c1, c2, c3, p0, p1, p2, p3] = *bytes;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        Ok(Header {
            count: u32::from_le_bytes([c0, c1, c2, c3]),
            pixels: u32::from_le_bytes([p0, p1, p2, p3]),
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
    fn a_header_round_trips_and_a_wrong_magic_is_refused() {
        let h = Header {
            count: 2,
            pixels: 784,
        };
        let b = h.to_bytes();
        assert_eq!(&b, b"LSNI\x02\x00\x00\x00\x10\x03\x00\x00");
        assert_eq!(Header::parse(&b), Ok(h));
        assert_eq!(h.record_bytes(), 785);
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Header::parse(&bad), Err(HeaderError::BadMagic));
    }
}
