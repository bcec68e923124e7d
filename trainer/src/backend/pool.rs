//! Pooling ops over NCHW buffers: max, average and adaptive average pooling.
//!
//! Buffers hold `n * c` planes; input planes are `h x w`, output planes
//! `oh x ow`, both row-major. Windows follow PyTorch with `ceil_mode=False`
//! and dilation 1. Forward ops overwrite `y`; backward ops overwrite `dx`
//! (zero, then scatter-add, since windows may overlap).

use super::Memory;
use crate::error::{Error, Result};

/// Geometry of one max or average pooling call.
///
/// Build it with [`Pool2dDims::new`], which checks the window against
/// PyTorch's rules and computes `oh`, `ow`; backends re-check it with
/// [`Pool2dDims::check`] before touching memory, since the fields are public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dDims {
    /// Samples.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride in height.
    pub sh: usize,
    /// Stride in width.
    pub sw: usize,
    /// Implicit padding on the top and bottom.
    pub ph: usize,
    /// Implicit padding on the left and right.
    pub pw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

/// Output length along one axis, PyTorch's `floor((n + 2p - k) / s) + 1`
/// (`ceil_mode=False`), or why the window does not fit.
pub fn pool_out_len(n: usize, k: usize, s: usize, p: usize) -> std::result::Result<usize, String> {
    if k == 0 || s == 0 {
        return Err(format!("kernel {k} and stride {s} must both be at least 1"));
    }
    // PyTorch: "pad should be at most half of effective kernel size". It also
    // guarantees every window holds at least one real (unpadded) element.
    if p > k / 2 {
        return Err(format!(
            "padding {p} is more than half the kernel {k} (PyTorch requires padding <= kernel / 2)"
        ));
    }
    let padded = n + 2 * p;
    if padded < k {
        return Err(format!(
            "kernel {k} is larger than the padded input {padded} ({n} + 2 * {p})"
        ));
    }
    Ok((padded - k) / s + 1)
}

impl Pool2dDims {
    /// Dims for `n x c` planes of `h x w` pooled by a `kernel` window moving
    /// by `stride` over the input padded by `padding` (all `(height, width)`).
    pub fn new(
        n: usize,
        c: usize,
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
    ) -> Result<Pool2dDims> {
        let bad = |axis: &str, r: String| Error::config("pooling window", format!("{axis}: {r}"));
        let oh = pool_out_len(h, kh, sh, ph).map_err(|r| bad("height", r))?;
        let ow = pool_out_len(w, kw, sw, pw).map_err(|r| bad("width", r))?;
        Ok(Pool2dDims {
            n,
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            oh,
            ow,
        })
    }

    /// The same window over a batch of `n` samples.
    pub fn with_batch(self, n: usize) -> Pool2dDims {
        Pool2dDims { n, ..self }
    }

    /// Fails unless the fields are what [`Pool2dDims::new`] would compute;
    /// kernels index without bounds checks in mind and rely on it.
    pub fn check(&self) -> Result<()> {
        let again = Pool2dDims::new(
            self.n,
            self.c,
            (self.h, self.w),
            (self.kh, self.kw),
            (self.sh, self.sw),
            (self.ph, self.pw),
        )?;
        if again != *self {
            return Err(Error::config(
                "pooling window",
                format!(
                    "output {}x{} does not match the window, which gives {}x{}",
                    self.oh, self.ow, again.oh, again.ow
                ),
            ));
        }
        Ok(())
    }

    /// Elements of the input, `n * c * h * w`.
    pub fn in_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }

    /// Elements of the output, `n * c * oh * ow`.
    pub fn out_len(&self) -> usize {
        self.n * self.c * self.oh * self.ow
    }
}

/// Bin `i` of `out` adaptive bins over `len` positions: PyTorch's
/// `[floor(i * len / out), ceil((i + 1) * len / out))`. Bins cover every
/// position, may overlap, and are never empty when `out >= 1`.
#[inline]
pub fn adaptive_bin(i: usize, len: usize, out: usize) -> (usize, usize) {
    let start = i * len / out;
    let end = ((i + 1) * len).div_ceil(out);
    (start, end)
}

/// The backward of the ReLU (and inverted Dropout) right before a max
/// pooling layer, done inside the pool's backward (`Layer::absorb_backward`,
/// `Absorb`): `dx = x > 0 ? dx * scale : 0`, bit for bit what those layers'
/// own backward would write after the pool's.
#[derive(Debug)]
pub struct ReluGate<'a, T> {
    /// The pool's forward input (the ReLU's, or the Dropout's, output):
    /// positive exactly where the gradient passes.
    pub x: &'a T,
    /// 1 for a ReLU alone (exact), `1 / (1 - p)` with a Dropout after it.
    pub scale: f32,
}

