//! The launches behind the kernel table: one per kernel (two for `gemm` and
//! `softmax_forward`), at
//! the shapes the MNIST presets train with. Arguments follow the
//! `ptx_<op>.rs` tests; inputs are random but valid (indices in range,
//! variances and inverse deviations positive, argmax inside its window).

use lasagna_kernels::{
    activation as ka, amp as kamp, avgpool2d as kavg, batchnorm as kbn, bce as kbce, blas as kb,
    clip as kclip, conv2d as kc, convert as kcv, cross_entropy as kce, dropout as kd,
    embedding as ke, gather as kg, gemm as kgm, gemm_f16 as kgh, layernorm as kl, lstm as klstm,
    maxpool2d as kmax, mse as kmse, optim as ko, reduce as kr, softmax as ks, Kernel, Launch,
    ParamKind,
};
use lasagna_trainer::philox::Stream;

#[path = "per_step.rs"]
mod per_step;

/// One argument, in the kernel's parameter order: a buffer to upload or a scalar.
pub enum In {
    F32s(Vec<f32>),
    U32s(Vec<u32>),
    Bytes(Vec<u8>),
    /// A null optional pointer.
    Null,
    U32(u32),
    U64(u64),
    F32(f32),
}
use In::{Null, F32, U32, U64};

/// One launch of the table.
pub struct Row {
    pub kernel: &'static Kernel,
    /// The problem, as a reader would name it.
    pub shape: String,
    /// The op's main tensor and its element count: the "per element" denominator.
    pub per: (&'static str, usize),
    pub launch: Launch,
    pub args: Vec<In>,
}

/// Random inputs from a fixed stream, so the table is reproducible.
struct Gen(Stream);

impl Gen {
    /// Uniform in [lo, hi).
    fn f(&mut self, n: usize, lo: f32, hi: f32) -> In {
        In::F32s((0..n).map(|_| self.0.uniform_range(lo, hi)).collect())
    }
    /// Uniform in [-1, 1).
    fn x(&mut self, n: usize) -> In {
        self.f(n, -1.0, 1.0)
    }
    /// Uniform in [0.5, 1.5): variances, inverse deviations, Adam's v.
    fn pos(&mut self, n: usize) -> In {
        self.f(n, 0.5, 1.5)
    }
    /// Indices in 0..below.
    fn idx(&mut self, n: usize, below: usize) -> In {
        In::U32s((0..n).map(|_| self.0.below(below as u32)).collect())
    }
}

/// An output buffer (its old contents are not read).
fn out(n: usize) -> In {
    In::F32s(vec![0.0; n])
}

fn u32s(v: &[usize]) -> impl Iterator<Item = In> + '_ {
    v.iter().map(|&x| U32(x as u32))
}

/// Every row, grouped by module.
pub fn all() -> Vec<Row> {
    let mut g = Gen(Stream::new(2024, 11));
    let mut rows = Vec::new();
    for f in [
        activation,
        conv2d,
        convert,
        cross_entropy,
        dropout,
        embedding,
        gather,
        gemm,
        layernorm,
        lstm,
        norm_and_pool,
        optim_and_reduce,
        softmax,
        mse_and_bce,
        adaptive_pool,
        // Appended, so their draws leave the earlier rows' inputs as they were.
        blas,
        // After blas, for the same reason (added later).
        amp,
        gemm_f16,
        // The one-launch-per-step kernels (gather, optim), appended likewise.
        per_step::gather_batch,
        per_step::adam_step_multi,
    ] {
        rows.extend(f(&mut g));
    }
    rows
}

