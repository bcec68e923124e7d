//! The rules that tie an op to shapes and tensors: parameter ranges, shape
//! inference (PyTorch's conventions) and the tensors each op carries.

use crate::op::{Op, TensorRole, Window};
use crate::shape::Shape;

impl Op {
    /// Checks the parameters on their own; the error names the bad parameter.
    pub fn check_params(&self) -> Result<(), &'static str> {
        let window_ok = |w: &Window| -> Result<(), &'static str> {
            if w.kernel.contains(&0) {
                return Err("kernel");
            }
            if w.stride.contains(&0) {
                return Err("stride");
            }
            if w.dilation.contains(&0) {
                return Err("dilation");
            }
            Ok(())
        };
        match *self {
            Op::Linear {
                in_features,
                out_features,
                ..
            } => {
                nonzero(in_features, "in_features")?;
                nonzero(out_features, "out_features")
            }
            Op::Conv2d {
                in_channels,
                out_channels,
                groups,
                window,
                ..
            } => {
                nonzero(in_channels as u32, "in_channels")?;
                nonzero(out_channels as u32, "out_channels")?;
                nonzero(groups as u32, "groups")?;
                if in_channels % groups != 0 || out_channels % groups != 0 {
                    return Err("groups");
                }
                window_ok(&window)
            }
            Op::MaxPool2d { window } | Op::AvgPool2d { window, .. } => {
                window_ok(&window)?;
                if window.dilation != [1, 1] {
                    return Err("dilation");
                }
                // PyTorch: "pad should be at most half of effective kernel size".
                if window.padding[0] > window.kernel[0] / 2
                    || window.padding[1] > window.kernel[1] / 2
                {
                    return Err("padding");
                }
                Ok(())
            }
            Op::AdaptiveAvgPool2d { out_h, out_w } => {
                nonzero(out_h as u32, "out_h")?;
                nonzero(out_w as u32, "out_w")
            }
            Op::BatchNorm { features, eps }
            | Op::LayerNorm {
                size: features,
                eps,
            } => {
                let name = if matches!(self, Op::BatchNorm { .. }) {
                    "features"
                } else {
                    "size"
                };
                nonzero(features, name)?;
                if !(eps.is_finite() && eps > 0.0) {
                    return Err("eps");
                }
                Ok(())
            }
            Op::Embedding { num, dim } => {
                nonzero(num, "num")?;
                nonzero(dim, "dim")
            }
            Op::Lstm {
                input_size,
                hidden_size,
                layers,
                cell_shift,
                ..
            } => {
                nonzero(input_size, "input_size")?;
                nonzero(hidden_size, "hidden_size")?;
                // The cell state is an i16 with scale 2^-cell_shift.
                if cell_shift > 15 {
                    return Err("cell_shift");
                }
                // 4 * hidden rows must fit a u32 dimension.
                if hidden_size > u32::MAX / 4 {
                    return Err("hidden_size");
                }
                if layers == 0 || layers > 63 {
                    return Err("layers");
                }
                Ok(())
            }
            Op::LeakyRelu { alpha } => {
                if alpha.is_finite() {
                    Ok(())
                } else {
                    Err("alpha")
                }
            }
            Op::Flatten | Op::Relu | Op::Gelu { .. } | Op::Silu | Op::Sigmoid | Op::Tanh => Ok(()),
            Op::Softmax => Ok(()),
        }
    }

    /// True for ops that may write their output over their input in the arena.
    pub fn in_place_ok(&self) -> bool {
        matches!(
            self,
            Op::Flatten
                | Op::Relu
                | Op::LeakyRelu { .. }
                | Op::Gelu { .. }
                | Op::Silu
                | Op::Sigmoid
                | Op::Tanh
                | Op::Softmax
                | Op::BatchNorm { .. }
                | Op::LayerNorm { .. }
        )
    }

    /// Output shape for an input shape, or the reason they do not fit.
    pub fn infer_shape(&self, x: Shape) -> Result<Shape, &'static str> {
        let d = x.dims();
        match *self {
            Op::Linear {
                in_features,
                out_features,
                ..
            } => {
                if x.last() != in_features {
                    return Err("last input dimension must equal in_features");
                }
                Ok(x.with_last(out_features))
            }
            Op::Conv2d {
                in_channels,
                out_channels,
                window,
                ..
            } => {
                let [c, h, w] = chw(d)?;
                if c != in_channels as u32 {
                    return Err("input channels must equal in_channels");
                }
                let (oh, ow) = window_out(&window, h, w)?;
                Ok(Shape::d3(out_channels as u32, oh, ow))
            }
            Op::MaxPool2d { window } | Op::AvgPool2d { window, .. } => {
                let [c, h, w] = chw(d)?;
                let (oh, ow) = window_out(&window, h, w)?;
                Ok(Shape::d3(c, oh, ow))
            }
            Op::AdaptiveAvgPool2d { out_h, out_w } => {
                let [c, _, _] = chw(d)?;
                Ok(Shape::d3(c, out_h as u32, out_w as u32))
            }
            Op::BatchNorm { features, .. } => {
                if x.rank() > 3 || d[0] != features {
                    return Err("BatchNorm takes [C], [C, L] or [C, H, W] with C = features");
                }
                Ok(x)
            }
            Op::LayerNorm { size, .. } => {
                if x.last() != size {
                    return Err("last input dimension must equal the normalized size");
                }
                Ok(x)
            }
            Op::Embedding { dim, .. } => {
                if x.rank() != 1 {
                    return Err("Embedding takes a rank-1 sequence of indices");
                }
                Ok(Shape::d2(d[0], dim))
            }
            Op::Lstm {
                input_size,
                hidden_size,
                return_sequences,
                ..
            } => {
                if x.rank() != 2 || d[1] != input_size {
                    return Err("LSTM takes [T, input_size]");
                }
                Ok(if return_sequences {
                    Shape::d2(d[0], hidden_size)
                } else {
                    Shape::d1(hidden_size)
                })
            }
            Op::Flatten => {
                let n = u32::try_from(x.numel()).map_err(|_| "flattened size exceeds u32")?;
                Ok(Shape::d1(n))
            }
            _ => Ok(x),
        }
    }

    /// Number of tensors the op carries, in the order of [`Op::tensor_spec`].
    pub fn tensor_count(&self) -> usize {
        match *self {
            Op::Linear { bias, .. } | Op::Conv2d { bias, .. } => 1 + bias as usize,
            Op::BatchNorm { .. } => 4,
            Op::LayerNorm { .. } => 2,
            Op::Embedding { .. } => 1,
            Op::Lstm { layers, .. } => 4 * layers as usize,
            _ => 0,
        }
    }

    /// Name, role and shape of tensor `j` (PyTorch's parameter names and layouts).
    pub fn tensor_spec(&self, j: usize) -> Option<(&'static str, TensorRole, Shape)> {
        use TensorRole::{Bias, Weight};
        if j >= self.tensor_count() {
            return None;
        }
        Some(match *self {
            Op::Linear {
                in_features,
                out_features,
                ..
            } => match j {
                0 => ("weight", Weight, Shape::d2(out_features, in_features)),
                _ => ("bias", Bias, Shape::d1(out_features)),
            },
            Op::Conv2d {
                in_channels,
                out_channels,
                groups,
                window,
                ..
            } => match j {
                0 => (
                    "weight",
                    Weight,
                    Shape::d4(
                        out_channels as u32,
                        (in_channels / groups.max(1)) as u32,
                        window.kernel[0] as u32,
                        window.kernel[1] as u32,
                    ),
                ),
                _ => ("bias", Bias, Shape::d1(out_channels as u32)),
            },
            Op::BatchNorm { features: c, .. } => match j {
                0 => ("weight", Weight, Shape::d1(c)),
                1 => ("bias", Bias, Shape::d1(c)),
                2 => ("running_mean", Bias, Shape::d1(c)),
                _ => ("running_var", Bias, Shape::d1(c)),
            },
            Op::LayerNorm { size, .. } => match j {
                0 => ("weight", Weight, Shape::d1(size)),
                _ => ("bias", Bias, Shape::d1(size)),
            },
            Op::Embedding { num, dim } => ("weight", Weight, Shape::d2(num, dim)),
            Op::Lstm {
                input_size,
                hidden_size: h,
                ..
            } => {
                let layer_in = if j < 4 { input_size } else { h };
                match j % 4 {
                    0 => ("weight_ih", Weight, Shape::d2(4 * h, layer_in)),
                    1 => ("weight_hh", Weight, Shape::d2(4 * h, h)),
                    2 => ("bias_ih", Bias, Shape::d1(4 * h)),
                    _ => ("bias_hh", Bias, Shape::d1(4 * h)),
                }
            }
            _ => return None,
        })
    }
}

fn nonzero(v: u32, name: &'static str) -> Result<(), &'static str> {
    if v == 0 {
        Err(name)
    } else {
        Ok(())
    }
}

fn chw(d: &[u32]) -> Result<[u32; 3], &'static str> {
    match d {
        [c, h, w] => Ok([*c, *h, *w]),
        _ => Err("2-D ops take [C, H, W]"),
    }
}

fn window_out(w: &Window, h: u32, wd: u32) -> Result<(u32, u32), &'static str> {
    match (w.out_len(0, h), w.out_len(1, wd)) {
        (Some(oh), Some(ow)) => Ok((oh, ow)),
        _ => Err("kernel (with dilation) is larger than the padded input"),
    }
}
