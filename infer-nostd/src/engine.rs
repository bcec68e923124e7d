//! [`Engine`]: prepare once in `new`, then `run` as often as needed with
//! nothing but the arena and the input checked.

use crate::error::Error;
use crate::exec;
use crate::ops::{copy, Weights};
use crate::plan::{self, Span, Step, ARENA_ALIGN, MAX_OPS, MAX_TENSORS};
use crate::quant::QParams;
use lasagna_format::{DType, Model, Shape};

/// The engine with the default capacity: [`MAX_OPS`] ops and
/// [`MAX_TENSORS`] tensors. Use [`EngineWith`] to size the plan for a
/// small device.
pub type Engine<'m> = EngineWith<'m, MAX_OPS, MAX_TENSORS>;

/// A prepared model: the parsed file, one step per op and every tensor
/// borrowed in place, in fixed-capacity tables of `OPS` steps and `TENSORS`
/// tensors (a larger model is [`Error::TooManyOps`] /
/// [`Error::TooManyTensors`]). It holds no activations; `run` borrows the
/// caller's arena, so one engine can serve any number of arenas (and
/// threads).
///
/// [`Engine`] is this with room for 64 ops and 128 tensors (about 9 KB on
/// a Cortex-M). On a small part, size it to the model:
/// `EngineWith::<'_, 8, 8>::new(bytes)` holds the MNIST MLP in under 1 KB.
#[derive(Clone, Debug)]
pub struct EngineWith<'m, const OPS: usize, const TENSORS: usize> {
    model: Model<'m>,
    steps: heapless::Vec<Step, OPS>,
    tensors: heapless::Vec<Weights<'m>, TENSORS>,
    input: Span,
    output: Span,
    input_dtype: DType,
    int8: bool,
    quant: (QParams, QParams),
}

impl<'m, const OPS: usize, const TENSORS: usize> EngineWith<'m, OPS, TENSORS> {
    /// Parses and validates `bytes` (see `lasagna_format::Model::parse`),
    /// then prepares every op: checks that this engine runs it with its
    /// dtypes (all-f32 activations with f32, f16 or i8 weights; or all-int8
    /// activations with i8 weights and i32 biases), borrows each tensor in
    /// place (the buffer must be 16-byte aligned, see
    /// `lasagna_format::include_model!`), and checks each op's scratch
    /// against [`scratch_bytes`](crate::scratch_bytes).
    pub fn new(bytes: &'m [u8]) -> Result<Self, Error> {
        let model = Model::parse(bytes)?;
        let n_ops = model.op_count() as usize;
        if n_ops > OPS {
            return Err(Error::TooManyOps {
                ops: n_ops,
                max: OPS,
            });
        }
        let tensors = model.tensor_count() as usize;
        if tensors > TENSORS {
            return Err(Error::TooManyTensors {
                tensors,
                max: TENSORS,
            });
        }
        let inconsistent = |what| Error::Inconsistent {
            op: model.op_count(),
            what,
        };
        let input = model.input().ok_or(inconsistent("input value"))?;
        // The model's precision is its first output's: every other value
        // must agree (checked per op in prepare).
        let first = model.op(0).ok_or(inconsistent("op table"))?;
        let int8 = first.output.dtype == DType::I8;
        let qp = |q: Option<(f32, i32)>| {
            q.map_or(QParams::default(), |(scale, zero_point)| QParams {
                scale,
                zero_point,
            })
        };
        let mut engine = EngineWith {
            model,
            steps: heapless::Vec::new(),
            tensors: heapless::Vec::new(),
            input: plan::value_span(&input),
            output: Span::default(),
            input_dtype: input.dtype,
            int8,
            quant: (qp(input.quant), QParams::default()),
        };
        for e in model.ops() {
            let step = plan::prepare(&model, &e, int8, &mut engine.tensors)?;
            engine.output = step.y;
            engine.quant.1 = step.q.1;
            engine.steps.push(step).map_err(|_| Error::TooManyOps {
                ops: n_ops,
                max: OPS,
            })?;
        }
        if engine.steps.len() != n_ops {
            return Err(inconsistent("op table"));
        }
        Ok(engine)
    }

    /// The parsed model (labels, metadata, shapes).
    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Bytes of arena `run` needs: the file's memory plan, activations and
    /// scratch together.
    pub fn arena_bytes(&self) -> usize {
        self.model.arena_bytes() as usize
    }

