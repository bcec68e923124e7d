//! The RP2040's second-stage bootloader: its boot ROM copies the first 256
//! bytes of flash into RAM, checks their CRC32 and runs them; they set up
//! the QSPI flash for execute-in-place and jump to the vector table at
//! flash + 0x100. `build.rs` gives them the `BOOT2` region. The Pico's
//! flash is a Winbond W25Q080, so its boot2 (the rp2040-boot2 crate's
//! prebuilt blob, CRC included).

#[link_section = ".boot2"]
#[used]
static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;
