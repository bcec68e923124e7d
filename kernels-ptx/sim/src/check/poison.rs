//! Initialised-state shadow: one bit per register or shared byte, so a read
//! before any write is found whatever value the poisoned storage holds.

/// The value fresh registers hold with `SimOptions::poison`: two f32
/// signalling NaNs (quiet bit 22 clear), so a missed report still produces NaN.
pub(crate) const REG_POISON: u64 = 0x7fa1_dead_7fa1_dead;
/// The byte pattern of fresh shared memory, repeating every 4 bytes
/// (little-endian `0x7fa1dead`: a signalling NaN for an aligned f32 read).
pub(crate) const SHARED_POISON: [u8; 4] = [0xad, 0xde, 0xa1, 0x7f];

/// A bitmap over `len` items.
#[derive(Debug, Default)]
pub(crate) struct InitMap {
    bits: Vec<u64>,
}

impl InitMap {
    /// Every item uninitialised.
    pub(crate) fn clear(&mut self, len: usize) {
        self.bits.clear();
        self.bits.resize(len.div_ceil(64), 0);
    }

    #[inline]
    pub(crate) fn set(&mut self, i: usize) {
        if let Some(w) = self.bits.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    pub(crate) fn set_range(&mut self, start: usize, len: usize) {
        for i in start..start + len {
            self.set(i);
        }
    }

    pub(crate) fn all(&self, start: usize, len: usize) -> bool {
        (start..start + len).all(|i| self.get(i))
    }
}
