//! Shared helpers for the PTX-on-simulator parity tests: load a
//! `lasagna_kernels` module into the simulator, move f32/u32 slices in and
//! out, launch a `Kernel` with the shape its launch rule returns, and compare
//! with the CPU reference under a stated tolerance.
#![allow(dead_code)] // Each test file uses a different subset.

use lasagna_kernels::{Kernel, Launch, Module, ParamKind};
use lasagna_ptx_sim::{Arg, BufId, Device, LaunchStats, Simulator};

/// A simulator with `module` loaded.
pub fn sim_with(module: &Module) -> Simulator {
    let mut s = Simulator::new();
    s.load_module(module.ptx)
        .unwrap_or_else(|e| panic!("{}.ptx does not load: {e}", module.name));
    s
}

fn alloc(s: &mut Simulator, bytes: usize) -> BufId {
    // A zero-element tensor still gets a real (non-null) address, as cudaMalloc(0) callers do.
    s.alloc(bytes.max(4)).unwrap()
}

/// Uploads `v` into a fresh buffer.
pub fn upload_f32(s: &mut Simulator, v: &[f32]) -> BufId {
    let b = alloc(s, v.len() * 4);
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    s.upload(&b, &bytes).unwrap();
    b
}

/// Uploads `v` into a fresh buffer.
pub fn upload_u32(s: &mut Simulator, v: &[u32]) -> BufId {
    let b = alloc(s, v.len() * 4);
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    s.upload(&b, &bytes).unwrap();
    b
}

/// Uploads raw bytes (e.g. f16 bits) into a fresh buffer.
pub fn upload_bytes(s: &mut Simulator, v: &[u8]) -> BufId {
    let b = alloc(s, v.len());
    s.upload(&b, v).unwrap();
    b
}

/// The first `len` bytes of `b`.
pub fn download_bytes(s: &mut Simulator, b: BufId, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    s.download(&b, &mut out).unwrap();
    out
}

/// A fresh buffer of `n` f32 holding `fill` (so unwritten elements are visible).
pub fn filled_f32(s: &mut Simulator, n: usize, fill: f32) -> BufId {
    upload_f32(s, &vec![fill; n])
}

/// The first `n` f32 of `b`.
pub fn download_f32(s: &mut Simulator, b: BufId, n: usize) -> Vec<f32> {
    let mut out = vec![0u8; n * 4];
    s.download(&b, &mut out).unwrap();
    out.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Launches `k` with `launch` (from its launch rule) and returns the launch's
/// counters. The arguments are checked against the kernel's description
/// first, so a test cannot pass by calling the entry the wrong way; an
/// optional pointer may be null (`Arg::U64(0)`).
pub fn launch(s: &mut Simulator, k: &Kernel, launch: Launch, args: &[Arg]) -> LaunchStats {
    assert_eq!(args.len(), k.params.len(), "{}: argument count", k.name);
    for (p, a) in k.params.iter().zip(args) {
        let ok = matches!(
            (p.kind, a),
            (
                ParamKind::PtrF32 | ParamKind::PtrU32 | ParamKind::PtrF16 | ParamKind::OptPtrF32,
                Arg::Ptr(_) | Arg::PtrAt(..)
            ) | (ParamKind::OptPtrF32, Arg::U64(0))
                | (ParamKind::U32, Arg::U32(_))
                | (ParamKind::U64, Arg::U64(_))
                | (ParamKind::F32, Arg::F32(_))
        );
        assert!(
            ok,
            "{}: parameter `{}` is {:?}, got {a:?}",
            k.name, p.name, p.kind
        );
    }
    let dims = |d: lasagna_kernels::Dim3| [d.x, d.y, d.z];
    s.launch(
        k.name,
        dims(launch.grid),
        dims(launch.block),
        launch.shared_bytes,
        args,
    )
    .unwrap_or_else(|e| panic!("{}: launch failed: {e}", k.name));
    s.synchronize().unwrap();
    s.last_stats()
}

/// The worst element of a comparison under `|got - want| <= abs + rel * |want|`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Worst {
    /// Index of the element with the largest error relative to its bound.
    pub index: usize,
    /// That element's input (for the report), its output and the reference.
    pub input: f32,
    pub got: f32,
    pub want: f32,
    /// Largest |got - want| over all elements (not necessarily at `index`).
    pub max_abs: f64,
    /// Largest |got - want| / |want| over elements with |want| >= 1e-3 (below
    /// that the absolute bound is the one that matters).
    pub max_rel: f64,
    /// Largest |got - want| / (abs + rel |want|): the comparison passes iff <= 1.
    pub ratio: f64,
    /// Elements over the bound.
    pub failures: usize,
}

/// Compares `got` with `want` element-wise. NaN matches NaN only; infinities
/// must match exactly. `inputs` label the report (pass `want` when there is
/// no single input per element).
pub fn compare(inputs: &[f32], got: &[f32], want: &[f32], abs: f64, rel: f64) -> Worst {
    assert_eq!(got.len(), want.len());
    let mut w = Worst::default();
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        let (gd, rd) = (g as f64, r as f64);
        let err = if g.is_nan() && r.is_nan() || g == r {
            0.0
        } else if g.is_nan() || r.is_nan() || g.is_infinite() || r.is_infinite() {
            f64::INFINITY
        } else {
            (gd - rd).abs()
        };
        let ratio = err / (abs + rel * rd.abs());
        if ratio > 1.0 {
            w.failures += 1;
        }
        w.max_abs = w.max_abs.max(err);
        if rd.abs() >= 1e-3 {
            w.max_rel = w.max_rel.max(err / rd.abs());
        }
        if ratio > w.ratio || i == 0 {
            w.ratio = w.ratio.max(ratio);
            w.index = i;
            w.input = inputs.get(i).copied().unwrap_or(f32::NAN);
            w.got = g;
            w.want = r;
        }
    }
    w
}

impl std::fmt::Display for Worst {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} over the bound; worst at [{}] input {:e}: got {:e}, want {:e} \
             ({:.3} of the bound); max abs err {:.3e}, max rel err {:.3e}",
            self.failures,
            self.index,
            self.input,
            self.got,
            self.want,
            self.ratio,
            self.max_abs,
            self.max_rel
        )
    }
}
