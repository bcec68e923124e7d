//! `MaxPool2d` (PyTorch's `nn.MaxPool2d` with dilation 1 and
//! `ceil_mode=False`) on per-sample `[C, H, W]`. Forward records each
//! window's winner so backward routes the gradient to it alone.

use crate::alloc::{product, Footprint};
use crate::backend::{pool_out_len, Backend, Pool2dDims, ReluGate};
use crate::error::{Error, Result};
use crate::layers::linear::not_set_up;
use crate::layers::{Absorb, Ctx, ExportOp, Layer};
use crate::philox::Stream;
use lasagna_format::{Op, Window};

/// Max pooling with a `kernel` window moving by `stride` over the input
/// padded with `-inf` by `padding`, all `(height, width)`.
pub struct MaxPool2d<B: Backend> {
    window: Window,
    /// The per-sample geometry (with `n = 1`), known after `setup`.
    dims: Option<Pool2dDims>,
    /// Each output's winner within its input plane, for `max_batch` samples.
    argmax: Option<B::Idx>,
    /// The ReLU (and Dropout) before it whose backward this layer's backward
    /// does (`Layer::absorb_backward`): the scale, 1 for a ReLU alone.
    absorbed: Option<f32>,
}

/// `kernel`, `stride`, `padding` as the format's [`Window`] after PyTorch's
/// checks: kernel and stride at least 1, padding at most half the kernel,
/// and every value within the format's `u8`.
pub(crate) fn pool_window(
    what: &str,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Window> {
    let byte = |v: usize, name: &str| {
        u8::try_from(v).map_err(|_| {
            Error::config(
                what,
                format!("{name} = {v} is over 255, the most the model format holds"),
            )
        })
    };
    for (k, s, p) in [
        (kernel.0, stride.0, padding.0),
        (kernel.1, stride.1, padding.1),
    ] {
        if k == 0 || s == 0 {
            return Err(Error::config(
                what,
                format!("kernel_size {kernel:?} and stride {stride:?} must be at least 1"),
            ));
        }
        if p > k / 2 {
            // PyTorch: "pad should be at most half of effective kernel size".
            return Err(Error::config(
                what,
                format!("padding {padding:?} must be at most half of kernel_size {kernel:?}"),
            ));
        }
    }
    Ok(Window {
        kernel: [
            byte(kernel.0, "kernel_size")?,
            byte(kernel.1, "kernel_size")?,
        ],
        stride: [byte(stride.0, "stride")?, byte(stride.1, "stride")?],
        padding: [byte(padding.0, "padding")?, byte(padding.1, "padding")?],
        dilation: [1, 1],
    })
}

/// `n` when both entries are `n`, else `(a, b)`, as PyTorch prints sizes.
pub(crate) fn pair(v: [u8; 2]) -> String {
    if v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("({}, {})", v[0], v[1])
    }
}

/// The per-sample geometry of `window` over `input`, or why it does not fit.
pub(crate) fn pool_dims(
    window: &Window,
    input: &[usize],
) -> std::result::Result<Pool2dDims, String> {
    let [c, h, w] = *input else {
        return Err(format!("expected [C, H, W], got {input:?}"));
    };
    let axis = |i: usize, n: usize, name: &str| {
        pool_out_len(
            n,
            window.kernel[i] as usize,
            window.stride[i] as usize,
            window.padding[i] as usize,
        )
        .map_err(|r| format!("{name} {n} of input {input:?}: {r}"))
    };
    let (oh, ow) = (axis(0, h, "height")?, axis(1, w, "width")?);
    Ok(Pool2dDims {
        n: 1,
        c,
        h,
        w,
        kh: window.kernel[0] as usize,
        kw: window.kernel[1] as usize,
        sh: window.stride[0] as usize,
        sw: window.stride[1] as usize,
        ph: window.padding[0] as usize,
        pw: window.padding[1] as usize,
        oh,
        ow,
    })
}

impl<B: Backend> MaxPool2d<B> {
    /// PyTorch's `MaxPool2d(kernel_size, stride, padding)`, each
    /// `(height, width)`. PyTorch's default `stride = kernel_size` is the
    /// caller's to fill in.
    pub fn new(
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
    ) -> Result<MaxPool2d<B>> {
        Ok(MaxPool2d {
            window: pool_window("MaxPool2d", kernel, stride, padding)?,
            dims: None,
            argmax: None,
            absorbed: None,
        })
    }
}

