//! Op kinds, their parameters, and the rules that tie them to shapes and tensors.
//!
//! Each op record carries a kind code, a flag byte and 16 parameter bytes whose
//! layout depends on the kind (see `docs/FORMAT.md`, "Op parameters").

use crate::weight_layout::WeightLayout;
use byteorder::{ByteOrder, LittleEndian as LE};
use core::fmt;

/// Flag bit: the op has a bias tensor (Linear, Conv2d).
pub const FLAG_BIAS: u8 = 1 << 0;
/// Flag bit: AvgPool2d counts zero padding in the divisor (PyTorch's default).
pub const FLAG_COUNT_INCLUDE_PAD: u8 = 1 << 1;
/// Flag bit: LSTM outputs every time step instead of the last hidden state.
pub const FLAG_RETURN_SEQUENCES: u8 = 1 << 2;
/// Flag bit: GELU uses the tanh approximation instead of the exact erf form.
pub const FLAG_GELU_TANH: u8 = 1 << 3;
/// Flag bit: a Linear's i8 weight is stored in blocks of four interleaved
/// rows ([`WeightLayout::Interleaved4`], `docs/FORMAT.md` section 6.2).
pub const FLAG_WEIGHTS_INTERLEAVED: u8 = 1 << 4;

macro_rules! op_kinds {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $text:literal;)*) => {
        /// The kind of an op, with its on-disk code. Codes are never reused.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum OpKind { $($(#[$doc])* $name = $code,)* }

        impl OpKind {
            /// The kind for an on-disk code, if this reader knows it.
            pub fn from_code(code: u8) -> Option<OpKind> {
                match code { $($code => Some(OpKind::$name),)* _ => None }
            }
            /// The op's name as PyTorch spells the layer.
            pub fn name(self) -> &'static str {
                match self { $(OpKind::$name => $text,)* }
            }
        }
    };
}

