//! Layers: explicit forward and backward over backend buffers.
//!
//! A model is a chain of layers. Each layer is told its per-sample input shape
//! once (`output_shape`, then `setup`), allocates its parameters and saved
//! state for the largest batch, and afterwards never allocates. Shapes are
//! per sample (PyTorch's shape without the batch dimension); buffers hold
//! `batch * numel(shape)` values, batch-major.

use crate::alloc::Footprint;
use crate::backend::{Backend, Gemm};
use crate::error::Result;
use crate::philox::Stream;

/// Train or eval semantics (dropout on/off, batch or running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `model.train()`.
    Train,
    /// `model.eval()`.
    Eval,
}

/// What a layer needs to know about the current step.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    /// Train or eval.
    pub mode: Mode,
    /// Samples in this batch (at most the `max_batch` given to `setup`).
    pub batch: usize,
    /// The run's seed (dropout masks are keyed by it).
    pub seed: u64,
    /// A value unique to this (step, layer): the Philox offset of its dropout mask.
    pub offset: u64,
    /// Position of the layer in the model (for error messages).
    pub index: usize,
}

/// A trainable tensor and its gradient, on the device.
pub struct Param<B: Backend> {
    /// PyTorch's parameter name (`weight`, `bias`).
    pub name: &'static str,
    /// Shape (PyTorch's layout).
    pub shape: Vec<usize>,
    /// Values.
    pub value: B::Buf,
    /// Gradient: written by backward (overwritten when the layer's
    /// [`Layer::overwrites_grads`], else accumulated onto the zeros the
    /// model writes before each step).
    pub grad: B::Buf,
}