/// Max, average and adaptive average pooling over NCHW buffers.
pub trait PoolOps: Memory {
    /// `MaxPool2d`: `x` is `(N, C, H, W)`, `y` and `argmax` are `(N, C, OH, OW)`.
    /// Padding acts as `-inf`. `argmax` receives the winner's index within
    /// its input plane (`ih * W + iw`, as PyTorch's `return_indices`); ties
    /// go to the first maximum in row-major window order, and NaN wins, as
    /// PyTorch's CPU kernel does.
    fn maxpool2d_forward(
        &self,
        d: Pool2dDims,
        x: &Self::Buf,
        y: &mut Self::Buf,
        argmax: &mut Self::Idx,
    ) -> Result<()>;
    /// `dx = 0; dx[plane, argmax[o]] += dy[o]` for every output `o`; then,
    /// with `relu`, `dx = x > 0 ? dx * scale : 0` ([`ReluGate`]).
    fn maxpool2d_backward(
        &self,
        d: Pool2dDims,
        dy: &Self::Buf,
        argmax: &Self::Idx,
        relu: Option<ReluGate<'_, Self::Buf>>,
        dx: &mut Self::Buf,
    ) -> Result<()>;
    /// `AvgPool2d`: the mean of each window. The divisor counts the padded
    /// zeros when `count_include_pad` (PyTorch's default), else only the
    /// real elements.
    fn avgpool2d_forward(
        &self,
        d: Pool2dDims,
        count_include_pad: bool,
        x: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()>;
    /// `dx = 0; dx[window(o)] += dy[o] / divisor(o)`.
    fn avgpool2d_backward(
        &self,
        d: Pool2dDims,
        count_include_pad: bool,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> Result<()>;
    /// `AdaptiveAvgPool2d`: `x` is `(n, c, h, w)`, `y` is `(n, c, oh, ow)`;
    /// output `(i, j)` is the mean of the bins [`adaptive_bin`]`(i, h, oh)`
    /// x `adaptive_bin(j, w, ow)`.
    fn adaptive_avgpool2d_forward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<()>;
    /// `dx = 0; dx[bin(o)] += dy[o] / |bin(o)|`.
    fn adaptive_avgpool2d_backward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_match_pytorchs_formula_and_bad_windows_are_refused() {
        // MaxPool2d(2) on 28 and 7; AvgPool2d(3, 2, 1) on 28; MaxPool2d(3, 2, 1) on 112.
        assert_eq!(pool_out_len(28, 2, 2, 0), Ok(14));
        assert_eq!(pool_out_len(7, 2, 2, 0), Ok(3));
        assert_eq!(pool_out_len(28, 3, 2, 1), Ok(14));
        assert_eq!(pool_out_len(112, 3, 2, 1), Ok(56));
        assert_eq!(pool_out_len(1, 3, 1, 1), Ok(1));
        assert!(pool_out_len(4, 3, 1, 2).is_err(), "padding > kernel / 2");
        assert!(
            pool_out_len(1, 2, 1, 0).is_err(),
            "window larger than input"
        );
        assert!(pool_out_len(4, 0, 1, 0).is_err());
        assert!(pool_out_len(4, 2, 0, 0).is_err());
    }

    #[test]
    fn dims_that_disagree_with_their_window_fail_the_check() -> Result<()> {
        let d = Pool2dDims::new(2, 3, (7, 9), (2, 3), (2, 1), (1, 1))?;
        assert_eq!((d.oh, d.ow), (4, 9));
        d.check()?;
        assert!(Pool2dDims { oh: 5, ..d }.check().is_err());
        assert_eq!(d.with_batch(5).in_len(), 5 * 3 * 7 * 9);
        Ok(())
    }

    #[test]
    fn adaptive_bins_of_seven_into_three_are_pytorchs() {
        let bins: Vec<_> = (0..3).map(|i| adaptive_bin(i, 7, 3)).collect();
        assert_eq!(bins, [(0, 3), (2, 5), (4, 7)]);
        // More bins than positions: every bin still holds one position.
        let up: Vec<_> = (0..5).map(|i| adaptive_bin(i, 3, 5)).collect();
        assert_eq!(up, [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]);
    }
}
