//! Embeds the model and sizes everything to it at build time:
//!
//! - `LASAGNA_MODEL`: the model file to embed (default: the committed int8
//!   test CNN, so a bare `cargo build` works). It is parsed here with
//!   `lasagna-format`, and its op count, tensor count, arena and input sizes
//!   become constants, so the engine's plan and the arena are exactly as
//!   large as this model needs (no heap, nothing oversized).
//! - `LASAGNA_FLASH_KB` / `LASAGNA_RAM_KB`: the memory budget the firmware
//!   is linked for (default 512 / 128: an STM32F411-class part). The linker
//!   fails the build if the firmware does not fit.
//! - `LASAGNA_FLASH_ORIGIN` / `LASAGNA_RAM_ORIGIN`: where flash and RAM
//!   start (default 0x00000000 and 0x20000000: QEMU's MPS2 boards; an STM32
//!   wants flash at 0x08000000, an RP2040 at 0x10000000; see README.md).
//!   With the `rp2040-boot2` feature the first 256 bytes of flash are the
//!   RP2040's second-stage bootloader (region `BOOT2`, section `.boot2`).
//! - `LASAGNA_TICK_SCALE`: what one SysTick tick is worth, `N` or `N/D`
//!   (default 40: QEMU's MPS2 board, 25 MHz, one instruction per virtual
//!   nanosecond; 125/21 on QEMU's 168 MHz netduinoplus2; 1 on real
//!   silicon, where a tick is a core cycle).

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    for var in [
        "LASAGNA_MODEL",
        "LASAGNA_FLASH_KB",
        "LASAGNA_RAM_KB",
        "LASAGNA_FLASH_ORIGIN",
        "LASAGNA_RAM_ORIGIN",
        "LASAGNA_TICK_SCALE",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let model = env::var_os("LASAGNA_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../infer-nostd/tests/golden/mnist_tiny_cnn_int8.lsn"));
    println!("cargo:rerun-if-changed={}", model.display());
    let bytes = fs::read(&model)
        .unwrap_or_else(|e| panic!("LASAGNA_MODEL={}: cannot read it: {e}", model.display()));
    let m = lasagna_format::Model::parse(&bytes)
        .unwrap_or_else(|e| panic!("LASAGNA_MODEL={}: not a valid model: {e}", model.display()));
    fs::write(out.join("model.lsn"), &bytes).expect("write model.lsn");
    let input = m.input().expect("a parsed model has an input value");
    let info = format!(
        "/// Ops in the embedded model.\npub const OPS: usize = {};\n\
         /// Tensors in the embedded model.\npub const TENSORS: usize = {};\n\
         /// Arena bytes the model's memory plan needs.\npub const ARENA_BYTES: usize = {};\n\
         /// Elements of one input.\npub const INPUT_LEN: usize = {};\n\
         /// Elements of the output.\npub const OUTPUT_LEN: usize = {};\n\
         /// Whether the input is int8 levels.\npub const INT8_INPUT: bool = {};\n",
        m.op_count().max(1),
        m.tensor_count().max(1),
        m.arena_bytes(),
        m.input_shape().numel(),
        m.output_shape().numel(),
        input.dtype == lasagna_format::DType::I8,
    );
    fs::write(out.join("model_info.rs"), info).expect("write model_info.rs");

    let kb = |var: &str, default: u32| -> u32 {
        env::var(var)
            .ok()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{var}={v} is not a number of KiB"))
            })
            .unwrap_or(default)
    };
    let address = |var: &str, default: u32| -> u32 {
        env::var(var)
            .ok()
            .map(|v| {
                let hex = v.trim_start_matches("0x").trim_start_matches("0X");
                u32::from_str_radix(hex, 16)
                    .unwrap_or_else(|_| panic!("{var}={v} is not a hex address like 0x08000000"))
            })
            .unwrap_or(default)
    };
    let flash_origin = address("LASAGNA_FLASH_ORIGIN", 0);
    let ram_origin = address("LASAGNA_RAM_ORIGIN", 0x2000_0000);
    let flash = u64::from(kb("LASAGNA_FLASH_KB", 512)) * 1024;
    let ram = u64::from(kb("LASAGNA_RAM_KB", 128)) * 1024;
    // The RP2040's boot ROM copies the first 256 bytes of flash to RAM,
    // checks their CRC and runs them (boot2: it sets up the QSPI flash for
    // execute-in-place); the vector table follows at +0x100.
    let boot2 = env::var_os("CARGO_FEATURE_RP2040_BOOT2").is_some();
    let memory = if boot2 {
        format!(
            "/* Written by build.rs: the budget this firmware must fit. */\n\
             MEMORY\n{{\n  BOOT2 : ORIGIN = {flash_origin:#010x}, LENGTH = 0x100\n  \
             FLASH : ORIGIN = {:#010x}, LENGTH = {}\n  \
             RAM : ORIGIN = {ram_origin:#010x}, LENGTH = {ram}\n}}\n\n\
             SECTIONS {{\n  .boot2 ORIGIN(BOOT2) :\n  {{\n    KEEP(*(.boot2));\n  }} > BOOT2\n\
             }} INSERT BEFORE .text;\n",
            u64::from(flash_origin) + 0x100,
            flash.saturating_sub(0x100),
        )
    } else {
        format!(
            "/* Written by build.rs: the budget this firmware must fit. */\n\
             MEMORY\n{{\n  FLASH : ORIGIN = {flash_origin:#010x}, LENGTH = {flash}\n  \
             RAM : ORIGIN = {ram_origin:#010x}, LENGTH = {ram}\n}}\n"
        )
    };
    // What one SysTick tick is worth: instructions under QEMU's
    // `-icount shift=0` (10^9 / the machine's SysTick clock), cycles on
    // real silicon. `N` or `N/D`.
    let scale = env::var("LASAGNA_TICK_SCALE").unwrap_or_else(|_| "40".into());
    let (num, den) = match scale.split_once('/') {
        Some((n, d)) => (n.trim().to_string(), d.trim().to_string()),
        None => (scale.trim().to_string(), "1".to_string()),
    };
    let (num, den): (u64, u64) = match (num.parse(), den.parse()) {
        (Ok(n), Ok(d)) if n > 0 && d > 0 => (n, d),
        _ => panic!("LASAGNA_TICK_SCALE={scale} is not N or N/D with N, D > 0"),
    };
    fs::write(
        out.join("tick_scale.rs"),
        format!(
            "/// Counted units (instructions or cycles) per SysTick tick: NUM / DEN.\n\
             pub const NUM: u64 = {num};\n/// See NUM.\npub const DEN: u64 = {den};\n"
        ),
    )
    .expect("write tick_scale.rs");
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's linker script (it includes memory.x). Here rather than
    // in .cargo/config.toml's rustflags, so that CARGO_TARGET_*_RUSTFLAGS
    // (the project sysroot, scripts/thumb-sysroot.sh) cannot replace it.
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
