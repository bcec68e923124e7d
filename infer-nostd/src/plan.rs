//! Prepare: every check the hot path must not repeat. Each op of a parsed
//! model becomes a [`Step`]: its kernel with the sizes it loops over, its
//! input, output and scratch as byte ranges of the arena, the int8
//! quantization of its input and output, and its tensors as borrowed
//! slices in a shared table.

use crate::error::Error;
use crate::ops::activation::Activation;
use crate::ops::avgpool2d::Adaptive;
use crate::ops::batchnorm::BatchNorm;
use crate::ops::conv2d::Conv2d;
use crate::ops::linear::Linear;
use crate::ops::lstm::{self, Lstm};
use crate::ops::lstm_i8;
use crate::ops::maxpool2d::Pool2d;
use crate::ops::{WeightScale, Weights};
use crate::quant::{int8_refusal, QParams};
use lasagna_format::{DType, Model, Op, OpEntry, Quant, Shape, TensorRef, ValueInfo};

/// Most ops the engine's plan holds. The plan is a fixed-capacity array
/// inside [`Engine`](crate::Engine), so this bounds its size (92 bytes per
/// op on `thumbv7em-none-eabihf`); a larger model is
/// [`Error::TooManyOps`]. Raise it here if a model needs more.
pub const MAX_OPS: usize = 64;

/// Most tensors (weights, biases, statistics) the engine's table holds
/// (20 bytes each on a 32-bit target). Each LSTM layer takes 4, so a
/// 1-op model may have 32 LSTM layers. A larger model is
/// [`Error::TooManyTensors`].
pub const MAX_TENSORS: usize = 128;

/// f32 activations are read in place as `f32`, so the arena must be this
/// aligned (the format makes every offset a multiple of it).
pub(crate) const ARENA_ALIGN: usize = 4;

/// Scratch bytes `op` needs in this engine when its input has shape `input`.
///
/// This is the single source of truth for the memory plan: the exporter
/// writes it into each op record (`OpSpec::scratch_bytes`), and
/// [`Engine::new`](crate::Engine::new) refuses a file that plans less.
/// Today only LSTM needs scratch: `h` and `c` for each layer and the `4h`
/// gate pre-activations, in `f32`
/// (`4 * (2 * layers * hidden + 4 * hidden)` bytes). Every other op runs in
/// direct loops (Conv2d needs no im2col buffer) and needs 0. Saturates at
/// `usize::MAX` for sizes no target can hold.
pub fn scratch_bytes(op: &Op, input: &Shape) -> usize {
    // The shape is part of the contract so that a kernel may depend on it
    // later (e.g. an im2col Conv2d) without changing the exporter's call.
    let _ = input;
    match *op {
        Op::Lstm {
            hidden_size,
            layers,
            ..
        } => lstm::scratch_len(hidden_size as usize, layers as usize)
            .and_then(|n| n.checked_mul(4))
            .unwrap_or(usize::MAX),
        _ => 0,
    }
}

/// Scratch bytes `op` needs in this engine in an int8 model (the f32 rule
/// is [`scratch_bytes`]). Exporters write it into each op record like the
/// f32 rule. An int8 Linear widens its input once into `i16` pairs (2
/// bytes per element, whole groups of 4) so that every group of weight
/// rows reads them with plain loads; an int8 Conv2d accumulates one output
/// row in `i32` (portable), widens one output row of one-channel patches
/// (arm-dsp, `in_channels / groups == 1`) or two input patches side by
/// side (arm-dsp; the engine runs with one, [`scratch_min_bytes_int8`]);
/// an int8 LSTM keeps its `i16` cell states and gates and its `i8` hidden
/// states ([`lstm_i8::scratch_bytes`]); every other int8 op needs 0.
/// Saturates at `usize::MAX` for sizes no target can hold.
pub fn scratch_bytes_int8(op: &Op, input: &Shape) -> usize {
    match *op {
        Op::Linear { in_features, .. } => (in_features as usize / 4).saturating_mul(8),
        // The larger of the int8 Conv2d kernels' needs, so that one file
        // runs on both builds: a row of `ow` i32 accumulators (portable) or
        // of `ow` one-channel patches widened into ceil(kh kw / 2) words each
        // (arm-dsp), which is the larger of the two, or two widened input
        // patches side by side (arm-dsp: 2 bytes per element of the
        // (in_channels / groups) x kh x kw patch, whole groups of 4, for
        // two output positions) followed, per pair of output channels, by
        // its four i32 sums and its two channels' requantization
        // (multiplier, shift, bias: 40 bytes). Not a whole output plane:
        // that set the int8 CNN's arena (3,136 of its 16,464 bytes).
        Op::Conv2d { .. } => conv2d_int8_scratch(op, input, true),
        Op::Lstm {
            hidden_size,
            layers,
            ..
        } => lstm_i8::scratch_bytes(hidden_size as usize, layers as usize).unwrap_or(usize::MAX),
        _ => 0,
    }
}

