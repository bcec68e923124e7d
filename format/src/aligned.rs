//! A model file on the heap, aligned so that its tensors can be borrowed in
//! place (`docs/FORMAT.md` §10).

use crate::layout::DATA_ALIGN;
use core::fmt;
use core::ops::Deref;
use std::vec;
use std::vec::Vec;

/// A copy of a model file whose first byte sits at a multiple of
/// [`DATA_ALIGN`] (16), as `include_model!` gives a device: every data block
/// is then aligned for its element type, and the reader and the engine
/// borrow tensors in place instead of refusing with `Misaligned`. A heap
/// buffer from `Vec<u8>` or `std::fs::read` has no such guarantee.
///
/// Derefs to the file's bytes: `Model::parse(&AlignedModel::new(&bytes))`.
pub struct AlignedModel {
    /// Padding up to the first aligned address, then the file. The buffer
    /// is never grown after it is filled, so its heap block (and the
    /// alignment of `start`) never moves, even when the value does.
    buf: Vec<u8>,
    /// Where the file starts in `buf`.
    start: usize,
}

impl AlignedModel {
    /// Copies `bytes` to an aligned address.
    pub fn new(bytes: &[u8]) -> AlignedModel {
        // DATA_ALIGN - 1 spare bytes hold an aligned start wherever the
        // allocator puts the block; safe code needs no custom allocation.
        let mut buf = vec![0u8; bytes.len().saturating_add(DATA_ALIGN - 1)];
        let start = buf.as_ptr().addr().wrapping_neg() % DATA_ALIGN;
        buf.truncate(start.saturating_add(bytes.len()));
        if let Some(file) = buf.get_mut(start..) {
            file.copy_from_slice(bytes);
        }
        AlignedModel { buf, start }
    }

    /// The file's bytes (also what `*self` gives).
    pub fn bytes(&self) -> &[u8] {
        // `start <= buf.len()` by construction; the empty fallback is never taken.
        self.buf.get(self.start..).unwrap_or_default()
    }
}

impl Deref for AlignedModel {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl AsRef<[u8]> for AlignedModel {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

/// A clone is a fresh aligned copy: the padding depends on where the new
/// buffer lands, so the derived field-by-field clone would be wrong.
impl Clone for AlignedModel {
    fn clone(&self) -> AlignedModel {
        AlignedModel::new(self.bytes())
    }
}

impl fmt::Debug for AlignedModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedModel")
            .field("len", &self.bytes().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_model_has_the_same_bytes_at_a_data_align_multiple() {
        // Many lengths, so that the allocator hands out blocks at various
        // addresses; clones are fresh blocks too.
        for len in (0..64).chain([255, 256, 257, 4099]) {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let a = AlignedModel::new(&bytes);
            for m in [&a, &a.clone()] {
                assert_eq!(&**m, &bytes[..], "len {len}");
                assert_eq!(m.as_ptr().addr() % DATA_ALIGN, 0, "len {len}");
            }
        }
    }
}
