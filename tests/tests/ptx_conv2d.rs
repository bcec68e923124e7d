//! `kernels-ptx/ptx/conv2d.ptx` (im2col, col2im, swap_nc) plus `gemm.ptx`, run
//! on the PTX simulator, against the CPU Conv2d (`trainer/src/backend/cpu/conv2d.rs`
//! through `Cpu`'s `ConvOps`), on random shapes: channels 1-4 in, 1-5 out,
//! planes 1-9, kernels 1-3, stride 1-2, padding 0-1, dilation 1-2, groups 1
//! or c_in, batch 1-3.
//!
//! The GPU side is `trainer/src/backend/gpu/conv.rs`'s batched algorithm
//! step for step, with pointer offsets for groups: im2col of the whole batch,
//! one gemm per group into `yt [c_out, n, oh*ow]`, then swap_nc to NCHW with
//! the bias; backward swap_nc of dy into `dyt [c_out, n, oh*ow]`, `dweight_g
//! += dyt_g col_g^T` (beta 1, K = n oh ow), `dcol = W^T dyt`, one col2im.
//!
//! Tolerance: im2col and col2im are compared bit for bit (a copy; a gather
//! in the CPU scatter's order from +0). The products are not: the CPU's gemm
//! is the `gemm` crate's SIMD micro-kernels, whose summation order depends on
//! the shape, so a sum of K products of values in [-1, 1] may differ by about
//! `2 K eps` (as in `ptx_gemm.rs`). We allow `4 eps K` absolute (eps = 2^-24)
//! with K = kg + 1 for y (the bias is one more term), `cog kh kw` for dx (a
//! dcol sum, then up to kh kw of them added) and `n oh ow + 1` for dweight
//! (summed over the batch, onto the old dweight). swap_nc is a copy plus the
//! CPU's one `y + b` rounding, and is also checked bit for bit on its own.
//! The CPU's im2col/col2im are private; (a) reads them through the public
//! conv with an identity weight (`c_out = c_in * kh * kw`): its output
//! channel r is column row r (one v * 1 and zeros, so exact), and its input
//! gradient for `dy = r` is `col2im(r)`. The CPU splits a batch over two
//! cores from 2^20 multiply-adds on, which these shapes never reach.
//! Worst errors: `cargo test -p lasagna-tests --test ptx_conv2d -- --nocapture`.

mod ptx_common;

use lasagna_kernels::conv2d::{
    col2im_launch, im2col_launch, swap_nc_launch, COL2IM, IM2COL, MODULE, SWAP_NC,
};
use lasagna_kernels::gemm::{gemm_launch, GEMM, MODULE as GEMM_MODULE};
use lasagna_kernels::{Kernel, Launch};
use lasagna_ptx_sim::{Arg, BufId, Device, LaunchStats, Simulator};
use lasagna_trainer::backend::cpu::Cpu;
use lasagna_trainer::backend::{Conv2dDims, ConvOps};
use lasagna_trainer::philox::Stream;
use proptest::prelude::*;
use ptx_common::{compare, download_f32, filled_f32, upload_f32, Worst};

/// The simulator with both modules, and pointers with element offsets (as
/// a CUDA backend would pass them).
struct Gpu {
    s: Simulator,
}

impl Gpu {
    fn new() -> Gpu {
        let mut s = ptx_common::sim_with(&MODULE);
        s.load_module(GEMM_MODULE.ptx).expect("gemm.ptx loads");
        Gpu { s }
    }

    fn at(&self, b: BufId, elems: usize) -> Arg {
        Arg::U64(self.s.address(b).expect("address") + 4 * elems as u64)
    }

    fn launch(&mut self, k: &Kernel, l: Launch, args: &[Arg]) -> LaunchStats {
        assert_eq!(args.len(), k.params.len(), "{}: argument count", k.name);
        let dims = |d: lasagna_kernels::Dim3| [d.x, d.y, d.z];
        self.s
            .launch(k.name, dims(l.grid), dims(l.block), l.shared_bytes, args)
            .unwrap_or_else(|e| panic!("{}: launch failed: {e}", k.name));
        self.s.synchronize().unwrap();
        self.s.last_stats()
    }

