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
//! - `LASAGNA_FLASH_ORIGIN`: where flash starts (default 0x00000000, QEMU's
//!   MPS2 boards; an STM32 wants 0x08000000, see README.md).

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
    let origin = env::var("LASAGNA_FLASH_ORIGIN").unwrap_or_else(|_| "0x00000000".into());
    let memory = format!(
        "/* Written by build.rs: the budget this firmware must fit. */\n\
         MEMORY\n{{\n  FLASH : ORIGIN = {origin}, LENGTH = {}K\n  RAM : ORIGIN = 0x20000000, LENGTH = {}K\n}}\n",
        kb("LASAGNA_FLASH_KB", 512),
        kb("LASAGNA_RAM_KB", 128)
    );
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // cortex-m-rt's linker script (it includes memory.x). Here rather than
    // in .cargo/config.toml's rustflags, so that CARGO_TARGET_*_RUSTFLAGS
    // (the project sysroot, scripts/thumb-sysroot.sh) cannot replace it.
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