op_kinds! {
    /// `y = x W^T + b` over the last dimension.
    Linear = 1, "Linear";
    /// 2-D convolution over `[C, H, W]`.
    Conv2d = 2, "Conv2d";
    /// 2-D max pooling.
    MaxPool2d = 3, "MaxPool2d";
    /// 2-D average pooling.
    AvgPool2d = 4, "AvgPool2d";
    /// Adaptive average pooling to a fixed output size ((1,1) is global pooling).
    AdaptiveAvgPool2d = 5, "AdaptiveAvgPool2d";
    /// Batch normalization in eval form (1d on `[C]`/`[C, L]`, 2d on `[C, H, W]`).
    BatchNorm = 6, "BatchNorm";
    /// Layer normalization over the last dimension.
    LayerNorm = 7, "LayerNorm";
    /// Lookup of `i32` indices in a `[num, dim]` table.
    Embedding = 8, "Embedding";
    /// Long short-term memory over `[T, I]`, PyTorch's gate order (i, f, g, o).
    Lstm = 9, "LSTM";
    /// Flattens to rank 1.
    Flatten = 10, "Flatten";
    /// `max(x, 0)`.
    Relu = 11, "ReLU";
    /// `x` if positive, else `alpha * x`.
    LeakyRelu = 12, "LeakyReLU";
    /// Gaussian error linear unit (erf form, or tanh approximation by flag).
    Gelu = 13, "GELU";
    /// `x * sigmoid(x)`.
    Silu = 14, "SiLU";
    /// `1 / (1 + e^-x)`.
    Sigmoid = 15, "Sigmoid";
    /// Hyperbolic tangent.
    Tanh = 16, "Tanh";
    /// Softmax over the last dimension.
    Softmax = 17, "Softmax";
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parameters of a 2-D window (pooling and convolution).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Window {
    /// Kernel height and width.
    pub kernel: [u8; 2],
    /// Stride in height and width.
    pub stride: [u8; 2],
    /// Zero padding on each side, in height and width.
    pub padding: [u8; 2],
    /// Dilation in height and width (1 for pooling).
    pub dilation: [u8; 2],
}

impl Window {
    /// Output size along one axis: `floor((n + 2p - d(k-1) - 1) / s) + 1`,
    /// PyTorch's formula for Conv2d and pooling with `ceil_mode=False`.
    /// `None` when the window does not fit.
    pub fn out_len(&self, axis: usize, n: u32) -> Option<u32> {
        let (k, s, p, d) = (
            self.kernel[axis] as u64,
            self.stride[axis] as u64,
            self.padding[axis] as u64,
            self.dilation[axis] as u64,
        );
        let span = d.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
        let padded = (n as u64).checked_add(2 * p)?;
        let room = padded.checked_sub(span)?;
        u32::try_from(room / s.max(1) + 1).ok()
    }
}

/// An op with its parameters: what one record of the op table says.
#[derive(Clone, Copy, PartialEq, Debug)]
#[non_exhaustive]
pub enum Op {
    /// Fully connected layer.
    Linear {
        /// Input features (last input dimension).
        in_features: u32,
        /// Output features.
        out_features: u32,
        /// Whether a bias tensor follows the weight.
        bias: bool,
        /// The order of the weight's elements in its data block.
        layout: WeightLayout,
    },
    /// 2-D convolution.
    Conv2d {
        /// Input channels.
        in_channels: u16,
        /// Output channels.
        out_channels: u16,
        /// Groups (`in_channels` for depthwise).
        groups: u16,
        /// Kernel, stride, padding, dilation.
        window: Window,
        /// Whether a bias tensor follows the weight.
        bias: bool,
    },
    /// 2-D max pooling (dilation 1).
    MaxPool2d {
        /// Kernel, stride, padding.
        window: Window,
    },
    /// 2-D average pooling (dilation 1).
    AvgPool2d {
        /// Kernel, stride, padding.
        window: Window,
        /// Whether padded zeros count in the divisor.
        count_include_pad: bool,
    },
    /// Adaptive average pooling.
    AdaptiveAvgPool2d {
        /// Output height.
        out_h: u16,
        /// Output width.
        out_w: u16,
    },
    /// Batch normalization with running statistics.
    BatchNorm {
        /// Channels (dimension 0 of the input).
        features: u32,
        /// Added to the variance before the square root.
        eps: f32,
    },
    /// Layer normalization over the last dimension, with affine parameters.
    LayerNorm {
        /// Size of the last dimension.
        size: u32,
        /// Added to the variance before the square root.
        eps: f32,
    },
    /// Embedding table lookup.
    Embedding {
        /// Number of rows (valid indices are `0..num`).
        num: u32,
        /// Row width.
        dim: u32,
    },
    /// Stacked LSTM.
    Lstm {
        /// Input features per time step.
        input_size: u32,
        /// Hidden units per layer.
        hidden_size: u32,
        /// Number of stacked layers (1 to 63: an op holds at most 255 tensors, 4 per layer).
        layers: u8,
        /// Output `[T, H]` (true) or the last hidden state `[H]` (false).
        return_sequences: bool,
        /// int8 models only (0 in an f32 model): the `i16` cell state's
        /// scale is `2^-cell_shift` (0 to 15; FORMAT.md section 6.3).
        cell_shift: u8,
    },
    /// Flatten to rank 1.
    Flatten,
    /// ReLU.
    Relu,
    /// Leaky ReLU.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// GELU.
    Gelu {
        /// Tanh approximation instead of erf.
        tanh: bool,
    },
    /// SiLU.
    Silu,
    /// Sigmoid.
    Sigmoid,
    /// Tanh.
    Tanh,
    /// Softmax over the last dimension.
    Softmax,
}

/// What a tensor of an op holds; it decides which dtypes are allowed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TensorRole {
    /// Weights and other multiplicative parameters: f32, f16 or i8.
    Weight,
    /// Additive terms and statistics: f32, f16 or i32 (int8 biases).
    Bias,
}

fn window_from(p: &[u8; 16], at: usize, dilation: bool) -> Window {
    Window {
        kernel: [p[at], p[at + 1]],
        stride: [p[at + 2], p[at + 3]],
        padding: [p[at + 4], p[at + 5]],
        dilation: if dilation {
            [p[at + 6], p[at + 7]]
        } else {
            [1, 1]
        },
    }
}

fn window_into(w: &Window, p: &mut [u8; 16], at: usize, dilation: bool) {
    p[at..at + 2].copy_from_slice(&w.kernel);
    p[at + 2..at + 4].copy_from_slice(&w.stride);
    p[at + 4..at + 6].copy_from_slice(&w.padding);
    if dilation {
        p[at + 6..at + 8].copy_from_slice(&w.dilation);
    }
}

