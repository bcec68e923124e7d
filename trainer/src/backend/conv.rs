//! Convolution ops: [`Conv2dDims`] describes one 2-D convolution over NCHW
//! buffers, and [`ConvOps`] runs it forward and backward.
//!
//! Layouts are PyTorch's: `x [n, c_in, h, w]`, `weight [c_out, c_in / groups,
//! kh, kw]`, `bias [c_out]`, `y [n, c_out, oh, ow]`. Group `g` convolves
//! input channels `g * c_in/groups ..` into output channels `g * c_out/groups ..`
//! (`groups == c_in` is a depthwise convolution).

use super::Memory;
use crate::error::{Error, Result};

/// Output length along one axis, PyTorch's formula for `nn.Conv2d`:
/// `floor((len + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1`.
/// `None` when a size is zero or the dilated kernel is longer than the padded input.
///
/// Known PyTorch results: 28 with kernel 3, padding 1 gives 28; with stride 2
/// as well, 14; 9 with kernel 3 and dilation 2 gives 5.
pub fn conv_out_len(
    len: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    if len == 0 || kernel == 0 || stride == 0 || dilation == 0 {
        return None;
    }
    let span = dilation.checked_mul(kernel - 1)?.checked_add(1)?;
    let padded = padding.checked_mul(2)?.checked_add(len)?;
    Some(padded.checked_sub(span)? / stride + 1)
}

/// The geometry of one 2-D convolution. Build it with [`Conv2dDims::new`],
/// which derives `oh` and `ow`; the ops re-check a hand-made one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dDims {
    /// Samples.
    pub n: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride in height and width.
    pub stride: [usize; 2],
    /// Zero padding on each side, in height and width.
    pub padding: [usize; 2],
    /// Dilation in height and width.
    pub dilation: [usize; 2],
    /// Groups; both channel counts are multiples of it.
    pub groups: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
}

