//! One prepared step, run: carve the step's regions out of the arena, view
//! them as `f32` or `i8`, and call the op's kernel. Nothing here validates
//! the model (prepare did); a `None` from carving or casting means an
//! engine bug and becomes [`Error::Inconsistent`].
//!
//! A step sees only what it runs on: the engine's tensor table (each step
//! names its own range of it) and the arena. It does not know the engine,
//! so the engine can own the plan without the two modules naming each other.

use crate::error::Error;
use crate::ops::{self, copy, Weights};
use crate::plan::{carve, Kernel, Step};
use crate::quant::{QParams, Rescale};
use lasagna_format::WeightLayout;

/// The step's own tensors out of the engine's whole `table`.
fn tensors<'t, 'm>(table: &'t [Weights<'m>], s: &Step) -> Result<&'t [Weights<'m>], Error> {
    table
        .get(s.first..s.first.saturating_add(s.count))
        .ok_or(Error::Inconsistent {
            op: s.index,
            what: "tensor table",
        })
}

/// A region as `f32`s or `u32` words. An empty region (no scratch) comes
/// from `carve` with a dangling, unaligned pointer, which bytemuck would
/// refuse.
fn view<T: bytemuck::Pod>(b: &mut [u8]) -> Option<&mut [T]> {
    if b.is_empty() {
        return Some(&mut []);
    }
    bytemuck::try_cast_slice_mut(b).ok()
}

/// Runs an f32 step over the byte arena `buf`, its tensors taken from
/// `table` (the engine's tensor table).
pub(crate) fn step_f32(
    table: &[Weights<'_>],
    s: &Step,
    buf: &mut [u8],
    ids: &[i32],
) -> Result<(), Error> {
    let bad = |what| Error::Inconsistent { op: s.index, what };
    let t = tensors(table, s)?;
    if s.x == s.y {
        // In place: the format allows it only for element-wise and
        // normalization ops, with identical regions.
        let [xy] = carve(buf, [s.y]).ok_or(bad("arena regions"))?;
        let xy = view::<f32>(xy).ok_or(bad("f32 region"))?;
        return in_place_f32(&s.kernel, xy, t).ok_or(bad("op cannot run in place"));
    }
    let [x, y, scratch] = carve(buf, [s.x, s.y, s.scratch]).ok_or(bad("arena regions"))?;
    let (Some(x), Some(y), Some(scratch)) = (view::<f32>(x), view::<f32>(y), view::<f32>(scratch))
    else {
        return Err(bad("f32 region"));
    };
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
        Kernel::Lstm(p, _) => {
            ops::lstm::forward(&p, x, t, scratch, y).ok_or(bad("LSTM scratch"))?
        }
        // Ops that may run in place run the same code out of place on a
        // copy, so both plans give bit-identical results.
        _ => {
            copy(x, y);
            in_place_f32(&s.kernel, y, t).ok_or(bad("op cannot run in place"))?;
        }
    }
    Ok(())
}

