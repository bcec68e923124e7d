//! Every way `Engine::new` and `run` refuse, with the context they report.
mod common;

use common::{arena, Aligned, Net, Rng};
use lasagna_format::{DType, ModelBuilder, Op, OpSpec, Shape, TensorData, ValueType};
use lasagna_infer::{Engine, Error, MAX_OPS, MAX_TENSORS};

fn small_net() -> Net {
    let rng = &mut Rng(1);
    let mut net = Net::new(&[4]);
    net.push(
        Op::Linear {
            in_features: 4,
            out_features: 3,
            bias: true,
            layout: lasagna_format::WeightLayout::RowMajor,
        },
        rng,
    )
    .push(Op::Softmax, rng);
    net
}

#[test]
fn int8_weights_in_an_f32_model_and_mixed_models_are_unsupported() {
    let linear = Op::Linear {
        in_features: 4,
        out_features: 2,
        bias: true,
        layout: lasagna_format::WeightLayout::RowMajor,
    };
    let mut b = ModelBuilder::new(&[4]);
    b.op(
        linear,
        vec![
            TensorData::i8_per_channel(&[2, 4], &[1; 8], vec![0.1, 0.2]),
            TensorData::f32(&[2], &[0.0, 1.0]),
        ],
    );
    let file = Aligned::new(&b.build().expect("builds"));
    let err = Engine::new(file.bytes()).expect_err("i8 weights, f32 activations");
    assert!(matches!(err, Error::Unsupported { op: 0, .. }), "{err:?}");
    assert!(err.to_string().contains("--quantize int8"), "{err}");

    // f32 in, int8 out: a mixed model.
    let q = ValueType::I8 {
        scale: 0.1,
        zero_point: 0,
    };
    let mut b = ModelBuilder::new(&[4]);
    b.push(OpSpec {
        op: Op::Relu,
        tensors: vec![],
        output: q,
        scratch_bytes: 0,
    });
    let file = Aligned::new(&b.build().expect("builds"));
    let err = Engine::new(file.bytes()).expect_err("mixed");
    assert!(
        matches!(err, Error::Unsupported { op: 0, what } if what.contains("mixes f32 and int8")),
        "{err:?}"
    );

    // An int8 model's Linear must have i8 weights and an i32 bias.
    let mut b = ModelBuilder::new(&[4]);
    b.input_type(q).push(OpSpec {
        op: linear,
        tensors: vec![
            TensorData::f32(&[2, 4], &[1.0; 8]),
            TensorData::f32(&[2], &[0.0, 1.0]),
        ],
        output: q,
        scratch_bytes: 0,
    });
    let file = Aligned::new(&b.build().expect("builds"));
    let err = Engine::new(file.bytes()).expect_err("f32 weights in int8");
    assert!(
        err.to_string().contains("i8 weights and an i32 bias"),
        "{err}"
    );
}

