//! `AdaptiveAvgPool2d` (PyTorch's `nn.AdaptiveAvgPool2d`) on per-sample
//! `[C, H, W]`: averages PyTorch's adaptive bins into a fixed `out_h x out_w`
//! whatever the input size (`(1, 1)` is global average pooling).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layers::{Ctx, ExportOp, Layer};
use crate::philox::Stream;
use lasagna_format::Op;

/// Adaptive average pooling to `out_h x out_w`.
#[derive(Clone, Debug)]
pub struct AdaptiveAvgPool2d {
    out_h: u16,
    out_w: u16,
    /// Per-sample input `[C, H, W]`, known after `setup`.
    input: [usize; 3],
}

impl AdaptiveAvgPool2d {
    /// PyTorch's `AdaptiveAvgPool2d((out_h, out_w))`. Both sizes must be at
    /// least 1 and fit the model format's `u16`. Outputs larger than the
    /// input are allowed, as in PyTorch (bins then repeat input positions).
    pub fn new(out_h: usize, out_w: usize) -> Result<AdaptiveAvgPool2d> {
        let size = |v: usize| match u16::try_from(v) {
            Ok(s) if s > 0 => Ok(s),
            _ => Err(Error::config(
                "AdaptiveAvgPool2d",
                format!("output size ({out_h}, {out_w}): each must be 1 to 65535"),
            )),
        };
        Ok(AdaptiveAvgPool2d {
            out_h: size(out_h)?,
            out_w: size(out_w)?,
            input: [0; 3],
        })
    }

    fn chw(input: &[usize]) -> std::result::Result<[usize; 3], String> {
        match *input {
            [c, h, w] if h > 0 && w > 0 => Ok([c, h, w]),
            [_, _, _] => Err(format!("input {input:?} has an empty plane")),
            _ => Err(format!("expected [C, H, W], got {input:?}")),
        }
    }
}

impl<B: Backend> Layer<B> for AdaptiveAvgPool2d {
    fn kind(&self) -> &'static str {
        "AdaptiveAvgPool2d"
    }

    fn describe(&self) -> String {
        format!(
            "AdaptiveAvgPool2d(output_size=({}, {}))",
            self.out_h, self.out_w
        )
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let [c, _, _] = Self::chw(input)?;
        Ok(vec![c, self.out_h as usize, self.out_w as usize])
    }

    fn setup(
        &mut self,
        _b: &B,
        input: &[usize],
        _max_batch: usize,
        _rng: &mut Stream,
    ) -> Result<()> {
        self.input = Self::chw(input).map_err(|r| Error::config("AdaptiveAvgPool2d", r))?;
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let [c, h, w] = self.input;
        let (oh, ow) = (self.out_h as usize, self.out_w as usize);
        b.adaptive_avgpool2d_forward(ctx.batch, c, h, w, oh, ow, x, y)
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
        let [c, h, w] = self.input;
        let (oh, ow) = (self.out_h as usize, self.out_w as usize);
        b.adaptive_avgpool2d_backward(ctx.batch, c, h, w, oh, ow, dy, dx)
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        let op = Op::AdaptiveAvgPool2d {
            out_h: self.out_h,
            out_w: self.out_w,
        };
        Ok(vec![(op, Vec::new())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn any_plane_pools_to_the_requested_size_and_empty_ones_are_refused() -> Result<()> {
        let a = AdaptiveAvgPool2d::new(3, 1)?;
        assert_eq!(
            Layer::<Cpu>::output_shape(&a, &[4, 7, 9]),
            Ok(vec![4, 3, 1])
        );
        assert_eq!(
            Layer::<Cpu>::output_shape(&a, &[4, 1, 1]),
            Ok(vec![4, 3, 1])
        );
        assert!(Layer::<Cpu>::output_shape(&a, &[4, 0, 9]).is_err());
        assert!(Layer::<Cpu>::output_shape(&a, &[4, 9]).is_err());
        assert!(AdaptiveAvgPool2d::new(0, 1).is_err());
        assert!(AdaptiveAvgPool2d::new(1, 70_000).is_err());
        assert_eq!(
            Layer::<Cpu>::export(&a, &Cpu)?,
            vec![(Op::AdaptiveAvgPool2d { out_h: 3, out_w: 1 }, Vec::new())]
        );
        Ok(())
    }

    #[test]
    fn forward_before_setup_is_an_error() -> Result<()> {
        let mut a = AdaptiveAvgPool2d::new(1, 1)?;
        let ctx = Ctx {
            mode: crate::layers::Mode::Train,
            batch: 1,
            seed: 0,
            offset: 0,
            index: 0,
        };
        let mut y = vec![0.0; 1];
        assert!(Layer::<Cpu>::forward(&mut a, &Cpu, &ctx, &vec![1.0], &mut y).is_err());
        Ok(())
    }
}