impl<B: Backend> Param<B> {
    /// A parameter with the given host values and a zero gradient.
    pub fn new(b: &B, name: &'static str, shape: Vec<usize>, values: &[f32]) -> Result<Param<B>> {
        Ok(Param {
            name,
            value: b.upload(values)?,
            grad: b.zeros(values.len())?,
            shape,
        })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Backward work of the layers right before a layer that the layer can do
/// in its own input gradient's epilogue (see [`Layer::absorb_backward`]).
/// Both forms read the layer's own input `x`, which is positive exactly
/// where the gradient passes: a ReLU's output is positive where its input
/// was, and inverted dropout's output `relu(z) * scale` (the scale 1 / (1 - p)
/// is at least 1, so it never rounds to 0) is positive where the ReLU passed
/// and the mask kept the element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Absorb {
    /// A ReLU: `dx = x > 0 ? dx : 0`.
    Relu,
    /// A ReLU, then Dropout or Dropout2d in train mode:
    /// `dx = x > 0 ? dx * scale : 0`, the dropout's backward (`dy * scale`
    /// where kept) and the ReLU's in one, with the same single rounding.
    ReluDropout {
        /// `1 / (1 - p)`.
        scale: f32,
    },
}

/// One exported format op with its tensors as host `f32` values, in the
/// order `lasagna_format::Op::tensor_spec` lists them.
pub type ExportOp = (lasagna_format::Op, Vec<Vec<f32>>);

/// The layers of a sequential model, in order.
pub type Layers<B> = Vec<Box<dyn Layer<B>>>;

/// A layer of a sequential model.
pub trait Layer<B: Backend>: Send {
    /// PyTorch's class name (`Linear`, `Dropout`, `BatchNorm1d`).
    fn kind(&self) -> &'static str;
    /// A one-line description with sizes (`Linear(784 -> 256)`).
    fn describe(&self) -> String;
    /// Per-sample output shape, or why `input` does not fit. Called when the
    /// model is built, before `setup`.
    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String>;
    /// Allocates and initializes parameters (drawing from `rng`) and saved
    /// state for batches of up to `max_batch` samples of shape `input`.
    fn setup(&mut self, b: &B, input: &[usize], max_batch: usize, rng: &mut Stream) -> Result<()>;
    /// `y = layer(x)` for `ctx.batch` samples.
    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()>;
    /// Given `dy`, accumulates parameter gradients and, when `dx` is given,
    /// overwrites it with the input gradient. `x` and `y` are the forward's
    /// input and output for the same batch.
    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        x: &B::Buf,
        y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&mut B::Buf>,
    ) -> Result<()>;
    /// Elements [`Layer::setup`] will allocate for `input` and `max_batch`,
    /// counted before allocating so a model too large for memory is refused
    /// rather than aborted (see [`crate::footprint`]); `None` when the count
    /// overflows `u64`. The default, nothing, is right for layers without
    /// parameters or saved state.
    fn footprint(&self, _input: &[usize], _max_batch: usize) -> Option<Footprint> {
        Some(Footprint::default())
    }
    /// Trainable parameters.
    fn params(&self) -> &[Param<B>] {
        &[]
    }
    /// Trainable parameters, mutable (optimizers, checkpoint loading).
    fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut []
    }
    /// True when backward overwrites every parameter gradient (GEMMs with
    /// beta = 0) instead of accumulating: `Model::zero_grad` then skips the
    /// layer, saving one fill launch per parameter per step. Right for a
    /// layer whose parameters get gradient from one place only, once per
    /// backward (Linear); the default, false, is always correct.
    fn overwrites_grads(&self) -> bool {
        false
    }
    /// Asks the layer to apply ReLU to its own output (`on`), for a ReLU
    /// layer that follows it, or to stop (`!on`); returns whether it does
    /// now. The model then skips that ReLU's forward (its output is this
    /// layer's buffer) but still runs its backward, which reads the
    /// post-ReLU values: `relu'(x) = relu'(relu(x))`. Linear accepts when not
    /// under AMP (the ReLU rides in the GEMM epilogue); the default refuses.
    fn fuse_relu(&mut self, _on: bool) -> bool {
        false
    }
    /// Asks the layer to apply the backward of the layers right before it
    /// (`what`, see [`Absorb`]) to its input gradient, or to stop (`None`);
    /// returns whether it does now. The model then skips those layers'
    /// backward: one launch (ReLU) or two (ReLU and Dropout) fewer per step.
    /// The model asks only in train mode; the default refuses.
    fn absorb_backward(&mut self, _what: Option<Absorb>) -> bool {
        false
    }
    /// `1 / (1 - p)` for Dropout and Dropout2d (what a kept element is
    /// multiplied by), `None` for every other layer.
    fn dropout_scale(&self) -> Option<f32> {
        None
    }
    /// True for the ReLU activation (what [`Layer::fuse_relu`] can absorb).
    fn is_relu(&self) -> bool {
        false
    }
    /// Non-trainable state saved in checkpoints (BatchNorm running statistics).
    fn buffers(&self) -> Vec<(&'static str, &B::Buf)> {
        Vec::new()
    }
    /// The same, mutable.
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut B::Buf)> {
        Vec::new()
    }
    /// The layer as format ops with eval semantics (empty for Dropout, which
    /// vanishes at inference). Reads parameters back to the host.
    fn export(&self, b: &B) -> Result<Vec<ExportOp>>;
    /// True for layers that only reinterpret the shape (Flatten): the model
    /// then lets their output share the input's buffer and skips them in
    /// forward and backward, saving a copy of the activations each step.
    fn reshapes_only(&self) -> bool {
        false
    }
    /// True for BatchNorm (1d and 2d): its batch statistics need at least two
    /// samples, so the trainer never forms a batch of one when a model has
    /// one. A method rather than a match on [`Layer::kind`], so renaming or
    /// adding a variant cannot silently change the decision.
    fn is_batch_norm(&self) -> bool {
        false
    }
    /// True for Dropout and Dropout2d: the model warns when one is the last
    /// layer, where it would randomly zero the logits the loss sees.
    fn is_dropout(&self) -> bool {
        false
    }
    /// Mixed precision on or off: layers with GEMMs (Linear, Conv2d, LSTM)
    /// then round their GEMM inputs to fp16 and accumulate in f32
    /// (`AmpOps::gemm_f16`); every other layer stays f32 and ignores it.
    fn set_amp(&mut self, _on: bool) {}
}

/// `C = op(A) op(B)` in f32, or with fp16 inputs under AMP.
pub(crate) fn gemm_amp<B: Backend>(
    b: &B,
    amp: bool,
    g: &Gemm,
    x: &B::Buf,
    w: &B::Buf,
    y: &mut B::Buf,
) -> Result<()> {
    if amp {
        b.gemm_f16(g, x, w, y)
    } else {
        b.gemm(g, x, w, y)
    }
}

pub mod activation;
pub mod adaptive_avgpool2d;
pub mod avgpool2d;
pub mod batchnorm;
pub mod conv2d;
pub mod dropout;
pub mod embedding;
pub mod flatten;
pub mod layernorm;
pub mod linear;
pub mod lstm;
pub mod maxpool2d;
pub mod softmax;

pub use activation::Activation;
pub use adaptive_avgpool2d::AdaptiveAvgPool2d;
pub use avgpool2d::AvgPool2d;
pub use batchnorm::BatchNorm2d;
pub use batchnorm::{BatchNorm, BatchNorm1d};
pub use conv2d::Conv2d;
pub use dropout::Dropout;
pub use dropout::Dropout2d;
pub use embedding::Embedding;
pub use flatten::Flatten;
pub use layernorm::LayerNorm;
pub use linear::Linear;
pub use lstm::Lstm;
pub use maxpool2d::MaxPool2d;
pub use softmax::Softmax;