impl Op {
    /// The op's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Linear { .. } => OpKind::Linear,
            Op::Conv2d { .. } => OpKind::Conv2d,
            Op::MaxPool2d { .. } => OpKind::MaxPool2d,
            Op::AvgPool2d { .. } => OpKind::AvgPool2d,
            Op::AdaptiveAvgPool2d { .. } => OpKind::AdaptiveAvgPool2d,
            Op::BatchNorm { .. } => OpKind::BatchNorm,
            Op::LayerNorm { .. } => OpKind::LayerNorm,
            Op::Embedding { .. } => OpKind::Embedding,
            Op::Lstm { .. } => OpKind::Lstm,
            Op::Flatten => OpKind::Flatten,
            Op::Relu => OpKind::Relu,
            Op::LeakyRelu { .. } => OpKind::LeakyRelu,
            Op::Gelu { .. } => OpKind::Gelu,
            Op::Silu => OpKind::Silu,
            Op::Sigmoid => OpKind::Sigmoid,
            Op::Tanh => OpKind::Tanh,
            Op::Softmax => OpKind::Softmax,
        }
    }

    /// How the op's weight (tensor 0) is ordered in its data block:
    /// row-major for every op but a Linear with `FLAG_WEIGHTS_INTERLEAVED`.
    pub fn weight_layout(&self) -> WeightLayout {
        match *self {
            Op::Linear { layout, .. } => layout,
            _ => WeightLayout::RowMajor,
        }
    }

    /// The op with its weight stored in `layout`: a Linear takes it, every
    /// other op (whose weights are always row-major) is returned unchanged.
    pub fn with_weight_layout(self, layout: WeightLayout) -> Op {
        match self {
            Op::Linear {
                in_features,
                out_features,
                bias,
                ..
            } => Op::Linear {
                in_features,
                out_features,
                bias,
                layout,
            },
            op => op,
        }
    }

    /// Decodes a record's kind, flags and parameter bytes. Unknown flag bits and
    /// non-zero unused bytes are caught by the caller, which re-encodes and
    /// compares (the encoding is canonical).
    pub fn decode(kind: OpKind, flags: u8, p: &[u8; 16]) -> Op {
        let u32at = |o: usize| LE::read_u32(&p[o..o + 4]);
        let u16at = |o: usize| LE::read_u16(&p[o..o + 2]);
        let f32at = |o: usize| LE::read_f32(&p[o..o + 4]);
        match kind {
            OpKind::Linear => Op::Linear {
                in_features: u32at(0),
                out_features: u32at(4),
                bias: flags & FLAG_BIAS != 0,
                layout: if flags & FLAG_WEIGHTS_INTERLEAVED != 0 {
                    WeightLayout::Interleaved4
                } else {
                    WeightLayout::RowMajor
                },
            },
            OpKind::Conv2d => Op::Conv2d {
                in_channels: u16at(0),
                out_channels: u16at(2),
                groups: u16at(4),
                window: window_from(p, 6, true),
                bias: flags & FLAG_BIAS != 0,
            },
            OpKind::MaxPool2d => Op::MaxPool2d {
                window: window_from(p, 0, false),
            },
            OpKind::AvgPool2d => Op::AvgPool2d {
                window: window_from(p, 0, false),
                count_include_pad: flags & FLAG_COUNT_INCLUDE_PAD != 0,
            },
            OpKind::AdaptiveAvgPool2d => Op::AdaptiveAvgPool2d {
                out_h: u16at(0),
                out_w: u16at(2),
            },
            OpKind::BatchNorm => Op::BatchNorm {
                features: u32at(0),
                eps: f32at(4),
            },
            OpKind::LayerNorm => Op::LayerNorm {
                size: u32at(0),
                eps: f32at(4),
            },
            OpKind::Embedding => Op::Embedding {
                num: u32at(0),
                dim: u32at(4),
            },
            OpKind::Lstm => Op::Lstm {
                input_size: u32at(0),
                hidden_size: u32at(4),
                layers: p[8],
                return_sequences: flags & FLAG_RETURN_SEQUENCES != 0,
                cell_shift: p[9],
            },
            OpKind::Flatten => Op::Flatten,
            OpKind::Relu => Op::Relu,
            OpKind::LeakyRelu => Op::LeakyRelu { alpha: f32at(0) },
            OpKind::Gelu => Op::Gelu {
                tanh: flags & FLAG_GELU_TANH != 0,
            },
            OpKind::Silu => Op::Silu,
            OpKind::Sigmoid => Op::Sigmoid,
            OpKind::Tanh => Op::Tanh,
            OpKind::Softmax => Op::Softmax,
        }
    }

    /// Encodes to `(kind code, flags, parameter bytes)`.
    pub fn encode(&self) -> (u8, u8, [u8; 16]) {
        let mut p = [0u8; 16];
        let mut flags = 0u8;
        match *self {
            Op::Linear {
                in_features,
                out_features,
                bias,
                layout,
            } => {
                LE::write_u32(&mut p[0..4], in_features);
                LE::write_u32(&mut p[4..8], out_features);
                if bias {
                    flags |= FLAG_BIAS;
                }
                if layout == WeightLayout::Interleaved4 {
                    flags |= FLAG_WEIGHTS_INTERLEAVED;
                }
            }
            Op::Conv2d {
                in_channels,
                out_channels,
                groups,
                window,
                bias,
            } => {
                LE::write_u16(&mut p[0..2], in_channels);
                LE::write_u16(&mut p[2..4], out_channels);
                LE::write_u16(&mut p[4..6], groups);
                window_into(&window, &mut p, 6, true);
                if bias {
                    flags |= FLAG_BIAS;
                }
            }
            Op::MaxPool2d { window } => window_into(&window, &mut p, 0, false),
            Op::AvgPool2d {
                window,
                count_include_pad,
            } => {
                window_into(&window, &mut p, 0, false);
                if count_include_pad {
                    flags |= FLAG_COUNT_INCLUDE_PAD;
                }
            }
            Op::AdaptiveAvgPool2d { out_h, out_w } => {
                LE::write_u16(&mut p[0..2], out_h);
                LE::write_u16(&mut p[2..4], out_w);
            }
            Op::BatchNorm { features, eps }
            | Op::LayerNorm {
                size: features,
                eps,
            } => {
                LE::write_u32(&mut p[0..4], features);
                LE::write_f32(&mut p[4..8], eps);
            }
            Op::Embedding { num, dim } => {
                LE::write_u32(&mut p[0..4], num);
                LE::write_u32(&mut p[4..8], dim);
            }
            Op::Lstm {
                input_size,
                hidden_size,
                layers,
                return_sequences,
                cell_shift,
            } => {
                LE::write_u32(&mut p[0..4], input_size);
                LE::write_u32(&mut p[4..8], hidden_size);
                p[8] = layers;
                p[9] = cell_shift;
                if return_sequences {
                    flags |= FLAG_RETURN_SEQUENCES;
                }
            }
            Op::LeakyRelu { alpha } => LE::write_f32(&mut p[0..4], alpha),
            Op::Gelu { tanh } => {
                if tanh {
                    flags |= FLAG_GELU_TANH;
                }
            }
            Op::Flatten | Op::Relu | Op::Silu | Op::Sigmoid | Op::Tanh | Op::Softmax => {}
        }
        (self.kind() as u8, flags, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lstm_cell_shift_is_parameter_byte_9_and_at_most_15() {
        let op = |cell_shift| Op::Lstm {
            input_size: 3,
            hidden_size: 4,
            layers: 1,
            return_sequences: true,
            cell_shift,
        };
        let (_, _, p) = op(12).encode();
        assert_eq!((p[8], p[9], p[10]), (1, 12, 0));
        assert_eq!(op(15).check_params(), Ok(()));
        assert_eq!(op(16).check_params(), Err("cell_shift"));
    }

    #[test]
    fn conv_output_formula_matches_pytorch_examples() {
        // torch.nn.Conv2d(1, 8, 3, padding=1) on 28x28 -> 28x28.
        let w = Window {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        assert_eq!(w.out_len(0, 28), Some(28));
        // kernel 3, stride 2, pad 0, dilation 2 on 9 -> floor((9 - 5) / 2) + 1 = 3.
        let w2 = Window {
            kernel: [3, 3],
            stride: [2, 2],
            padding: [0, 0],
            dilation: [2, 2],
        };
        assert_eq!(w2.out_len(0, 9), Some(3));
        assert_eq!(w2.out_len(0, 4), None);
    }

    #[test]
    fn encode_decode_round_trip_for_every_kind() {
        let w = Window {
            kernel: [3, 2],
            stride: [1, 2],
            padding: [1, 0],
            dilation: [1, 1],
        };
        let ops = [
            Op::Linear {
                in_features: 784,
                out_features: 10,
                bias: true,
                layout: WeightLayout::RowMajor,
            },
            Op::Linear {
                in_features: 7,
                out_features: 5,
                bias: false,
                layout: WeightLayout::Interleaved4,
            },
            Op::Conv2d {
                in_channels: 4,
                out_channels: 8,
                groups: 2,
                window: w,
                bias: false,
            },
            Op::MaxPool2d { window: w },
            Op::AvgPool2d {
                window: w,
                count_include_pad: true,
            },
            Op::AdaptiveAvgPool2d { out_h: 1, out_w: 1 },
            Op::BatchNorm {
                features: 8,
                eps: 1e-5,
            },
            Op::LayerNorm { size: 8, eps: 1e-5 },
            Op::Embedding { num: 100, dim: 16 },
            Op::Lstm {
                input_size: 28,
                hidden_size: 128,
                layers: 2,
                return_sequences: false,
                cell_shift: 11,
            },
            Op::Flatten,
            Op::Relu,
            Op::LeakyRelu { alpha: 0.01 },
            Op::Gelu { tanh: true },
            Op::Silu,
            Op::Sigmoid,
            Op::Tanh,
            Op::Softmax,
        ];
        for op in ops {
            let (code, flags, p) = op.encode();
            let kind = OpKind::from_code(code);
            assert_eq!(kind, Some(op.kind()));
            if let Some(kind) = kind {
                assert_eq!(Op::decode(kind, flags, &p), op);
            }
        }
    }
}