    /// im2col (x -> col) or col2im (col -> dx) of `n` samples.
    fn cols(&mut self, k: &Kernel, d: &Conv2dDims, n: usize, src: Arg, dst: Arg) {
        let col_len = d.col_rows() * n * d.oh * d.ow;
        let x_len = n * d.c_in * d.h * d.w;
        let im2col = k.name == IM2COL.name;
        let l = if im2col {
            im2col_launch(col_len, x_len)
        } else {
            col2im_launch(col_len, x_len)
        };
        let mut args = vec![src, dst];
        args.extend(
            [
                n,
                d.c_in,
                d.h,
                d.w,
                d.oh,
                d.ow,
                d.kh,
                d.kw,
                d.stride[0],
                d.stride[1],
                d.padding[0],
                d.padding[1],
                d.dilation[0],
                d.dilation[1],
            ]
            .iter()
            .map(|&v| Arg::U32(v as u32)),
        );
        let st = self.launch(k, l.expect("launch rule"), &args);
        assert_eq!(st.atomic, 0, "{}: no atomics", k.name);
        let stores = if im2col { col_len } else { x_len };
        assert_eq!(st.global_store, stores as u64, "{}: one store each", k.name);
    }

    /// `y [b, a, p] = x [a, b, p] (+ bias[i])`; bias `Arg::U64(0)` for none.
    fn swap_nc(&mut self, x: Arg, bias: Arg, y: Arg, [a, b, p]: [usize; 3]) {
        let l = swap_nc_launch(a * b * p).expect("launch rule");
        let mut args = vec![x, bias, y];
        args.extend([a, b, p].iter().map(|&v| Arg::U32(v as u32)));
        let st = self.launch(&SWAP_NC, l, &args);
        assert_eq!(st.atomic, 0, "swap_nc: no atomics");
        assert_eq!(
            st.global_store,
            (a * b * p) as u64,
            "swap_nc: one store each"
        );
    }

    /// `C [m, n] = op(A) op(B) + beta C`.
    fn gemm(&mut self, abc: [Arg; 3], [m, n, k]: [usize; 3], beta: f32, ta: bool, tb: bool) {
        let l = gemm_launch(m, n, k).expect("launch rule");
        let args = [
            abc[0],
            abc[1],
            abc[2],
            Arg::U64(0),
            Arg::U32(m as u32),
            Arg::U32(n as u32),
            Arg::U32(k as u32),
            Arg::F32(1.0),
            Arg::F32(beta),
            Arg::U32(ta.into()),
            Arg::U32(tb.into()),
            Arg::U32(0),
            // No mask, no row sums, no split (k_split = k): the plain product.
            Arg::U64(0),
            Arg::F32(1.0),
            Arg::U64(0),
            Arg::U32(k.max(1) as u32),
            Arg::U64(0),
            Arg::U64(0),
        ];
        self.launch(&GEMM, l, &args);
    }
}

fn random(r: &mut Stream, len: usize) -> Vec<f32> {
    (0..len).map(|_| r.uniform_range(-1.0, 1.0)).collect()
}

fn identity(n: usize) -> Vec<f32> {
    let mut eye = vec![0.0f32; n * n];
    (0..n).for_each(|i| eye[i * n + i] = 1.0);
    eye
}

/// Elements whose bits differ (-0 and +0 count as different).
fn bit_mismatches(got: &[f32], want: &[f32]) -> usize {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .count()
}