fn gemm(g: &mut Gen) -> Vec<Row> {
    // (shape, m, n, k, trans_b, bias and ReLU): a square NN product, and the
    // MLP's first Linear forward (y = relu(x W^T + b), W stored [out, in]).
    let cases = [
        ("512x512x512 NN, beta 0", 512, 512, 512, false, false),
        (
            "Linear 64x784 -> 128: NT + bias + ReLU",
            64,
            128,
            784,
            true,
            true,
        ),
    ];
    cases
        .into_iter()
        .map(|(shape, m, n, k, tb, fused)| Row {
            kernel: &kgm::GEMM,
            shape: shape.into(),
            per: ("C", m * n),
            launch: kgm::gemm_launch(m, n, k).unwrap(),
            args: vec![
                g.x(m * k),
                g.x(k * n),
                out(m * n),
                if fused { g.x(n) } else { Null },
                U32(m as u32),
                U32(n as u32),
                U32(k as u32),
                F32(1.0),
                F32(0.0),
                U32(0),
                U32(tb.into()),
                U32(fused.into()),
                // No mask, no row sums, no split (k_split = k).
                Null,
                F32(1.0),
                Null,
                U32(k as u32),
                Null,
                Null,
            ],
        })
        .collect()
}

fn gemm_f16(g: &mut Gen) -> Vec<Row> {
    // The MLP's first Linear forward (x W^T, W stored [out, in]) with f16
    // operands: compare with the f32 `gemm` row of the same shape.
    let (m, n, k) = (64, 128, 784);
    let mut halves = |len: usize| {
        let In::F32s(v) = g.x(len) else {
            unreachable!()
        };
        In::Bytes(
            v.iter()
                .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
                .collect(),
        )
    };
    let (a, b) = (halves(m * k), halves(n * k));
    vec![Row {
        kernel: &kgh::GEMM_F16,
        shape: "Linear 64x784 -> 128: NT, f16 in, f32 out".into(),
        per: ("C", m * n),
        launch: kgh::gemm_f16_launch(m, n, k).unwrap(),
        args: vec![
            a,
            b,
            out(m * n),
            U32(m as u32),
            U32(n as u32),
            U32(k as u32),
            F32(1.0),
            F32(0.0),
            U32(0),
            U32(1),
        ],
    }]
}

fn activation(g: &mut Gen) -> Vec<Row> {
    let n = 64 * 128;
    ka::ALL
        .iter()
        .map(|&k| {
            let backward = k.params[1].name == "dy";
            let mut args = vec![g.f(n, -4.0, 4.0)];
            if backward {
                args.push(g.x(n));
            }
            args.extend([out(n), U64(n as u64)]);
            if k.params.last().map(|p| p.kind) == Some(ParamKind::F32) {
                args.push(F32(0.01));
            }
            Row {
                kernel: k,
                shape: "64x128 hidden activations".into(),
                per: ("x", n),
                launch: ka::activation_launch(n).unwrap(),
                args,
            }
        })
        .collect()
}

fn cross_entropy(g: &mut Gen) -> Vec<Row> {
    let (rows, cols) = (64, 10);
    vec![Row {
        kernel: &kce::CROSS_ENTROPY,
        shape: "64x10 logits".into(),
        per: ("logits", rows * cols),
        launch: kce::cross_entropy_launch(rows, cols).unwrap(),
        args: vec![
            g.f(rows * cols, -3.0, 3.0),
            g.idx(rows, cols),
            out(rows * cols),
            out(2),
            U32(rows as u32),
            U32(cols as u32),
            F32(0.0),
        ],
    }]
}

fn dropout(g: &mut Gen) -> Vec<Row> {
    let n = 64 * 128;
    let mut rows: Vec<Row> = [&kd::DROPOUT_FORWARD, &kd::DROPOUT_BACKWARD]
        .into_iter()
        .map(|k| Row {
            kernel: k,
            shape: "64x128, p = 0.5".into(),
            per: ("x", n),
            launch: kd::dropout_launch(n).unwrap(),
            args: vec![
                g.x(n),
                out(n),
                U64(n as u64),
                F32(0.5),
                U64(7),
                U64(0),
                U64(1),
                U64(0),
            ],
        })
        .collect();
    let blocks = n / 4;
    rows.push(Row {
        kernel: &kd::PHILOX4X32_10,
        shape: format!("{blocks} blocks (64x128 draws)"),
        per: ("out words", 4 * blocks),
        launch: kd::philox_launch(blocks).unwrap(),
        args: vec![
            g.idx(4 * blocks, u32::MAX as usize),
            g.idx(2 * blocks, u32::MAX as usize),
            In::U32s(vec![0; 4 * blocks]),
            U64(blocks as u64),
        ],
    });
    rows
}

