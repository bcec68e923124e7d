//! A sequential model: layers in a chain, with activation and gradient
//! buffers allocated once for the largest batch.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::layers::{Absorb, Ctx, ExportOp, Layer, Mode, Param};
use crate::philox::Stream;

/// Philox offset of the weight-initialization stream (other streams use
/// other offsets, so initialization never shares numbers with shuffling or dropout).
const INIT_OFFSET: u64 = 0x1417;
/// Dropout offsets are `step * LAYER_STRIDE + layer`, unique per (step, layer).
pub(crate) const LAYER_STRIDE: u64 = 1024;

/// A chain of layers with its buffers.
pub struct Model<B: Backend> {
    layers: Vec<Box<dyn Layer<B>>>,
    shapes: Vec<Vec<usize>>,
    input: B::Buf,
    acts: Vec<B::Buf>,
    /// `source[v]`: which buffer holds value `v` (0 = the input buffer,
    /// `i + 1` = `acts[i]`); reshape-only layers share their input's buffer.
    source: Vec<usize>,
    /// Per layer: a ReLU applied by the layer before it (see `fuse_relus`).
    fused: Vec<bool>,
    /// Per layer: what of the layers before it its backward does
    /// (`Layer::absorb_backward`), in train mode.
    absorbs: Vec<Option<Absorb>>,
    /// Per layer: its backward is done by a later layer (train mode).
    absorbed: Vec<bool>,
    /// Whether the layers in `absorbs` were last told to absorb (train) or
    /// not (eval, where Dropout is the identity and its backward a copy).
    absorbing: bool,
    grads: [B::Buf; 2],
    max_batch: usize,
    mode: Mode,
    warnings: Vec<String>,
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

impl<B: Backend> Model<B> {
    /// Checks that the layers chain from `input_shape` (naming the layer that
    /// does not fit), initializes them from `seed`, and allocates buffers for
    /// batches of up to `max_batch`.
    pub fn build(
        b: &B,
        mut layers: Vec<Box<dyn Layer<B>>>,
        input_shape: &[usize],
        max_batch: usize,
        seed: u64,
    ) -> Result<Model<B>> {
        if layers.is_empty() {
            return Err(Error::config("model", "it has no layers"));
        }
        if max_batch == 0 {
            return Err(Error::config("batch size", "must be at least 1"));
        }
        let mut shapes = vec![input_shape.to_vec()];
        for (i, l) in layers.iter().enumerate() {
            let out = l.output_shape(&shapes[i]).map_err(|reason| Error::Shape {
                index: i,
                layer: l.describe(),
                input: shapes[i].clone(),
                reason,
            })?;
            shapes.push(out);
        }
        let mut warnings = Vec::new();
        if layers.last().is_some_and(|l| l.is_dropout()) {
            warnings.push(
                "the last layer is Dropout: it randomly zeroes the logits the loss sees. \
                 Put Dropout between hidden layers, not on the output."
                    .to_string(),
            );
        }
        let mut rng = Stream::new(seed, INIT_OFFSET);
        for (i, l) in layers.iter_mut().enumerate() {
            l.setup(b, &shapes[i], max_batch, &mut rng)?;
        }
        let widest = shapes.iter().map(|s| numel(s)).max().unwrap_or(0) * max_batch;
        let mut acts = Vec::with_capacity(layers.len());
        for (i, l) in layers.iter().enumerate() {
            // A fused ReLU keeps its buffer: under AMP it runs on its own.
            let len = if l.reshapes_only() {
                0
            } else {
                numel(&shapes[i + 1]) * max_batch
            };
            acts.push(b.zeros(len)?);
        }
        let mut m = Model {
            input: b.zeros(numel(&shapes[0]) * max_batch)?,
            acts,
            source: Vec::new(),
            fused: vec![false; layers.len()],
            absorbs: vec![None; layers.len()],
            absorbed: vec![false; layers.len()],
            absorbing: false,
            grads: [b.zeros(widest)?, b.zeros(widest)?],
            layers,
            shapes,
            max_batch,
            mode: Mode::Train,
            warnings,
        };
        m.fuse_relus();
        Ok(m)
    }

