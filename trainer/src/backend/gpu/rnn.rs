//! The LSTM cell's element-wise step on the GPU (`lstm.ptx`); the GEMMs
//! around it are the layer's, through `Blas::gemm`.

use lasagna_kernels::device::{Arg, Device};
use lasagna_kernels::lstm::{self as kl, lstm_launch};

use super::{u32_arg, u64_arg, Gpu, GpuBuf, A};
use crate::backend::{need, LstmStep, RnnOps};
use crate::error::Result;

impl<D: Device + Send + 'static> Gpu<D> {
    fn lstm_tail(&self, d: LstmStep) -> Result<[A<D>; 4]> {
        Ok([
            u64_arg(d.n * d.hidden),
            u32_arg("hidden", d.hidden)?,
            u32_arg("steps", d.steps)?,
            u32_arg("t", d.t)?,
        ])
    }
    fn lstm_check(&self, op: &str, d: LstmStep, seq: &[usize], step: &[usize]) -> Result<()> {
        if d.t >= d.steps {
            return Err(self.fail(op, format!("step {} of a {}-step sequence", d.t, d.steps)));
        }
        let h = d.n * d.hidden;
        need(self, op, h * d.steps, seq)?;
        need(self, op, h, step)
    }
}

fn opt<B: Copy>(b: Option<&GpuBuf<B>>) -> Arg<B> {
    b.map_or(Arg::U64(0), GpuBuf::arg)
}

impl<D: Device + Send + 'static> RnnOps for Gpu<D> {
    fn lstm_cell_forward(
        &self,
        d: LstmStep,
        rec: Option<&Self::Buf>,
        gates: &mut Self::Buf,
        c: &mut Self::Buf,
        h_seq: Option<&mut Self::Buf>,
        h: &mut Self::Buf,
    ) -> Result<()> {
        let seq_len = h_seq.as_ref().map_or(usize::MAX, |b| b.len);
        self.lstm_check(
            "lstm_cell_forward",
            d,
            &[gates.len / 4, c.len, seq_len],
            &[h.len],
        )?;
        if let Some(r) = rec {
            need(self, "lstm_cell_forward rec", 4 * d.n * d.hidden, &[r.len])?;
        }
        let mut args = vec![
            gates.arg(),
            opt(rec),
            c.arg(),
            opt(h_seq.as_deref()),
            h.arg(),
        ];
        args.extend(self.lstm_tail(d)?);
        self.launch(
            &kl::LSTM_CELL_FORWARD,
            lstm_launch(d.n, d.hidden, d.steps),
            &args,
        )
    }
    fn lstm_cell_backward(
        &self,
        d: LstmStep,
        gates: &Self::Buf,
        c: &Self::Buf,
        dh_seq: Option<&Self::Buf>,
        dh: Option<&Self::Buf>,
        dc: &mut Self::Buf,
        dgates: &mut Self::Buf,
        dgates_step: &mut Self::Buf,
    ) -> Result<()> {
        let seq_len = dh_seq.map_or(usize::MAX, |b| b.len);
        let dh_len = dh.map_or(usize::MAX, |b| b.len);
        let seq = [gates.len / 4, c.len, seq_len, dgates.len / 4];
        self.lstm_check(
            "lstm_cell_backward",
            d,
            &seq,
            &[dh_len, dc.len, dgates_step.len / 4],
        )?;
        let mut args = vec![
            gates.arg(),
            c.arg(),
            opt(dh_seq),
            opt(dh),
            dc.arg(),
            dgates.arg(),
            dgates_step.arg(),
        ];
        args.extend(self.lstm_tail(d)?);
        self.launch(
            &kl::LSTM_CELL_BACKWARD,
            lstm_launch(d.n, d.hidden, d.steps),
            &args,
        )
    }
}