/// The MLP 784-128-10's parameter count, and as the table names it.
const PARAMS: usize = 784 * 128 + 128 + 128 * 10 + 10;
const PARAMS_SHAPE: &str = "101,770 params (MLP 784-128-10)";
const _: () = assert!(PARAMS == 101_770);

fn optim_and_reduce(g: &mut Gen) -> Vec<Row> {
    let n = PARAMS;
    let shape = || PARAMS_SHAPE.to_string();
    let s = ko::AdamScalars::new(1e-3, 0.9, 0.999, 0.0, 10);
    let mut rows = vec![
        Row {
            kernel: &ko::SGD_STEP,
            shape: shape() + ", momentum 0.9",
            per: ("param", n),
            launch: ko::optim_launch(n).unwrap(),
            args: vec![
                g.x(n),
                g.x(n),
                g.x(n),
                U64(n as u64),
                F32(0.01),
                F32(0.9),
                F32(0.0),
                F32(0.0),
                U32(0),
                U32(0),
            ],
        },
        Row {
            kernel: &ko::ADAM_STEP,
            shape: shape() + ", Adam step 10",
            per: ("param", n),
            launch: ko::optim_launch(n).unwrap(),
            args: vec![
                g.x(n),
                g.x(n),
                g.x(n),
                g.pos(n),
                U64(n as u64),
                F32(0.9),
                F32(0.999),
                F32(s.step_size),
                F32(s.bc2_sqrt),
                F32(1e-8),
                F32(0.0),
                F32(s.decay),
                U32(0),
            ],
        },
    ];
    for k in kr::ALL {
        rows.push(Row {
            kernel: k,
            shape: shape() + ", gradient norm",
            per: ("x", n),
            launch: kr::reduce_launch(n).unwrap(),
            args: vec![g.x(n), out(1), U64(n as u64)],
        });
    }
    // sumsq 4 and max_norm 1: coef ~0.5, so every gradient is scaled.
    rows.push(Row {
        kernel: &kclip::CLIP_BY_NORM,
        shape: shape() + ", clip to norm 1",
        per: ("x", n),
        launch: kclip::clip_launch(n).unwrap(),
        args: vec![g.x(n), In::F32s(vec![4.0]), U64(n as u64), F32(1.0)],
    });
    rows
}

fn blas(g: &mut Gen) -> Vec<Row> {
    let n = PARAMS;
    let elementwise = kb::blas_launch(n).unwrap();
    let mut rows = vec![
        Row {
            kernel: &kb::FILL,
            shape: PARAMS_SHAPE.to_string() + ", zero the gradients",
            per: ("y", n),
            launch: elementwise,
            args: vec![out(n), F32(0.0), U64(n as u64)],
        },
        Row {
            kernel: &kb::AXPY,
            shape: PARAMS_SHAPE.to_string(),
            per: ("y", n),
            launch: elementwise,
            args: vec![g.x(n), g.x(n), F32(-0.01), U64(n as u64)],
        },
        Row {
            kernel: &kb::SCALE,
            shape: PARAMS_SHAPE.to_string(),
            per: ("x", n),
            launch: elementwise,
            args: vec![g.x(n), F32(0.5), U64(n as u64)],
        },
    ];
    // (shape, rows, cols, positions): the MLP's hidden Linear and the CNN's
    // second conv (64 channels of 14x14, batch 8; see conv2d below).
    let layers = [
        ("Linear 64x128", 64, 128, 1),
        ("Conv2d 8x64x14x14", 8, 64, 14 * 14),
    ];
    for (shape, r, c, p) in layers {
        let len = r * c * p;
        rows.push(Row {
            kernel: &kb::ADD_BIAS,
            shape: format!("{shape} + bias"),
            per: ("y", len),
            launch: kb::add_bias_launch(r, c, p).unwrap(),
            args: vec![
                g.x(len),
                g.x(c),
                U64(len as u64),
                U32(c as u32),
                U32(p as u32),
            ],
        });
        rows.push(Row {
            kernel: &kb::SUM_ROWS,
            shape: format!("{shape} bias gradient"),
            per: ("x", len),
            launch: kb::sum_rows_launch(r, c, p).unwrap(),
            args: vec![
                g.x(len),
                g.x(c),
                U32(r as u32),
                U32(c as u32),
                U32(p as u32),
                U32(1),
            ],
        });
    }
    rows
}

