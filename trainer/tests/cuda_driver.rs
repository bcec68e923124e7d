//! `CudaDevice` on a real GPU: a kernel end to end (load PTX, upload, launch,
//! download, compare), device-to-device copies, `PtrAt` views, and the
//! errors' context (PTX load with the JIT log, launch, out of memory, bounds).
//!
//! Without a GPU (CI, with the stand-in libcuda of scripts/cuda-standin.sh)
//! every test prints `skipped: no CUDA device (<reason>)` and passes; set
//! `LASAGNA_REQUIRE_CUDA=1` on a GPU machine to make that a failure instead,
//! so a missing driver cannot pass for a green run. A driver that fails on a
//! device fails them (`gpu_common/cuda.rs`).
#![cfg(feature = "cuda")]

mod gpu_common;

use gpu_common::cuda::opened_or_skip;
use lasagna_kernels::activation::{activation_launch, LEAKY_RELU_FORWARD, MODULE, RELU_FORWARD};
use lasagna_kernels::device::{Arg, Device};
use lasagna_trainer::backend::gpu::driver::{
    probe, ptx_hint, CudaBuf, CudaDevice, CudaStatus, DriverError,
};

/// Device 0, or `None` after saying why the test is skipped.
fn device() -> Option<CudaDevice> {
    let d = opened_or_skip(CudaDevice::new(0))?;
    println!("device: {}", d.describe());
    Some(d)
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn from_bytes(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Runs `relu_forward` over `n` elements of `x` starting at element `at`,
/// writing `y` from element `at`, with the launch rule the backend uses.
fn relu(d: &mut CudaDevice, x: CudaBuf, y: CudaBuf, at: u64, n: usize) -> Result<(), DriverError> {
    let l = activation_launch(n).expect("launch rule");
    let dims = |v: lasagna_kernels::Dim3| [v.x, v.y, v.z];
    d.launch(
        RELU_FORWARD.name,
        dims(l.grid),
        dims(l.block),
        l.shared_bytes,
        &[
            Arg::PtrAt(x, at * 4),
            Arg::PtrAt(y, at * 4),
            Arg::U64(n as u64),
        ],
    )
}

#[test]
fn a_status_reads_as_the_driver_names_it() {
    // The stand-in and every driver know CUDA_ERROR_NO_DEVICE; no cuInit needed.
    assert_eq!(
        CudaStatus::new(100).to_string(),
        "CUDA_ERROR_NO_DEVICE: no CUDA-capable device is detected"
    );
    assert_eq!(CudaStatus::new(123_456).to_string(), "CUresult 123456");
    // A PTX the driver is too old for says so; a PTX syntax error points at ptxas.
    assert!(ptx_hint(222).starts_with("PTX/driver mismatch"));
    assert!(ptx_hint(218).contains("scripts/ptxas.sh"));
    let e = DriverError::PtxLoad {
        entry: "relu_forward".into(),
        target: "PTX ISA 7.0, sm_80".into(),
        cause: CudaStatus::new(222),
        log: String::new(),
    };
    let msg = e.to_string();
    assert!(
        msg.contains("relu_forward") && msg.contains("HINT: PTX/driver mismatch"),
        "{msg}"
    );
    println!("{msg}");
}

#[test]
fn probe_describes_device_zero_or_says_why_not() {
    if let Some(s) = opened_or_skip(probe()) {
        assert!(s.contains("sm_"), "{s}");
    }
}

#[test]
fn relu_forward_runs_end_to_end_and_matches_the_reference() {
    let Some(mut d) = device() else { return };
    let (free, total) = d.memory().expect("cuMemGetInfo");
    assert!(free <= total && total > 0, "{free} of {total}");

    // Not a multiple of the block, with negatives, zeros (+0.0 only: the sign
    // of max(-0.0, 0.0) is not pinned down) and large values.
    let n = 100_003;
    let x: Vec<f32> = (0..n)
        .map(|i| {
            if i % 7 == 0 {
                0.0
            } else {
                ((i as f32) * 0.37).sin() * 1e3
            }
        })
        .collect();
    let want: Vec<f32> = x.iter().map(|&v| if v > 0.0 { v } else { 0.0 }).collect();

    d.load_module(MODULE.ptx).expect("load activation.ptx");
    let xb = d.alloc(n * 4).expect("alloc x");
    let yb = d.alloc(n * 4).expect("alloc y");
    let mut zeros = vec![0xffu8; n * 4];
    d.download(&yb, &mut zeros).expect("download y");
    assert!(zeros.iter().all(|&b| b == 0), "alloc must zero");

    d.upload(&xb, &to_bytes(&x)).expect("upload x");
    relu(&mut d, xb, yb, 0, n).expect("launch");
    let mut out = vec![0u8; n * 4];
    d.download(&yb, &mut out).expect("download y");
    let got = from_bytes(&out);
    let bad: Vec<_> = (0..n)
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .take(5)
        .collect();
    assert!(
        bad.is_empty(),
        "first mismatches (i, got, want): {:?}",
        bad.iter()
            .map(|&i| (i, got[i], want[i]))
            .collect::<Vec<_>>()
    );

    // Device-to-device copy, then a PtrAt view: relu of the copy's second
    // half into a fresh buffer leaves its first half zero.
    let cb = d.alloc(n * 4).expect("alloc copy");
    d.copy(&xb, &cb, n * 4).expect("copy");
    let zb = d.alloc(n * 4).expect("alloc z");
    let half = n / 2;
    relu(&mut d, cb, zb, half as u64, n - half).expect("launch view");
    d.synchronize().expect("synchronize");
    d.download(&zb, &mut out).expect("download z");
    let got = from_bytes(&out);
    assert!(got[..half].iter().all(|&v| v == 0.0));
    assert_eq!(&got[half..], &want[half..]);

    // An f32 parameter (LeakyReLU's alpha, last): in place on the copy.
    let l = activation_launch(n).expect("launch rule");
    let alpha = 0.125f32; // a power of two: x * alpha is exact
    d.launch(
        LEAKY_RELU_FORWARD.name,
        [l.grid.x, l.grid.y, l.grid.z],
        [l.block.x, l.block.y, l.block.z],
        l.shared_bytes,
        &[
            Arg::Ptr(cb),
            Arg::Ptr(cb),
            Arg::U64(n as u64),
            Arg::F32(alpha),
        ],
    )
    .expect("launch leaky_relu");
    d.download(&cb, &mut out).expect("download leaky");
    let got = from_bytes(&out);
    for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
        let w = if v > 0.0 { v } else { v * alpha };
        assert_eq!(
            g.to_bits(),
            w.to_bits(),
            "leaky_relu at {i}: x {v}, got {g}, want {w}"
        );
    }
}

#[test]
fn errors_name_what_failed() {
    let Some(mut d) = device() else { return };

    let e = d
        .launch("no_such_kernel", [1; 3], [1; 3], 0, &[])
        .unwrap_err();
    assert!(matches!(e, DriverError::UnknownKernel { .. }), "{e}");

    d.load_module(MODULE.ptx).expect("load activation.ptx");
    let b = d.alloc(16).expect("alloc");
    let e = d.upload(&b, &[0; 17]).unwrap_err();
    assert!(matches!(e, DriverError::OutOfBounds { .. }), "{e}");

    // Too few arguments: refused before the driver reads past them.
    let e = d
        .launch(RELU_FORWARD.name, [1; 3], [1; 3], 0, &[Arg::Ptr(b)])
        .unwrap_err();
    assert!(matches!(e, DriverError::Args { .. }), "{e}");

    // 2048 threads per block exceeds every GPU's 1024.
    let e = d
        .launch(
            RELU_FORWARD.name,
            [1, 1, 1],
            [2048, 1, 1],
            0,
            &[Arg::Ptr(b), Arg::Ptr(b), Arg::U64(4)],
        )
        .unwrap_err();
    assert!(
        matches!(e, DriverError::Launch { .. }) && e.to_string().contains("relu_forward"),
        "{e}"
    );
    println!("launch error: {e}");

    let e = d.alloc(1 << 50).unwrap_err();
    assert!(matches!(e, DriverError::OutOfMemory { .. }), "{e}");
    println!("alloc error: {e}");

    let bad = ".version 7.0\n.target sm_80\n.address_size 64\n\
               .visible .entry broken(.param .u64 p)\n{\n  not_an_instruction;\n}\n";
    let e = d.load_module(bad).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, DriverError::PtxLoad { .. }) && msg.contains("broken"),
        "{msg}"
    );
    println!("PTX load error: {msg}");

    // The device still works after all of that.
    d.synchronize().expect("synchronize after errors");
}
