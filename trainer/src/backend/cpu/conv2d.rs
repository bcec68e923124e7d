//! Conv2d on the CPU: per sample, im2col into a column matrix that stays in
//! cache, then one GEMM per group straight into the sample's NCHW output
//! (or, backward, its weight gradient and column gradient, then col2im).
//! The batch is split in two halves, one per core.
//!
//! Why per sample rather than one batch-wide GEMM per group: a sample's
//! column matrix (144 x 196 for the MNIST CNN's second conv, 110 KB) stays in
//! L2 between im2col and the GEMM that reads it, and its `[c_out, oh * ow]`
//! product is already NCHW, so there is no transpose. The batch-wide column
//! matrix (144 x 12544, 7 MB) goes through memory twice and its product
//! needs a transpose to NCHW. Measured in release mode on the project's
//! 2-vCPU machine, batch 64, best of several runs on a busy machine
//! (`lab` variants, since deleted): conv 16->32 on 14x14 forward 1.2 ms per
//! sample vs 1.8 ms batched, backward with dx 2.6 vs 2.8 ms; conv 1->16 on
//! 28x28 forward 0.20 vs 0.61 ms, backward without dx 0.19 vs 0.56 ms.
//! With the transposed weight gradient below, a timing test (now the
//! criterion bench `cargo bench -p lasagna-benches --bench conv2d`, groups
//! `cpu/conv2d/<shape>`) gave conv 16->32: forward 0.97 ms, backward 1.9 ms
//! with dx, 0.94 ms without; conv 1->16: forward 0.19 ms, backward 0.29 ms
//! without dx.
//!
//! Scratch: two column matrices `[c_in * kh * kw, oh * ow]`, then two weight
//! gradients, one of each per core. Backward accumulates the weight gradient
//! transposed, `[kg, c_out / groups]` per group (`kg = c_in / groups * kh *
//! kw`), and adds it to the caller's at the end: `gemm` runs that product
//! 1.7x faster than the `[c_out / groups, kg]` one (18 vs 31 us per sample
//! for the second conv). Backward recomputes the columns rather than keeping
//! forward's, so it needs no state from forward.

mod im2col;

use crate::backend::{Conv2dDims, Gemm};
use im2col::{col2im, im2col};

/// From this many multiply-adds per batch on, the batch is split over two
/// cores. The hand-off costs about a microsecond (see `threads`); a half of
/// 2^20 multiply-adds takes over 10 us even at the GEMM's best speed.
const SPLIT_MIN_FMAS: usize = 1 << 20;

/// Elements of scratch [`forward`] and [`backward`] need for `d` (see the
/// module comment), or `None` when the count overflows `usize`.
pub fn scratch_len(d: &Conv2dDims) -> Option<usize> {
    d.col_rows()
        .checked_mul(d.oh.checked_mul(d.ow)?)?
        .checked_add(d.weight_len()?)?
        .checked_mul(2)
}

/// Per-sample sizes: `(x elements, y elements, column-matrix elements)`.
fn sample_sizes(d: &Conv2dDims) -> (usize, usize, usize) {
    let p = d.oh * d.ow;
    (d.c_in * d.h * d.w, d.c_out * p, d.col_rows() * p)
}

/// `(c_out / groups, c_in / groups * kh * kw)`: a group's weight is `[cog, kg]`.
fn group_sizes(d: &Conv2dDims) -> (usize, usize) {
    let g = d.groups.max(1);
    (d.c_out / g, d.c_in / g * d.kh * d.kw)
}

/// Whether the batch is worth splitting over two cores, and where.
fn split_at(d: &Conv2dDims) -> Option<usize> {
    let (_, kg) = group_sizes(d);
    let fmas = d.positions().saturating_mul(d.c_out).saturating_mul(kg);
    (d.n >= 2 && fmas >= SPLIT_MIN_FMAS).then_some(d.n / 2)
}

/// x is (n, c_in, h, w), weight is (c_out, c_in / groups, kh, kw), bias is
/// (c_out), y is (n, c_out, oh, ow); scratch as in the module comment. `d`
/// has passed [`Conv2dDims::check`] and the slices hold its sizes (the
/// `ConvOps` impl in `conv.rs` checks both).
pub fn forward(
    d: &Conv2dDims,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let (xs, ys, cs) = sample_sizes(d);
    let (col_a, rest) = scratch.split_at_mut(cs);
    let col_b = &mut rest[..cs];
    match split_at(d) {
        Some(half) => {
            let (x_a, x_b) = x.split_at(half * xs);
            let (y_a, y_b) = y.split_at_mut(half * ys);
            super::threads::join(
                || forward_samples(d, x_a, weight, bias, y_a, col_a),
                || forward_samples(d, x_b, weight, bias, y_b, col_b),
            );
        }
        None => forward_samples(d, x, weight, bias, y, col_a),
    }
}

