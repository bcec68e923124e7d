//! Images streamed from the host through semihosting (`images.bin`, its
//! layout in `lasagna_protocol::images`), one at a time, so only one image
//! is ever in RAM.

use cortex_m_semihosting::{nr, syscall};
use lasagna_protocol::images::{Header, HeaderError, HEADER_BYTES};

pub struct Images {
    fd: usize,
    /// Images in the file.
    pub count: u32,
    /// Whether the host asks for every output (`LASAGNA-OUT` lines).
    pub outputs: bool,
    pixels: usize,
}

impl Images {
    /// Opens `images.bin` and checks its header against the model's input.
    pub fn open(input_len: usize) -> Result<Images, &'static str> {
        let name = b"images.bin\0";
        // SAFETY: semihosting SYS_OPEN with a NUL-terminated name; mode 0 = "r".
        let fd = unsafe { syscall!(OPEN, name.as_ptr(), 0usize, name.len() - 1) };
        if fd == usize::MAX {
            return Err("cannot open images.bin in QEMU's working directory");
        }
        let mut images = Images {
            fd,
            count: 0,
            outputs: false,
            pixels: 0,
        };
        let mut head = [0u8; HEADER_BYTES];
        images.read(&mut head)?;
        let header = Header::parse(&head).map_err(|e| match e {
            HeaderError::BadMagic => "images.bin does not start with LSNI",
            _ => "images.bin asks for flags this firmware does not know (rebuild it)",
        })?;
        images.count = header.count;
        images.outputs = header.outputs;
        images.pixels = header.pixels as usize;
        if images.pixels != input_len {
            return Err(
                "images.bin has a different number of pixels per image than the model's input",
            );
        }
        Ok(images)
    }

    /// Reads the next image into `pixels`; returns its label.
    pub fn next(&mut self, pixels: &mut [u8]) -> Result<u8, &'static str> {
        let mut label = [0u8; 1];
        self.read(&mut label)?;
        self.read(
            pixels
                .get_mut(..self.pixels)
                .ok_or("pixel buffer too small")?,
        )?;
        Ok(label[0])
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), &'static str> {
        // SAFETY: SYS_READ into a buffer we own; returns the bytes NOT read.
        let left = unsafe { syscall!(READ, self.fd, buf.as_mut_ptr(), buf.len()) };
        if left != 0 {
            return Err("images.bin ended early");
        }
        Ok(())
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor opened above.
        unsafe {
            syscall!(CLOSE, self.fd);
        }
    }
}

// `nr` is used by the `syscall!` macro's expansion.
#[allow(unused_imports)]
use nr as _;