impl<B: Backend> Layer<B> for MaxPool2d<B> {
    fn kind(&self) -> &'static str {
        "MaxPool2d"
    }

    fn describe(&self) -> String {
        format!(
            "MaxPool2d(kernel_size={}, stride={}, padding={})",
            pair(self.window.kernel),
            pair(self.window.stride),
            pair(self.window.padding)
        )
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        pool_dims(&self.window, input).map(|d| vec![d.c, d.oh, d.ow])
    }

    fn footprint(&self, input: &[usize], max_batch: usize) -> Option<Footprint> {
        let d = pool_dims(&self.window, input).ok()?;
        let out = product(&[d.c, d.oh, d.ow, max_batch])?;
        Footprint::new(&[], out)
    }

    fn setup(&mut self, b: &B, input: &[usize], max_batch: usize, _rng: &mut Stream) -> Result<()> {
        let d = pool_dims(&self.window, input).map_err(|r| Error::config("MaxPool2d", r))?;
        self.argmax = Some(b.upload_idx(&vec![0; d.with_batch(max_batch).out_len()])?);
        self.dims = Some(d);
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let (Some(d), Some(argmax)) = (self.dims, self.argmax.as_mut()) else {
            return Err(not_set_up("MaxPool2d"));
        };
        b.maxpool2d_forward(d.with_batch(ctx.batch), x, y, argmax)
    }

    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        x: &B::Buf,
        _y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&mut B::Buf>,
    ) -> Result<()> {
        // No parameters: without a `dx` to fill there is nothing to do.
        let Some(dx) = dx else { return Ok(()) };
        let (Some(d), Some(argmax)) = (self.dims, self.argmax.as_ref()) else {
            return Err(not_set_up("MaxPool2d"));
        };
        let relu = self.absorbed.map(|scale| ReluGate { x, scale });
        b.maxpool2d_backward(d.with_batch(ctx.batch), dy, argmax, relu, dx)
    }

    /// Accepts both forms: the gate reads this layer's own input `x`, and a
    /// Dropout's scale is one multiply after the gather (see [`ReluGate`]).
    fn absorb_backward(&mut self, what: Option<Absorb>) -> bool {
        self.absorbed = what.map(|w| match w {
            Absorb::Relu => 1.0,
            Absorb::ReluDropout { scale } => scale,
        });
        self.absorbed.is_some()
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        Ok(vec![(
            Op::MaxPool2d {
                window: self.window,
            },
            Vec::new(),
        )])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn shapes_follow_pytorch_and_misfits_name_the_axis() -> Result<()> {
        let two = MaxPool2d::<Cpu>::new((2, 2), (2, 2), (0, 0))?;
        assert_eq!(two.output_shape(&[1, 28, 28]), Ok(vec![1, 14, 14]));
        assert_eq!(two.output_shape(&[3, 7, 7]), Ok(vec![3, 3, 3]));
        let err = two.output_shape(&[3, 1, 7]).err().unwrap_or_default();
        assert!(
            err.contains("height 1") && err.contains("[3, 1, 7]"),
            "{err}"
        );
        assert!(two.output_shape(&[28, 28]).is_err());
        assert_eq!(
            Layer::<Cpu>::describe(&two),
            "MaxPool2d(kernel_size=2, stride=2, padding=0)"
        );
        assert!(MaxPool2d::<Cpu>::new((3, 3), (1, 1), (2, 1)).is_err());
        assert!(MaxPool2d::<Cpu>::new((0, 3), (1, 1), (0, 0)).is_err());
        assert!(MaxPool2d::<Cpu>::new((3, 3), (0, 1), (0, 0)).is_err());
        assert!(MaxPool2d::<Cpu>::new((300, 3), (1, 1), (0, 0)).is_err());
        Ok(())
    }

    #[test]
    fn export_is_the_window_with_dilation_one_and_no_tensors() -> Result<()> {
        let m = MaxPool2d::<Cpu>::new((3, 2), (2, 1), (1, 0))?;
        let ops = m.export(&Cpu)?;
        let want = Window {
            kernel: [3, 2],
            stride: [2, 1],
            padding: [1, 0],
            dilation: [1, 1],
        };
        assert_eq!(ops, vec![(Op::MaxPool2d { window: want }, Vec::new())]);
        Ok(())
    }
}
