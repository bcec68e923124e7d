//! The device heap: one `Vec<u8>` with bump-allocated, bounds-checked
//! allocations. Addresses start at `GLOBAL_BASE` so that a null or small
//! integer used as a pointer faults instead of aliasing a buffer.

/// First global address handed out (arbitrary, but far from 0 and from shared offsets).
pub const GLOBAL_BASE: u64 = 1 << 40;
/// Allocation alignment; `cudaMalloc` guarantees at least 256 bytes.
pub const ALLOC_ALIGN: u64 = 256;

/// Global memory.
#[derive(Debug, Default)]
pub struct Heap {
    data: Vec<u8>,
    /// (heap offset, length) of each allocation, in address order.
    allocs: Vec<(usize, usize)>,
}

impl Heap {
    /// Reserves `bytes` zeroed bytes; returns (allocation index, device address).
    pub fn alloc(&mut self, bytes: usize) -> Option<(u32, u64)> {
        let start = self
            .data
            .len()
            .checked_next_multiple_of(ALLOC_ALIGN as usize)?;
        // Keep one alignment unit of padding so an off-by-one past the end faults.
        let end = start
            .checked_add(bytes)?
            .checked_add(ALLOC_ALIGN as usize)?;
        self.data.resize(end, 0);
        let id = u32::try_from(self.allocs.len()).ok()?;
        self.allocs.push((start, bytes));
        Some((id, GLOBAL_BASE + start as u64))
    }

    /// (device address, length) of allocation `id`.
    pub fn info(&self, id: u32) -> Option<(u64, usize)> {
        self.allocs
            .get(id as usize)
            .map(|&(s, l)| (GLOBAL_BASE + s as u64, l))
    }

    /// Bytes of allocation `id`.
    pub fn bytes(&self, id: u32) -> Option<&[u8]> {
        let &(s, l) = self.allocs.get(id as usize)?;
        self.data.get(s..s + l)
    }

    /// Mutable bytes of allocation `id`.
    pub fn bytes_mut(&mut self, id: u32) -> Option<&mut [u8]> {
        let &(s, l) = self.allocs.get(id as usize)?;
        self.data.get_mut(s..s + l)
    }

    /// Heap offset of `[addr, addr+size)` if it lies inside one allocation.
    #[inline]
    pub fn check(&self, addr: u64, size: u32) -> Option<usize> {
        let off = usize::try_from(addr.checked_sub(GLOBAL_BASE)?).ok()?;
        let i = self
            .allocs
            .partition_point(|&(s, _)| s <= off)
            .checked_sub(1)?;
        let &(s, l) = self.allocs.get(i)?;
        (off + size as usize <= s + l).then_some(off)
    }

    /// The raw heap, mutable.
    pub fn raw_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

/// Reads `size` (1, 2, 4 or 8) little-endian bytes at `off`, zero-extended.
#[inline]
pub fn read_le(mem: &[u8], off: usize, size: u32) -> Option<u64> {
    let s = mem.get(off..off + size as usize)?;
    let mut b = [0u8; 8];
    b.get_mut(..s.len())?.copy_from_slice(s);
    Some(u64::from_le_bytes(b))
}

/// Writes the low `size` bytes of `v` little-endian at `off`.
#[inline]
pub fn write_le(mem: &mut [u8], off: usize, size: u32, v: u64) -> Option<()> {
    let d = mem.get_mut(off..off + size as usize)?;
    d.copy_from_slice(v.to_le_bytes().get(..size as usize)?);
    Some(())
}