#[test]
fn an_int8_lstm_needs_i8_weights_i32_biases_its_scratch_and_f32_has_no_cell_shift() {
    let q = ValueType::I8 {
        scale: 0.1,
        zero_point: 0,
    };
    let lstm = Op::Lstm {
        input_size: 2,
        hidden_size: 1,
        layers: 1,
        return_sequences: false,
        cell_shift: 11,
    };
    let int8 = |tensors: Vec<TensorData>, scratch_bytes: u32| {
        let mut b = ModelBuilder::new(&[3, 2]);
        b.input_type(q).push(OpSpec {
            op: lstm,
            tensors,
            output: q,
            scratch_bytes,
        });
        Aligned::new(&b.build().expect("builds"))
    };
    let need = lasagna_infer::scratch_bytes_int8(&lstm, &Shape::d2(3, 2));
    assert_eq!(need, 2 * (1 + 4) + 1);
    let floats = vec![
        TensorData::f32(&[4, 2], &[0.1; 8]),
        TensorData::f32(&[4, 1], &[0.1; 4]),
        TensorData::f32(&[4], &[0.0; 4]),
        TensorData::f32(&[4], &[0.0; 4]),
    ];
    let file = int8(floats.clone(), need as u32);
    let err = Engine::new(file.bytes()).expect_err("f32 tensors in an int8 LSTM");
    assert!(
        err.to_string().contains("i8 weights and an i32 bias"),
        "{err}"
    );
    let ints = || {
        vec![
            TensorData::i8_per_channel(&[4, 2], &[1; 8], vec![0.01; 4]),
            TensorData::i8_per_channel(&[4, 1], &[1; 4], vec![0.01; 4]),
            TensorData::i32(&[4], &[0; 4]),
            TensorData::i32(&[4], &[0; 4]),
        ]
    };
    let file = int8(ints(), need as u32 - 1);
    let err = Engine::new(file.bytes()).expect_err("short scratch");
    assert!(
        matches!(err, Error::ScratchTooSmall { op: 0, .. }),
        "{err:?}"
    );
    let file = int8(ints(), need as u32);
    let engine = Engine::new(file.bytes()).expect("a valid int8 LSTM");
    let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
    let y = engine
        .run_i8(bytemuck::cast_slice_mut(&mut arena), &[10, -10, 3, 4, 5, 6])
        .expect("runs");
    assert_eq!(y.len(), 1);

    // The same op in an f32 model: a cell_shift there means nothing.
    let mut b = ModelBuilder::new(&[3, 2]);
    b.push(OpSpec {
        op: lstm,
        tensors: floats,
        output: ValueType::F32,
        scratch_bytes: lasagna_infer::scratch_bytes(&lstm, &Shape::d2(3, 2)) as u32,
    });
    let file = Aligned::new(&b.build().expect("builds"));
    let err = Engine::new(file.bytes()).expect_err("f32 with cell_shift");
    assert!(err.to_string().contains("cell_shift"), "{err}");
}

#[test]
fn a_misaligned_model_buffer_is_an_error_that_names_include_model() {
    let file = small_net().build(false);
    for shift in [1, 2, 3] {
        let (words, len) = file.shifted(shift);
        let bytes = &bytemuck::cast_slice::<u128, u8>(&words)[shift..shift + len];
        let err = Engine::new(bytes).expect_err("misaligned");
        assert!(
            matches!(
                err,
                Error::Misaligned {
                    op: 0,
                    tensor: 0,
                    align: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("include_model!"), "{err}");
    }
    // f16 tensors need only 2-byte alignment.
    let f16 = small_net().build(true);
    let (words, len) = f16.shifted(2);
    assert!(Engine::new(&bytemuck::cast_slice::<u128, u8>(&words)[2..2 + len]).is_ok());
    let (words, len) = f16.shifted(1);
    let err = Engine::new(&bytemuck::cast_slice::<u128, u8>(&words)[1..1 + len]).expect_err("odd");
    assert!(matches!(err, Error::Misaligned { align: 2, .. }), "{err:?}");
}

#[test]
fn invalid_files_are_format_errors() {
    let file = small_net().build(false);
    let mut bytes = file.bytes().to_vec();
    bytes[40] ^= 1; // input dims, under the CRC
    let damaged = Aligned::new(&bytes);
    let err = Engine::new(damaged.bytes()).expect_err("crc");
    assert!(
        matches!(err, Error::Format(lasagna_format::Error::Crc { .. })),
        "{err:?}"
    );
    assert!(matches!(Engine::new(&[]), Err(Error::Format(_))));
}

#[test]
fn arena_size_and_alignment_are_checked_and_name_the_needed_bytes() {
    let file = small_net().build(false);
    let e = Engine::new(file.bytes()).expect("engine");
    let needed = e.arena_bytes();
    let mut a = arena(needed + 8);
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut a);
    let x = [0.0; 4];
    let err = e.run(&mut bytes[..needed - 1], &x).expect_err("small");
    assert_eq!(
        err,
        Error::ArenaTooSmall {
            needed,
            got: needed - 1
        }
    );
    assert!(err.to_string().contains(&needed.to_string()));
    for shift in 1..4 {
        let err = e.run(&mut bytes[shift..], &x).expect_err("misaligned");
        assert_eq!(err, Error::ArenaMisaligned { needed, align: 4 });
    }
    assert!(e.run(&mut bytes[4..], &x).is_ok());
}

#[test]
fn input_length_and_kind_are_checked() {
    let file = small_net().build(false);
    let e = Engine::new(file.bytes()).expect("engine");
    let mut a = arena(e.arena_bytes());
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut a);
    assert_eq!(
        e.run(bytes, &[0.0; 3]),
        Err(Error::InputLength {
            expected: 4,
            got: 3
        })
    );
    assert_eq!(
        e.run(bytes, &[0.0; 5]),
        Err(Error::InputLength {
            expected: 4,
            got: 5
        })
    );
    let err = e
        .run_tokens(bytes, &[0; 4])
        .expect_err("tokens into an f32 model");
    assert_eq!(
        err,
        Error::InputKind {
            model: DType::F32,
            called: DType::I32
        }
    );
    assert!(err.to_string().contains("`run`"), "{err}");
}

