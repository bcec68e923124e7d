//! `ConvOps` for the CPU: the geometry and buffer lengths are checked once
//! per call, then the slices go to `conv2d.rs`.

use super::conv2d::{self, scratch_len};
use super::Cpu;
use crate::backend::{need, Conv2dDims, ConvOps};
use crate::error::{Error, Result};

/// Element counts of `d`'s buffers, which has passed `check`.
struct Lens {
    x: usize,
    y: usize,
    weight: usize,
    scratch: usize,
}

fn lens(d: &Conv2dDims) -> Result<Lens> {
    let overflow = || Error::Backend {
        backend: "cpu".into(),
        reason: format!("conv2d: buffers of {d:?} overflow usize"),
    };
    match (d.x_len(), d.y_len(), d.weight_len(), scratch_len(d)) {
        (Some(x), Some(y), Some(weight), Some(scratch)) => Ok(Lens {
            x,
            y,
            weight,
            scratch,
        }),
        _ => Err(overflow()),
    }
}

impl ConvOps for Cpu {
    fn conv2d_scratch_len(&self, d: &Conv2dDims) -> usize {
        scratch_len(d).unwrap_or(usize::MAX)
    }

    fn conv2d_forward(
        &self,
        d: &Conv2dDims,
        x: &Vec<f32>,
        weight: &Vec<f32>,
        bias: Option<&Vec<f32>>,
        y: &mut Vec<f32>,
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        d.check()?;
        let l = lens(d)?;
        need(self, "conv2d_forward x", l.x, &[x.len()])?;
        need(self, "conv2d_forward weight", l.weight, &[weight.len()])?;
        need(self, "conv2d_forward y", l.y, &[y.len()])?;
        need(self, "conv2d_forward scratch", l.scratch, &[scratch.len()])?;
        if let Some(b) = bias {
            need(self, "conv2d_forward bias", d.c_out, &[b.len()])?;
        }
        conv2d::forward(
            d,
            &x[..l.x],
            &weight[..l.weight],
            bias.map(|b| &b[..d.c_out]),
            &mut y[..l.y],
            &mut scratch[..l.scratch],
        );
        Ok(())
    }

    fn conv2d_backward(
        &self,
        d: &Conv2dDims,
        x: &Vec<f32>,
        weight: &Vec<f32>,
        dy: &Vec<f32>,
        dx: Option<&mut Vec<f32>>,
        dweight: &mut Vec<f32>,
        dbias: Option<&mut Vec<f32>>,
        scratch: &mut Vec<f32>,
    ) -> Result<()> {
        d.check()?;
        let l = lens(d)?;
        need(self, "conv2d_backward x", l.x, &[x.len()])?;
        need(
            self,
            "conv2d_backward weight",
            l.weight,
            &[weight.len(), dweight.len()],
        )?;
        need(self, "conv2d_backward dy", l.y, &[dy.len()])?;
        need(self, "conv2d_backward scratch", l.scratch, &[scratch.len()])?;
        if let Some(dx) = &dx {
            need(self, "conv2d_backward dx", l.x, &[dx.len()])?;
        }
        if let Some(db) = &dbias {
            need(self, "conv2d_backward dbias", d.c_out, &[db.len()])?;
        }
        conv2d::backward(
            d,
            &x[..l.x],
            &weight[..l.weight],
            &dy[..l.y],
            dx.map(|v| &mut v[..l.x]),
            &mut dweight[..l.weight],
            dbias.map(|v| &mut v[..d.c_out]),
            &mut scratch[..l.scratch],
        );
        Ok(())
    }
}
