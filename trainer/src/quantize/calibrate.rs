//! Calibration: the range of every value of a folded f32 model over sample
//! inputs, observed in `lasagna-infer` itself so that the ranges belong to
//! exactly the graph (folded BatchNorm, in-place ops) that is quantized.

use super::scheme::Range;
use crate::error::{Error, Result};
use lasagna_format::AlignedModel;
use rayon::prelude::*;

/// Runs every sample of `samples` (inputs of the model's `input_len`,
/// back to back, already normalized) through the f32 model file `model`
/// and returns the range of every value, input first. Samples are split
/// across threads; min and max do not depend on the order, so the result
/// is the same on any number of threads. A model whose input is token ids
/// (an Embedding first) takes them as `f32` whole numbers, as the trainer
/// stores them; its input value's range stays empty. A NaN or infinity in any value is
/// an error naming the value.
pub fn calibrate(model: &[u8], samples: &[f32]) -> Result<Vec<Range>> {
    // The engine borrows weights in place, which needs an aligned buffer.
    let model = AlignedModel::new(model);
    let engine_err = |e: lasagna_infer::Error| {
        Error::config(
            "int8 calibration",
            format!("the no_std engine cannot run the folded f32 model: {e}"),
        )
    };
    let engine = lasagna_infer::Engine::new(&model).map_err(engine_err)?;
    let per = engine.input_len();
    if per == 0 || samples.is_empty() || !samples.len().is_multiple_of(per) {
        return Err(Error::config(
            "int8 calibration",
            format!(
                "{} values are not a whole number (at least 1) of model inputs of {per} values",
                samples.len()
            ),
        ));
    }
    let values = usize::from(engine.model().op_count()) + 1;
    let tokens = engine.input_dtype() == lasagna_format::DType::I32;
    let n = samples.len() / per;
    let chunk = n.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let parts = samples
        .par_chunks(chunk * per)
        .map(|part| {
            let mut arena = vec![0u32; engine.arena_bytes().div_ceil(4)];
            let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut arena);
            let mut ranges = vec![Range::EMPTY; values];
            let mut non_finite: Option<usize> = None;
            for x in part.chunks(per) {
                let mut observe = |v: usize, data: &[f32]| {
                    let finite = ranges.get_mut(v).is_none_or(|r| r.observe(data));
                    if !finite && non_finite.is_none_or(|w| v < w) {
                        non_finite = Some(v);
                    }
                };
                // A token model's samples are ids (whole numbers stored as f32).
                let run = if tokens {
                    let ids: Vec<i32> = x.iter().map(|&v| v as i32).collect();
                    engine.run_tokens_observed(arena, &ids, &mut observe)
                } else {
                    engine.run_observed(arena, x, &mut observe)
                };
                run.map_err(engine_err)?;
            }
            Ok((ranges, non_finite))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(v) = parts.iter().filter_map(|p| p.1).min() {
        let what = match v.checked_sub(1).and_then(|i| engine.model().op(i as u16)) {
            Some(e) => format!("the output of op {} ({})", e.index, e.op.kind()),
            None => "the input".into(),
        };
        return Err(Error::config(
            "int8 calibration",
            format!(
                "{what} (value {v}) became NaN or infinite on a calibration image; \
                 int8 cannot represent it. HINT: check the trained model with `lasagna eval`"
            ),
        ));
    }
    let mut ranges = vec![Range::EMPTY; values];
    for (part, _) in parts {
        for (r, p) in ranges.iter_mut().zip(part) {
            *r = r.union(p);
        }
    }
    Ok(ranges)
}