fn token_net() -> Net {
    let rng = &mut Rng(2);
    let mut net = Net::new(&[3]);
    net.tokens = true;
    net.push(Op::Embedding { num: 5, dim: 2 }, rng);
    net
}

#[test]
fn token_ids_outside_the_table_are_errors_with_their_position() {
    let file = token_net().build(false);
    let e = Engine::new(file.bytes()).expect("engine");
    let mut a = arena(e.arena_bytes());
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut a);
    assert!(e.run_tokens(bytes, &[0, 4, 2]).is_ok());
    assert_eq!(
        e.run_tokens(bytes, &[0, 5, 2]),
        Err(Error::TokenOutOfRange {
            position: 1,
            id: 5,
            num: 5
        })
    );
    assert_eq!(
        e.run_tokens(bytes, &[0, 1, -1]),
        Err(Error::TokenOutOfRange {
            position: 2,
            id: -1,
            num: 5
        })
    );
    assert!(matches!(
        e.run(bytes, &[0.0; 3]),
        Err(Error::InputKind {
            model: DType::I32,
            called: DType::F32
        })
    ));
}

#[test]
fn a_plan_without_the_engines_lstm_scratch_is_refused() {
    let lstm = Op::Lstm {
        input_size: 2,
        hidden_size: 3,
        layers: 1,
        return_sequences: false,
        cell_shift: 0,
    };
    let rng = &mut Rng(3);
    let mut b = ModelBuilder::new(&[4, 2]);
    // `op` asks for no scratch, as an exporter that ignores scratch_bytes would.
    let tensors = common::tensors_for(&lstm, rng)
        .iter()
        .enumerate()
        .map(|(j, v)| {
            TensorData::f32(
                lstm.tensor_spec(j).map(|s| s.2).unwrap_or_default().dims(),
                v,
            )
        })
        .collect();
    b.op(lstm, tensors);
    let file = Aligned::new(&b.build().expect("builds"));
    let err = Engine::new(file.bytes()).expect_err("no scratch");
    assert_eq!(
        err,
        Error::ScratchTooSmall {
            op: 0,
            needed: 4 * (2 * 3 + 4 * 3),
            planned: 0
        }
    );
    assert!(err.to_string().contains("scratch_bytes"), "{err}");
}

