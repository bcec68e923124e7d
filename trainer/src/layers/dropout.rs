//! `Dropout` and `Dropout2d` (PyTorch's `nn.Dropout`, `nn.Dropout2d`):
//! inverted dropout in train mode, the identity in eval mode. Dropout2d
//! drops whole channels of `[C, H, W]` samples, since neighbouring pixels of
//! a feature map are correlated and dropping them one by one regularizes
//! little (Tompson et al. 2015, the reason PyTorch has it). The mask is never stored: backward regenerates it
//! from the step's `(seed, offset)` (see `backend/cpu/dropout.rs`).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layers::{Ctx, ExportOp, Layer, Mode};
use crate::philox::Stream;

/// Zeroes each element with probability `p` in train mode and scales the
/// rest by `1 / (1 - p)`.
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f32,
    numel: usize,
}

impl Dropout {
    /// A dropout layer with drop probability `p` in `[0, 1)`. PyTorch accepts
    /// `p = 1`, but it zeroes every activation (and the `1 / (1 - p)` scale is
    /// infinite), so it is refused here as a configuration mistake.
    pub fn new(p: f32) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::config(
                "dropout probability",
                format!("p = {p}, expected 0 <= p < 1 (p = 1 would drop every activation)"),
            ));
        }
        Ok(Dropout { p, numel: 0 })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl<B: Backend> Layer<B> for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }

    fn is_dropout(&self) -> bool {
        true
    }

    fn dropout_scale(&self) -> Option<f32> {
        Some(1.0 / (1.0 - self.p))
    }

    fn describe(&self) -> String {
        format!("Dropout(p={})", self.p)
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn setup(
        &mut self,
        _b: &B,
        input: &[usize],
        _max_batch: usize,
        _rng: &mut Stream,
    ) -> Result<()> {
        self.numel = input.iter().product();
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let n = ctx.batch * self.numel;
        match ctx.mode {
            Mode::Train => b.dropout_forward(self.p, ctx.seed, ctx.offset, 1, x, y, n),
            Mode::Eval => b.copy(x, y, n),
        }
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
        let Some(dx) = dx else { return Ok(()) };
        let n = ctx.batch * self.numel;
        match ctx.mode {
            Mode::Train => b.dropout_backward(self.p, ctx.seed, ctx.offset, 1, dy, dx, n),
            Mode::Eval => b.copy(dy, dx, n),
        }
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        // Inference drops nothing, so the op vanishes from the exported model.
        Ok(Vec::new())
    }
}

/// Zeroes each channel of a `[C, H, W]` sample with probability `p` in train
/// mode and scales the kept ones by `1 / (1 - p)`.
#[derive(Clone, Debug)]
pub struct Dropout2d {
    p: f32,
    numel: usize,
    /// `H * W`: the elements that share one keep/drop draw.
    plane: usize,
}

impl Dropout2d {
    /// A channel dropout layer with drop probability `p` in `[0, 1)` (`p = 1`
    /// is refused as for [`Dropout`]).
    pub fn new(p: f32) -> Result<Dropout2d> {
        let p = Dropout::new(p)?.p;
        Ok(Dropout2d {
            p,
            numel: 0,
            plane: 0,
        })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }

    fn chw(input: &[usize]) -> std::result::Result<[usize; 3], String> {
        match *input {
            [c, h, w] => Ok([c, h, w]),
            _ => Err(format!(
                "expected [C, H, W] (whole H x W channels are dropped), got {input:?}"
            )),
        }
    }
}