fn convert(g: &mut Gen) -> Vec<Row> {
    let n = PARAMS;
    let halves: Vec<u8> = (0..n)
        .flat_map(|_| half::f16::from_f32(g.0.uniform_range(-1.0, 1.0)).to_le_bytes())
        .collect();
    let launch = kcv::convert_launch(n).unwrap();
    let shape = PARAMS_SHAPE.to_string();
    vec![
        Row {
            kernel: &kcv::F32_TO_F16,
            shape: shape.clone(),
            per: ("x", n),
            launch,
            args: vec![g.x(n), In::Bytes(vec![0; 2 * n]), U64(n as u64)],
        },
        Row {
            kernel: &kcv::F16_TO_F32,
            shape,
            per: ("x", n),
            launch,
            args: vec![In::Bytes(halves), out(n), U64(n as u64)],
        },
    ]
}

fn amp(g: &mut Gen) -> Vec<Row> {
    // Every gradient of the MLP unscaled at once; the first Linear's
    // weight rounded for gemm_f16.
    let n = PARAMS;
    let launch = kamp::amp_launch(n).unwrap();
    let w = 784 * 128;
    vec![
        Row {
            kernel: &kamp::AMP_UNSCALE_CHECK,
            shape: PARAMS_SHAPE.to_string(),
            per: ("g", n),
            launch,
            args: vec![g.x(n), out(1), U64(n as u64), F32(1.0 / 65536.0)],
        },
        Row {
            kernel: &kamp::ROUND_F16,
            shape: "784x128 weight (MLP's first Linear)".to_string(),
            per: ("x", w),
            launch: kamp::amp_launch(w).unwrap(),
            args: vec![g.x(w), out(w), U64(w as u64)],
        },
    ]
}

fn layernorm(g: &mut Gen) -> Vec<Row> {
    let (r, c) = (64, 128);
    let n = r * c;
    let dims = || [U32(r as u32), U32(c as u32)];
    let mut fwd = vec![g.x(n), g.pos(c), g.x(c), out(r), out(r), out(n)];
    fwd.extend(dims());
    fwd.push(F32(1e-5));
    let mut bin = vec![g.x(n), g.pos(c), g.x(r), g.pos(r), g.x(n), out(n)];
    bin.extend(dims());
    let mut bpar = vec![g.x(n), g.x(r), g.pos(r), g.x(n), out(c), out(c)];
    bpar.extend(dims());
    let row_launch = kl::layernorm_launch(r, c).unwrap();
    let par_launch = kl::layernorm_params_launch(r, c).unwrap();
    [
        (&kl::LAYERNORM_FORWARD, row_launch, fwd),
        (&kl::LAYERNORM_BACKWARD_INPUT, row_launch, bin),
        (&kl::LAYERNORM_BACKWARD_PARAMS, par_launch, bpar),
    ]
    .into_iter()
    .map(|(kernel, launch, args)| Row {
        kernel,
        shape: "64 rows x 128".into(),
        per: ("x", n),
        launch,
        args,
    })
    .collect()
}