/// The least scratch `op` runs with in an int8 model: what
/// [`scratch_bytes_int8`] plans, except that an int8 Conv2d runs with one
/// widened input patch (`8 · ⌊kg / 4⌋` bytes) instead of two, slower, so
/// files whose exporter planned one patch (as `lasagna export` did before
/// the two-patch kernel) load unchanged. The engine refuses less.
pub fn scratch_min_bytes_int8(op: &Op, input: &Shape) -> usize {
    match *op {
        Op::Conv2d { .. } => conv2d_int8_scratch(op, input, false),
        _ => scratch_bytes_int8(op, input),
    }
}

/// An int8 Conv2d's scratch with two widened patches and the channel
/// pairs' sums and requantization (`two`: what the exporter plans) or one
/// widened patch (the least the engine runs with); see the comment in
/// [`scratch_bytes_int8`].
fn conv2d_int8_scratch(op: &Op, input: &Shape, two: bool) -> usize {
    let Op::Conv2d {
        in_channels,
        out_channels,
        groups,
        window,
        ..
    } = *op
    else {
        return 0;
    };
    let Ok([_, _, ow, _]) = op.infer_shape(*input).map(|s| s.raw()) else {
        return usize::MAX;
    };
    let taps = usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
    let row = (ow as usize)
        .saturating_mul(taps.div_ceil(2))
        .saturating_mul(4);
    let quads = usize::from(in_channels / groups.max(1)) * taps / 4;
    if two {
        let pairs = usize::from(out_channels / groups.max(1)).div_ceil(2);
        row.max(quads * 16 + 40 * pairs)
    } else {
        row.max(quads * 8)
    }
}

/// A range of the arena in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn range(&self) -> core::ops::Range<usize> {
        self.start..self.start.saturating_add(self.len)
    }
}

/// What a step runs, with the sizes its loops need.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kernel {
    Linear(Linear),
    Conv2d(Conv2d),
    MaxPool2d(Pool2d),
    AvgPool2d(Pool2d, bool),
    AdaptiveAvgPool2d(Adaptive),
    BatchNorm(BatchNorm),
    LayerNorm {
        cols: usize,
        eps: f32,
    },
    Embedding {
        num: usize,
        dim: usize,
    },
    /// The sizes, and the int8 cell state's `cell_shift` (0 in f32).
    Lstm(Lstm, u32),
    Flatten,
    Activation(Activation),
    Softmax {
        cols: usize,
    },
}

/// One op, prepared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Step {
    pub index: u16,
    pub kernel: Kernel,
    pub x: Span,
    pub y: Span,
    pub scratch: Span,
    /// Quantization of the input and output (int8 models; default for f32).
    pub q: (QParams, QParams),
    /// The op's tensors: `first..first + count` of the engine's table.
    pub first: usize,
    pub count: usize,
}

fn to_usize(v: u64, op: u16) -> Result<usize, Error> {
    usize::try_from(v).map_err(|_| Error::Unsupported {
        op,
        what: "a tensor larger than this target's address space",
    })
}

pub(crate) fn value_span(v: &ValueInfo) -> Span {
    Span {
        start: v.arena_offset as usize,
        len: v.bytes as usize,
    }
}

fn qparams(v: &ValueInfo) -> QParams {
    v.quant
        .map_or(QParams::default(), |(scale, zero_point)| QParams {
            scale,
            zero_point,
        })
}