#[test]
fn capacity_limits_are_errors() {
    let mut b = ModelBuilder::new(&[2]);
    for _ in 0..=MAX_OPS {
        b.op(Op::Relu, vec![]);
    }
    let file = Aligned::new(&b.build().expect("builds"));
    assert_eq!(
        Engine::new(file.bytes()).map(|_| ()),
        Err(Error::TooManyOps {
            ops: MAX_OPS + 1,
            max: MAX_OPS
        })
    );
    let rng = &mut Rng(4);
    let mut net = Net::new(&[2]);
    for _ in 0..MAX_TENSORS / 4 + 1 {
        net.push(
            Op::BatchNorm {
                features: 2,
                eps: 1e-5,
            },
            rng,
        );
    }
    let file = net.build(false);
    assert_eq!(
        Engine::new(file.bytes()).map(|_| ()),
        Err(Error::TooManyTensors {
            tensors: MAX_TENSORS + 4,
            max: MAX_TENSORS
        })
    );
}

#[test]
fn every_error_displays_what_and_where() {
    let errors = [
        Error::Format(lasagna_format::Error::NoOps),
        Error::Unsupported { op: 3, what: "x" },
        Error::TooManyOps { ops: 70, max: 64 },
        Error::TooManyTensors {
            tensors: 200,
            max: 128,
        },
        Error::Misaligned {
            op: 1,
            tensor: 2,
            offset: 288,
            align: 4,
        },
        Error::ScratchTooSmall {
            op: 1,
            needed: 96,
            planned: 0,
        },
        Error::ArenaTooSmall {
            needed: 100,
            got: 10,
        },
        Error::ArenaMisaligned {
            needed: 100,
            align: 4,
        },
        Error::InputLength {
            expected: 4,
            got: 3,
        },
        Error::InputKind {
            model: DType::I32,
            called: DType::F32,
        },
        Error::TokenOutOfRange {
            position: 1,
            id: 9,
            num: 5,
        },
        Error::Inconsistent { op: 0, what: "y" },
    ];
    for e in errors {
        let s = e.to_string();
        assert!(s.len() > 20, "{e:?} displays as {s:?}");
        let _: &dyn std::error::Error = &e;
    }
}

/// An int8 Conv2d runs with the scratch `lasagna export` plans and with
/// the least the engine accepts (files planned for one widened patch),
/// with the same outputs, and a file planning one byte less than that is
/// refused with `ScratchTooSmall`, not run short.
#[test]
fn int8_conv_scratch_below_the_least_is_refused_and_both_plans_agree() {
    let q = ValueType::I8 {
        scale: 0.05,
        zero_point: -3,
    };
    let conv = Op::Conv2d {
        in_channels: 4,
        out_channels: 3,
        groups: 1,
        window: lasagna_format::Window {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        },
        bias: true,
    };
    let shape = Shape::d3(4, 5, 5);
    let build = |scratch_bytes: usize| {
        let mut b = ModelBuilder::new(&[4, 5, 5]);
        let w: Vec<i8> = (0..108).map(|i| (i * 37 % 255) as i8).collect();
        b.input_type(q).push(OpSpec {
            op: conv,
            tensors: vec![
                TensorData::i8_per_channel(&[3, 4, 3, 3], &w, vec![0.01, 0.02, 0.03]),
                TensorData::i32(&[3], &[5, -7, 900]),
            ],
            output: q,
            scratch_bytes: scratch_bytes as u32,
        });
        Aligned::new(&b.build().expect("builds"))
    };
    let (full, least) = (
        lasagna_infer::scratch_bytes_int8(&conv, &shape),
        lasagna_infer::scratch_min_bytes_int8(&conv, &shape),
    );
    assert!(least < full, "{least} {full}");
    let x: Vec<i8> = (0..100).map(|i| (i * 53 % 255) as i8).collect();
    let run = |scratch: usize| {
        let file = build(scratch);
        let engine = Engine::new(file.bytes()).expect("a valid int8 conv");
        let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
        engine
            .run_i8(bytemuck::cast_slice_mut(&mut arena), &x)
            .expect("runs")
            .to_vec()
    };
    assert_eq!(run(full), run(least));
    let file = build(least - 1);
    let err = Engine::new(file.bytes()).expect_err("short scratch");
    assert!(
        matches!(err, Error::ScratchTooSmall { op: 0, .. }),
        "{err:?}"
    );
}