fn embedding(g: &mut Gen) -> Vec<Row> {
    let (count, dim, vocab) = (64 * 28, 64, 1000);
    let n = count * dim;
    let launch = ke::embedding_launch(count, dim, vocab).unwrap();
    let tail = || [U64(n as u64), U32(dim as u32), U32(vocab as u32)];
    let mut fwd = vec![g.idx(count, vocab), g.x(vocab * dim), out(n)];
    fwd.extend(tail());
    let mut bwd = vec![g.idx(count, vocab), g.x(n), out(vocab * dim)];
    bwd.extend(tail());
    [
        (&ke::EMBEDDING_FORWARD, fwd),
        (&ke::EMBEDDING_BACKWARD, bwd),
    ]
    .into_iter()
    .map(|(kernel, args)| Row {
        kernel,
        shape: "64x28 tokens, dim 64, vocab 1000".into(),
        per: ("y", n),
        launch,
        args,
    })
    .collect()
}

fn gather(g: &mut Gen) -> Vec<Row> {
    let (rows, cols, src) = (64, 784, 1024);
    vec![
        Row {
            kernel: &kg::GATHER_ROWS,
            shape: format!("batch of {rows} from {src} images x {cols}"),
            per: ("dst", rows * cols),
            launch: kg::gather_rows_launch(rows, cols, src).unwrap(),
            args: vec![
                g.x(src * cols),
                g.idx(rows, src),
                out(rows * cols),
                U64((rows * cols) as u64),
                U32(cols as u32),
                U32(src as u32),
            ],
        },
        Row {
            kernel: &kg::GATHER_IDX,
            shape: format!("{rows} labels from {src}"),
            per: ("dst", rows),
            launch: kg::gather_idx_launch(rows, src).unwrap(),
            args: vec![
                g.idx(src, 10),
                g.idx(rows, src),
                In::U32s(vec![0; rows]),
                U64(rows as u64),
                U32(src as u32),
            ],
        },
        Row {
            kernel: &kg::TO_INDEX,
            shape: "64x28 token ids (f32) to u32".into(),
            per: ("x", 64 * 28),
            launch: kg::to_index_launch(64 * 28).unwrap(),
            args: vec![
                // Fixed ids (no draws, so later rows keep their inputs).
                In::F32s((0..64 * 28).map(|i| (i * 37 % 1000) as f32).collect()),
                In::U32s(vec![0; 64 * 28]),
                In::U32s(vec![0]),
                U64(64 * 28),
            ],
        },
    ]
}

fn lstm(g: &mut Gen) -> Vec<Row> {
    // The row-LSTM: batch 64, 28 steps (image rows), hidden 128.
    let (b, steps, h) = (64, 28, 128);
    let n = b * h;
    let (seq, seq4) = (b * steps * h, b * steps * 4 * h);
    let tail = |t: u32| [U64(n as u64), U32(h as u32), U32(steps as u32), U32(t)];
    let mut fwd = vec![g.x(seq4), g.x(n * 4), g.x(seq), out(seq), out(n)];
    fwd.extend(tail(5));
    let mut bwd = vec![g.f(seq4, 0.0, 1.0), g.x(seq), Null, g.x(n), g.x(n)];
    bwd.extend([out(seq4), out(4 * n)]);
    bwd.extend(tail(steps as u32 - 1));
    let launch = klstm::lstm_launch(b, h, steps).unwrap();
    [
        (
            &klstm::LSTM_CELL_FORWARD,
            "step 5 of 28, batch 64, hidden 128",
            fwd,
        ),
        (
            &klstm::LSTM_CELL_BACKWARD,
            "last step of 28, batch 64, hidden 128",
            bwd,
        ),
    ]
    .into_iter()
    .map(|(kernel, shape, args)| Row {
        kernel,
        shape: shape.into(),
        per: ("h", n),
        launch,
        args,
    })
    .collect()
}