/// Forward of the samples in `y` (whose inputs start `x`), on this thread.
fn forward_samples(
    d: &Conv2dDims,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    col: &mut [f32],
) {
    let (xs, ys, _) = sample_sizes(d);
    let p = d.oh * d.ow;
    let (cog, kg) = group_sizes(d);
    if xs == 0 || ys == 0 {
        // Impossible for checked dims; `chunks_exact` needs a positive size.
        return;
    }
    let one = d.with_batch(1);
    for (xn, yn) in x.chunks_exact(xs).zip(y.chunks_exact_mut(ys)) {
        im2col(&one, xn, col);
        for g in 0..d.groups {
            // y_g [cog, p] = W_g [cog, kg] * col_g [kg, p].
            let gm = Gemm {
                m: cog,
                n: p,
                k: kg,
                trans_a: false,
                trans_b: false,
                alpha: 1.0,
                beta: 0.0,
            };
            super::gemm::gemm(
                &gm,
                &weight[g * cog * kg..],
                &col[g * kg * p..],
                &mut yn[g * cog * p..],
            );
        }
        if let Some(bias) = bias {
            for (row, &b) in yn.chunks_exact_mut(p).zip(bias) {
                row.iter_mut().for_each(|v| *v += b);
            }
        }
    }
}

/// Shapes as in [`forward`]; dy is (n, c_out, oh, ow), dx is (n, c_in, h, w),
/// dweight is weight's shape, dbias is (c_out).
pub fn backward(
    d: &Conv2dDims,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
    scratch: &mut [f32],
) {
    let (xs, ys, cs) = sample_sizes(d);
    let p = d.oh * d.ow;
    if let Some(db) = dbias {
        db.fill(0.0);
        if ys > 0 {
            for dyn_ in dy.chunks_exact(ys) {
                for (db, row) in db.iter_mut().zip(dyn_.chunks_exact(p)) {
                    *db += sum(row);
                }
            }
        }
    }
    let wl = dweight.len();
    let (col_a, rest) = scratch.split_at_mut(cs);
    let (col_b, rest) = rest.split_at_mut(cs);
    let (dwt_a, rest) = rest.split_at_mut(wl);
    let dwt_b = &mut rest[..wl];
    dwt_a.fill(0.0);
    match split_at(d) {
        None => backward_samples(d, x, weight, dy, dx, dwt_a, col_a),
        Some(half) => {
            let (x_a, x_b) = x.split_at(half * xs);
            let (dy_a, dy_b) = dy.split_at(half * ys);
            let (dx_a, dx_b) = match dx {
                Some(dx) => {
                    let (a, b) = dx.split_at_mut(half * xs);
                    (Some(a), Some(b))
                }
                None => (None, None),
            };
            dwt_b.fill(0.0);
            super::threads::join(
                || backward_samples(d, x_a, weight, dy_a, dx_a, dwt_a, col_a),
                || backward_samples(d, x_b, weight, dy_b, dx_b, dwt_b, col_b),
            );
            dwt_a
                .iter_mut()
                .zip(dwt_b.iter())
                .for_each(|(a, b)| *a += b);
        }
    }
    // dweight_g [cog, kg] = dwt_g^T.
    let (cog, kg) = group_sizes(d);
    for (dw, dwt) in dweight
        .chunks_exact_mut(cog * kg)
        .zip(dwt_a.chunks_exact(cog * kg))
    {
        for (o, row) in dw.chunks_exact_mut(kg).enumerate() {
            for (k, v) in row.iter_mut().enumerate() {
                *v = dwt[k * cog + o];
            }
        }
    }
}

/// Backward of the samples in `dy` (whose inputs start `x`), on this
/// thread, accumulating the weight gradient transposed into `dwt`.
fn backward_samples(
    d: &Conv2dDims,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    mut dx: Option<&mut [f32]>,
    dwt: &mut [f32],
    col: &mut [f32],
) {
    let (xs, ys, _) = sample_sizes(d);
    let p = d.oh * d.ow;
    let (cog, kg) = group_sizes(d);
    if xs == 0 || ys == 0 {
        // Impossible for checked dims; `chunks_exact` needs a positive size.
        if let Some(dx) = dx {
            dx.fill(0.0);
        }
        return;
    }
    let one = d.with_batch(1);
    for (n, (xn, dyn_)) in x.chunks_exact(xs).zip(dy.chunks_exact(ys)).enumerate() {
        im2col(&one, xn, col);
        for g in 0..d.groups {
            // dwt_g [kg, cog] += col_g [kg, p] * dy_g^T, with dy_g stored [cog, p].
            let gw = Gemm {
                m: kg,
                n: cog,
                k: p,
                trans_a: false,
                trans_b: true,
                alpha: 1.0,
                beta: 1.0,
            };
            super::gemm::gemm(
                &gw,
                &col[g * kg * p..],
                &dyn_[g * cog * p..],
                &mut dwt[g * kg * cog..],
            );
        }
        let Some(dx) = dx.as_deref_mut() else {
            continue;
        };
        for g in 0..d.groups {
            // dcol_g [kg, p] = W_g^T * dy_g [cog, p], with W_g stored [cog, kg];
            // it replaces col_g, which the weight gradient no longer needs.
            let gx = Gemm {
                m: kg,
                n: p,
                k: cog,
                trans_a: true,
                trans_b: false,
                alpha: 1.0,
                beta: 0.0,
            };
            super::gemm::gemm(
                &gx,
                &weight[g * cog * kg..],
                &dyn_[g * cog * p..],
                &mut col[g * kg * p..],
            );
        }
        col2im(&one, col, &mut dx[n * xs..][..xs]);
    }
}

/// A sum in eight `f64` lanes: the compiler vectorizes it (one running sum
/// is a serial dependency chain), and `f64` keeps a bias gradient over
/// tens of thousands of positions exact to `f32` precision.
fn sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| x as f64).sum();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x as f64;
        }
    }
    (lanes.iter().sum::<f64>() + tail) as f32
}