/// Runs an element-wise or normalization kernel over `xy`; `None` for a
/// kernel that cannot run in place or whose tensors are missing.
fn in_place_f32(k: &Kernel, xy: &mut [f32], t: &[Weights<'_>]) -> Option<()> {
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

/// Runs an int8 step over the byte arena `buf`, its tensors taken from
/// `table` (the engine's tensor table); an Embedding reads `ids`.
pub(crate) fn step_i8(
    table: &[Weights<'_>],
    s: &Step,
    buf: &mut [u8],
    ids: &[i32],
) -> Result<(), Error> {
    let bad = |what| Error::Inconsistent { op: s.index, what };
    let t = tensors(table, s)?;
    if s.x == s.y {
        let [xy] = carve(buf, [s.y]).ok_or(bad("arena regions"))?;
        let xy: &mut [i8] = bytemuck::cast_slice_mut(xy);
        return in_place_i8(&s.kernel, s.q, xy, t).ok_or(bad("op cannot run in place"));
    }
    let [x, y, scratch] = carve(buf, [s.x, s.y, s.scratch]).ok_or(bad("arena regions"))?;
    let (x, y): (&mut [i8], &mut [i8]) = (bytemuck::cast_slice_mut(x), bytemuck::cast_slice_mut(y));
    let missing = bad("tensor count");
    match s.kernel {
        Kernel::Linear(p) => {
            let (w, scale, b) = weight_bias_i8(t).ok_or(missing)?;
            let words = view::<u32>(scratch).ok_or(bad("u32 region"))?;
            match p.layout {
                WeightLayout::RowMajor => {
                    ops::linear::forward_i8(&p, s.q, x, w, scale, b, words, y)
                }
                WeightLayout::Interleaved4 => {
                    ops::linear_interleaved::forward_i8(&p, s.q, x, w, scale, b, words, y)
                }
            }
        }
        Kernel::Conv2d(p) => {
            let (w, scale, b) = weight_bias_i8(t).ok_or(missing)?;
            let words = view::<u32>(scratch).ok_or(bad("u32 region"))?;
            #[cfg(all(feature = "arm-dsp", target_arch = "arm"))]
            ops::conv2d_dsp::forward_i8(&p, s.q, x, w, scale, b, words, y);
            #[cfg(not(all(feature = "arm-dsp", target_arch = "arm")))]
            ops::conv2d::forward_i8(&p, s.q, x, w, scale, b, words, y);
        }
        Kernel::MaxPool2d(p) => ops::maxpool2d::forward_i8(&p, x, y, Rescale::new(s.q.0, s.q.1)),
        Kernel::AvgPool2d(p, include_pad) => ops::avgpool2d::forward_i8(&p, include_pad, s.q, x, y),
        Kernel::AdaptiveAvgPool2d(p) => ops::avgpool2d::adaptive_forward_i8(&p, s.q, x, y),
        Kernel::Embedding { num, dim } => {
            let &[Weights::I8(w, scale)] = t else {
                return Err(missing);
            };
            ops::embedding::forward_i8(ids, w, scale, s.q.1, dim, y).map_err(|b| {
                Error::TokenOutOfRange {
                    position: b.position,
                    id: b.id,
                    num,
                }
            })?;
        }
        Kernel::Lstm(p, cell_shift) => {
            // i16 cell states and gates first (the span is 4-aligned), then
            // the i8 hidden states: see ops::lstm_i8::scratch_bytes.
            let n16 = ops::lstm_i8::scratch_i16(p.hidden, p.layers).ok_or(bad("LSTM scratch"))?;
            let (a, b) = scratch
                .split_at_mut_checked(n16.saturating_mul(2))
                .ok_or(bad("LSTM scratch"))?;
            let s16 = view::<i16>(a).ok_or(bad("i16 region"))?;
            let s8: &mut [i8] = bytemuck::cast_slice_mut(b);
            ops::lstm_i8::forward_i8(&p, cell_shift, s.q, x, t, s16, s8, y)
                .ok_or(bad("LSTM scratch"))?;
        }
        // Element-wise and normalization ops: on a copy, as in f32.
        _ => {
            copy(x, y);
            in_place_i8(&s.kernel, s.q, y, t).ok_or(bad("op cannot run in place"))?;
        }
    }
    Ok(())
}

/// The int8 form of [`in_place_f32`]; `q` is the input's and the output's
/// quantization.
fn in_place_i8(k: &Kernel, q: (QParams, QParams), xy: &mut [i8], t: &[Weights<'_>]) -> Option<()> {
    match *k {
        Kernel::Flatten => {
            if let Some(r) = Rescale::new(q.0, q.1) {
                xy.iter_mut().for_each(|v| *v = r.apply(*v));
            }
        }
        Kernel::Activation(a) => ops::activation::forward_in_place_i8(a, q, xy),
        Kernel::Softmax { cols } => ops::softmax::forward_in_place_i8(cols, q, xy),
        Kernel::LayerNorm { cols, eps } => {
            let &[w, b] = t else { return None };
            ops::layernorm::forward_in_place_i8(cols, eps, q, xy, w, b);
        }
        Kernel::BatchNorm(p) => {
            let &[w, b, m, v] = t else { return None };
            ops::batchnorm::forward_in_place_i8(&p, q, xy, [w, b, m, v]);
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

type I8Tensors<'m> = (&'m [i8], crate::ops::WeightScale<'m>, Option<&'m [i32]>);

fn weight_bias_i8<'m>(t: &[Weights<'m>]) -> Option<I8Tensors<'m>> {
    match *t {
        [Weights::I8(w, s)] => Some((w, s, None)),
        [Weights::I8(w, s), Weights::I32(b)] => Some((w, s, Some(b))),
        _ => None,
    }
}
