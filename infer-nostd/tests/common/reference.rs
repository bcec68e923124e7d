//! A naive f64 interpreter for [`Net`]s, written from PyTorch's definitions
//! with explicit index arithmetic and no code shared with the engine.

use super::Net;
use lasagna_format::{Op, Shape};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `x` is the input (token ids as numbers for a token model).
pub fn forward(net: &Net, x: &[f32]) -> Vec<f64> {
    let mut v: Vec<f64> = x.iter().map(|&a| a as f64).collect();
    let mut shape = Shape::new(&net.input).unwrap_or_default();
    for l in &net.layers {
        let out = l.op.infer_shape(shape).expect("reference: shapes chain");
        let t: Vec<Vec<f64>> = l
            .tensors
            .iter()
            .map(|t| t.iter().map(|&a| a as f64).collect())
            .collect();
        v = op(&l.op, shape, out, &v, &t);
        shape = out;
    }
    v
}

fn op(op: &Op, shape: Shape, out: Shape, x: &[f64], t: &[Vec<f64>]) -> Vec<f64> {
    let d: Vec<usize> = shape.dims().iter().map(|&a| a as usize).collect();
    let od: Vec<usize> = out.dims().iter().map(|&a| a as usize).collect();
    let last = *d.last().unwrap_or(&1);
    match *op {
        Op::Linear {
            in_features,
            out_features,
            bias,
            ..
        } => {
            let (i, o) = (in_features as usize, out_features as usize);
            let rows = x.len() / i;
            let mut y = vec![0.0; rows * o];
            for r in 0..rows {
                for c in 0..o {
                    let s: f64 = (0..i).map(|k| x[r * i + k] * t[0][c * i + k]).sum();
                    y[r * o + c] = s + if bias { t[1][c] } else { 0.0 };
                }
            }
            y
        }
        Op::Conv2d {
            in_channels,
            out_channels,
            groups,
            window: w,
            bias,
        } => {
            let (h, wd, oh, ow) = (d[1], d[2], od[1], od[2]);
            let (cin_g, cout_g) = (
                (in_channels / groups) as usize,
                (out_channels / groups) as usize,
            );
            let (kh, kw) = (w.kernel[0] as usize, w.kernel[1] as usize);
            let mut y = vec![0.0; out_channels as usize * oh * ow];
            for oc in 0..out_channels as usize {
                let g = oc / cout_g;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0.0;
                        for ic in 0..cin_g {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * w.stride[0] as usize
                                        + ky * w.dilation[0] as usize)
                                        as i64
                                        - w.padding[0] as i64;
                                    let ix = (ox * w.stride[1] as usize
                                        + kx * w.dilation[1] as usize)
                                        as i64
                                        - w.padding[1] as i64;
                                    if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                        continue;
                                    }
                                    let xv =
                                        x[((g * cin_g + ic) * h + iy as usize) * wd + ix as usize];
                                    s += xv * t[0][((oc * cin_g + ic) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        y[(oc * oh + oy) * ow + ox] = s + if bias { t[1][oc] } else { 0.0 };
                    }
                }
            }
            y
        }
        Op::MaxPool2d { window: w } | Op::AvgPool2d { window: w, .. } => {
            let (c, h, wd, oh, ow) = (d[0], d[1], d[2], od[1], od[2]);
            let max = matches!(op, Op::MaxPool2d { .. });
            let include_pad = matches!(
                op,
                Op::AvgPool2d {
                    count_include_pad: true,
                    ..
                }
            );
            let mut y = vec![0.0; c * oh * ow];
            for ch in 0..c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let (mut best, mut sum, mut real, mut all) = (f64::NEG_INFINITY, 0.0, 0, 0);
                        for ky in 0..w.kernel[0] as i64 {
                            for kx in 0..w.kernel[1] as i64 {
                                let iy =
                                    (oy * w.stride[0] as usize) as i64 - w.padding[0] as i64 + ky;
                                let ix =
                                    (ox * w.stride[1] as usize) as i64 - w.padding[1] as i64 + kx;
                                all += 1;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                    continue;
                                }
                                let v = x[(ch * h + iy as usize) * wd + ix as usize];
                                best = best.max(v);
                                sum += v;
                                real += 1;
                            }
                        }
                        y[(ch * oh + oy) * ow + ox] = if max {
                            best
                        } else {
                            sum / if include_pad { all } else { real } as f64
                        };
                    }
                }
            }
            y
        }
        Op::AdaptiveAvgPool2d { out_h, out_w } => {
            let (c, h, wd, oh, ow) = (d[0], d[1], d[2], out_h as usize, out_w as usize);
            let mut y = vec![0.0; c * oh * ow];
            for ch in 0..c {
                for i in 0..oh {
                    for j in 0..ow {
                        let y0 = (i as f64 * h as f64 / oh as f64).floor() as usize;
                        let y1 = ((i + 1) as f64 * h as f64 / oh as f64).ceil() as usize;
                        let x0 = (j as f64 * wd as f64 / ow as f64).floor() as usize;
                        let x1 = ((j + 1) as f64 * wd as f64 / ow as f64).ceil() as usize;
                        let mut s = 0.0;
                        for iy in y0..y1 {
                            for ix in x0..x1 {
                                s += x[(ch * h + iy) * wd + ix];
                            }
                        }
                        y[(ch * oh + i) * ow + j] = s / ((y1 - y0) * (x1 - x0)) as f64;
                    }
                }
            }
            y
        }
        Op::BatchNorm { features, eps } => {
            let per = x.len() / features as usize;
            (0..x.len())
                .map(|i| {
                    let c = i / per;
                    (x[i] - t[2][c]) / (t[3][c] + eps as f64).sqrt() * t[0][c] + t[1][c]
                })
                .collect()
        }
        Op::LayerNorm { size, eps } => {
            let n = size as usize;
            let mut y = Vec::new();
            for r in x.chunks(n) {
                let mean = r.iter().sum::<f64>() / n as f64;
                let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
                for (k, v) in r.iter().enumerate() {
                    y.push((v - mean) / (var + eps as f64).sqrt() * t[0][k] + t[1][k]);
                }
            }
            y
        }
        Op::Embedding { dim, .. } => {
            let dim = dim as usize;
            x.iter()
                .flat_map(|&id| t[0][id as usize * dim..(id as usize + 1) * dim].to_vec())
                .collect()
        }
        Op::Lstm {
            input_size,
            hidden_size,
            layers,
            return_sequences,
            ..
        } => lstm(
            x,
            d[0],
            input_size as usize,
            hidden_size as usize,
            layers as usize,
            return_sequences,
            t,
        ),
        Op::Flatten => x.to_vec(),
        Op::Relu => x.iter().map(|&v| v.max(0.0)).collect(),
        Op::LeakyRelu { alpha } => x
            .iter()
            .map(|&v| if v > 0.0 { v } else { alpha as f64 * v })
            .collect(),
        Op::Gelu { tanh: false } => x
            .iter()
            .map(|&v| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2)))
            .collect(),
        Op::Gelu { tanh: true } => {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            x.iter()
                .map(|&v| 0.5 * v * (1.0 + (k * (v + 0.044_715 * v * v * v)).tanh()))
                .collect()
        }
        Op::Silu => x.iter().map(|&v| v * sigmoid(v)).collect(),
        Op::Sigmoid => x.iter().map(|&v| sigmoid(v)).collect(),
        Op::Tanh => x.iter().map(|&v| v.tanh()).collect(),
        Op::Softmax => {
            let mut y = Vec::new();
            for r in x.chunks(last) {
                let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                y.extend(e.iter().map(|v| v / s));
            }
            y
        }
        _ => panic!("reference: op {op:?} not covered"),
    }
}