impl<B: Backend> Layer<B> for Dropout2d {
    fn kind(&self) -> &'static str {
        "Dropout2d"
    }

    fn is_dropout(&self) -> bool {
        true
    }

    fn dropout_scale(&self) -> Option<f32> {
        Some(1.0 / (1.0 - self.p))
    }

    fn describe(&self) -> String {
        format!("Dropout2d(p={})", self.p)
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        Dropout2d::chw(input).map(|_| input.to_vec())
    }

    fn setup(
        &mut self,
        _b: &B,
        input: &[usize],
        _max_batch: usize,
        _rng: &mut Stream,
    ) -> Result<()> {
        let [c, h, w] = Dropout2d::chw(input).map_err(|r| Error::config("Dropout2d", r))?;
        self.plane = h * w;
        self.numel = c * self.plane;
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let n = ctx.batch * self.numel;
        match ctx.mode {
            Mode::Train => b.dropout_forward(self.p, ctx.seed, ctx.offset, self.plane, x, y, n),
            Mode::Eval => b.copy(x, y, n),
        }
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
        let Some(dx) = dx else { return Ok(()) };
        let n = ctx.batch * self.numel;
        match ctx.mode {
            Mode::Train => b.dropout_backward(self.p, ctx.seed, ctx.offset, self.plane, dy, dx, n),
            Mode::Eval => b.copy(dy, dx, n),
        }
    }

    fn export(&self, _b: &B) -> Result<Vec<ExportOp>> {
        // Inference drops nothing, so the op vanishes from the exported model.
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    fn ctx(mode: Mode, offset: u64) -> Ctx {
        Ctx {
            mode,
            batch: 4,
            seed: 1234,
            offset,
            index: 0,
        }
    }

    fn layer(p: f32) -> Result<Dropout> {
        let mut d = Dropout::new(p)?;
        Layer::<Cpu>::setup(&mut d, &Cpu, &[250], 4, &mut Stream::new(0, 0))?;
        Ok(d)
    }

    #[test]
    fn probabilities_outside_zero_to_one_exclusive_are_refused() {
        for p in [1.0, 1.5, -0.1, f32::NAN] {
            assert!(Dropout::new(p).is_err(), "p = {p}");
        }
        assert!(Dropout::new(0.0).is_ok());
    }

    #[test]
    fn eval_mode_is_the_identity_both_ways() -> Result<()> {
        let mut d = layer(0.5)?;
        let x: Vec<f32> = (0..1000).map(|v| v as f32 - 500.0).collect();
        let mut y = vec![0.0; 1000];
        d.forward(&Cpu, &ctx(Mode::Eval, 3), &x, &mut y)?;
        assert_eq!(y, x);
        let mut dx = vec![0.0; 1000];
        d.backward(&Cpu, &ctx(Mode::Eval, 3), &x, &y, &x, Some(&mut dx))?;
        assert_eq!(dx, x);
        Ok(())
    }

    #[test]
    fn backward_applies_the_forward_mask_and_scale() -> Result<()> {
        let mut d = layer(0.3)?;
        let x = vec![1.0f32; 1000];
        let mut y = vec![0.0; 1000];
        let c = ctx(Mode::Train, 17);
        d.forward(&Cpu, &c, &x, &mut y)?;
        let dropped = y.iter().filter(|&&v| v == 0.0).count();
        assert!(
            (200..400).contains(&dropped),
            "dropped {dropped} of 1000 at p = 0.3"
        );
        // With x and dy all ones, dx must equal y element for element.
        let mut dx = vec![0.0; 1000];
        d.backward(&Cpu, &c, &x, &y, &x, Some(&mut dx))?;
        assert_eq!(dx, y);
        // Another step (offset) draws another mask.
        let mut y2 = vec![0.0; 1000];
        d.forward(&Cpu, &ctx(Mode::Train, 18), &x, &mut y2)?;
        assert_ne!(y, y2);
        assert!(Layer::<Cpu>::export(&d, &Cpu)?.is_empty());
        Ok(())
    }

    #[test]
    fn dropout2d_drops_whole_channels_and_backward_reuses_the_mask() -> Result<()> {
        // 4 samples of [100, 2, 3]: 400 channel draws at p = 0.3.
        let mut d = Dropout2d::new(0.3)?;
        Layer::<Cpu>::setup(&mut d, &Cpu, &[100, 2, 3], 4, &mut Stream::new(0, 0))?;
        let x: Vec<f32> = (0..2400).map(|v| 1.0 + v as f32).collect();
        let mut y = vec![0.0; 2400];
        let c = ctx(Mode::Train, 17);
        d.forward(&Cpu, &c, &x, &mut y)?;
        let mut dropped = 0;
        for (yc, xc) in y.chunks(6).zip(x.chunks(6)) {
            if yc.iter().all(|&v| v == 0.0) {
                dropped += 1;
            } else {
                for (&y, &x) in yc.iter().zip(xc) {
                    assert!((y - x / 0.7).abs() <= 1e-6 * y.abs(), "{yc:?} from {xc:?}");
                }
            }
        }
        // Binomial(400, 0.3): mean 120, standard deviation 9.2; 5 sigma either way.
        assert!((74..=166).contains(&dropped), "dropped {dropped} of 400");
        let dy = vec![2.0; 2400];
        let mut dx = vec![0.0; 2400];
        d.backward(&Cpu, &c, &x, &y, &dy, Some(&mut dx))?;
        for (i, (&g, &y)) in dx.iter().zip(&y).enumerate() {
            assert_eq!(g == 0.0, y == 0.0, "element {i}");
        }
        assert!(Layer::<Cpu>::export(&d, &Cpu)?.is_empty());
        assert!(Layer::<Cpu>::output_shape(&d, &[100, 6]).is_err());
        assert!(Dropout2d::new(1.0).is_err());
        Ok(())
    }
}