/// The kernel for an op and its input and output shapes.
fn kernel(e: &OpEntry) -> Result<Kernel, Error> {
    let op = e.index;
    let numel = to_usize(e.input.shape.numel(), op)?;
    let (d, od) = (e.input.shape.dims(), e.output.shape.dims());
    let n = |v: u32| v as usize;
    let bad_shape = Error::Inconsistent {
        op,
        what: "shape does not fit the op",
    };
    // From the dims slice, not `Shape::last`, whose index the compiler cannot
    // prove in bounds (a panic path in the binary).
    let last = d.last().map_or(1, |&v| n(v).max(1));
    Ok(match e.op {
        Op::Linear {
            in_features,
            out_features,
            layout,
            ..
        } => Kernel::Linear(Linear {
            rows: numel / n(in_features).max(1),
            in_features: n(in_features),
            out_features: n(out_features),
            layout,
        }),
        Op::Conv2d {
            in_channels,
            out_channels,
            groups,
            window,
            ..
        } => {
            let (&[_, h, w], &[_, oh, ow]) = (d, od) else {
                return Err(bad_shape);
            };
            Kernel::Conv2d(Conv2d {
                in_channels: in_channels as usize,
                out_channels: out_channels as usize,
                groups: groups as usize,
                h: n(h),
                w: n(w),
                oh: n(oh),
                ow: n(ow),
                window,
            })
        }
        Op::MaxPool2d { window } | Op::AvgPool2d { window, .. } => {
            let (&[c, h, w], &[_, oh, ow]) = (d, od) else {
                return Err(bad_shape);
            };
            let p = Pool2d {
                channels: n(c),
                h: n(h),
                w: n(w),
                oh: n(oh),
                ow: n(ow),
                window,
            };
            match e.op {
                Op::AvgPool2d {
                    count_include_pad, ..
                } => Kernel::AvgPool2d(p, count_include_pad),
                _ => Kernel::MaxPool2d(p),
            }
        }
        Op::AdaptiveAvgPool2d { out_h, out_w } => {
            let &[c, h, w] = d else {
                return Err(bad_shape);
            };
            Kernel::AdaptiveAvgPool2d(Adaptive {
                channels: n(c),
                h: n(h),
                w: n(w),
                oh: out_h as usize,
                ow: out_w as usize,
            })
        }
        Op::BatchNorm { features, eps } => Kernel::BatchNorm(BatchNorm {
            channels: n(features),
            spatial: numel / n(features).max(1),
            eps,
        }),
        Op::LayerNorm { size, eps } => Kernel::LayerNorm { cols: n(size), eps },
        Op::Embedding { num, dim } => Kernel::Embedding {
            num: n(num),
            dim: n(dim),
        },
        Op::Lstm {
            input_size,
            hidden_size,
            layers,
            return_sequences,
            cell_shift,
        } => {
            let &[steps, _] = d else {
                return Err(bad_shape);
            };
            let sizes = Lstm {
                steps: n(steps),
                input_size: n(input_size),
                hidden: n(hidden_size),
                layers: layers as usize,
                return_sequences,
            };
            Kernel::Lstm(sizes, u32::from(cell_shift))
        }
        Op::Flatten => Kernel::Flatten,
        Op::Relu => Kernel::Activation(Activation::Relu),
        Op::LeakyRelu { alpha } => Kernel::Activation(Activation::LeakyRelu(alpha)),
        Op::Gelu { tanh: false } => Kernel::Activation(Activation::Gelu),
        Op::Gelu { tanh: true } => Kernel::Activation(Activation::GeluTanh),
        Op::Silu => Kernel::Activation(Activation::Silu),
        Op::Sigmoid => Kernel::Activation(Activation::Sigmoid),
        Op::Tanh => Kernel::Activation(Activation::Tanh),
        Op::Softmax => Kernel::Softmax { cols: last },
        // Op is non_exhaustive: a kind added to the format after this engine.
        _ => {
            return Err(Error::Unsupported {
                op,
                what: "this op kind",
            })
        }
    })
}

/// Borrows one tensor in place as `f32` or `f16`.
fn weights<'m>(op: u16, t: &TensorRef<'m>) -> Result<Weights<'m>, Error> {
    let misaligned = |e: lasagna_format::Error| match e {
        lasagna_format::Error::Misaligned { offset, align } => Error::Misaligned {
            op,
            tensor: t.index,
            offset,
            align,
        },
        other => Error::Format(other),
    };
    match t.dtype {
        DType::F32 => t.as_f32().map(Weights::F32).map_err(misaligned),
        DType::F16 => t.as_f16().map(Weights::F16).map_err(misaligned),
        DType::I8 => {
            let q = t.as_i8().map_err(misaligned)?;
            match t.quant {
                Quant::PerChannel(s) => Ok(Weights::I8(q, WeightScale::Channel(s))),
                Quant::PerTensor {
                    scale,
                    zero_point: 0,
                } => Ok(Weights::I8(q, WeightScale::Tensor(scale))),
                _ => Err(Error::Unsupported {
                    op,
                    what: "an int8 weight with a nonzero zero point (weights are symmetric)",
                }),
            }
        }
        DType::I32 => t.as_i32().map(Weights::I32).map_err(misaligned),
    }
}

