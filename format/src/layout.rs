//! Fixed sizes and offsets of the on-disk structures (see `docs/FORMAT.md`).

/// First four bytes of every file.
pub const MAGIC: [u8; 4] = *b"LSNA";
/// The structural version this crate reads and writes. It changes only when
/// the layout changes; new op kinds or metadata keys do not change it.
pub const VERSION: u16 = 1;
/// Size of the file header.
pub const HEADER_BYTES: usize = 64;
/// Size of one op record.
pub const OP_RECORD_BYTES: usize = 32;
/// Size of one value (activation) record.
pub const VALUE_RECORD_BYTES: usize = 16;
/// Size of one tensor record.
pub const TENSOR_RECORD_BYTES: usize = 32;
/// Alignment of the data section and of every block in it, so that weights
/// can be borrowed in place as `&[f32]` on any target.
pub const DATA_ALIGN: usize = 16;
/// Alignment of every offset in the activation arena.
pub const ARENA_ALIGN: usize = 4;
/// The CRC-32 covers the file from this offset to its end.
pub const CRC_START: usize = 16;
/// Largest file the reader accepts (the header stores sizes as `u32`).
pub const MAX_FILE_BYTES: usize = u32::MAX as usize;

// Header field offsets.
pub(crate) const H_VERSION: usize = 4;
pub(crate) const H_RESERVED0: usize = 6;
pub(crate) const H_FILE_SIZE: usize = 8;
pub(crate) const H_CRC: usize = 12;
pub(crate) const H_N_OPS: usize = 16;
pub(crate) const H_N_TENSORS: usize = 18;
pub(crate) const H_N_LABELS: usize = 20;
pub(crate) const H_N_META: usize = 22;
pub(crate) const H_ARENA: usize = 24;
pub(crate) const H_STRINGS_BYTES: usize = 28;
pub(crate) const H_DATA_OFFSET: usize = 32;
pub(crate) const H_INPUT_RANK: usize = 36;
pub(crate) const H_RESERVED1: usize = 37;
pub(crate) const H_INPUT_DIMS: usize = 40;
pub(crate) const H_INPUT_MEAN: usize = 56;
pub(crate) const H_INPUT_STD: usize = 60;

/// Rounds `n` up to a multiple of `align` (a power of two), or `None` on overflow.
pub fn align_up(n: usize, align: usize) -> Option<usize> {
    n.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// Offsets of the sections that follow the header, derived from the counts.
/// The format is canonical: a reader recomputes these and rejects any file
/// whose stored offsets differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sections {
    /// Start of the op table.
    pub ops: usize,
    /// Start of the value table (`n_ops + 1` records).
    pub values: usize,
    /// Start of the tensor table.
    pub tensors: usize,
    /// Start of the string section (labels, then metadata).
    pub strings: usize,
    /// Start of the data section (`DATA_ALIGN`-aligned).
    pub data: usize,
}

impl Sections {
    /// Section offsets for the given counts, or `None` on arithmetic overflow.
    pub fn compute(n_ops: usize, n_tensors: usize, strings_bytes: usize) -> Option<Sections> {
        let ops = HEADER_BYTES;
        let values = ops.checked_add(n_ops.checked_mul(OP_RECORD_BYTES)?)?;
        let tensors =
            values.checked_add((n_ops.checked_add(1)?).checked_mul(VALUE_RECORD_BYTES)?)?;
        let strings = tensors.checked_add(n_tensors.checked_mul(TENSOR_RECORD_BYTES)?)?;
        let data = align_up(strings.checked_add(strings_bytes)?, DATA_ALIGN)?;
        Some(Sections {
            ops,
            values,
            tensors,
            strings,
            data,
        })
    }
}

/// Little-endian field readers over a byte slice; every one is bounds-checked
/// and returns `None` instead of panicking.
pub(crate) mod le {
    use byteorder::{ByteOrder, LittleEndian};

    pub fn u8_at(b: &[u8], off: usize) -> Option<u8> {
        b.get(off).copied()
    }
    pub fn u16_at(b: &[u8], off: usize) -> Option<u16> {
        b.get(off..off.checked_add(2)?).map(LittleEndian::read_u16)
    }
    pub fn u32_at(b: &[u8], off: usize) -> Option<u32> {
        b.get(off..off.checked_add(4)?).map(LittleEndian::read_u32)
    }
    pub fn i32_at(b: &[u8], off: usize) -> Option<i32> {
        b.get(off..off.checked_add(4)?).map(LittleEndian::read_i32)
    }
    pub fn f32_at(b: &[u8], off: usize) -> Option<f32> {
        b.get(off..off.checked_add(4)?).map(LittleEndian::read_f32)
    }
}