/// (a) im2col and col2im of the whole batch in one launch each, GPU vs CPU:
/// the elements whose bits differ.
fn check_cols(d: &Conv2dDims, r: &mut Stream) -> (usize, usize) {
    let (rows, np) = (d.col_rows(), d.positions());
    let p = d.oh * d.ow;
    let x = random(r, d.x_len().unwrap());
    let rcol = random(r, rows * np);
    // The CPU's, through an identity conv.
    let id = Conv2dDims::new(
        d.n,
        [d.c_in, d.h, d.w],
        rows,
        [d.kh, d.kw],
        d.stride,
        d.padding,
        d.dilation,
        1,
    )
    .unwrap();
    let eye = identity(rows);
    let cpu = Cpu;
    let mut scratch = vec![0.0; cpu.conv2d_scratch_len(&id)];
    let mut y = vec![0.0; id.y_len().unwrap()];
    cpu.conv2d_forward(&id, &x, &eye, None, &mut y, &mut scratch)
        .unwrap();
    let mut col_ref = vec![0.0; rows * np];
    let mut dy = vec![0.0; id.y_len().unwrap()];
    for s in 0..d.n {
        for row in 0..rows {
            for q in 0..p {
                col_ref[row * np + s * p + q] = y[(s * rows + row) * p + q];
                dy[(s * rows + row) * p + q] = rcol[row * np + s * p + q];
            }
        }
    }
    let mut dx_ref = vec![0.0; x.len()];
    let mut dw = vec![0.0; eye.len()];
    cpu.conv2d_backward(
        &id,
        &x,
        &eye,
        &dy,
        Some(&mut dx_ref),
        &mut dw,
        None,
        &mut scratch,
    )
    .unwrap();

    let mut g = Gpu::new();
    let bx = upload_f32(&mut g.s, &x);
    let bcol = filled_f32(&mut g.s, rows * np, f32::NAN);
    let (src, dst) = (g.at(bx, 0), g.at(bcol, 0));
    g.cols(&IM2COL, d, d.n, src, dst);
    let col = download_f32(&mut g.s, bcol, rows * np);
    let br = upload_f32(&mut g.s, &rcol);
    let bdx = filled_f32(&mut g.s, x.len(), f32::NAN);
    let (src, dst) = (g.at(br, 0), g.at(bdx, 0));
    g.cols(&COL2IM, d, d.n, src, dst);
    let dx = download_f32(&mut g.s, bdx, x.len());
    (bit_mismatches(&col, &col_ref), bit_mismatches(&dx, &dx_ref))
}