/// Checks an op's values and tensors against the model's precision: all
/// `f32` activations (or `i32` ids into an Embedding), or all `i8`. In an
/// int8 model Linear, Conv2d and LSTM take `i8` weights and `i32` biases
/// and Embedding an `i8` table; every other tensor (LayerNorm, unfolded
/// BatchNorm), like every tensor of an f32 model, is `f32` or `f16`. An int8 model holds only the kinds
/// [`int8_refusal`] lets through.
fn check_dtypes(e: &OpEntry, int8: bool, tensors: &[Weights<'_>]) -> Result<(), Error> {
    let unsupported = |what| Error::Unsupported { op: e.index, what };
    let mixed = "a model that mixes f32 and int8 activations (export all f32 or all int8)";
    let act = if int8 { DType::I8 } else { DType::F32 };
    // A kind the int8 path has no kernel for is the root cause whatever
    // its dtypes say, so it is named first.
    if let Some(r) = int8.then(|| int8_refusal(e.op.kind())).flatten() {
        return Err(unsupported(r.what));
    }
    match (e.input.dtype, &e.op) {
        (DType::I32, Op::Embedding { .. }) => {}
        (_, Op::Embedding { .. }) => return Err(unsupported("this input dtype for the op")),
        (d, _) if d == act => {}
        (DType::F32 | DType::I8, _) => return Err(unsupported(mixed)),
        _ => return Err(unsupported("this input dtype for the op")),
    }
    if e.output.dtype != act {
        return Err(unsupported(mixed));
    }
    if !int8 && matches!(e.op, Op::Lstm { cell_shift, .. } if cell_shift != 0) {
        return Err(unsupported(
            "an f32 LSTM with a cell_shift (only int8 models have an i16 cell state)",
        ));
    }
    for (j, w) in tensors.iter().enumerate() {
        let ok = match (int8, &e.op, w) {
            (false, _, Weights::F32(_) | Weights::F16(_)) => true,
            (true, Op::Linear { .. } | Op::Conv2d { .. }, w) => {
                matches!((j, w), (0, Weights::I8(..)) | (1, Weights::I32(_)))
            }
            // weight_ih, weight_hh i8; bias_ih, bias_hh i32 (section 6.3).
            (true, Op::Lstm { .. }, w) => matches!(
                (j % 4, w),
                (0 | 1, Weights::I8(..)) | (2 | 3, Weights::I32(_))
            ),
            (true, Op::Embedding { .. }, w) => matches!(w, Weights::I8(..)),
            (true, _, Weights::F32(_) | Weights::F16(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(unsupported(if int8 {
                "int8 tensors other than i8 weights and an i32 bias (Linear, Conv2d, LSTM) or an i8 table (Embedding)"
            } else {
                "an i8 or i32 tensor in an f32 model (export all int8 with --quantize int8)"
            }));
        }
    }
    Ok(())
}

/// Prepares one op: kernel, dtypes, tensors (pushed to `table`), scratch.
pub(crate) fn prepare<'m, const T: usize>(
    model: &Model<'m>,
    e: &OpEntry,
    int8: bool,
    table: &mut heapless::Vec<Weights<'m>, T>,
) -> Result<Step, Error> {
    let op = e.index;
    let kernel = kernel(e)?;
    let first = table.len();
    for j in 0..e.n_tensors {
        let t = model.op_tensor(e, j).ok_or(Error::Inconsistent {
            op,
            what: "tensor missing from the table",
        })?;
        let w = weights(op, &t)?;
        table.push(w).map_err(|_| Error::TooManyTensors {
            tensors: model.tensor_count() as usize,
            max: T,
        })?;
    }
    check_dtypes(e, int8, table.get(first..).unwrap_or_default())?;
    let needed = if int8 {
        scratch_min_bytes_int8(&e.op, &e.input.shape)
    } else {
        scratch_bytes(&e.op, &e.input.shape)
    };
    let (offset, planned) = (e.scratch.0 as usize, e.scratch.1 as usize);
    if needed > planned {
        return Err(Error::ScratchTooSmall {
            op,
            needed,
            planned,
        });
    }
    // The kernel gets all the scratch the file planned (at least what it
    // needs): a file planned with more runs the faster kernels.
    let scratch = if needed == 0 {
        Span::default()
    } else {
        Span {
            start: offset,
            len: planned,
        }
    };
    Ok(Step {
        index: op,
        kernel,
        x: value_span(&e.input),
        y: value_span(&e.output),
        scratch,
        q: (qparams(&e.input), qparams(&e.output)),
        first,
        count: e.n_tensors as usize,
    })
}

/// Splits `buf` into `N` mutable pieces at `spans`, which must not overlap
/// (empty spans may sit anywhere and come back empty). `None` if two
/// overlap or one ends past `buf`: the plan is checked in prepare, so this
/// is the safe-code way to hand out disjoint borrows, not a validation.
pub(crate) fn carve<'b, T, const N: usize>(
    buf: &'b mut [T],
    spans: [Span; N],
) -> Option<[&'b mut [T]; N]> {
    let mut out: [&'b mut [T]; N] = core::array::from_fn(|_| <&mut [T]>::default());
    let mut taken = [false; N];
    let mut rest: &'b mut [T] = buf;
    let mut consumed = 0usize;
    // Lowest start first. N is 2 or 3: selecting the minimum each round is
    // smaller code than a sort (and has no panic path).
    for _ in 0..N {
        let next = spans
            .iter()
            .enumerate()
            .filter(|&(i, _)| !taken.get(i).copied().unwrap_or(true))
            .min_by_key(|&(_, s)| s.start);
        let Some((i, &s)) = next else { break };
        if let Some(t) = taken.get_mut(i) {
            *t = true;
        }
        if s.len == 0 {
            continue;
        }
        let gap = s.start.checked_sub(consumed)?;
        let (_, tail) = core::mem::take(&mut rest).split_at_mut_checked(gap)?;
        let (piece, tail) = tail.split_at_mut_checked(s.len)?;
        *out.get_mut(i)? = piece;
        rest = tail;
        consumed = s.start + s.len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, len: usize) -> Span {
        Span { start, len }
    }

    #[test]
    fn carve_returns_disjoint_pieces_in_the_callers_order() {
        let mut buf = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let [a, b, c] = carve(&mut buf, [span(5, 2), span(0, 2), span(2, 3)]).unwrap_or_default();
        assert_eq!(
            (&*a, &*b, &*c),
            (&[5.0, 6.0][..], &[0.0, 1.0][..], &[2.0, 3.0, 4.0][..])
        );
        let [e, f] = carve(&mut buf, [span(0, 0), span(0, 8)]).unwrap_or_default();
        assert_eq!((e.len(), f.len()), (0, 8));
    }

    #[test]
    fn carve_refuses_overlaps_and_spans_past_the_end() {
        let mut buf = [0.0f32; 8];
        assert!(carve(&mut buf, [span(0, 4), span(3, 2)]).is_none());
        assert!(carve(&mut buf, [span(6, 3)]).is_none());
        assert!(carve(&mut buf, [span(2, 2), span(2, 2)]).is_none());
        assert!(carve(&mut buf, [span(usize::MAX, 2)]).is_none());
    }

    #[test]
    fn only_lstm_needs_scratch_and_its_size_is_h_c_per_layer_plus_gates() {
        let lstm = Op::Lstm {
            input_size: 3,
            hidden_size: 5,
            layers: 2,
            return_sequences: true,
            cell_shift: 0,
        };
        assert_eq!(
            scratch_bytes(&lstm, &Shape::d2(7, 3)),
            4 * (2 * 2 * 5 + 4 * 5)
        );
        assert_eq!(scratch_bytes(&Op::Relu, &Shape::d1(3)), 0);
        let huge = Op::Lstm {
            input_size: 1,
            hidden_size: 0x3FFF_FFFF,
            layers: 63,
            return_sequences: false,
            cell_shift: 0,
        };
        assert!(scratch_bytes(&huge, &Shape::d2(1, 1)) > u32::MAX as usize);
    }
}
