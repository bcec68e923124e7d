//! [`Engine`]: prepare once in `new`, then `run` as often as needed with
//! nothing but the arena and the input checked.

use crate::error::Error;
use crate::ops::{self, copy, Weights};
use crate::plan::{self, carve, Kernel, Span, Step, ARENA_ALIGN, MAX_OPS, MAX_TENSORS};
use lasagna_format::{DType, Model, Shape};

/// A prepared model: the parsed file, one step per op and every tensor
/// borrowed in place. It holds no activations; `run` borrows the caller's
/// arena, so one engine can serve any number of arenas (and threads).
#[derive(Clone, Debug)]
pub struct Engine<'m> {
    model: Model<'m>,
    steps: heapless::Vec<Step, MAX_OPS>,
    tensors: heapless::Vec<Weights<'m>, MAX_TENSORS>,
    input: Span,
    output: Span,
    input_dtype: DType,
}

impl<'m> Engine<'m> {
    /// Parses and validates `bytes` (see `lasagna_format::Model::parse`),
    /// then prepares every op: checks that this engine runs it with its
    /// dtypes (f32 activations; f32 or f16 weights), borrows each tensor in
    /// place (the buffer must be 16-byte aligned, see
    /// `lasagna_format::include_model!`), and checks each op's scratch
    /// against [`scratch_bytes`](crate::scratch_bytes).
    pub fn new(bytes: &'m [u8]) -> Result<Engine<'m>, Error> {
        let model = Model::parse(bytes)?;
        let n_ops = model.op_count() as usize;
        if n_ops > MAX_OPS {
            return Err(Error::TooManyOps {
                ops: n_ops,
                max: MAX_OPS,
            });
        }
        let tensors = model.tensor_count() as usize;
        if tensors > MAX_TENSORS {
            return Err(Error::TooManyTensors {
                tensors,
                max: MAX_TENSORS,
            });
        }
        let inconsistent = |what| Error::Inconsistent {
            op: model.op_count(),
            what,
        };
        let input = model.input().ok_or(inconsistent("input value"))?;
        let mut engine = Engine {
            model,
            steps: heapless::Vec::new(),
            tensors: heapless::Vec::new(),
            input: Span {
                start: input.arena_offset as usize / ARENA_ALIGN,
                len: input.bytes as usize / ARENA_ALIGN,
            },
            output: Span::default(),
            input_dtype: input.dtype,
        };
        for e in model.ops() {
            let step = plan::prepare(&model, &e, &mut engine.tensors)?;
            engine.output = step.y;
            engine.steps.push(step).map_err(|_| Error::TooManyOps {
                ops: n_ops,
                max: MAX_OPS,
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

    /// The input's dtype: `F32` (call [`run`](Engine::run)) or `I32` token
    /// ids (call [`run_tokens`](Engine::run_tokens)).
    pub fn input_dtype(&self) -> DType {
        self.input_dtype
    }

    /// Input normalization `(mean, std)` the model was trained with. The
    /// engine does not apply it: pass `(x - mean) / std`.
    pub fn normalization(&self) -> (f32, f32) {
        self.model.normalization()
    }

    /// Runs one sample. `arena` must be at least [`arena_bytes`](Engine::arena_bytes)
    /// long and 4-byte aligned; `input` holds [`input_len`](Engine::input_len)
    /// already-normalized values. Returns the output, which lives in the arena.
    pub fn run<'a>(&self, arena: &'a mut [u8], input: &[f32]) -> Result<&'a [f32], Error> {
        self.expect(DType::F32, input.len())?;
        let buf = self.arena(arena)?;
        let slot = buf.get_mut(self.input.range()).ok_or(Error::Inconsistent {
            op: 0,
            what: "input slot",
        })?;
        copy(input, slot);
        self.execute(buf, &[], &mut |_, _| {})
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
        let slot = buf.get_mut(self.input.range()).ok_or(Error::Inconsistent {
            op: 0,
            what: "input slot",
        })?;
        copy(input, slot);
        observe(0, slot);
        self.execute(buf, &[], observe)
    }

    /// Runs one sequence of token ids through a model whose first op is an
    /// Embedding. The ids are read straight from `ids` (the input's arena
    /// slot is left alone); an id outside the table is
    /// [`Error::TokenOutOfRange`].
    pub fn run_tokens<'a>(&self, arena: &'a mut [u8], ids: &[i32]) -> Result<&'a [f32], Error> {
        self.expect(DType::I32, ids.len())?;
        let buf = self.arena(arena)?;
        self.execute(buf, ids, &mut |_, _| {})
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

    /// The arena as `f32`s, up to the plan's last whole element.
    fn arena<'a>(&self, arena: &'a mut [u8]) -> Result<&'a mut [f32], Error> {
        let needed = self.arena_bytes();
        let got = arena.len();
        let bytes = arena
            .get_mut(..needed - needed % ARENA_ALIGN)
            .ok_or(Error::ArenaTooSmall { needed, got })?;
        bytemuck::try_cast_slice_mut(bytes).map_err(|_| Error::ArenaMisaligned {
            needed,
            align: ARENA_ALIGN,
        })
    }