/// (b) and (c): forward y (with bias), backward dx and dweight (overwriting
/// a non-zero one, as `ConvOps::conv2d_backward` does), GPU vs CPU, within the module's tolerance.
fn check_conv(d: &Conv2dDims, r: &mut Stream) -> [Worst; 3] {
    let (xl, yl) = (d.x_len().unwrap(), d.y_len().unwrap());
    let wl = d.weight_len().unwrap();
    let p = d.oh * d.ow;
    let (cog, kg) = (d.c_out / d.groups, d.c_in / d.groups * d.kh * d.kw);
    let x = random(r, xl);
    let w = random(r, wl);
    let bias = random(r, d.c_out);
    let dy = random(r, yl);
    let dw0 = random(r, wl);

    let cpu = Cpu;
    let mut scratch = vec![0.0; cpu.conv2d_scratch_len(d)];
    let mut y_ref = vec![0.0; yl];
    cpu.conv2d_forward(d, &x, &w, Some(&bias), &mut y_ref, &mut scratch)
        .unwrap();
    let (mut dx_ref, mut dw_ref) = (vec![0.0; xl], dw0.clone());
    cpu.conv2d_backward(
        d,
        &x,
        &w,
        &dy,
        Some(&mut dx_ref),
        &mut dw_ref,
        None,
        &mut scratch,
    )
    .unwrap();

    let mut g = Gpu::new();
    let np = d.n * p;
    let bx = upload_f32(&mut g.s, &x);
    let bw = upload_f32(&mut g.s, &w);
    let bb = upload_f32(&mut g.s, &bias);
    let by = filled_f32(&mut g.s, yl, f32::NAN);
    let bcol = filled_f32(&mut g.s, d.col_rows() * np, f32::NAN);
    let byt = filled_f32(&mut g.s, d.c_out * np, f32::NAN);
    let (src, dst) = (g.at(bx, 0), g.at(bcol, 0));
    g.cols(&IM2COL, d, d.n, src, dst);
    for gi in 0..d.groups {
        // yt_g [cog, n*p] = W_g [cog, kg] col_g [kg, n*p].
        let abc = [
            g.at(bw, gi * cog * kg),
            g.at(bcol, gi * kg * np),
            g.at(byt, gi * cog * np),
        ];
        g.gemm(abc, [cog, np, kg], 0.0, false, false);
    }
    let (yt, b, yy) = (g.at(byt, 0), g.at(bb, 0), g.at(by, 0));
    g.swap_nc(yt, b, yy, [d.c_out, d.n, p]);
    let y = download_f32(&mut g.s, by, yl);

    let bdy = upload_f32(&mut g.s, &dy);
    let bdx = filled_f32(&mut g.s, xl, f32::NAN);
    let bdw = upload_f32(&mut g.s, &dw0);
    let bdyt = filled_f32(&mut g.s, d.c_out * np, f32::NAN);
    let (src, dst) = (g.at(bx, 0), g.at(bcol, 0));
    g.cols(&IM2COL, d, d.n, src, dst);
    let (src, dst) = (g.at(bdy, 0), g.at(bdyt, 0));
    g.swap_nc(src, Arg::U64(0), dst, [d.n, d.c_out, p]);
    for gi in 0..d.groups {
        // dweight_g [cog, kg] = dyt_g [cog, n*p] col_g^T (beta 0 overwrites dw0).
        let abc = [
            g.at(bdyt, gi * cog * np),
            g.at(bcol, gi * kg * np),
            g.at(bdw, gi * cog * kg),
        ];
        g.gemm(abc, [cog, kg, np], 0.0, false, true);
    }
    for gi in 0..d.groups {
        // dcol_g [kg, n*p] = W_g^T dyt_g, over col_g.
        let abc = [
            g.at(bw, gi * cog * kg),
            g.at(bdyt, gi * cog * np),
            g.at(bcol, gi * kg * np),
        ];
        g.gemm(abc, [kg, np, cog], 0.0, true, false);
    }
    let (src, dst) = (g.at(bcol, 0), g.at(bdx, 0));
    g.cols(&COL2IM, d, d.n, src, dst);
    let dx = download_f32(&mut g.s, bdx, xl);
    let dw = download_f32(&mut g.s, bdw, wl);
    // 4 eps per unit-bounded product in each sum (see the module comment).
    let tol = |terms: usize| 4.0 * f32::EPSILON as f64 / 2.0 * terms as f64;
    [
        compare(&y_ref, &y, &y_ref, tol(kg + 1), 0.0),
        compare(&dx_ref, &dx, &dx_ref, tol(cog * d.kh * d.kw), 0.0),
        compare(&dw_ref, &dw, &dw_ref, tol(d.n * p + 1), 0.0),
    ]
}

/// swap_nc of a random `[a, b, p]`, with and without a bias, against the
/// host's swap and `y + b`: the elements whose bits differ.
fn check_swap([a, b, p]: [usize; 3], r: &mut Stream) -> usize {
    let x = random(r, a * b * p);
    let bias = random(r, a);
    let mut g = Gpu::new();
    let bx = upload_f32(&mut g.s, &x);
    let bb = upload_f32(&mut g.s, &bias);
    let mut bad = 0;
    for with_bias in [false, true] {
        let by = filled_f32(&mut g.s, x.len(), f32::NAN);
        let bias_arg = if with_bias { g.at(bb, 0) } else { Arg::U64(0) };
        let (src, dst) = (g.at(bx, 0), g.at(by, 0));
        g.swap_nc(src, bias_arg, dst, [a, b, p]);
        let y = download_f32(&mut g.s, by, x.len());
        let mut want = vec![0.0f32; x.len()];
        for i in 0..a {
            for j in 0..b {
                for q in 0..p {
                    let v = x[(i * b + j) * p + q];
                    want[(j * a + i) * p + q] = if with_bias { v + bias[i] } else { v };
                }
            }
        }
        bad += bit_mismatches(&y, &want);
    }
    bad
}

