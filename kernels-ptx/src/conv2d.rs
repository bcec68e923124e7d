//! im2col, col2im and swap_nc for Conv2d as GEMMs (`ptx/conv2d.ptx`; CPU
//! reference `trainer/src/backend/cpu/conv2d/im2col.rs`, used per sample by
//! `trainer/src/backend/cpu/conv2d.rs`; contract `ConvOps` in
//! `trainer/src/backend/conv.rs`).
//!
//! A convolution runs over the whole batch, or a chunk of [`batch_chunk`]
//! samples, with one launch per step (`trainer/src/backend/gpu/conv.rs`):
//! forward is `im2col` into `col [c_in*kh*kw, n*oh*ow]`, one
//! [`gemm`](crate::gemm::GEMM) per group `yt_g [cog, n*oh*ow] = W_g [cog, kg]
//! col_g` (beta 0), then [`SWAP_NC`] turns `yt [c_out, n, oh*ow]` into NCHW and
//! adds the bias in the same pass. Backward swaps `dy` into `dyt [c_out, n,
//! oh*ow]`, then `dW_g += dyt_g col_g^T` (beta 1: the contract accumulates),
//! `dcol_g = W_g^T dyt_g` and one `col2im`. Groups are pointer offsets (group
//! g's column rows are one contiguous block).
//!
//! Geometry parameters follow `Conv2dDims`, all as `u32`: `n, c_in, h, w, oh,
//! ow, kh, kw, sh, sw, ph, pw, dh, dw`. The host checks the geometry
//! (`Conv2dDims::check`) before launching.

use crate::kernel::{at_most, blocks_for, p, Dim3, Kernel, Launch, LaunchError, Module};
use crate::Param;
use crate::ParamKind::{OptPtrF32, PtrF32, U32};

/// The PTX module.
pub static MODULE: Module = Module {
    name: "conv2d",
    ptx: include_str!("../ptx/conv2d.ptx"),
};

/// The geometry, in the order both entries take it after their pointers.
macro_rules! geometry {
    ($($ptr:expr),*) => {
        &[
            $($ptr,)*
            p("n", U32),
            p("c_in", U32),
            p("h", U32),
            p("w", U32),
            p("oh", U32),
            p("ow", U32),
            p("kh", U32),
            p("kw", U32),
            p("sh", U32),
            p("sw", U32),
            p("ph", U32),
            p("pw", U32),
            p("dh", U32),
            p("dw", U32),
        ]
    };
}

const IM2COL_PARAMS: &[Param] = geometry!(p("x", PtrF32), p("col", PtrF32));
const COL2IM_PARAMS: &[Param] = geometry!(p("col", PtrF32), p("dx", PtrF32));

/// `col [c_in*kh*kw, n*oh*ow] = im2col(x [n, c_in, h, w])`, 0 in the padding;
/// grid-stride over the column elements.
pub static IM2COL: Kernel = Kernel {
    name: "im2col",
    module: &MODULE,
    params: IM2COL_PARAMS,
};
/// `dx = col2im(col)`, overwriting dx: each input element gathers the column
/// entries that read it, in the CPU scatter's order (no atomics);
/// grid-stride over the inputs.
pub static COL2IM: Kernel = Kernel {
    name: "col2im",
    module: &MODULE,
    params: COL2IM_PARAMS,
};
const SWAP_NC_PARAMS: &[Param] = &[
    p("x", PtrF32),
    p("bias", OptPtrF32),
    p("y", PtrF32),
    p("a", U32),
    p("b", U32),
    p("p", U32),
];

/// `y [b, a, p] = x [a, b, p] (+ bias[i] for x's outer index i)`: the GEMM's
/// `[c_out, n, oh*ow]` product to NCHW (with the bias), or `dy` to `[c_out,
/// n, oh*ow]`; grid-stride over y's elements.
pub static SWAP_NC: Kernel = Kernel {
    name: "swap_nc",
    module: &MODULE,
    params: SWAP_NC_PARAMS,
};
/// Every kernel of the module.
pub static ALL: &[&Kernel] = &[&IM2COL, &COL2IM, &SWAP_NC];

/// Threads per block: 8 warps, as the other element-wise kernels.
pub const BLOCK: u32 = 256;
/// Grid cap for the grid-stride loops (see `activation::MAX_GRID`).
pub const MAX_GRID: u32 = 65_535;
/// The kernels index elements with a u32 and add the grid stride to it, so
/// the largest matrix is one the sum cannot wrap on.
pub const MAX_ELEMENTS: usize = i32::MAX as usize;

