//! The deploy tool's parsers: the firmware's console lines, ELF section
//! sizes, and the linker's overflow messages. (`lasagna deploy` end to end
//! is tested from the command line in `cli/tests/deploy.rs`.)

#[path = "../../tests/src/skip.rs"]
mod skip;

use lasagna_deploy::elf::{sections, FirmwareSizes};
use lasagna_deploy::firmware::{build_error, link_overflows, Region};
use lasagna_deploy::host::Weights;
use lasagna_deploy::protocol::{parse_output, ProtocolError};
use lasagna_deploy::Board;
use lasagna_deploy::Error;
use std::path::Path;

// ---- parsers ----

#[test]
fn pred_and_report_lines_parse_and_gaps_are_errors() {
    let report = "LASAGNA-REPORT images=2 correct=1 accuracy=50.00 \
        instructions_per_inference=400 instructions_worst=440 arena_bytes=2608 \
        static_ram_bytes=3392 peak_stack_bytes=3960 model_bytes=3000 int8=false \
        outputs_fnv1a=0xdeadbeef";
    let run = parse_output(&format!("LASAGNA-PRED 0 7z\n{report}\n"), 2).expect("parses");
    assert_eq!(run.predictions, vec![7, 35]);
    assert_eq!(run.report.outputs_fnv1a, 0xdead_beef);
    assert!(!run.report.int8);
    assert_eq!(
        parse_output(&format!("LASAGNA-PRED 0 7\n{report}\n"), 2),
        Err(ProtocolError::MissingPrediction {
            image: 1,
            images: 2
        })
    );
    assert_eq!(
        parse_output("LASAGNA-ERROR cannot open images.bin\n", 2),
        Err(ProtocolError::Device("cannot open images.bin".into()))
    );
    assert_eq!(
        parse_output("LASAGNA-PRED 0 72\n", 2),
        Err(ProtocolError::NoReport)
    );
}

/// An ELF32 little-endian file with only section headers and their names.
fn elf_with(sections: &[(&str, u32)]) -> Vec<u8> {
    let mut names = vec![0u8];
    let mut at = Vec::new();
    for (name, _) in sections.iter().copied().chain([(".shstrtab", 0)]) {
        at.push(names.len() as u32);
        names.extend(name.bytes().chain([0]));
    }
    let count = sections.len() as u16 + 2;
    let mut b = vec![0u8; 52];
    b[..6].copy_from_slice(b"\x7fELF\x01\x01");
    b[0x20..0x24].copy_from_slice(&(52 + names.len() as u32).to_le_bytes());
    b[0x2e..0x30].copy_from_slice(&40u16.to_le_bytes());
    b[0x30..0x32].copy_from_slice(&count.to_le_bytes());
    b[0x32..0x34].copy_from_slice(&(count - 1).to_le_bytes());
    b.extend(&names);
    let sizes = [(0u32, 0u32, 0u32)]
        .into_iter()
        .chain(sections.iter().zip(&at).map(|((_, s), &n)| (n, 0, *s)))
        .chain([(at[sections.len()], 52, names.len() as u32)]);
    for (name, offset, size) in sizes {
        let mut h = [0u8; 40];
        h[..4].copy_from_slice(&name.to_le_bytes());
        h[16..20].copy_from_slice(&offset.to_le_bytes());
        h[20..24].copy_from_slice(&size.to_le_bytes());
        b.extend(h);
    }
    b
}

#[test]
fn elf_sizes_count_flash_and_static_ram_sections() {
    let elf = elf_with(&[
        (".vector_table", 1024),
        (".text", 70_000),
        (".rodata", 3_000),
        (".data", 16),
        (".bss", 2_000),
        (".uninit", 8),
        (".debug_info", 99_999),
    ]);
    let s = FirmwareSizes::from_sections(&sections(&elf, Path::new("fw")).expect("parses"));
    assert_eq!(s.flash(), 1024 + 70_000 + 3_000 + 16);
    assert_eq!(s.static_ram(), 16 + 2_000 + 8);
    let e = sections(b"#!/bin/sh\n", Path::new("fw")).expect_err("not an ELF");
    assert!(matches!(e, Error::BadData { .. }), "{e:?}");
}

#[test]
fn a_flash_overflow_at_link_time_becomes_a_does_not_fit_error() {
    let log = "error: linking with `rust-lld` failed: exit status: 1\n  = note: rust-lld: error: \
        section '.rodata' will not fit in region 'FLASH': overflowed by 52796 bytes\n          \
        rust-lld: error: section '.gnu.sgstubs' will not fit in region 'FLASH': overflowed by 52800 bytes\n";
    let o = link_overflows(log);
    assert_eq!(
        (o.len(), o[0].region, o[0].bytes),
        (1, Region::Flash, 52_800)
    );
    let small = Board::find("qemu-m4-small").expect("a table row");
    let e = build_error(
        Path::new("m.lsn"),
        small,
        Path::new("firmware"),
        Weights::F32,
        log,
    );
    assert!(matches!(e, Error::DoesNotFit { over: 52_800, .. }), "{e:?}");
    let e = e.to_string();
    assert!(
        e.contains("qemu-m4-small's flash")
            && e.contains("52,800 B more than its 256 KiB")
            && e.contains("--quantize int8"),
        "{e}"
    );
}

// ---- the library's one call ----

/// `lasagna_deploy::deploy` on its own, with no trainer and no data set:
/// the committed int8 test CNN on 20 made-up images, every prediction and
/// output level equal to the host engine's (skipped, saying why, when
/// `qemu-system-arm` is missing; a failure under `CI=true` or
/// `LASAGNA_REQUIRE_QEMU`).
#[test]
fn deploy_runs_the_golden_cnn_on_qemu_and_agrees_with_the_host() {
    if !skip::have_qemu() {
        return;
    }
    let model = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infer-nostd/tests/golden/mnist_tiny_cnn_int8.lsn"
    ));
    let n = 20;
    // A fixed LCG (Numerical Recipes' constants): any pixels do, since the
    // check is device against host, not accuracy.
    let mut x = 12_345u32;
    let pixels: Vec<u8> = (0..n * lasagna_deploy::host::MNIST_INPUT_LEN)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let board = Board::find("qemu-m4").expect("a table row");
    let report = lasagna_deploy::deploy(
        model,
        board,
        lasagna_deploy::Images {
            pixels: &pixels,
            labels: &labels,
        },
        &lasagna_deploy::Options::default(),
        &mut lasagna_deploy::Quiet,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.int8);
    assert_eq!(report.images as usize, n);
    assert!(report.host_check.passed, "{}", report.render());
    assert_eq!(report.host_check.matching_predictions, n);
    assert!(report.host_check.outputs_identical);
    assert!(report.instructions_per_inference > 0);
}