fn conv2d(g: &mut Gen) -> Vec<Row> {
    // The CNN's second conv, 32 -> 64 channels, 3x3, padding 1 on 14x14, batch 8.
    let (n, c, hw, k) = (8, 32, 14, 3);
    let (x_len, col_len) = (n * c * hw * hw, c * k * k * n * hw * hw);
    let geom = [n, c, hw, hw, hw, hw, k, k, 1, 1, 1, 1, 1, 1];
    let shape = "x 8x32x14x14, 3x3 pad 1 -> col 288x1568";
    let mut im = vec![g.x(x_len), out(col_len)];
    im.extend(u32s(&geom));
    let mut co = vec![g.x(col_len), out(x_len)];
    co.extend(u32s(&geom));
    vec![
        Row {
            kernel: &kc::IM2COL,
            shape: shape.into(),
            per: ("col", col_len),
            launch: kc::im2col_launch(col_len, x_len).unwrap(),
            args: im,
        },
        Row {
            kernel: &kc::COL2IM,
            shape: shape.into(),
            per: ("col", col_len),
            launch: kc::col2im_launch(col_len, x_len).unwrap(),
            args: co,
        },
        Row {
            kernel: &kc::SWAP_NC,
            shape: "yt 64x8x196 + bias -> y 8x64x196".into(),
            per: ("element", 64 * 8 * 196),
            launch: kc::swap_nc_launch(64 * 8 * 196).unwrap(),
            args: {
                let mut a = vec![g.x(64 * 8 * 196), g.x(64), out(64 * 8 * 196)];
                a.extend(u32s(&[64, 8, 196]));
                a
            },
        },
    ]
}

/// BatchNorm2d and 2x2 pooling after the CNN's first conv: 8x32x28x28.
fn norm_and_pool(g: &mut Gen) -> Vec<Row> {
    let (n, c, hw, o) = (8, 32, 28, 14);
    let (len, planes, olen) = (n * c * hw * hw, n * c, n * c * o * o);
    let shape = "8x32x28x28";
    let nc_s = || u32s(&[n, c, hw * hw]).collect::<Vec<_>>();
    let mut train = vec![g.x(len), g.pos(c), g.x(c), g.x(c), g.pos(c)];
    train.extend([out(c), out(c), out(len)]);
    train.extend(nc_s());
    // relu = 1: the CNN's ReLU after each BatchNorm2d rides in these kernels.
    train.extend([F32(1e-5), F32(0.1), U32(1)]);
    let mut eval = vec![g.x(len), g.pos(c), g.x(c), g.x(c), g.pos(c), out(len)];
    eval.extend(nc_s());
    eval.extend([F32(1e-5), U32(1)]);
    let mut bwd = vec![g.x(len), g.pos(c), g.x(c), g.pos(c), g.x(len)];
    bwd.extend([out(len), out(c), out(c)]);
    bwd.extend(nc_s());
    let per_channel = kbn::channel_launch(n, c, hw * hw).unwrap();
    let mut rows: Vec<Row> = [
        (&kbn::BATCHNORM_FORWARD_TRAIN, per_channel, train),
        (
            &kbn::BATCHNORM_FORWARD_EVAL,
            kbn::eval_launch(n, c, hw * hw).unwrap(),
            eval,
        ),
        (&kbn::BATCHNORM_BACKWARD, per_channel, bwd),
    ]
    .into_iter()
    .map(|(kernel, launch, args)| Row {
        kernel,
        shape: shape.into(),
        per: ("x", len),
        launch,
        args,
    })
    .collect();

    // 2x2, stride 2, no padding; argmax names a position inside its window.
    let geom = [planes, hw, hw, o, o, 2, 2, 2, 2, 0, 0];
    let argmax = (0..olen)
        .map(|i| {
            let (oy, ox) = (i % (o * o) / o, i % o);
            let r = g.0.below(4) as usize;
            ((2 * oy + r / 2) * hw + 2 * ox + r % 2) as u32
        })
        .collect();
    let pool_shape = "8x32x28x28, 2x2 stride 2";
    let launch = kmax::pool2d_launch(len, olen).unwrap();
    let with = |mut args: Vec<In>, pad: Option<u32>| {
        args.extend(u32s(&geom));
        args.extend(pad.map(U32));
        args
    };
    let pools = [
        (
            &kmax::MAXPOOL2D_FORWARD,
            with(vec![g.x(len), out(olen), out(olen)], None),
        ),
        (
            &kmax::MAXPOOL2D_BACKWARD,
            // The CNN's absorbed ReLU: gated by the pool's input, scale 1.
            with(
                vec![g.x(olen), In::U32s(argmax), g.x(len), F32(1.0), out(len)],
                None,
            ),
        ),
        (
            &kavg::AVGPOOL2D_FORWARD,
            with(vec![g.x(len), out(olen)], Some(0)),
        ),
        (
            &kavg::AVGPOOL2D_BACKWARD,
            with(vec![g.x(olen), out(len)], Some(0)),
        ),
    ];
    rows.extend(pools.into_iter().map(|(kernel, args)| Row {
        kernel,
        shape: pool_shape.into(),
        per: ("x", len),
        launch,
        args,
    }));
    rows
}