/// Most scratch elements one conv launch sequence works on: 2^26 floats
/// (256 MiB). The batched columns of the MNIST CNN's largest conv (16 -> 32
/// on 14x14, batch 64) with its `[c_out, n, oh*ow]` product are 2.2 M floats
/// (8.8 MB), so MNIST and CIFAR shapes run as one chunk; the cap keeps a
/// large input (say 3x224x224, 4.8 M floats a sample for a 3x3 conv to 64
/// channels) from asking for gigabytes. A chunk this size is already
/// millions of threads per launch, so chunking costs no parallelism, and it
/// stays below [`MAX_ELEMENTS`], the kernels' u32 index limit.
pub const CHUNK_ELEMENTS: usize = 1 << 26;

/// Samples per chunk for a conv whose scratch needs `per_sample` elements a
/// sample (columns plus the `[c_out, oh*ow]` product), out of `n`: as many as
/// fit [`CHUNK_ELEMENTS`], at least 1 (a single sample larger than the cap
/// runs alone; its launch rules still refuse indices that would wrap), at
/// most `n`. Non-decreasing in `n`, so scratch sized for a batch fits any
/// smaller one.
pub fn batch_chunk(n: usize, per_sample: usize) -> usize {
    chunk_within(n, per_sample, CHUNK_ELEMENTS)
}

/// [`batch_chunk`] for a cap of `cap` elements instead of
/// [`CHUNK_ELEMENTS`] (tests use a small cap to run several chunks).
pub fn chunk_within(n: usize, per_sample: usize, cap: usize) -> usize {
    (cap / per_sample.max(1)).clamp(1, n.max(1))
}

fn grid_stride(
    kernel: &'static str,
    what: &'static str,
    len: usize,
) -> Result<Launch, LaunchError> {
    at_most(kernel, what, len, MAX_ELEMENTS)?;
    Ok(Launch {
        grid: Dim3::x(blocks_for(len, BLOCK as usize).min(MAX_GRID as usize) as u32),
        block: Dim3::x(BLOCK),
        shared_bytes: 0,
    })
}

/// The launch of [`IM2COL`] for `col_len = c_in * kh * kw * n * oh * ow`
/// column elements (one thread each). The input is no larger than the
/// columns' extent in index terms, but its index is checked too: `x_len =
/// n * c_in * h * w`.
pub fn im2col_launch(col_len: usize, x_len: usize) -> Result<Launch, LaunchError> {
    at_most("im2col", "input elements", x_len, MAX_ELEMENTS)?;
    grid_stride("im2col", "column elements", col_len)
}

/// The launch of [`COL2IM`] for `x_len = n * c_in * h * w` input elements
/// (one thread each) gathering from `col_len` column elements.
pub fn col2im_launch(col_len: usize, x_len: usize) -> Result<Launch, LaunchError> {
    at_most("col2im", "column elements", col_len, MAX_ELEMENTS)?;
    grid_stride("col2im", "input elements", x_len)
}

/// The launch of [`SWAP_NC`] for `len = a * b * p` elements (one thread
/// each).
pub fn swap_nc_launch(len: usize) -> Result<Launch, LaunchError> {
    grid_stride("swap_nc", "elements", len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_covers_every_thread_and_refuses_wrapping_indices() {
        for (c, x) in [
            (0usize, 0usize),
            (1, 1),
            (256, 64),
            (9000, 1000),
            (1 << 30, 1),
        ] {
            for (l, len) in [
                (im2col_launch(c, x).unwrap(), c),
                (col2im_launch(c, x).unwrap(), x),
            ] {
                let threads = l.grid.count() * l.block.count();
                assert!(threads >= len as u64 || l.grid.x == MAX_GRID);
                assert!(l.grid.x >= 1);
            }
        }
        assert!(im2col_launch(MAX_ELEMENTS + 1, 1).is_err());
        assert!(im2col_launch(1, MAX_ELEMENTS + 1).is_err());
        assert!(col2im_launch(MAX_ELEMENTS + 1, 1).is_err());
        assert!(col2im_launch(1, MAX_ELEMENTS + 1).is_err());
        assert!(swap_nc_launch(MAX_ELEMENTS + 1).is_err());
        let l = swap_nc_launch(1000).unwrap();
        assert!(l.grid.count() * l.block.count() >= 1000);
    }

    #[test]
    fn batch_chunk_fits_the_cap_is_at_least_one_and_grows_with_the_batch() {
        // MNIST CNN, conv 16 -> 32 on 14x14: (144 + 32) * 196 a sample.
        assert_eq!(batch_chunk(64, 176 * 196), 64);
        assert_eq!(batch_chunk(0, 10), 1);
        assert_eq!(batch_chunk(5, 0), 5);
        assert_eq!(batch_chunk(8, CHUNK_ELEMENTS + 1), 1);
        assert_eq!(batch_chunk(1000, CHUNK_ELEMENTS / 4), 4);
        assert_eq!(chunk_within(5, 10, 25), 2);
        let mut last = 0;
        for n in 1..50 {
            let c = batch_chunk(n, CHUNK_ELEMENTS / 7);
            assert!(c >= last && c <= n && c * (CHUNK_ELEMENTS / 7) <= CHUNK_ELEMENTS);
            last = c;
        }
    }
}