    /// Folds every ReLU layer into the layer before it where that layer
    /// accepts (`Layer::fuse_relu`: Linear outside AMP), saving the ReLU's
    /// forward launch, and recomputes which buffer holds each value.
    fn fuse_relus(&mut self) {
        for i in 0..self.layers.len() {
            let candidate =
                i > 0 && self.layers[i].is_relu() && !self.layers[i - 1].reshapes_only();
            self.fused[i] = candidate && self.layers[i - 1].fuse_relu(true);
        }
        // Value v lives in acts[source[v] - 1] (or the input for 0): a layer
        // that only reshapes, or a fused ReLU, passes its input's buffer on.
        self.source = vec![0usize];
        for i in 0..self.layers.len() {
            let passes = self.layers[i].reshapes_only() || self.fused[i];
            let v = if passes { self.source[i] } else { i + 1 };
            self.source.push(v);
        }
        self.plan_absorption();
    }

    /// Offers every layer the backward of the ReLU (or ReLU and Dropout)
    /// right before it (`Layer::absorb_backward`) and records which layers'
    /// backward the model then skips in train mode.
    fn plan_absorption(&mut self) {
        let n = self.layers.len();
        self.absorbs = vec![None; n];
        self.absorbed = vec![false; n];
        for i in 1..n {
            let relu_at = |j: usize| self.layers[j].is_relu();
            let what = match self.layers[i - 1].dropout_scale() {
                Some(scale) if i >= 2 && relu_at(i - 2) => Some((Absorb::ReluDropout { scale }, 2)),
                Some(_) => None,
                None if relu_at(i - 1) => Some((Absorb::Relu, 1)),
                None => None,
            };
            // A layer already absorbed by the one after it cannot absorb in turn:
            // its own backward would not run.
            let Some((what, count)) = what else {
                self.layers[i].absorb_backward(None);
                continue;
            };
            if self.absorbed[i - count..i].iter().any(|&a| a)
                || self.absorbs[i - count..i].iter().any(Option::is_some)
            {
                self.layers[i].absorb_backward(None);
                continue;
            }
            if self.layers[i].absorb_backward(Some(what)) {
                self.absorbs[i] = Some(what);
                for a in &mut self.absorbed[i - count..i] {
                    *a = true;
                }
            }
        }
        self.absorbing = true;
    }

    /// Tells the absorbing layers to absorb (train) or not (eval), when that changed.
    fn set_absorbing(&mut self, on: bool) {
        if self.absorbing == on {
            return;
        }
        for (l, what) in self.layers.iter_mut().zip(&self.absorbs) {
            if what.is_some() {
                l.absorb_backward(if on { *what } else { None });
            }
        }
        self.absorbing = on;
    }