/// `(n, [c_in, c_out, h, w], kernel, stride, padding, dilation, grouped)`.
type Shape = (
    usize,
    [usize; 4],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    bool,
);

/// The dims, with groups = c_in when asked and it divides c_out; `None`
/// when the dilated kernel does not fit the padded input.
fn dims((n, [c_in, c_out, h, w], k, st, pd, dl, grouped): Shape) -> Option<Conv2dDims> {
    let groups = if grouped && c_out % c_in == 0 {
        c_in
    } else {
        1
    };
    Conv2dDims::new(n, [c_in, h, w], c_out, k, st, pd, dl, groups).ok()
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        1usize..=3,
        [1usize..=4, 1usize..=5, 1usize..=9, 1usize..=9],
        [1usize..=3, 1usize..=3],
        [1usize..=2, 1usize..=2],
        [0usize..=1, 0usize..=1],
        [1usize..=2, 1usize..=2],
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn im2col_col2im_are_bit_identical_and_conv_through_gemm_matches_the_cpu(
        sh in shape(),
        seed in any::<u64>(),
    ) {
        let d = dims(sh);
        prop_assume!(d.is_some(), "the kernel does not fit the padded input");
        let d = d.unwrap();
        let mut r = Stream::new(seed, 0);
        prop_assert_eq!(check_cols(&d, &mut r), (0, 0), "{:?}: im2col, col2im", d);
        let swap = [d.c_out, d.n, d.oh * d.ow];
        prop_assert_eq!(check_swap(swap, &mut r), 0, "{:?}: swap_nc", swap);
        for (what, w) in ["y", "dx", "dweight"].iter().zip(check_conv(&d, &mut r)) {
            prop_assert!(w.failures == 0, "{:?}: {} {:?}", d, what, w);
        }
    }
}

#[test]
fn worst_errors_over_fixed_shapes() {
    // Taps wholly in the padding, a 1x1 kernel, depthwise, dilated and strided.
    let cases: [Shape; 5] = [
        (2, [3, 4, 5, 7], [3, 2], [1, 2], [1, 0], [1, 2], false),
        (1, [1, 1, 1, 3], [1, 3], [1, 1], [0, 1], [1, 1], false),
        (3, [4, 4, 9, 9], [3, 3], [2, 2], [1, 1], [1, 1], true),
        (2, [2, 4, 6, 5], [1, 1], [2, 1], [0, 0], [1, 1], true),
        (2, [4, 5, 9, 8], [3, 3], [2, 1], [1, 1], [2, 2], false),
    ];
    let mut r = Stream::new(7, 0);
    let mut worst = [0.0f64; 3];
    let mut ratio = 0.0f64;
    for sh in cases {
        let d = dims(sh).expect("a valid shape");
        assert_eq!(check_cols(&d, &mut r), (0, 0), "{d:?}: im2col, col2im");
        assert_eq!(
            check_swap([d.n, d.c_out, d.oh * d.ow], &mut r),
            0,
            "{d:?}: swap_nc"
        );
        for (i, w) in check_conv(&d, &mut r).iter().enumerate() {
            assert_eq!(w.failures, 0, "{d:?}: output {i}: {w:?}");
            worst[i] = worst[i].max(w.max_abs);
            ratio = ratio.max(w.ratio);
        }
    }
    println!(
        "ptx conv2d vs cpu: im2col, col2im, swap_nc 0 differing bits; max |diff| y {:e}, dx {:e}, dweight {:e}; max ratio to the bound {:.3}",
        worst[0], worst[1], worst[2], ratio
    );
}