    /// Elements of one input sample.
    pub fn input_len(&self) -> usize {
        numel(self.model.input_shape())
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        numel(self.model.output_shape())
    }

    /// The input's dtype: `F32` (call [`run`](Engine::run)), `I8` (an int8
    /// model: call [`run_i8`](Engine::run_i8)) or `I32` token ids (call
    /// [`run_tokens`](Engine::run_tokens)).
    pub fn input_dtype(&self) -> DType {
        self.input_dtype
    }

    /// True for an int8 model (i8 activations throughout).
    pub fn is_int8(&self) -> bool {
        self.int8
    }

    /// Quantization `(scale, zero_point)` of an int8 model's input, `None`
    /// for an f32 model. [`quantize_input`](Engine::quantize_input) applies it.
    pub fn input_quant(&self) -> Option<(f32, i32)> {
        (self.input_dtype == DType::I8).then_some((self.quant.0.scale, self.quant.0.zero_point))
    }

    /// Quantization `(scale, zero_point)` of an int8 model's output:
    /// `real = scale · (q − zero_point)`. `None` for an f32 model.
    pub fn output_quant(&self) -> Option<(f32, i32)> {
        self.int8
            .then_some((self.quant.1.scale, self.quant.1.zero_point))
    }

    /// Input normalization `(mean, std)` the model was trained with. The
    /// engine does not apply it: pass `(x - mean) / std`.
    pub fn normalization(&self) -> (f32, f32) {
        self.model.normalization()
    }

    /// Quantizes normalized `f32` inputs for an int8 model:
    /// `q = round(x / scale) + zero_point`, saturated. (Lasagna's exporter
    /// picks the input scale so that an MNIST pixel `p` becomes `p − 128`
    /// exactly; firmware can skip this call and pass those levels.)
    pub fn quantize_input(&self, x: &[f32], out: &mut [i8]) -> Result<(), Error> {
        self.expect(DType::I8, x.len())?;
        if out.len() != x.len() {
            return Err(Error::InputLength {
                expected: x.len(),
                got: out.len(),
            });
        }
        for (o, &v) in out.iter_mut().zip(x) {
            *o = self.quant.0.quantize(v);
        }
        Ok(())
    }