    /// Build-time warnings (e.g. Dropout on the output).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
    /// Switches to train semantics (`model.train()`).
    pub fn train(&mut self) {
        self.mode = Mode::Train;
    }
    /// Switches to eval semantics (`model.eval()`).
    pub fn eval(&mut self) {
        self.mode = Mode::Eval;
    }
    /// Current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Largest batch the buffers hold.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }
    /// Per-sample input shape.
    pub fn input_shape(&self) -> &[usize] {
        &self.shapes[0]
    }
    /// Per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        self.shapes.last().map(Vec::as_slice).unwrap_or(&[])
    }
    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Layer<B>>] {
        &self.layers
    }
    /// Whether any layer is a BatchNorm (batches of one must then be avoided).
    pub fn has_batchnorm(&self) -> bool {
        self.layers.iter().any(|l| l.is_batch_norm())
    }

    /// Number of trainable values.
    pub fn parameter_count(&self) -> usize {
        self.layers
            .iter()
            .flat_map(|l| l.params())
            .map(Param::numel)
            .sum()
    }

    /// Every trainable parameter, in layer order (the optimizer's order).
    pub fn params_mut(&mut self) -> Vec<&mut Param<B>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut().iter_mut())
            .collect()
    }

    /// Sizes of the parameters, in the optimizer's order.
    pub fn param_sizes(&self) -> Vec<usize> {
        self.layers
            .iter()
            .flat_map(|l| l.params())
            .map(Param::numel)
            .collect()
    }

    /// The buffer the next batch's input goes into (`max_batch` samples).
    pub fn input_mut(&mut self) -> &mut B::Buf {
        &mut self.input
    }

    fn ctx(&self, batch: usize, seed: u64, step: u64, index: usize) -> Ctx {
        Ctx {
            mode: self.mode,
            batch,
            seed,
            offset: step.wrapping_mul(LAYER_STRIDE).wrapping_add(index as u64),
            index,
        }
    }

    fn check_batch(&self, batch: usize) -> Result<()> {
        if batch == 0 || batch > self.max_batch {
            return Err(Error::config(
                "batch",
                format!("{batch} samples, the model holds 1 to {}", self.max_batch),
            ));
        }
        Ok(())
    }

    /// Runs every layer on the first `batch` samples of the input buffer and
    /// returns the output buffer. `step` keys the dropout masks.
    pub fn forward(&mut self, b: &B, batch: usize, seed: u64, step: u64) -> Result<&B::Buf> {
        self.check_batch(batch)?;
        for i in 0..self.layers.len() {
            // A fused ReLU was applied by the layer before it.
            if self.layers[i].reshapes_only() || self.fused[i] {
                continue;
            }
            let ctx = self.ctx(batch, seed, step, i);
            let (before, after) = self.acts.split_at_mut(i);
            let x = match self.source[i] {
                0 => &self.input,
                v => &before[v - 1],
            };
            self.layers[i].forward(b, &ctx, x, &mut after[0])?;
        }
        Ok(self.value(self.layers.len()))
    }

    /// The buffer holding value `v` (0 is the input, `i + 1` layer `i`'s output).
    fn value(&self, v: usize) -> &B::Buf {
        match self.source[v] {
            0 => &self.input,
            s => &self.acts[s - 1],
        }
    }

    /// Backpropagates `dlogits` (the loss gradient for the last forward),
    /// accumulating every parameter's gradient.
    pub fn backward(
        &mut self,
        b: &B,
        batch: usize,
        seed: u64,
        step: u64,
        dlogits: &B::Buf,
    ) -> Result<()> {
        self.check_batch(batch)?;
        let train = self.mode == Mode::Train;
        self.set_absorbing(train);
        let n = self.layers.len();
        // Layers before the first one with parameters need no input gradient:
        // skipping it saves the largest GEMM of a first Linear layer.
        let first_trainable = self
            .layers
            .iter()
            .position(|l| !l.params().is_empty())
            .unwrap_or(n);
        // Where the gradient of the current value lives: None = dlogits, Some(k) = grads[k].
        let mut at: Option<usize> = None;
        for i in (first_trainable.min(n.saturating_sub(1))..n).rev() {
            if self.layers[i].reshapes_only() {
                // Same elements, same order: the gradient passes through unchanged.
                continue;
            }
            if train && self.absorbed[i] {
                // The layer after it already applied this layer's backward.
                continue;
            }
            let ctx = self.ctx(batch, seed, step, i);
            let x = match self.source[i] {
                0 => &self.input,
                v => &self.acts[v - 1],
            };
            let y = &self.acts[i];
            let [g0, g1] = &mut self.grads;
            let wants_dx = i > first_trainable;
            // Gradients ping-pong: layer i reads dy and writes dx into the other buffer.
            let (dy, dx, next): (&B::Buf, &mut B::Buf, usize) = match at {
                None => (dlogits, g0, 0),
                Some(0) => (&*g0, g1, 1),
                Some(_) => (&*g1, g0, 0),
            };
            self.layers[i].backward(b, &ctx, x, y, dy, if wants_dx { Some(dx) } else { None })?;
            at = Some(next);
        }
        Ok(())
    }

    /// Mixed precision on or off for every layer (see `Layer::set_amp`):
    /// GEMM inputs in fp16 with f32 accumulation; everything else, master
    /// weights and gradients included, stays f32.
    pub fn set_amp(&mut self, on: bool) {
        for l in &mut self.layers {
            l.set_amp(on);
        }
        self.fuse_relus();
    }

    /// Zeroes every parameter gradient that backward accumulates into;
    /// layers that overwrite theirs (`Layer::overwrites_grads`) are skipped.
    pub fn zero_grad(&mut self, b: &B) -> Result<()> {
        for l in self.layers.iter_mut().filter(|l| !l.overwrites_grads()) {
            for p in l.params_mut() {
                let n = p.numel();
                b.fill(&mut p.grad, 0.0, n)?;
            }
        }
        Ok(())
    }

    /// Host copies of every parameter and buffer, in a fixed order (checkpoints,
    /// early stopping's best weights).
    pub fn snapshot(&self, b: &B) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::new();
        for l in &self.layers {
            for p in l.params() {
                out.push(b.to_vec(&p.value)?);
            }
            for (_, buf) in l.buffers() {
                out.push(b.to_vec(buf)?);
            }
        }
        Ok(out)
    }

    /// Restores what `snapshot` returned.
    pub fn restore(&mut self, b: &B, snap: &[Vec<f32>]) -> Result<()> {
        let mut it = snap.iter();
        let mismatch =
            || Error::config("checkpoint", "its tensors do not match this model's layers");
        for l in &mut self.layers {
            for p in l.params_mut() {
                let v = it.next().ok_or_else(mismatch)?;
                if v.len() != p.numel() {
                    return Err(mismatch());
                }
                b.write(&mut p.value, v)?;
            }
            for (_, buf) in l.buffers_mut() {
                let v = it.next().ok_or_else(mismatch)?;
                if v.len() != b.len(buf) {
                    return Err(mismatch());
                }
                b.write(buf, v)?;
            }
        }
        if it.next().is_some() {
            return Err(mismatch());
        }
        Ok(())
    }

    /// The model as format ops with eval semantics.
    pub fn export(&self, b: &B) -> Result<Vec<ExportOp>> {
        let mut ops = Vec::new();
        for l in &self.layers {
            ops.extend(l.export(b)?);
        }
        Ok(ops)
    }

    /// A table of layers, output shapes and parameter counts.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (i, l) in self.layers.iter().enumerate() {
            let params: usize = l.params().iter().map(Param::numel).sum();
            s.push_str(&format!(
                "  {i:>2}  {:<34} -> {:<14} {:>9}\n",
                l.describe(),
                format!("{:?}", self.shapes[i + 1]),
                params
            ));
        }
        s.push_str(&format!("  parameters: {}\n", self.parameter_count()));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::init::Init;
    use crate::layers::{BatchNorm1d, BatchNorm2d, Dropout, Dropout2d, LayerNorm, Layers, Linear};

    fn build(layers: Layers<Cpu>, input: &[usize]) -> Result<Model<Cpu>> {
        Model::build(&Cpu, layers, input, 4, 1)
    }

    fn linear(i: usize, o: usize) -> Box<dyn Layer<Cpu>> {
        Box::new(Linear::<Cpu>::new(i, o, true, Init::Default))
    }

    #[test]
    fn batch_norm_and_a_last_dropout_are_found_by_type_in_every_variant() -> Result<()> {
        let m = build(
            vec![
                linear(4, 3),
                Box::new(BatchNorm1d::<Cpu>::new(3, 1e-5, 0.1)?),
            ],
            &[4],
        )?;
        assert!(m.has_batchnorm() && m.warnings().is_empty());
        let m = build(
            vec![
                Box::new(BatchNorm2d::<Cpu>::new(2, 1e-5, 0.1)?),
                Box::new(Dropout2d::new(0.5)?),
            ],
            &[2, 3, 3],
        )?;
        assert!(m.has_batchnorm());
        assert!(m.warnings()[0].contains("last layer is Dropout"));
        let m = build(vec![linear(4, 2), Box::new(Dropout::new(0.5)?)], &[4])?;
        assert!(!m.has_batchnorm() && m.warnings().len() == 1);
        // LayerNorm is not a BatchNorm, and Dropout in the middle is fine.
        let m = build(
            vec![
                Box::new(LayerNorm::<Cpu>::new(4, 1e-5)?),
                Box::new(Dropout::new(0.5)?),
                linear(4, 2),
            ],
            &[4],
        )?;
        assert!(!m.has_batchnorm() && m.warnings().is_empty());
        Ok(())
    }

    /// A ReLU folded into the Linear before it (forward skipped, backward
    /// on the post-ReLU values) trains exactly like an unfused one: the same
    /// net with LeakyReLU(0), which is never fused, gives equal logits and
    /// gradients (equal as numbers: LeakyReLU(0) writes -0.0 where ReLU writes 0).
    #[test]
    fn a_fused_relu_gives_the_unfused_logits_and_gradients() -> Result<()> {
        use crate::backend::Act;
        use crate::layers::Activation;
        let run = |act: Act, amp: bool| -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
            let mut m = build(
                vec![linear(5, 4), Box::new(Activation::new(act)), linear(4, 3)],
                &[5],
            )?;
            m.set_amp(amp);
            assert_eq!(m.fused[1], act == Act::Relu && !amp);
            let x: Vec<f32> = (0..20).map(|i| (i as f32 * 0.7).sin()).collect();
            m.input_mut()[..20].copy_from_slice(&x);
            let y = m.forward(&Cpu, 4, 1, 0)?.clone();
            m.zero_grad(&Cpu)?;
            let dy: Vec<f32> = (0..12).map(|i| (i as f32 * 0.3).cos()).collect();
            m.backward(&Cpu, 4, 1, 0, &dy)?;
            let g = m.params_mut().iter().map(|p| p.grad.clone()).collect();
            Ok((y[..12].to_vec(), g))
        };
        let want = run(Act::LeakyRelu(0.0), false)?;
        assert_eq!(run(Act::Relu, false)?, want);
        // Under AMP (gemm_f16, no epilogue) the ReLU runs on its own again.
        run(Act::Relu, true)?;
        Ok(())
    }
}
