//! Section sizes of a 32-bit little-endian ELF file (the firmware), read
//! from the section headers, so `lasagna deploy` does not need
//! `arm-none-eabi-size`.
//!
//! ```text
//! struct Elf32Header {           // at offset 0
//!     u8  ident[16];             // 7f 'E' 'L' 'F', class 1 (32-bit), data 1 (LE)
//!     ...                        // type, machine, version, entry, phoff
//!     u32 shoff;                 // @0x20: section header table
//!     ...                        // flags, ehsize, phentsize, phnum
//!     u16 shentsize;             // @0x2e: MUST be >= 40
//!     u16 shnum;                 // @0x30: 0 = "in section 0's size"
//!     u16 shstrndx;              // @0x32: 0xffff = "in section 0's link"
//! }
//! struct Elf32Shdr {             // shnum of them at shoff, shentsize apart
//!     u32 name;                  // offset into the shstrndx section
//!     u32 type, flags, addr, offset, size, link, ...
//! }
//! ```
//! (System V ABI, "Sections"; extended numbering as in `elf(5)`.)

use crate::error::{Error, Result};
use std::path::Path;

/// One section: its name and size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// `.text`, `.rodata`, ...
    pub name: String,
    /// `sh_size`.
    pub size: u64,
}

/// Caps the section count so a corrupt header cannot make us loop for long.
const MAX_SECTIONS: usize = 1 << 16;
const SHDR_MIN: usize = 40;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The sections of an ELF32 little-endian file; `path` is for messages.
pub fn sections(bytes: &[u8], path: &Path) -> Result<Vec<Section>> {
    let bad = |reason: &str| Error::BadData {
        path: path.to_path_buf(),
        reason: format!("not a readable ELF32 firmware image: {reason}"),
    };
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(bad("no ELF magic"));
    }
    if bytes.get(4..6) != Some([1u8, 1].as_slice()) {
        return Err(bad("not 32-bit little-endian"));
    }
    let shoff = u32_at(bytes, 0x20).ok_or_else(|| bad("truncated header"))? as usize;
    let entsize = u16_at(bytes, 0x2e).ok_or_else(|| bad("truncated header"))? as usize;
    let mut count = u16_at(bytes, 0x30).ok_or_else(|| bad("truncated header"))? as usize;
    let mut strndx = u16_at(bytes, 0x32).ok_or_else(|| bad("truncated header"))? as usize;
    if shoff == 0 {
        return Err(bad("no section headers"));
    }
    if entsize < SHDR_MIN {
        return Err(bad("section header entries shorter than 40 bytes"));
    }
    let header = |i: usize| -> Option<usize> {
        let at = shoff.checked_add(i.checked_mul(entsize)?)?;
        bytes.get(at..at.checked_add(SHDR_MIN)?).map(|_| at)
    };
    let sh0 = header(0).ok_or_else(|| bad("section headers past the end of the file"))?;
    if count == 0 {
        count = u32_at(bytes, sh0 + 20).unwrap_or(0) as usize;
    }
    if strndx == 0xffff {
        strndx = u32_at(bytes, sh0 + 24).unwrap_or(0) as usize;
    }
    if count > MAX_SECTIONS {
        return Err(bad("implausibly many sections"));
    }
    let strtab = header(strndx)
        .filter(|_| strndx < count)
        .ok_or_else(|| bad("the section-name table index is out of range"))?;
    let str_off = u32_at(bytes, strtab + 16).unwrap_or(0) as usize;
    let str_len = u32_at(bytes, strtab + 20).unwrap_or(0) as usize;
    let names = str_off
        .checked_add(str_len)
        .and_then(|end| bytes.get(str_off..end))
        .ok_or_else(|| bad("the section-name table is past the end of the file"))?;
    (0..count)
        .map(|i| {
            let at = header(i).ok_or_else(|| bad("section headers past the end of the file"))?;
            let name_at = u32_at(bytes, at).unwrap_or(0) as usize;
            let name = names
                .get(name_at..)
                .and_then(|n| n.split(|&c| c == 0).next())
                .ok_or_else(|| bad("a section name is outside the name table"))?;
            Ok(Section {
                name: String::from_utf8_lossy(name).into_owned(),
                size: u64::from(u32_at(bytes, at + 20).unwrap_or(0)),
            })
        })
        .collect()
}

/// The sections that occupy flash and RAM in a `cortex-m-rt` firmware.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FirmwareSizes {
    /// `.boot2`: the RP2040's second-stage bootloader (flash; absent
    /// elsewhere).
    pub boot2: u64,
    /// `.vector_table` (flash).
    pub vector_table: u64,
    /// `.text`: code (flash).
    pub text: u64,
    /// `.rodata`: constants, the model among them (flash).
    pub rodata: u64,
    /// `.data`: initialized statics (flash for the image, RAM at run time).
    pub data: u64,
    /// `.bss`: zeroed statics (RAM).
    pub bss: u64,
    /// `.uninit`: uninitialized statics (RAM).
    pub uninit: u64,
}

