//! BatchNorm folding for deployment: a BatchNorm in eval mode right after a
//! Linear or Conv2d is an affine map per output channel, so it folds into
//! that layer's weights and bias and disappears from the deployed model:
//!
//! `s = gamma / sqrt(running_var + eps)`, `W' = W * s` (per output row),
//! `b' = (b - running_mean) * s + beta`.

use crate::layers::ExportOp;
use lasagna_format::{Op, Shape};

/// Folds every BatchNorm that directly follows a Linear or Conv2d over the
/// same channels. `input` is the model's per-sample input shape (it decides
/// which axis a BatchNorm normalizes). Other ops pass through unchanged.
pub fn fold_batchnorm(ops: Vec<ExportOp>, input: Shape) -> Vec<ExportOp> {
    let mut out: Vec<ExportOp> = Vec::with_capacity(ops.len());
    let mut shape = input;
    // Shape entering the last op pushed to `out`.
    let mut last_in = input;
    for (op, tensors) in ops {
        let in_shape = shape;
        shape = op.infer_shape(shape).unwrap_or(shape);
        if let Op::BatchNorm { features, eps } = op {
            if let Some((prev, prev_t)) = out.last_mut() {
                let channels = foldable_channels(prev, last_in);
                // BatchNorm normalizes axis 0 of its input; it must be the
                // previous layer's output-channel axis.
                if channels == Some(features as usize) && in_shape.dims().first() == Some(&features)
                {
                    fold_into(prev, prev_t, &tensors, eps);
                    continue;
                }
            }
        }
        last_in = in_shape;
        out.push((op, tensors));
    }
    out
}

/// Output channels of a layer whose output's axis 0 is its channel axis.
fn foldable_channels(op: &Op, input: Shape) -> Option<usize> {
    match *op {
        // Linear maps the last axis; it is axis 0 only for rank-1 inputs.
        Op::Linear { out_features, .. } if input.rank() == 1 => Some(out_features as usize),
        Op::Conv2d { out_channels, .. } => Some(out_channels as usize),
        _ => None,
    }
}

fn fold_into(prev: &mut Op, prev_t: &mut Vec<Vec<f32>>, bn: &[Vec<f32>], eps: f32) {
    let [gamma, beta, mean, var] = [&bn[0], &bn[1], &bn[2], &bn[3]];
    let c = gamma.len();
    let scale: Vec<f32> = (0..c).map(|k| gamma[k] / (var[k] + eps).sqrt()).collect();
    let bias_present = match prev {
        Op::Linear { bias, .. } | Op::Conv2d { bias, .. } => {
            let had = *bias;
            *bias = true;
            had
        }
        _ => return,
    };
    let per_channel = prev_t[0].len() / c.max(1);
    for (k, row) in prev_t[0].chunks_mut(per_channel.max(1)).enumerate() {
        row.iter_mut().for_each(|w| *w *= scale[k]);
    }
    let old_bias = if bias_present {
        prev_t[1].clone()
    } else {
        vec![0.0; c]
    };
    let new_bias: Vec<f32> = (0..c)
        .map(|k| (old_bias[k] - mean[k]) * scale[k] + beta[k])
        .collect();
    if bias_present {
        prev_t[1] = new_bias;
    } else {
        prev_t.push(new_bias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lasagna_format::Window;

    #[test]
    fn conv_then_batchnorm_folds_into_one_conv_with_the_same_output() {
        // 1 input channel, 2 output channels, 1x1 kernel: y_k = w_k x (+ BN).
        let conv = Op::Conv2d {
            in_channels: 1,
            out_channels: 2,
            groups: 1,
            window: Window {
                kernel: [1, 1],
                stride: [1, 1],
                padding: [0, 0],
                dilation: [1, 1],
            },
            bias: false,
        };
        let bn = Op::BatchNorm {
            features: 2,
            eps: 1e-5,
        };
        let ops = vec![
            (conv, vec![vec![2.0, -1.0]]),
            (
                bn,
                vec![
                    vec![1.5, 0.5],
                    vec![0.1, -0.2],
                    vec![0.3, 0.4],
                    vec![4.0, 0.25],
                ],
            ),
        ];
        let folded = fold_batchnorm(ops, Shape::d3(1, 3, 3));
        assert_eq!(folded.len(), 1);
        let (op, t) = &folded[0];
        assert!(matches!(op, Op::Conv2d { bias: true, .. }));
        for x in [-1.0f32, 0.0, 2.5] {
            for k in 0..2 {
                let w = [2.0f32, -1.0][k];
                let (g, b, m, v) = (
                    [1.5f32, 0.5][k],
                    [0.1f32, -0.2][k],
                    [0.3f32, 0.4][k],
                    [4.0f32, 0.25][k],
                );
                let want = (w * x - m) / (v + 1e-5).sqrt() * g + b;
                let got = t[0][k] * x + t[1][k];
                assert!(
                    (want - got).abs() < 1e-5,
                    "channel {k}, x {x}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn batchnorm_over_another_axis_is_left_alone() {
        // Linear on [4, 3] maps the last axis; a BatchNorm1d over axis 0 (4) is not foldable.
        let lin = Op::Linear {
            in_features: 3,
            out_features: 4,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        };
        let bn = Op::BatchNorm {
            features: 4,
            eps: 1e-5,
        };
        let ops = vec![
            (lin, vec![vec![0.0; 12], vec![0.0; 4]]),
            (
                bn,
                vec![vec![1.0; 4], vec![0.0; 4], vec![0.0; 4], vec![1.0; 4]],
            ),
        ];
        assert_eq!(fold_batchnorm(ops, Shape::d2(4, 3)).len(), 2);
    }
}