    fn execute<'a>(
        &self,
        buf: &'a mut [f32],
        ids: &[i32],
        observe: &mut dyn FnMut(usize, &[f32]),
    ) -> Result<&'a [f32], Error> {
        for s in &self.steps {
            self.step(s, buf, ids)?;
            if let Some(y) = buf.get(s.y.range()) {
                observe(usize::from(s.index) + 1, y);
            }
        }
        let buf: &'a [f32] = buf;
        buf.get(self.output.range()).ok_or(Error::Inconsistent {
            op: self.model.op_count(),
            what: "output slot",
        })
    }

    fn step(&self, s: &Step, buf: &mut [f32], ids: &[i32]) -> Result<(), Error> {
        let bad = |what| Error::Inconsistent { op: s.index, what };
        let t = self
            .tensors
            .get(s.first..s.first.saturating_add(s.count))
            .ok_or(bad("tensor table"))?;
        if s.x == s.y {
            // In place: the format allows it only for element-wise and
            // normalization ops, with identical regions.
            let [xy] = carve(buf, [s.y]).ok_or(bad("arena regions"))?;
            return in_place(&s.kernel, xy, t).ok_or(bad("op cannot run in place"));
        }
        let [x, y, scratch] = carve(buf, [s.x, s.y, s.scratch]).ok_or(bad("arena regions"))?;
        let missing = bad("tensor count");
        match s.kernel {
            Kernel::Linear(p) => {
                let (w, b) = weight_bias(t).ok_or(missing)?;
                ops::linear::forward(&p, x, w, b, y);
            }
            Kernel::Conv2d(p) => {
                let (w, b) = weight_bias(t).ok_or(missing)?;
                ops::conv2d::forward(&p, x, w, b, y);
            }
            Kernel::MaxPool2d(p) => ops::maxpool2d::forward(&p, x, y),
            Kernel::AvgPool2d(p, include_pad) => ops::avgpool2d::forward(&p, include_pad, x, y),
            Kernel::AdaptiveAvgPool2d(p) => ops::avgpool2d::adaptive_forward(&p, x, y),
            Kernel::Embedding { num, dim } => {
                let &[table] = t else {
                    return Err(missing);
                };
                ops::embedding::forward(ids, table, num, dim, y).map_err(|b| {
                    Error::TokenOutOfRange {
                        position: b.position,
                        id: b.id,
                        num,
                    }
                })?;
            }
            Kernel::Lstm(p) => {
                ops::lstm::forward(&p, x, t, scratch, y).ok_or(bad("LSTM scratch"))?
            }
            // Ops that may run in place run the same code out of place on a
            // copy, so both plans give bit-identical results.
            _ => {
                copy(x, y);
                in_place(&s.kernel, y, t).ok_or(bad("op cannot run in place"))?;
            }
        }
        Ok(())
    }
}

/// Runs an element-wise or normalization kernel over `xy`; `None` for a
/// kernel that cannot run in place or whose tensors are missing.
fn in_place(k: &Kernel, xy: &mut [f32], t: &[Weights<'_>]) -> Option<()> {
    match *k {
        Kernel::Flatten => {}
        Kernel::Activation(a) => ops::activation::forward_in_place(a, xy),
        Kernel::Softmax { cols } => ops::softmax::forward_in_place(cols, xy),
        Kernel::LayerNorm { cols, eps } => {
            let &[w, b] = t else { return None };
            ops::layernorm::forward_in_place(cols, eps, xy, w, b);
        }
        Kernel::BatchNorm(p) => {
            let &[w, b, m, v] = t else { return None };
            ops::batchnorm::forward_in_place(&p, xy, w, b, m, v);
        }
        _ => return None,
    }
    Some(())
}

fn weight_bias<'m>(t: &[Weights<'m>]) -> Option<(Weights<'m>, Option<Weights<'m>>)> {
    match *t {
        [w] => Some((w, None)),
        [w, b] => Some((w, Some(b))),
        _ => None,
    }
}

fn numel(s: Shape) -> usize {
    usize::try_from(s.numel()).unwrap_or(usize::MAX)
}