impl FirmwareSizes {
    /// Picks the known sections out of `sections` (absent ones are 0).
    pub fn from_sections(sections: &[Section]) -> FirmwareSizes {
        let size = |name: &str| {
            sections
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.size)
                .sum()
        };
        FirmwareSizes {
            boot2: size(".boot2"),
            vector_table: size(".vector_table"),
            text: size(".text"),
            rodata: size(".rodata"),
            data: size(".data"),
            bss: size(".bss"),
            uninit: size(".uninit"),
        }
    }

    /// Reads the firmware ELF at `path`.
    pub fn read(path: &Path) -> Result<FirmwareSizes> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FirmwareSizes::from_sections(&sections(&bytes, path)?))
    }

    /// Bytes written to flash: `.boot2 + .vector_table + .text + .rodata +
    /// .data`.
    pub fn flash(&self) -> u64 {
        self.boot2 + self.vector_table + self.text + self.rodata + self.data
    }

    /// Static RAM: `.data + .bss + .uninit`.
    pub fn static_ram(&self) -> u64 {
        self.data + self.bss + self.uninit
    }
}

/// A minimal ELF32 LE file with the given sections, for tests.
#[cfg(test)]
pub(crate) fn tiny_elf(sections: &[(&str, u32)]) -> Vec<u8> {
    // Layout: header (52 B), the name table, then the section headers
    // (a null section, the named ones, the name table itself).
    let mut names = vec![0u8];
    let mut name_at = Vec::new();
    for (name, _) in sections.iter().copied().chain([(".shstrtab", 0)]) {
        name_at.push(names.len() as u32);
        names.extend(name.bytes());
        names.push(0);
    }
    let shoff = 52 + names.len() as u32;
    let count = sections.len() as u16 + 2;
    let mut b = vec![0u8; 52];
    b[..6].copy_from_slice(b"\x7fELF\x01\x01");
    b[0x20..0x24].copy_from_slice(&shoff.to_le_bytes());
    b[0x2e..0x30].copy_from_slice(&40u16.to_le_bytes());
    b[0x30..0x32].copy_from_slice(&count.to_le_bytes());
    b[0x32..0x34].copy_from_slice(&(count - 1).to_le_bytes());
    b.extend(&names);
    let shdr = |name: u32, offset: u32, size: u32| {
        let mut h = [0u8; 40];
        h[..4].copy_from_slice(&name.to_le_bytes());
        h[16..20].copy_from_slice(&offset.to_le_bytes());
        h[20..24].copy_from_slice(&size.to_le_bytes());
        h
    };
    b.extend(shdr(0, 0, 0));
    for (i, (_, size)) in sections.iter().enumerate() {
        b.extend(shdr(name_at[i], 0, *size));
    }
    b.extend(shdr(name_at[sections.len()], 52, names.len() as u32));
    b
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn flash_and_static_ram_add_up_the_right_sections() {
        let elf = tiny_elf(&[
            (".vector_table", 1024),
            (".text", 73_048),
            (".rodata", 240_860),
            (".data", 8),
            (".bss", 3392),
            (".uninit", 4),
            (".debug_info", 335_793),
        ]);
        let s = sections(&elf, Path::new("fw")).unwrap();
        assert_eq!(s.len(), 9);
        assert_eq!(s[2].name, ".text");
        let f = FirmwareSizes::from_sections(&s);
        assert_eq!(f.flash(), 1024 + 73_048 + 240_860 + 8);
        let pico = FirmwareSizes::from_sections(
            &sections(
                &tiny_elf(&[(".boot2", 256), (".text", 10)]),
                Path::new("fw"),
            )
            .unwrap(),
        );
        assert_eq!((pico.boot2, pico.flash()), (256, 266));
        assert_eq!(f.static_ram(), 8 + 3392 + 4);
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let elf = tiny_elf(&[(".text", 10)]);
        for cut in [0, 3, 20, 40, 60, elf.len() - 1] {
            assert!(sections(&elf[..cut], Path::new("fw")).is_err(), "cut {cut}");
        }
        let mut big_endian = elf.clone();
        big_endian[5] = 2;
        let e = sections(&big_endian, Path::new("fw")).unwrap_err();
        assert!(e.to_string().contains("little-endian"), "{e}");
        let mut bad_strndx = elf;
        bad_strndx[0x32] = 200;
        assert!(sections(&bad_strndx, Path::new("fw")).is_err());
    }
}