    /// Runs one sample. `arena` must be at least [`arena_bytes`](Engine::arena_bytes)
    /// long and 4-byte aligned; `input` holds [`input_len`](Engine::input_len)
    /// already-normalized values. Returns the output, which lives in the arena.
    pub fn run<'a>(&self, arena: &'a mut [u8], input: &[f32]) -> Result<&'a [f32], Error> {
        self.run_observed(arena, input, &mut |_, _| {})
    }

    /// [`run`](Engine::run), calling `observe(value, data)` with the input
    /// (value 0) and then each op's output (value `i + 1` after op `i`) as
    /// it is produced. Exporters use it to calibrate int8 ranges on the
    /// exact graph they quantize.
    pub fn run_observed<'a>(
        &self,
        arena: &'a mut [u8],
        input: &[f32],
        observe: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<&'a [f32], Error> {
        self.expect(DType::F32, input.len())?;
        let buf = self.arena(arena)?;
        let slot = self.slot_f32(buf, self.input, 0)?;
        copy(input, slot);
        observe(0, slot);
        for s in &self.steps {
            exec::step_f32(&self.tensors, s, buf, &[])?;
            if let Ok(y) = self.slot_f32(buf, s.y, s.index) {
                observe(usize::from(s.index) + 1, y);
            }
        }
        let out: &'a mut [u8] = buf;
        out_f32(out, self.output, self.model.op_count())
    }

    /// Runs one sample through an int8 model: `input` holds
    /// [`input_len`](Engine::input_len) levels of the input's quantization
    /// ([`input_quant`](Engine::input_quant)). Returns the output levels
    /// (see [`output_quant`](Engine::output_quant)), which live in the arena.
    /// Integer-only per element: bit-identical on every target.
    pub fn run_i8<'a>(&self, arena: &'a mut [u8], input: &[i8]) -> Result<&'a [i8], Error> {
        self.expect(DType::I8, input.len())?;
        let buf = self.arena(arena)?;
        let slot = buf.get_mut(self.input.range()).ok_or(Error::Inconsistent {
            op: 0,
            what: "input slot",
        })?;
        copy(bytemuck::cast_slice(input), slot);
        self.execute_i8(buf, &[])
    }

    /// Runs one sequence of token ids through a model whose first op is an
    /// Embedding. The ids are read straight from `ids` (the input's arena
    /// slot is left alone); an id outside the table is
    /// [`Error::TokenOutOfRange`].
    pub fn run_tokens<'a>(&self, arena: &'a mut [u8], ids: &[i32]) -> Result<&'a [f32], Error> {
        self.run_tokens_observed(arena, ids, &mut |_, _| {})
    }

    /// [`run_tokens`](Engine::run_tokens), calling `observe(value, data)`
    /// with each op's output (value `i + 1` after op `i`; the ids, value 0,
    /// are not `f32`), as [`run_observed`](Engine::run_observed) does.
    pub fn run_tokens_observed<'a>(
        &self,
        arena: &'a mut [u8],
        ids: &[i32],
        observe: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<&'a [f32], Error> {
        self.expect(DType::I32, ids.len())?;
        if self.int8 {
            return Err(Error::Unsupported {
                op: 0,
                what: "an int8 token model through run_tokens (call run_tokens_i8)",
            });
        }
        let buf = self.arena(arena)?;
        for s in &self.steps {
            exec::step_f32(&self.tensors, s, buf, ids)?;
            if let Ok(y) = self.slot_f32(buf, s.y, s.index) {
                observe(usize::from(s.index) + 1, y);
            }
        }
        let out: &'a mut [u8] = buf;
        out_f32(out, self.output, self.model.op_count())
    }

    /// [`run_tokens`](Engine::run_tokens) for an int8 model: the
    /// Embedding's ids in, output levels out (see
    /// [`output_quant`](Engine::output_quant)).
    pub fn run_tokens_i8<'a>(&self, arena: &'a mut [u8], ids: &[i32]) -> Result<&'a [i8], Error> {
        self.expect(DType::I32, ids.len())?;
        if !self.int8 {
            return Err(Error::Unsupported {
                op: 0,
                what: "an f32 token model through run_tokens_i8 (call run_tokens)",
            });
        }
        let buf = self.arena(arena)?;
        self.execute_i8(buf, ids)
    }

    fn execute_i8<'a>(&self, buf: &'a mut [u8], ids: &[i32]) -> Result<&'a [i8], Error> {
        for s in &self.steps {
            exec::step_i8(&self.tensors, s, buf, ids)?;
        }
        let out: &'a [u8] = buf;
        out.get(self.output.range())
            .map(bytemuck::cast_slice)
            .ok_or(Error::Inconsistent {
                op: self.model.op_count(),
                what: "output slot",
            })
    }

    fn expect(&self, called: DType, len: usize) -> Result<(), Error> {
        if self.input_dtype != called {
            return Err(Error::InputKind {
                model: self.input_dtype,
                called,
            });
        }
        let expected = self.input_len();
        if len != expected {
            return Err(Error::InputLength { expected, got: len });
        }
        Ok(())
    }

    /// The arena up to the plan's end, checked for size and alignment.
    fn arena<'a>(&self, arena: &'a mut [u8]) -> Result<&'a mut [u8], Error> {
        let needed = self.arena_bytes();
        let got = arena.len();
        let arena = arena
            .get_mut(..needed)
            .ok_or(Error::ArenaTooSmall { needed, got })?;
        if arena.as_ptr().align_offset(ARENA_ALIGN) != 0 {
            return Err(Error::ArenaMisaligned {
                needed,
                align: ARENA_ALIGN,
            });
        }
        Ok(arena)
    }

    fn slot_f32<'a>(&self, buf: &'a mut [u8], s: Span, op: u16) -> Result<&'a mut [f32], Error> {
        buf.get_mut(s.range())
            .and_then(|b| bytemuck::try_cast_slice_mut(b).ok())
            .ok_or(Error::Inconsistent {
                op,
                what: "f32 slot",
            })
    }
}

fn out_f32(buf: &mut [u8], s: Span, op: u16) -> Result<&[f32], Error> {
    let bytes: &[u8] = buf.get(s.range()).ok_or(Error::Inconsistent {
        op,
        what: "output slot",
    })?;
    bytemuck::try_cast_slice(bytes).map_err(|_| Error::Inconsistent {
        op,
        what: "output slot",
    })
}

fn numel(s: Shape) -> usize {
    usize::try_from(s.numel()).unwrap_or(usize::MAX)
}
