//! `Linear`: `y = x W^T + b` over the last dimension (PyTorch's `nn.Linear`).
//! A per-sample input `[..., in]` is `rows_per_sample` rows of `in` values, so
//! the whole batch is one GEMM of `batch * rows_per_sample` rows.

use crate::alloc::Footprint;
use crate::backend::{Backend, Gemm};
use crate::layers::gemm_amp as gemm;

use crate::error::{Error, Result};
use crate::init::{torch_linear_default, Init};
use crate::layers::{Absorb, Ctx, ExportOp, Layer, Param};
use crate::philox::Stream;
use lasagna_format::Op;

/// A fully connected layer.
pub struct Linear<B: Backend> {
    in_features: usize,
    out_features: usize,
    bias: bool,
    init: Init,
    rows_per_sample: usize,
    /// fp16 GEMM inputs (`AmpOps::gemm_f16`) for forward and backward.
    amp: bool,
    /// The following ReLU layer's ReLU, applied in the forward's epilogue
    /// (`Layer::fuse_relu`); never together with `amp`.
    relu: bool,
    /// The backward of the ReLU (and Dropout) before this layer, applied to
    /// dx in the GEMM's epilogue (`Layer::absorb_backward`); never under AMP.
    absorb: Option<Absorb>,
    /// `weight [out, in]`, then `bias [out]` when enabled; empty before `setup`.
    params: Vec<Param<B>>,
}

impl<B: Backend> Linear<B> {
    /// A layer mapping `in_features` to `out_features`. [`Init::Default`] is
    /// PyTorch's `U(-1/sqrt(in), 1/sqrt(in))` for weight and bias; any other
    /// scheme initializes the weight and zeroes the bias.
    pub fn new(in_features: usize, out_features: usize, bias: bool, init: Init) -> Linear<B> {
        Linear {
            in_features,
            out_features,
            bias,
            init,
            rows_per_sample: 0,
            amp: false,
            relu: false,
            absorb: None,
            params: Vec::new(),
        }
    }
}

/// The error of a layer used before `setup` allocated its state (a bug in the caller).
pub(crate) fn not_set_up(layer: &str) -> Error {
    Error::config(layer, "used before setup")
}

/// A size as the format's `u32`, or an error naming it.
pub(crate) fn export_dim(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        Error::config(
            "export",
            format!("{what} = {v} does not fit the format's u32"),
        )
    })
}

