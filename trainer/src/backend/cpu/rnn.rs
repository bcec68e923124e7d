//! `RnnOps` for the CPU: the step and the buffer lengths are checked once
//! per call, then the slices go to `lstm.rs`.

use super::lstm::{cell_backward, cell_forward};
use super::Cpu;
use crate::backend::{need, LstmStep, RnnOps};
use crate::error::{Error, Result};

/// Checks `t < steps`, a caller bug that slicing alone would not catch.
fn check_step(op: &str, d: LstmStep) -> Result<()> {
    if d.t < d.steps {
        return Ok(());
    }
    Err(Error::Backend {
        backend: "cpu".into(),
        reason: format!("{op}: step {} of a {}-step sequence", d.t, d.steps),
    })
}

impl RnnOps for Cpu {
    fn lstm_cell_forward(
        &self,
        d: LstmStep,
        rec: Option<&Vec<f32>>,
        gates: &mut Vec<f32>,
        c: &mut Vec<f32>,
        h_seq: Option<&mut Vec<f32>>,
        h: &mut Vec<f32>,
    ) -> Result<()> {
        check_step("lstm_cell_forward", d)?;
        let (seq, step) = (d.n * d.steps * d.hidden, d.n * d.hidden);
        need(self, "lstm_cell_forward gates", 4 * seq, &[gates.len()])?;
        need(self, "lstm_cell_forward c", seq, &[c.len()])?;
        need(self, "lstm_cell_forward h", step, &[h.len()])?;
        if let Some(rec) = rec {
            need(self, "lstm_cell_forward rec", 4 * step, &[rec.len()])?;
        }
        if let Some(h_seq) = &h_seq {
            need(self, "lstm_cell_forward h_seq", seq, &[h_seq.len()])?;
        }
        cell_forward(
            d,
            rec.map(|r| &r[..4 * step]),
            &mut gates[..4 * seq],
            &mut c[..seq],
            h_seq.map(|v| &mut v[..seq]),
            &mut h[..step],
        );
        Ok(())
    }

    fn lstm_cell_backward(
        &self,
        d: LstmStep,
        gates: &Vec<f32>,
        c: &Vec<f32>,
        dh_seq: Option<&Vec<f32>>,
        dh: Option<&Vec<f32>>,
        dc: &mut Vec<f32>,
        dgates: &mut Vec<f32>,
        dgates_step: &mut Vec<f32>,
    ) -> Result<()> {
        check_step("lstm_cell_backward", d)?;
        let (seq, step) = (d.n * d.steps * d.hidden, d.n * d.hidden);
        need(
            self,
            "lstm_cell_backward gates",
            4 * seq,
            &[gates.len(), dgates.len()],
        )?;
        need(self, "lstm_cell_backward c", seq, &[c.len()])?;
        need(self, "lstm_cell_backward dc", step, &[dc.len()])?;
        need(
            self,
            "lstm_cell_backward dgates_step",
            4 * step,
            &[dgates_step.len()],
        )?;
        if let Some(v) = dh_seq {
            need(self, "lstm_cell_backward dh_seq", seq, &[v.len()])?;
        }
        if let Some(v) = dh {
            need(self, "lstm_cell_backward dh", step, &[v.len()])?;
        }
        cell_backward(
            d,
            &gates[..4 * seq],
            &c[..seq],
            dh_seq.map(|v| &v[..seq]),
            dh.map(|v| &v[..step]),
            &mut dc[..step],
            &mut dgates[..4 * seq],
            &mut dgates_step[..4 * step],
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: usize, hidden: usize, steps: usize, t: usize) -> LstmStep {
        LstmStep {
            n,
            hidden,
            steps,
            t,
        }
    }

    #[test]
    fn short_buffers_and_steps_past_the_end_are_errors_not_panics() {
        let d = step(2, 3, 4, 1);
        let (seq, st) = (2 * 4 * 3, 2 * 3);
        let mut gates = vec![0.0; 4 * seq];
        let mut c = vec![0.0; seq];
        let mut h = vec![0.0; st];
        assert!(Cpu
            .lstm_cell_forward(d, None, &mut gates, &mut c, None, &mut h)
            .is_ok());
        let mut short = vec![0.0; st - 1];
        assert!(Cpu
            .lstm_cell_forward(d, None, &mut gates, &mut c, None, &mut short)
            .is_err());
        let rec = vec![0.0; 4 * st - 1];
        assert!(Cpu
            .lstm_cell_forward(d, Some(&rec), &mut gates, &mut c, None, &mut h)
            .is_err());
        let past = step(2, 3, 4, 4);
        assert!(Cpu
            .lstm_cell_forward(past, None, &mut gates, &mut c, None, &mut h)
            .is_err());
        let (mut dc, mut dg, mut dgs) = (vec![0.0; st], vec![0.0; 4 * seq], vec![0.0; 4 * st]);
        assert!(Cpu
            .lstm_cell_backward(d, &gates, &c, None, None, &mut dc, &mut dg, &mut dgs)
            .is_ok());
        let short_seq = vec![0.0; seq - 1];
        assert!(Cpu
            .lstm_cell_backward(
                d,
                &gates,
                &c,
                Some(&short_seq),
                None,
                &mut dc,
                &mut dg,
                &mut dgs
            )
            .is_err());
        assert!(Cpu
            .lstm_cell_backward(past, &gates, &c, None, None, &mut dc, &mut dg, &mut dgs)
            .is_err());
    }
}