impl Conv2dDims {
    /// The geometry of a convolution of `n` samples of `[c_in, h, w]` into
    /// `c_out` channels, or a [`Error::Config`] naming the sizes that do not fit.
    pub fn new(
        n: usize,
        [c_in, h, w]: [usize; 3],
        c_out: usize,
        [kh, kw]: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Conv2dDims> {
        let d = Conv2dDims {
            n,
            c_in,
            h,
            w,
            c_out,
            kh,
            kw,
            stride,
            padding,
            dilation,
            groups,
            oh: 0,
            ow: 0,
        };
        d.derive().map_err(|reason| Error::config("Conv2d", reason))
    }

    /// The same geometry for a batch of `n` samples.
    pub fn with_batch(self, n: usize) -> Conv2dDims {
        Conv2dDims { n, ..self }
    }

    /// These dims with `oh`, `ow` computed from the rest, or why they do not fit
    /// (a plain string: `Layer::output_shape` reports it as is).
    pub fn derive(self) -> std::result::Result<Conv2dDims, String> {
        let d = self;
        if [d.c_in, d.c_out, d.h, d.w].contains(&0) {
            return Err(format!(
                "channels and sizes must be positive, got {} -> {} channels on {}x{}",
                d.c_in, d.c_out, d.h, d.w
            ));
        }
        if d.kh == 0 || d.kw == 0 || d.stride.contains(&0) || d.dilation.contains(&0) {
            return Err(format!(
                "kernel, stride and dilation must be positive, got kernel {}x{}, \
                 stride {}x{}, dilation {}x{}",
                d.kh, d.kw, d.stride[0], d.stride[1], d.dilation[0], d.dilation[1]
            ));
        }
        if d.groups == 0 || !d.c_in.is_multiple_of(d.groups) || !d.c_out.is_multiple_of(d.groups) {
            return Err(format!(
                "groups = {} must divide in_channels = {} and out_channels = {}",
                d.groups, d.c_in, d.c_out
            ));
        }
        let axis = |name: &str, len: usize, k: usize, i: usize| {
            conv_out_len(len, k, d.stride[i], d.padding[i], d.dilation[i]).ok_or_else(|| {
                let span = d.dilation[i].saturating_mul(k - 1).saturating_add(1);
                format!(
                    "the {name} does not fit the window: kernel {k} with dilation {} spans {span}, \
                     more than the input's {len} plus 2 x padding {} = {}",
                    d.dilation[i],
                    d.padding[i],
                    len.saturating_add(d.padding[i].saturating_mul(2))
                )
            })
        };
        let oh = axis("height", d.h, d.kh, 0)?;
        let ow = axis("width", d.w, d.kw, 1)?;
        let d = Conv2dDims { oh, ow, ..d };
        // Every buffer length must be representable, so the ops can index freely.
        let sizes = [
            d.x_len(),
            d.y_len(),
            d.weight_len(),
            d.col_rows().checked_mul(d.positions()),
        ];
        if sizes.contains(&None) {
            return Err(format!("the buffers of {d:?} overflow usize"));
        }
        Ok(d)
    }

    /// Fails unless these dims are what [`Conv2dDims::new`] would build.
    pub fn check(&self) -> Result<()> {
        match self.derive() {
            Ok(d) if d == *self => Ok(()),
            Ok(d) => Err(Error::config(
                "Conv2d",
                format!(
                    "output {}x{} given, the window gives {}x{}",
                    self.oh, self.ow, d.oh, d.ow
                ),
            )),
            Err(reason) => Err(Error::config("Conv2d", reason)),
        }
    }

    /// Elements of `x` (`None` on overflow).
    pub fn x_len(&self) -> Option<usize> {
        mul(&[self.n, self.c_in, self.h, self.w])
    }

    /// Elements of `y` (`None` on overflow).
    pub fn y_len(&self) -> Option<usize> {
        mul(&[self.n, self.c_out, self.oh, self.ow])
    }

    /// Elements of `weight` (`None` on overflow).
    pub fn weight_len(&self) -> Option<usize> {
        mul(&[self.c_out, self.c_in / self.groups.max(1), self.kh, self.kw])
    }

    /// Rows of the whole column matrix: one per (input channel, kernel tap).
    pub fn col_rows(&self) -> usize {
        self.c_in.saturating_mul(self.kh).saturating_mul(self.kw)
    }

    /// Output positions of the whole batch, `n * oh * ow`.
    pub fn positions(&self) -> usize {
        self.n.saturating_mul(self.oh).saturating_mul(self.ow)
    }
}

fn mul(v: &[usize]) -> Option<usize> {
    v.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

/// 2-D convolution over NCHW buffers (PyTorch's `F.conv2d` and its gradients).
pub trait ConvOps: Memory {
    /// Elements of the scratch buffer the conv ops need for `d` (for its `n`;
    /// any smaller batch fits in the same scratch).
    fn conv2d_scratch_len(&self, d: &Conv2dDims) -> usize;

    /// `y = conv2d(x, weight) + bias` for `d.n` samples, overwriting `y`.
    /// `scratch` holds [`ConvOps::conv2d_scratch_len`] elements; its contents
    /// are clobbered.
    fn conv2d_forward(
        &self,
        d: &Conv2dDims,
        x: &Self::Buf,
        weight: &Self::Buf,
        bias: Option<&Self::Buf>,
        y: &mut Self::Buf,
        scratch: &mut Self::Buf,
    ) -> Result<()>;

    /// Given `dy`, overwrites `dweight` and `dbias` (when given) with the
    /// weight and bias gradients and, when `dx` is given, `dx` with the input
    /// gradient (so the layer's gradients need no zero fill each step). `x` is the
    /// forward's input; `scratch` as in forward (nothing of forward's is kept).
    fn conv2d_backward(
        &self,
        d: &Conv2dDims,
        x: &Self::Buf,
        weight: &Self::Buf,
        dy: &Self::Buf,
        dx: Option<&mut Self::Buf>,
        dweight: &mut Self::Buf,
        dbias: Option<&mut Self::Buf>,
        scratch: &mut Self::Buf,
    ) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_len_matches_pytorch_on_known_shapes() {
        // torch.nn.Conv2d(1, 16, 3, padding=1)(torch.zeros(1, 1, 28, 28)).shape[-1] == 28
        assert_eq!(conv_out_len(28, 3, 1, 1, 1), Some(28));
        // Conv2d(.., 3, stride=2, padding=1) on 28 -> 14.
        assert_eq!(conv_out_len(28, 3, 2, 1, 1), Some(14));
        // Conv2d(.., 3, dilation=2) on 9 -> 5.
        assert_eq!(conv_out_len(9, 3, 1, 0, 2), Some(5));
        // Conv2d(.., 5, stride=3) on 10 -> floor(5 / 3) + 1 = 2.
        assert_eq!(conv_out_len(10, 5, 3, 0, 1), Some(2));
        // A kernel exactly the padded input's size gives one output.
        assert_eq!(conv_out_len(3, 5, 1, 1, 1), Some(1));
        assert_eq!(conv_out_len(3, 5, 1, 0, 1), None);
        assert_eq!(conv_out_len(3, 3, 0, 0, 1), None);
    }

    #[test]
    fn dims_that_do_not_fit_name_the_sizes() {
        let err = Conv2dDims::new(1, [2, 4, 9], 3, [3, 3], [1, 1], [0, 0], [2, 1], 1)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("height") && err.contains("spans 5") && err.contains("= 4"),
            "{err}"
        );
        let err = Conv2dDims::new(1, [4, 8, 8], 6, [3, 3], [1, 1], [1, 1], [1, 1], 4)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("groups = 4") && err.contains("6"), "{err}");
    }

    #[test]
    fn check_rejects_hand_made_dims_with_a_wrong_output_size() -> Result<()> {
        let d = Conv2dDims::new(2, [3, 28, 28], 8, [3, 3], [2, 2], [1, 1], [1, 1], 1)?;
        assert_eq!((d.oh, d.ow), (14, 14));
        d.check()?;
        assert!(Conv2dDims { ow: 15, ..d }.check().is_err());
        Ok(())
    }
}
