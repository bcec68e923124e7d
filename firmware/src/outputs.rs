//! `LASAGNA-OUT` lines (`lasagna_protocol::outputs`): each image's outputs,
//! only when `images.bin` asks (`lasagna deploy --predictions`).
//!
//! Called after the measured `run` returns, and never inlined, so the line
//! buffer is on the stack only while a line is written: it adds nothing to
//! the instructions counted per inference nor to the peak stack, which the
//! engine's calls set.

use cortex_m_semihosting::hio::HostStream;
use lasagna_protocol::outputs::{line_bytes, LineWriter, F32_DIGITS};

/// Enough for the f32 form, the wider of the two.
const LINE_BYTES: usize = line_bytes(crate::model::OUTPUT_LEN, F32_DIGITS);

/// One output value, as the engine gave it.
pub trait Output: Copy {
    /// Appends it to the line.
    fn put(self, line: &mut LineWriter<'_>);
}

impl Output for i8 {
    fn put(self, line: &mut LineWriter<'_>) {
        line.i8(self);
    }
}

impl Output for f32 {
    fn put(self, line: &mut LineWriter<'_>) {
        line.f32(self);
    }
}

/// Writes image `index`'s outputs as one line, in one semihosting call.
#[inline(never)]
pub fn send<T: Output>(out: &mut HostStream, index: u32, y: &[T]) -> Result<(), &'static str> {
    let mut buf = [0u8; LINE_BYTES];
    let mut line = LineWriter::new(&mut buf, index);
    y.iter().for_each(|&v| v.put(&mut line));
    let bytes = line
        .finish()
        .ok_or("an outputs line does not fit its buffer")?;
    out.write_all(bytes).map_err(|_| "console write")
}
