//! Faulty kernels must come back as `Error` values with context, never panics.

mod common;
use common::*;
use lasagna_ptx_sim::{Arg, Device, Error, Simulator, Space, GLOBAL_BASE};

#[test]
fn out_of_bounds_store_is_an_error_with_thread_and_address() {
    let mut s = sim_with(include_str!("ptx/oob.ptx"));
    let out = s.alloc(64).unwrap();
    let base = s.address(out).unwrap();
    let e = s
        .launch("oob_store", [1, 1, 1], [32, 1, 1], 0, &[Arg::Ptr(out)])
        .unwrap_err();
    match &e {
        Error::OutOfBounds {
            kernel,
            space,
            at,
            addr,
            size,
        } => {
            assert_eq!(kernel, "oob_store");
            assert_eq!(*space, Space::Global);
            assert_eq!(at.thread, [0, 0, 0]);
            assert_eq!(at.block, [0, 0, 0]);
            assert_eq!(at.line, 18);
            assert_eq!(*addr, base + 4000);
            assert_eq!(*size, 4);
        }
        e => panic!("wrong error {e:?}"),
    }
    assert!(e.to_string().contains("line 18"), "{e}");
    assert!(base >= GLOBAL_BASE);
}

#[test]
fn barrier_in_divergent_branch_is_an_error() {
    let mut s = sim_with(include_str!("ptx/bar_diverge.ptx"));
    let e = s
        .launch("bar_diverge", [1, 1, 1], [32, 1, 1], 0, &[])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::BarrierDeadlock {
                waiting: 16,
                exited: 16,
                line: 14,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_instruction_is_named_with_its_line() {
    let mut s = Simulator::new();
    let e = s.load_module(include_str!("ptx/unknown.ptx")).unwrap_err();
    assert_eq!(
        e,
        Error::UnknownInstruction {
            line: 15,
            opcode: "brev.b32".into()
        }
    );
    assert!(e.to_string().contains("brev.b32"));
}

#[test]
fn argument_mismatches_are_errors() {
    let mut s = sim_with(include_str!("ptx/vadd.ptx"));
    let b = s.alloc(16).unwrap();
    let e = s
        .launch("vadd", [1, 1, 1], [32, 1, 1], 0, &[Arg::Ptr(b)])
        .unwrap_err();
    assert!(matches!(e, Error::ArgMismatch { .. }), "{e:?}");
    let e = s
        .launch(
            "vadd",
            [1, 1, 1],
            [32, 1, 1],
            0,
            &[Arg::Ptr(b), Arg::Ptr(b), Arg::Ptr(b), Arg::U64(4)],
        )
        .unwrap_err();
    assert!(matches!(e, Error::ArgMismatch { index: 3, .. }), "{e:?}");
    let e = s.launch("nope", [1, 1, 1], [32, 1, 1], 0, &[]).unwrap_err();
    assert!(matches!(e, Error::UnknownKernel { .. }));
    let e = s
        .launch(
            "vadd",
            [1, 1, 1],
            [2048, 1, 1],
            0,
            &[Arg::Ptr(b), Arg::Ptr(b), Arg::Ptr(b), Arg::U32(4)],
        )
        .unwrap_err();
    assert!(matches!(e, Error::BadLaunch { .. }), "{e:?}");
}

#[test]
fn misaligned_vector_access_is_an_error() {
    let mut s = sim_with(include_str!("ptx/copy2d_v4.ptx"));
    let src = s.alloc(4096).unwrap();
    let dst = s.alloc(4096).unwrap();
    // cols = 6 is not a multiple of 4, so row 1 starts 8 bytes into a 16-byte vector.
    let e = s
        .launch(
            "copy2d_v4",
            [1, 1, 1],
            [1, 2, 1],
            0,
            &[Arg::Ptr(src), Arg::Ptr(dst), Arg::U32(6), Arg::U32(2)],
        )
        .unwrap_err();
    assert!(matches!(e, Error::Misaligned { align: 16, .. }), "{e:?}");
}

#[test]
fn shared_out_of_bounds_is_an_error() {
    let mut s = sim_with(include_str!("ptx/bank.ptx"));
    let out = s.alloc(256).unwrap();
    // Only 32 words of dynamic shared memory for 64 threads.
    let e = s
        .launch(
            "bank_stride",
            [1, 1, 1],
            [64, 1, 1],
            128,
            &[Arg::Ptr(out), Arg::U32(1)],
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::OutOfBounds {
                space: Space::Shared,
                addr: 128,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn malformed_ptx_is_a_parse_error() {
    let mut s = Simulator::new();
    let e = s.load_module(".version 8.0\n.target sm_80\n.address_size 64\n.visible .entry k()\n{\n mov.u32 %r1, 1;\n}\n").unwrap_err();
    assert!(matches!(e, Error::Parse { line: 6, .. }), "{e:?}");
    let e = s
        .load_module(".version 8.0\n.entry k()\n{\n bra NOWHERE;\n}\n")
        .unwrap_err();
    assert!(matches!(e, Error::Parse { line: 4, .. }), "{e:?}");
}

#[test]
fn shfl_with_a_mask_naming_diverged_lanes_is_an_error() {
    let ptx = r#"
.version 8.0
.target sm_80
.address_size 64
.visible .entry bad_shfl()
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 8;
    @%p1 bra $L_out;
    shfl.sync.down.b32 %r2, %r1, 1, 31, -1;
$L_out:
    ret;
}
"#;
    let mut s = sim_with(ptx);
    let e = s
        .launch("bad_shfl", [1, 1, 1], [32, 1, 1], 0, &[])
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShuffleDivergence {
                mask: 0xffff_ffff,
                active: 0xffff_ff00,
                ..
            }
        ),
        "{e:?}"
    );
}
