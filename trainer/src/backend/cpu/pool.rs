//! Pooling glue for the CPU backend: checks the geometry and buffer lengths
//! once per call, then hands slices to `maxpool2d.rs` and `avgpool2d.rs`.

use super::{avgpool2d, maxpool2d, Cpu};
use crate::backend::{need, Pool2dDims, PoolOps, ReluGate};
use crate::error::{Error, Result};

fn fail(reason: String) -> Error {
    Error::Backend {
        backend: "cpu".into(),
        reason,
    }
}

/// The geometry is self-consistent and a plane's positions fit `argmax`'s `u32`.
fn check_dims(op: &str, d: &Pool2dDims) -> Result<()> {
    d.check()
        .map_err(|e| fail(format!("{op}: inconsistent dims {d:?}: {e}")))?;
    if u32::try_from(d.h * d.w).is_err() {
        return Err(fail(format!(
            "{op}: a {}x{} plane has more positions than u32 indices reach",
            d.h, d.w
        )));
    }
    Ok(())
}

/// Adaptive pooling needs at least one input and one output position per
/// axis (PyTorch refuses empty inputs too; an empty bin would divide by zero).
fn check_adaptive(op: &str, h: usize, w: usize, oh: usize, ow: usize) -> Result<()> {
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        return Err(fail(format!(
            "{op}: input {h}x{w} and output {oh}x{ow} must all be at least 1"
        )));
    }
    Ok(())
}

