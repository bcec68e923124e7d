//! Optimizer updates and gradient clipping on the GPU (`optim.ptx`,
//! `reduce.ptx`, `clip.ptx`). The clipping norm stays on the device: the
//! sum of squares is reduced into a device scalar that `clip_by_norm` reads.

use lasagna_kernels::clip::{clip_launch, CLIP_BY_NORM};
use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::gather::step_table::ADAM as STEP_TABLE_ADAM;
use lasagna_kernels::optim::{self as ko, adam_multi_launch, optim_launch, AdamScalars};
use lasagna_kernels::reduce::{self as kr, reduce_launch};

use super::{u64_arg, Gpu};
use crate::backend::{need, AdamStep, AdamTensor, OptimOps, SgdStep};
use crate::error::Result;

impl<D: Device + Send + 'static> OptimOps for Gpu<D> {
    fn sgd_step(
        &self,
        h: &SgdStep,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        mom: &mut Self::Buf,
        n: usize,
    ) -> Result<()> {
        need(self, "sgd_step", n, &[param.len, grad.len])?;
        // No momentum: no buffer (the CPU's is empty too).
        let mom = if h.momentum != 0.0 {
            need(self, "sgd_step momentum", n, &[mom.len])?;
            mom.arg()
        } else {
            Arg::U64(0)
        };
        let args = [
            param.arg(),
            grad.arg(),
            mom,
            u64_arg(n),
            Arg::F32(h.lr),
            Arg::F32(h.momentum),
            Arg::F32(h.dampening),
            Arg::F32(h.weight_decay),
            Arg::U32(h.nesterov.into()),
            Arg::U32(h.first.into()),
        ];
        self.launch(&ko::SGD_STEP, optim_launch(n), &args)
    }
    fn adam_step(
        &self,
        h: &AdamStep,
        param: &mut Self::Buf,
        grad: &Self::Buf,
        m: &mut Self::Buf,
        v: &mut Self::Buf,
        n: usize,
    ) -> Result<()> {
        need(self, "adam_step", n, &[param.len, grad.len, m.len, v.len])?;
        if self.captured()?.is_some() {
            // A captured step reads its scalars from the step table, which
            // only the multi-tensor kernel can.
            let mut t = [AdamTensor {
                param,
                grad,
                m,
                v,
                n,
            }];
            return self.adam_step_many(h, &mut t);
        }
        let s = AdamScalars::new(h.lr, h.beta1, h.beta2, h.weight_decay, h.step);
        let args = [param.arg(), grad.arg(), m.arg(), v.arg(), u64_arg(n)]
            .into_iter()
            .chain(adam_scalar_args(h, &s))
            .collect::<Vec<_>>();
        self.launch(&ko::ADAM_STEP, optim_launch(n), &args)
    }
    /// `adam_step_multi`: up to `MULTI_SLOTS` (16) tensors per launch (one
    /// launch per step for the MLP and CNN presets), the same loop as
    /// `adam_step`, so the results are bit-identical to the per-tensor path
    /// and to the CPU. In a captured step the bias corrections come from the
    /// step table's current row (the values given must be row 0's).
    fn adam_step_many(
        &self,
        h: &AdamStep,
        tensors: &mut [AdamTensor<'_, Self::Buf>],
    ) -> Result<()> {
        let s = AdamScalars::new(h.lr, h.beta1, h.beta2, h.weight_decay, h.step);
        let scalars = match self.captured()? {
            None => Arg::U64(0),
            Some(c) if c.row.adam == Some(s) => c.current(STEP_TABLE_ADAM),
            Some(c) => {
                return Err(self.fail(
                    "adam_step in a step capture",
                    format!(
                        "step {}'s scalars {s:?} are not the step table's row 0 ({:?})",
                        h.step, c.row.adam
                    ),
                ))
            }
        };
        for chunk in tensors.chunks(ko::MULTI_SLOTS) {
            let mut args = adam_scalar_args(h, &s).to_vec();
            args.push(scalars);
            // chunks() of MULTI_SLOTS (16): the count always fits.
            args.push(Arg::U32(chunk.len() as u32));
            let mut lens = Vec::with_capacity(chunk.len());
            for t in chunk {
                need(
                    self,
                    "adam_step",
                    t.n,
                    &[t.param.len, t.grad.len, t.m.len, t.v.len],
                )?;
                args.extend([
                    t.param.arg(),
                    t.grad.arg(),
                    t.m.arg(),
                    t.v.arg(),
                    u64_arg(t.n),
                ]);
                lens.push(t.n);
            }
            for _ in chunk.len()..ko::MULTI_SLOTS {
                args.extend([
                    Arg::U64(0),
                    Arg::U64(0),
                    Arg::U64(0),
                    Arg::U64(0),
                    Arg::U64(0),
                ]);
            }
            self.launch(&ko::ADAM_STEP_MULTI, adam_multi_launch(&lens), &args)?;
        }
        Ok(())
    }
    fn sum_squares(&self, x: &Self::Buf, n: usize, out: &mut Self::Buf) -> Result<()> {
        need(self, "sum_squares", n, &[x.len])?;
        need(self, "sum_squares out", 1, &[out.len])?;
        let args = [x.arg(), out.arg(), u64_arg(n)];
        self.launch(&kr::REDUCE_SUM_SQUARES, reduce_launch(n), &args)
    }
    fn clip_by_norm(
        &self,
        x: &mut Self::Buf,
        n: usize,
        sumsq: &Self::Buf,
        max_norm: f32,
    ) -> Result<()> {
        need(self, "clip_by_norm", n, &[x.len])?;
        need(self, "clip_by_norm sumsq", 1, &[sumsq.len])?;
        let args = [x.arg(), sumsq.arg(), u64_arg(n), Arg::F32(max_norm)];
        self.launch(&CLIP_BY_NORM, clip_launch(n), &args)
    }
}

/// The scalar parameters `adam_step` and `adam_step_multi` share, in the
/// order both kernels declare them (after the tensors in `adam_step`, first
/// in `adam_step_multi`, followed there by `scalars`).
fn adam_scalar_args<B>(h: &AdamStep, s: &AdamScalars) -> [Arg<B>; 8] {
    [
        Arg::F32(h.beta1),
        Arg::F32(h.beta2),
        Arg::F32(s.step_size),
        Arg::F32(s.bc2_sqrt),
        Arg::F32(h.eps),
        Arg::F32(h.weight_decay),
        Arg::F32(s.decay),
        Arg::U32(h.decoupled.into()),
    ]
}