impl<B: Backend> Layer<B> for Linear<B> {
    fn kind(&self) -> &'static str {
        "Linear"
    }

    fn describe(&self) -> String {
        let bias = if self.bias { "" } else { ", no bias" };
        format!(
            "Linear({} -> {}{bias})",
            self.in_features, self.out_features
        )
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        if self.in_features == 0 || self.out_features == 0 {
            return Err("in_features and out_features must be positive".into());
        }
        match input.split_last() {
            Some((&last, lead)) if last == self.in_features => {
                let mut out = lead.to_vec();
                out.push(self.out_features);
                Ok(out)
            }
            _ => Err(format!(
                "expected [..., {}] (last dimension = in_features), got {input:?}",
                self.in_features
            )),
        }
    }

    fn footprint(&self, _input: &[usize], _max_batch: usize) -> Option<Footprint> {
        let (i, o) = (self.in_features as u64, self.out_features as u64);
        Footprint::new(&[o.checked_mul(i)?, if self.bias { o } else { 0 }], 0)
    }

    fn setup(&mut self, b: &B, input: &[usize], _max_batch: usize, rng: &mut Stream) -> Result<()> {
        self.output_shape(input)
            .map_err(|r| Error::config(self.describe(), r))?;
        self.rows_per_sample = input.iter().product::<usize>() / self.in_features;
        let (i, o) = (self.in_features, self.out_features);
        let default = torch_linear_default(i);
        // PyTorch draws the weight, then the bias; keep the order so seeds compare.
        let weight = self.init.weight(&[o, i], default, rng)?;
        self.params = vec![Param::new(b, "weight", vec![o, i], &weight)?];
        if self.bias {
            let bias = self.init.bias(o, default, rng);
            self.params.push(Param::new(b, "bias", vec![o], &bias)?);
        }
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let rows = ctx.batch * self.rows_per_sample;
        let (i, o) = (self.in_features, self.out_features);
        let [w, rest @ ..] = self.params.as_slice() else {
            return Err(not_set_up("Linear"));
        };
        // y [rows, o] = x [rows, i] * W^T, with W stored [o, i].
        let g = Gemm {
            m: rows,
            n: o,
            k: i,
            trans_a: false,
            trans_b: true,
            alpha: 1.0,
            beta: 0.0,
        };
        if self.amp {
            gemm(b, self.amp, &g, x, &w.value, y)?;
            if let Some(bias) = rest.first() {
                b.add_bias(y, &bias.value, rows, o)?;
            }
        } else {
            // f32: bias (and a fused ReLU) ride in the GEMM's epilogue.
            let bias = rest.first().map(|p| &p.value);
            b.gemm_epilogue(&g, x, &w.value, bias, self.relu, y)?;
        }
        Ok(())
    }

    fn backward(
        &mut self,
        b: &B,
        ctx: &Ctx,
        x: &B::Buf,
        _y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&mut B::Buf>,
    ) -> Result<()> {
        let rows = ctx.batch * self.rows_per_sample;
        let (i, o) = (self.in_features, self.out_features);
        let [w, rest @ ..] = self.params.as_mut_slice() else {
            return Err(not_set_up("Linear"));
        };
        // dW [o, i] = dy^T [o, rows] * x [rows, i]: overwritten (beta = 0),
        // since W gets gradient only here (`overwrites_grads`).
        let gw = Gemm {
            m: o,
            n: i,
            k: rows,
            trans_a: true,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
        };
        match rest.first_mut() {
            // f32: the bias gradient (dy's column sums) rides in the same GEMM.
            Some(bias) if !self.amp => b.gemm_row_sums(&gw, dy, x, &mut w.grad, &mut bias.grad)?,
            Some(bias) => {
                gemm(b, self.amp, &gw, dy, x, &mut w.grad)?;
                b.sum_rows(dy, rows, o, &mut bias.grad, false)?;
            }
            None => gemm(b, self.amp, &gw, dy, x, &mut w.grad)?,
        }
        if let Some(dx) = dx {
            // dx [rows, i] = dy [rows, o] * W [o, i].
            let gx = Gemm {
                m: rows,
                n: i,
                k: o,
                trans_a: false,
                trans_b: false,
                alpha: 1.0,
                beta: 0.0,
            };
            match self.absorb {
                // x is the absorbed layers' output: positive where they pass.
                Some(Absorb::Relu) => b.gemm_masked(&gx, dy, &w.value, x, 1.0, dx)?,
                Some(Absorb::ReluDropout { scale }) => {
                    b.gemm_masked(&gx, dy, &w.value, x, scale, dx)?
                }
                None => gemm(b, self.amp, &gx, dy, &w.value, dx)?,
            }
        }
        Ok(())
    }

    fn set_amp(&mut self, on: bool) {
        self.amp = on;
        // gemm_f16 has no epilogue: the model re-asks (`fuse_relu`,
        // `absorb_backward`) after this.
        self.relu &= !on;
        if on {
            self.absorb = None;
        }
    }

    fn absorb_backward(&mut self, what: Option<Absorb>) -> bool {
        self.absorb = what.filter(|_| !self.amp);
        self.absorb.is_some()
    }

    fn fuse_relu(&mut self, on: bool) -> bool {
        self.relu = on && !self.amp;
        self.relu
    }

    fn overwrites_grads(&self) -> bool {
        true
    }

    fn params(&self) -> &[Param<B>] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param<B>] {
        &mut self.params
    }

    fn export(&self, b: &B) -> Result<Vec<ExportOp>> {
        if self.params.is_empty() {
            return Err(not_set_up("Linear"));
        }
        let op = Op::Linear {
            in_features: export_dim(self.in_features, "in_features")?,
            out_features: export_dim(self.out_features, "out_features")?,
            bias: self.bias,
            layout: lasagna_format::WeightLayout::RowMajor,
        };
        let tensors = self
            .params
            .iter()
            .map(|p| b.to_vec(&p.value))
            .collect::<Result<Vec<_>>>()?;
        Ok(vec![(op, tensors)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::layers::Mode;

    fn ctx(batch: usize) -> Ctx {
        Ctx {
            mode: Mode::Train,
            batch,
            seed: 0,
            offset: 0,
            index: 0,
        }
    }

    #[test]
    fn forward_is_x_times_weight_transposed_plus_bias_on_every_row() -> Result<()> {
        let b = Cpu;
        let mut l = Linear::<Cpu>::new(3, 2, true, Init::Default);
        l.setup(&b, &[2, 3], 4, &mut Stream::new(1, 0))?;
        l.params[0].value = vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0];
        l.params[1].value = vec![0.5, -0.5];
        // Two samples of [2, 3]: four rows.
        let x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let mut y = vec![0.0; 16];
        l.forward(&b, &ctx(2), &x, &mut y)?;
        for r in 0..4 {
            let row = &x[r * 3..r * 3 + 3];
            let want = [
                row[0] + 2.0 * row[1] + 3.0 * row[2] + 0.5,
                row[2] - row[0] - 0.5,
            ];
            assert_eq!(&y[r * 2..r * 2 + 2], &want, "row {r}");
        }
        Ok(())
    }

    #[test]
    fn default_init_is_bounded_by_one_over_sqrt_fan_in() -> Result<()> {
        let b = Cpu;
        let mut l = Linear::<Cpu>::new(100, 50, true, Init::Default);
        l.setup(&b, &[100], 1, &mut Stream::new(9, 0))?;
        for p in l.params() {
            assert!(p.value.iter().all(|v| v.abs() <= 0.1), "{}", p.name);
        }
        let mut z = Linear::<Cpu>::new(100, 50, true, Init::XavierNormal);
        z.setup(&b, &[100], 1, &mut Stream::new(9, 0))?;
        assert!(z.params()[1].value.iter().all(|&v| v == 0.0));
        Ok(())
    }

    #[test]
    fn shape_errors_name_the_expected_and_received_shapes() {
        let l = Linear::<Cpu>::new(784, 10, true, Init::Default);
        let err = l.output_shape(&[28, 28]).err().unwrap_or_default();
        assert!(err.contains("784") && err.contains("[28, 28]"), "{err}");
        assert_eq!(l.output_shape(&[5, 784]), Ok(vec![5, 10]));
    }

    #[test]
    fn export_lists_weight_then_bias_in_pytorch_layout() -> Result<()> {
        let b = Cpu;
        let mut l = Linear::<Cpu>::new(4, 3, true, Init::Default);
        l.setup(&b, &[4], 2, &mut Stream::new(2, 0))?;
        let ops = l.export(&b)?;
        assert_eq!(ops.len(), 1);
        let (op, tensors) = &ops[0];
        assert_eq!(tensors.len(), op.tensor_count());
        for (j, t) in tensors.iter().enumerate() {
            let (_, _, shape) = op.tensor_spec(j).ok_or_else(|| not_set_up("tensor_spec"))?;
            assert_eq!(t.len() as u64, shape.numel());
        }
        assert_eq!(tensors[0], l.params()[0].value);
        Ok(())
    }
}
