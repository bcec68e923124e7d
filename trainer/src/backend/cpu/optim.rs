//! `OptimOps` for the CPU: length checks, then the slices go to `sgd.rs`,
//! `adam.rs` and `clip.rs`.

use super::{adam, clip, sgd, Cpu};
use crate::backend::{need, AdamStep, OptimOps, SgdStep};
use crate::error::Result;

impl OptimOps for Cpu {
    fn sgd_step(
        &self,
        h: &SgdStep,
        param: &mut Vec<f32>,
        grad: &Vec<f32>,
        mom: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need(self, "sgd_step", n, &[param.len(), grad.len()])?;
        if h.momentum != 0.0 {
            need(self, "sgd_step momentum", n, &[mom.len()])?;
        }
        let mom_slice: &mut [f32] = if h.momentum != 0.0 {
            &mut mom[..n]
        } else {
            &mut []
        };
        sgd::step(h, &mut param[..n], &grad[..n], mom_slice);
        Ok(())
    }
    fn adam_step(
        &self,
        h: &AdamStep,
        param: &mut Vec<f32>,
        grad: &Vec<f32>,
        m: &mut Vec<f32>,
        v: &mut Vec<f32>,
        n: usize,
    ) -> Result<()> {
        need(
            self,
            "adam_step",
            n,
            &[param.len(), grad.len(), m.len(), v.len()],
        )?;
        adam::step_parts(h, &mut param[..n], &grad[..n], &mut m[..n], &mut v[..n]);
        Ok(())
    }
    fn sum_squares(&self, x: &Vec<f32>, n: usize, out: &mut Vec<f32>) -> Result<()> {
        need(self, "sum_squares", n, &[x.len()])?;
        need(self, "sum_squares out", 1, &[out.len()])?;
        out[0] += clip::sum_squares(&x[..n]) as f32;
        Ok(())
    }
    fn clip_by_norm(
        &self,
        x: &mut Vec<f32>,
        n: usize,
        sumsq: &Vec<f32>,
        max_norm: f32,
    ) -> Result<()> {
        need(self, "clip_by_norm", n, &[x.len()])?;
        need(self, "clip_by_norm sumsq", 1, &[sumsq.len()])?;
        clip::scale_to_norm(&mut x[..n], sumsq[0], max_norm);
        Ok(())
    }
}
