//! `AvgPool2d` (PyTorch's `nn.AvgPool2d` with `ceil_mode=False` and no
//! `divisor_override`) on per-sample `[C, H, W]`.

use crate::backend::{Backend, Pool2dDims};
use crate::error::{Error, Result};
use crate::layers::linear::not_set_up;
use crate::layers::maxpool2d::{pair, pool_dims, pool_window};
use crate::layers::{Ctx, ExportOp, Layer};
use crate::philox::Stream;
use lasagna_format::{Op, Window};

/// Average pooling with a `kernel` window moving by `stride` over the input
/// zero-padded by `padding`, all `(height, width)`.
#[derive(Clone, Debug)]
pub struct AvgPool2d {
    window: Window,
    count_include_pad: bool,
    /// The per-sample geometry (with `n = 1`), known after `setup`.
    dims: Option<Pool2dDims>,
}

impl AvgPool2d {
    /// PyTorch's `AvgPool2d(kernel_size, stride, padding, count_include_pad)`,
    /// each size `(height, width)`. PyTorch's defaults (`stride =
    /// kernel_size`, `count_include_pad = true`) are the caller's to fill in.
    pub fn new(
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        count_include_pad: bool,
    ) -> Result<AvgPool2d> {
        Ok(AvgPool2d {
            window: pool_window("AvgPool2d", kernel, stride, padding)?,
            count_include_pad,
            dims: None,
        })
    }
}

impl<B: Backend> Layer<B> for AvgPool2d {
    fn kind(&self) -> &'static str {
        "AvgPool2d"
    }

    fn describe(&self) -> String {
        format!(
            "AvgPool2d(kernel_size={}, stride={}, padding={}, count_include_pad={})",
            pair(self.window.kernel),
            pair(self.window.stride),
            pair(self.window.padding),
            self.count_include_pad
        )
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        pool_dims(&self.window, input).map(|d| vec![d.c, d.oh, d.ow])
    }

    fn setup(
        &mut self,
        _b: &B,
        input: &[usize],
        _max_batch: usize,
        _rng: &mut Stream,
    ) -> Result<()> {
        let d = pool_dims(&self.window, input).map_err(|r| Error::config("AvgPool2d", r))?;
        self.dims = Some(d);
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let d = self.dims.ok_or_else(|| not_set_up("AvgPool2d"))?;
        b.avgpool2d_forward(d.with_batch(ctx.batch), self.count_include_pad, x, y)
    }

    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        _x: &B::Buf,
        _y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&mut B::Buf>,
    ) -> Result<()> {
        // No parameters: without a `dx` to fill there is nothing to do.
        let Some(dx) = dx else { return Ok(()) };
        let d = self.dims.ok_or_else(|| not_set_up("AvgPool2d"))?;
        b.avgpool2d_backward(d.with_batch(ctx.batch), self.count_include_pad, dy, dx)
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        Ok(vec![(
            Op::AvgPool2d {
                window: self.window,
                count_include_pad: self.count_include_pad,
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
    fn shapes_follow_pytorch_and_export_keeps_count_include_pad() -> Result<()> {
        let a = AvgPool2d::new((3, 3), (2, 2), (1, 1), false)?;
        assert_eq!(
            Layer::<Cpu>::output_shape(&a, &[8, 28, 28]),
            Ok(vec![8, 14, 14])
        );
        assert!(Layer::<Cpu>::output_shape(&a, &[8, 28]).is_err());
        assert!(AvgPool2d::new((2, 2), (2, 2), (2, 0), true).is_err());
        let ops = Layer::<Cpu>::export(&a, &Cpu)?;
        let window = Window {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [1, 1],
            dilation: [1, 1],
        };
        assert_eq!(
            ops,
            vec![(
                Op::AvgPool2d {
                    window,
                    count_include_pad: false
                },
                Vec::new()
            )]
        );
        assert_eq!(
            Layer::<Cpu>::describe(&a),
            "AvgPool2d(kernel_size=3, stride=2, padding=1, count_include_pad=false)"
        );
        Ok(())
    }
}