/// Softmax over MNIST's 10 classes (one warp per row), and a wide row that
/// takes the one-block-per-row path.
fn softmax(g: &mut Gen) -> Vec<Row> {
    let mut rows = Vec::new();
    for (r, c) in [(64usize, 10usize), (16, 4096)] {
        let n = r * c;
        let launch = ks::softmax_launch(r, c).unwrap();
        let dims = || [U32(r as u32), U32(c as u32)];
        let mut fwd = vec![g.f(n, -3.0, 3.0), out(n)];
        fwd.extend(dims());
        rows.push(Row {
            kernel: &ks::SOFTMAX_FORWARD,
            shape: format!("{r}x{c}, block {}x{}", launch.block.x, launch.block.y),
            per: ("x", n),
            launch,
            args: fwd,
        });
        if c == 10 {
            let y = (0..r)
                .flat_map(|_| {
                    let v: Vec<f32> = (0..c).map(|_| g.0.uniform_range(0.0, 1.0)).collect();
                    let s: f32 = v.iter().sum();
                    v.into_iter().map(move |e| e / s)
                })
                .collect();
            let mut bwd = vec![In::F32s(y), g.x(n), out(n)];
            bwd.extend(dims());
            rows.push(Row {
                kernel: &ks::SOFTMAX_BACKWARD,
                shape: format!("{r}x{c}, block {}x{}", launch.block.x, launch.block.y),
                per: ("x", n),
                launch,
                args: bwd,
            });
        }
    }
    rows
}

/// Pixel-wise losses of a 64-image batch of 28x28 (an autoencoder's output).
fn mse_and_bce(g: &mut Gen) -> Vec<Row> {
    let n = 64 * 784;
    let shape = "64x784 pixels";
    vec![
        Row {
            kernel: &kmse::MSE,
            shape: shape.into(),
            per: ("pred", n),
            launch: kmse::mse_launch(n).unwrap(),
            args: vec![g.x(n), g.f(n, 0.0, 1.0), out(n), out(2), U64(n as u64)],
        },
        Row {
            kernel: &kbce::BCE_WITH_LOGITS,
            shape: shape.into(),
            per: ("logits", n),
            launch: kbce::bce_launch(n).unwrap(),
            args: vec![
                g.f(n, -4.0, 4.0),
                g.f(n, 0.0, 1.0),
                out(n),
                out(2),
                U64(n as u64),
            ],
        },
    ]
}

/// A CNN head's global average pool: 8x64x7x7 to 1x1.
fn adaptive_pool(g: &mut Gen) -> Vec<Row> {
    let (planes, hw) = (8 * 64, 7);
    let (len, olen) = (planes * hw * hw, planes);
    let launch = kavg::adaptive_pool2d_launch(planes, hw, hw, 1, 1).unwrap();
    let dims = || u32s(&[planes, hw, hw, 1, 1]).collect::<Vec<_>>();
    let mut fwd = vec![g.x(len), out(olen)];
    fwd.extend(dims());
    let mut bwd = vec![g.x(olen), out(len)];
    bwd.extend(dims());
    [
        (&kavg::ADAPTIVE_AVGPOOL2D_FORWARD, fwd),
        (&kavg::ADAPTIVE_AVGPOOL2D_BACKWARD, bwd),
    ]
    .into_iter()
    .map(|(kernel, args)| Row {
        kernel,
        shape: "8x64x7x7 -> 1x1".into(),
        per: ("x", len),
        launch,
        args,
    })
    .collect()
}