impl PoolOps for Cpu {
    fn maxpool2d_forward(
        &self,
        d: Pool2dDims,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
        argmax: &mut Vec<u32>,
    ) -> Result<()> {
        check_dims("maxpool2d_forward", &d)?;
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "maxpool2d_forward x", ni, &[x.len()])?;
        need(self, "maxpool2d_forward y", no, &[y.len(), argmax.len()])?;
        maxpool2d::forward(&d, &x[..ni], &mut y[..no], &mut argmax[..no]);
        Ok(())
    }

    fn maxpool2d_backward(
        &self,
        d: Pool2dDims,
        dy: &Vec<f32>,
        argmax: &Vec<u32>,
        relu: Option<ReluGate<'_, Vec<f32>>>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        check_dims("maxpool2d_backward", &d)?;
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "maxpool2d_backward dy", no, &[dy.len(), argmax.len()])?;
        need(self, "maxpool2d_backward dx", ni, &[dx.len()])?;
        if let Some(g) = &relu {
            need(self, "maxpool2d_backward relu x", ni, &[g.x.len()])?;
        }
        let gate = relu.map(|g| (&g.x[..ni], g.scale));
        maxpool2d::backward_gated(&d, &dy[..no], &argmax[..no], gate, &mut dx[..ni]).map_err(
            |i| {
                fail(format!(
                    "maxpool2d_backward: argmax {i} outside a {}x{} plane (was forward run on this batch?)",
                    d.h, d.w
                ))
            },
        )
    }

    fn avgpool2d_forward(
        &self,
        d: Pool2dDims,
        count_include_pad: bool,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        check_dims("avgpool2d_forward", &d)?;
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "avgpool2d_forward x", ni, &[x.len()])?;
        need(self, "avgpool2d_forward y", no, &[y.len()])?;
        avgpool2d::forward(&d, count_include_pad, &x[..ni], &mut y[..no]);
        Ok(())
    }

    fn avgpool2d_backward(
        &self,
        d: Pool2dDims,
        count_include_pad: bool,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        check_dims("avgpool2d_backward", &d)?;
        let (ni, no) = (d.in_len(), d.out_len());
        need(self, "avgpool2d_backward dy", no, &[dy.len()])?;
        need(self, "avgpool2d_backward dx", ni, &[dx.len()])?;
        avgpool2d::backward(&d, count_include_pad, &dy[..no], &mut dx[..ni]);
        Ok(())
    }

    fn adaptive_avgpool2d_forward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        x: &Vec<f32>,
        y: &mut Vec<f32>,
    ) -> Result<()> {
        check_adaptive("adaptive_avgpool2d_forward", h, w, oh, ow)?;
        let (ni, no) = (n * c * h * w, n * c * oh * ow);
        need(self, "adaptive_avgpool2d_forward x", ni, &[x.len()])?;
        need(self, "adaptive_avgpool2d_forward y", no, &[y.len()])?;
        avgpool2d::adaptive_forward(h, w, oh, ow, &x[..ni], &mut y[..no]);
        Ok(())
    }

    fn adaptive_avgpool2d_backward(
        &self,
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
    ) -> Result<()> {
        check_adaptive("adaptive_avgpool2d_backward", h, w, oh, ow)?;
        let (ni, no) = (n * c * h * w, n * c * oh * ow);
        need(self, "adaptive_avgpool2d_backward dy", no, &[dy.len()])?;
        need(self, "adaptive_avgpool2d_backward dx", ni, &[dx.len()])?;
        avgpool2d::adaptive_backward(h, w, oh, ow, &dy[..no], &mut dx[..ni]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_and_inconsistent_dims_are_errors_not_panics() -> Result<()> {
        let d = Pool2dDims::new(2, 1, (4, 4), (2, 2), (2, 2), (0, 0))?;
        let (x, mut y, mut a) = (vec![0.0; 32], vec![0.0; 8], vec![0u32; 8]);
        Cpu.maxpool2d_forward(d, &x, &mut y, &mut a)?;
        assert!(Cpu
            .maxpool2d_forward(d, &x[..31].to_vec(), &mut y, &mut a)
            .is_err());
        assert!(Cpu
            .maxpool2d_forward(d, &x, &mut y, &mut vec![0u32; 7])
            .is_err());
        let bad = Pool2dDims { oh: 3, ..d };
        assert!(Cpu.avgpool2d_forward(bad, true, &x, &mut y).is_err());
        assert!(Cpu
            .adaptive_avgpool2d_forward(2, 1, 4, 4, 0, 2, &x, &mut y)
            .is_err());
        let mut dx = vec![0.0; 32];
        assert!(Cpu
            .maxpool2d_backward(d, &y, &vec![16u32; 8], None, &mut dx)
            .is_err());
        Ok(())
    }

    /// The absorbed backward (`ReluGate`) against the three separate ops it
    /// replaces, MaxPool2d's, Dropout's and ReLU's backward, in that order,
    /// bit for bit; with and without the Dropout, on overlapping windows and
    /// pre-ReLU values with signed zeros, a NaN and infinities.
    #[test]
    fn an_absorbed_relu_and_dropout_backward_is_bit_identical_to_the_separate_ops() -> Result<()> {
        use crate::backend::{Act, ActivationOps, ReluGate};
        let d = Pool2dDims::new(2, 3, (5, 6), (3, 2), (1, 2), (1, 1))?;
        let (ni, no) = (d.in_len(), d.out_len());
        let mut z: Vec<f32> = (0..ni).map(|i| (i as f32 * 0.61).sin() * 2.0).collect();
        z[..4].copy_from_slice(&[0.0, -0.0, f32::NAN, f32::INFINITY]);
        z[20] = f32::NEG_INFINITY;
        let dy: Vec<f32> = (0..no).map(|i| (i as f32 * 0.37).cos() * 3.0).collect();
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for p in [None, Some(0.3f32)] {
            // Forward: ReLU, maybe Dropout, then the pool over their output.
            let mut r = vec![0.0; ni];
            Cpu.act_forward(Act::Relu, &z, &mut r, ni)?;
            let x = match p {
                Some(p) => {
                    let mut x = vec![0.0; ni];
                    Cpu.dropout_forward(p, 5, 9, 1, &r, &mut x, ni)?;
                    x
                }
                None => r,
            };
            let (mut y, mut a) = (vec![0.0; no], vec![0u32; no]);
            Cpu.maxpool2d_forward(d, &x, &mut y, &mut a)?;
            // Separate: the pool's backward, Dropout's, then ReLU's (on its input z).
            let mut g = vec![0.0; ni];
            Cpu.maxpool2d_backward(d, &dy, &a, None, &mut g)?;
            if let Some(p) = p {
                let mut t = vec![0.0; ni];
                Cpu.dropout_backward(p, 5, 9, 1, &g, &mut t, ni)?;
                g = t;
            }
            let mut want = vec![0.0; ni];
            Cpu.act_backward(Act::Relu, &z, &g, &mut want, ni)?;
            let scale = p.map_or(1.0, |p| 1.0 / (1.0 - p));
            let mut got = vec![f32::NAN; ni];
            let gate = Some(ReluGate { x: &x, scale });
            Cpu.maxpool2d_backward(d, &dy, &a, gate, &mut got)?;
            // Not vacuous: gradients pass somewhere and the gate cut some
            // winners (a NaN, zeros, negatives or dropped elements won windows).
            let passed = want.iter().filter(|&&v| v != 0.0).count();
            let routed = g.iter().filter(|&&v| v != 0.0).count();
            assert!(passed >= 4 && routed > passed, "{passed} of {routed}");
            assert_eq!(bits(&got), bits(&want), "dropout {p:?}");
        }
        Ok(())
    }
}