/// Layer-major LSTM: each layer over the whole sequence, then the next.
fn lstm(
    x: &[f64],
    steps: usize,
    input: usize,
    h: usize,
    layers: usize,
    seq: bool,
    t: &[Vec<f64>],
) -> Vec<f64> {
    let mut cur = x.to_vec();
    let mut width = input;
    for l in 0..layers {
        let (w_ih, w_hh, b_ih, b_hh) = (&t[4 * l], &t[4 * l + 1], &t[4 * l + 2], &t[4 * l + 3]);
        let (mut hs, mut cs) = (vec![0.0; h], vec![0.0; h]);
        let mut out = Vec::new();
        for s in 0..steps {
            let xs = &cur[s * width..(s + 1) * width];
            let g: Vec<f64> = (0..4 * h)
                .map(|r| {
                    b_ih[r]
                        + b_hh[r]
                        + (0..width).map(|k| xs[k] * w_ih[r * width + k]).sum::<f64>()
                        + (0..h).map(|k| hs[k] * w_hh[r * h + k]).sum::<f64>()
                })
                .collect();
            for j in 0..h {
                let (i, f, gg, o) = (
                    sigmoid(g[j]),
                    sigmoid(g[h + j]),
                    g[2 * h + j].tanh(),
                    sigmoid(g[3 * h + j]),
                );
                cs[j] = f * cs[j] + i * gg;
                hs[j] = o * cs[j].tanh();
            }
            out.extend_from_slice(&hs);
        }
        cur = out;
        width = h;
    }
    if seq {
        cur
    } else {
        cur[(steps - 1) * h..].to_vec()
    }
}
