//! `Conv2d`: 2-D convolution over per-sample `[C, H, W]` inputs (PyTorch's
//! `nn.Conv2d` with `padding_mode = "zeros"`), any kernel, stride, padding,
//! dilation and groups. The arithmetic is the backend's
//! [`ConvOps`](crate::backend::ConvOps).

use crate::alloc::{product, Footprint};
use crate::backend::{Backend, Conv2dDims};
use crate::error::{Error, Result};
use crate::init::{torch_linear_default, Init};
use crate::layers::linear::not_set_up;
use crate::layers::{Ctx, ExportOp, Layer, Param};
use crate::philox::Stream;
use lasagna_format::{Op, Window};

/// A 2-D convolution layer.
pub struct Conv2d<B: Backend> {
    in_channels: usize,
    out_channels: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    bias: bool,
    init: Init,
    /// `weight [out, in / groups, kh, kw]`, then `bias [out]` when enabled;
    /// empty before `setup`.
    params: Vec<Param<B>>,
    state: Option<State<B>>,
    /// fp16 GEMM inputs: x, weight and dy are rounded before the conv ops.
    amp: bool,
}

/// What `setup` fixes: the geometry for the largest batch and the ops' scratch.
struct State<B: Backend> {
    dims: Conv2dDims,
    scratch: B::Buf,
    /// fp16-rounded copies for AMP (allocated the first time AMP is used).
    amp: Option<AmpBufs<B>>,
}

/// AMP's rounded operands. im2col only copies values (and pads with zeros,
/// which round to zero), so rounding x, weight and dy before the f32 conv ops
/// is exactly fp16 inputs to every GEMM inside them, on every backend, with
/// no change to `ConvOps`. Backward reuses forward's rounded x and weight
/// (a layer's backward always follows its forward on the same batch, and the
/// weights do not change in between) and rounds only dy.
struct AmpBufs<B: Backend> {
    x: B::Buf,
    weight: B::Buf,
    dy: B::Buf,
}

/// `a x b`, or just `a` when both sides agree (`3x3` kernel, `stride 1`).
fn pair(v: [usize; 2], square_as_one: bool) -> String {
    if square_as_one && v[0] == v[1] {
        v[0].to_string()
    } else {
        format!("{}x{}", v[0], v[1])
    }
}

impl<B: Backend> Conv2d<B> {
    /// PyTorch's `Conv2d(in_channels, out_channels, kernel, stride, padding,
    /// dilation, groups, bias)`, with `(height, width)` pairs.
    /// [`Init::Default`] is PyTorch's `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` for
    /// weight and bias, `fan_in = in_channels / groups * kh * kw`; any other
    /// scheme initializes the weight and zeroes the bias.
    ///
    /// Fails unless the sizes are positive (padding may be 0), `groups`
    /// divides both channel counts, and the sizes fit the export format
    /// (channels below 2^16; kernel, stride, padding, dilation below 256).
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        stride: (usize, usize),
        padding: (usize, usize),
        dilation: (usize, usize),
        groups: usize,
        bias: bool,
        init: Init,
    ) -> Result<Conv2d<B>> {
        let bad = |reason: String| Err(Error::config("Conv2d", reason));
        let kernel = [kernel.0, kernel.1];
        let stride = [stride.0, stride.1];
        let padding = [padding.0, padding.1];
        let dilation = [dilation.0, dilation.1];
        if in_channels == 0 || out_channels == 0 || groups == 0 {
            return bad(format!(
                "in_channels = {in_channels}, out_channels = {out_channels} and groups = {groups} \
                 must be positive"
            ));
        }
        for (name, v) in [
            ("kernel_size", kernel),
            ("stride", stride),
            ("dilation", dilation),
        ] {
            if v.contains(&0) {
                return bad(format!("{name} = {} must be positive", pair(v, false)));
            }
        }
        if !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
            return bad(format!(
                "groups = {groups} must divide in_channels = {in_channels} and \
                 out_channels = {out_channels}"
            ));
        }
        for (name, v) in [("in_channels", in_channels), ("out_channels", out_channels)] {
            if u16::try_from(v).is_err() {
                return bad(format!(
                    "{name} = {v} does not fit the export format's u16 (at most {})",
                    u16::MAX
                ));
            }
        }
        for (name, v) in [
            ("kernel_size", kernel),
            ("stride", stride),
            ("padding", padding),
            ("dilation", dilation),
        ] {
            if v.iter().any(|&s| u8::try_from(s).is_err()) {
                return bad(format!(
                    "{name} = {} does not fit the export format's u8 (at most {})",
                    pair(v, false),
                    u8::MAX
                ));
            }
        }
        Ok(Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
            dilation,
            groups,
            bias,
            init,
            params: Vec::new(),
            state: None,
            amp: false,
        })
    }

    /// The geometry of `batch` samples of `[c, h, w]`, or why it does not fit.
    fn dims(&self, batch: usize, input: &[usize]) -> std::result::Result<Conv2dDims, String> {
        let &[c, h, w] = input else {
            return Err(format!(
                "expected [{}, H, W] (C = in_channels), got {input:?}",
                self.in_channels
            ));
        };
        if c != self.in_channels {
            return Err(format!(
                "expected [{}, H, W] (C = in_channels), got {input:?}",
                self.in_channels
            ));
        }
        Conv2dDims {
            n: batch,
            c_in: c,
            h,
            w,
            c_out: self.out_channels,
            kh: self.kernel[0],
            kw: self.kernel[1],
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            oh: 0,
            ow: 0,
        }
        .derive()
    }

    /// The geometry of this step's batch.
    fn step_dims(&self, ctx: &Ctx) -> Result<Conv2dDims> {
        let s = self.state.as_ref().ok_or_else(|| not_set_up("Conv2d"))?;
        if ctx.batch > s.dims.n {
            return Err(Error::config(
                self.describe(),
                format!(
                    "batch of {} samples, more than the {} it was set up for",
                    ctx.batch, s.dims.n
                ),
            ));
        }
        Ok(s.dims.with_batch(ctx.batch))
    }
}

impl<B: Backend> Layer<B> for Conv2d<B> {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "Conv2d({} -> {}, {}, stride {}, pad {}",
            self.in_channels,
            self.out_channels,
            pair(self.kernel, false),
            pair(self.stride, true),
            pair(self.padding, true)
        );
        if self.dilation != [1, 1] {
            s += &format!(", dilation {}", pair(self.dilation, true));
        }
        if self.groups != 1 {
            s += &format!(", groups {}", self.groups);
        }
        if !self.bias {
            s += ", no bias";
        }
        s + ")"
    }

    fn output_shape(&self, input: &[usize]) -> std::result::Result<Vec<usize>, String> {
        let d = self.dims(1, input)?;
        Ok(vec![d.c_out, d.oh, d.ow])
    }

    fn footprint(&self, input: &[usize], max_batch: usize) -> Option<Footprint> {
        let d = self.dims(max_batch, input).ok()?;
        let [kh, kw] = self.kernel;
        let ig = self.in_channels / self.groups.max(1);
        let weight = product(&[self.out_channels, ig, kh, kw])?;
        let bias = if self.bias {
            self.out_channels as u64
        } else {
            0
        };
        // The CPU backend's column matrix, the largest scratch of the backends.
        let scratch = crate::backend::cpu::conv2d::scratch_len(&d)? as u64;
        Footprint::new(&[weight, bias], scratch)
    }

    fn setup(&mut self, b: &B, input: &[usize], max_batch: usize, rng: &mut Stream) -> Result<()> {
        let dims = self
            .dims(max_batch, input)
            .map_err(|r| Error::config(self.describe(), r))?;
        let [kh, kw] = self.kernel;
        let (o, ig) = (self.out_channels, self.in_channels / self.groups);
        let shape = vec![o, ig, kh, kw];
        // PyTorch's reset_parameters: kaiming_uniform_(a = sqrt(5)) for the
        // weight and U(+-1/sqrt(fan_in)) for the bias, both 1/sqrt(fan_in).
        let default = torch_linear_default(ig * kh * kw);
        // PyTorch draws the weight, then the bias; keep the order so seeds compare.
        let weight = self.init.weight(&shape, default, rng)?;
        self.params = vec![Param::new(b, "weight", shape, &weight)?];
        if self.bias {
            let bias = self.init.bias(o, default, rng);
            self.params.push(Param::new(b, "bias", vec![o], &bias)?);
        }
        let scratch = b.zeros(b.conv2d_scratch_len(&dims))?;
        self.state = Some(State {
            dims,
            scratch,
            amp: None,
        });
        Ok(())
    }

    fn forward(&mut self, b: &B, ctx: &Ctx, x: &B::Buf, y: &mut B::Buf) -> Result<()> {
        let d = self.step_dims(ctx)?;
        let (Some(s), [w, rest @ ..]) = (self.state.as_mut(), self.params.as_slice()) else {
            return Err(not_set_up("Conv2d"));
        };
        let bias = rest.first().map(|p| &p.value);
        if !self.amp {
            return b.conv2d_forward(&d, x, &w.value, bias, y, &mut s.scratch);
        }
        if s.amp.is_none() {
            let full = s.dims;
            let len = |v: Option<usize>| v.ok_or_else(|| not_set_up("Conv2d"));
            s.amp = Some(AmpBufs {
                x: b.zeros(len(full.x_len())?)?,
                weight: b.zeros(len(full.weight_len())?)?,
                dy: b.zeros(len(full.y_len())?)?,
            });
        }
        let Some(a) = s.amp.as_mut() else {
            return Err(not_set_up("Conv2d"));
        };
        let (xl, wl) = (d.x_len().unwrap_or(0), d.weight_len().unwrap_or(0));
        b.round_f16(x, &mut a.x, xl)?;
        b.round_f16(&w.value, &mut a.weight, wl)?;
        b.conv2d_forward(&d, &a.x, &a.weight, bias, y, &mut s.scratch)
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
        let d = self.step_dims(ctx)?;
        let (Some(s), [w, rest @ ..]) = (self.state.as_mut(), self.params.as_mut_slice()) else {
            return Err(not_set_up("Conv2d"));
        };
        let dbias = rest.first_mut().map(|p| &mut p.grad);
        match (self.amp, s.amp.as_mut()) {
            (true, Some(a)) => {
                b.round_f16(dy, &mut a.dy, d.y_len().unwrap_or(0))?;
                let (ax, aw, ady) = (&a.x, &a.weight, &a.dy);
                b.conv2d_backward(&d, ax, aw, ady, dx, &mut w.grad, dbias, &mut s.scratch)
            }
            (true, None) => Err(Error::config(
                "Conv2d",
                "AMP backward without an AMP forward",
            )),
            (false, _) => {
                b.conv2d_backward(&d, x, &w.value, dy, dx, &mut w.grad, dbias, &mut s.scratch)
            }
        }
    }

    fn set_amp(&mut self, on: bool) {
        self.amp = on;
    }

    fn overwrites_grads(&self) -> bool {
        // `ConvOps::conv2d_backward` overwrites the weight and bias gradients.
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
            return Err(not_set_up("Conv2d"));
        }
        // `new` checked these ranges; the conversions only restate them.
        let ch = |v: usize, what: &str| {
            u16::try_from(v).map_err(|_| {
                Error::config(
                    "export",
                    format!("{what} = {v} does not fit the format's u16"),
                )
            })
        };
        let win = |v: [usize; 2], what: &str| -> Result<[u8; 2]> {
            match (u8::try_from(v[0]), u8::try_from(v[1])) {
                (Ok(a), Ok(b)) => Ok([a, b]),
                _ => Err(Error::config(
                    "export",
                    format!("{what} = {v:?} does not fit the format's u8"),
                )),
            }
        };
        let op = Op::Conv2d {
            in_channels: ch(self.in_channels, "in_channels")?,
            out_channels: ch(self.out_channels, "out_channels")?,
            groups: ch(self.groups, "groups")?,
            window: Window {
                kernel: win(self.kernel, "kernel_size")?,
                stride: win(self.stride, "stride")?,
                padding: win(self.padding, "padding")?,
                dilation: win(self.dilation, "dilation")?,
            },
            bias: self.bias,
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

    fn conv(k: usize, s: usize, p: usize, d: usize, g: usize) -> Result<Conv2d<Cpu>> {
        Conv2d::new(4, 8, (k, k), (s, s), (p, p), (d, d), g, true, Init::Default)
    }

    #[test]
    fn describe_names_only_the_non_default_options() -> Result<()> {
        let c = Conv2d::<Cpu>::new(
            1,
            16,
            (3, 3),
            (1, 1),
            (1, 1),
            (1, 1),
            1,
            true,
            Init::Default,
        )?;
        assert_eq!(
            Layer::<Cpu>::describe(&c),
            "Conv2d(1 -> 16, 3x3, stride 1, pad 1)"
        );
        let c = Conv2d::<Cpu>::new(
            4,
            4,
            (3, 5),
            (2, 1),
            (0, 2),
            (2, 2),
            4,
            false,
            Init::Default,
        )?;
        assert_eq!(
            Layer::<Cpu>::describe(&c),
            "Conv2d(4 -> 4, 3x5, stride 2x1, pad 0x2, dilation 2, groups 4, no bias)"
        );
        Ok(())
    }

    #[test]
    fn constructor_rejects_bad_groups_zero_sizes_and_sizes_the_format_cannot_hold() {
        let msg = |r: Result<Conv2d<Cpu>>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg(conv(3, 1, 1, 1, 3)).contains("groups = 3"));
        assert!(msg(conv(0, 1, 1, 1, 1)).contains("kernel_size"));
        assert!(msg(conv(3, 0, 1, 1, 1)).contains("stride"));
        assert!(msg(conv(3, 1, 256, 1, 1)).contains("padding = 256x256"));
        let wide = Conv2d::<Cpu>::new(
            70_000,
            1,
            (1, 1),
            (1, 1),
            (0, 0),
            (1, 1),
            1,
            true,
            Init::Default,
        );
        assert!(msg(wide).contains("u16"));
    }

    #[test]
    fn output_shape_follows_pytorch_and_names_the_expected_input() -> Result<()> {
        assert_eq!(
            conv(3, 1, 1, 1, 1)?.output_shape(&[4, 28, 28]),
            Ok(vec![8, 28, 28])
        );
        assert_eq!(
            conv(3, 2, 1, 1, 2)?.output_shape(&[4, 28, 28]),
            Ok(vec![8, 14, 14])
        );
        assert_eq!(
            conv(3, 1, 0, 2, 4)?.output_shape(&[4, 9, 9]),
            Ok(vec![8, 5, 5])
        );
        let err = conv(3, 1, 1, 1, 1)?
            .output_shape(&[3, 28, 28])
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("[4, H, W]") && err.contains("[3, 28, 28]"),
            "{err}"
        );
        let err = conv(5, 1, 0, 1, 1)?
            .output_shape(&[4, 3, 9])
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("height") && err.contains("spans 5") && err.contains("3"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn default_init_is_bounded_by_one_over_sqrt_fan_in() -> Result<()> {
        // fan_in = 4 / 2 * 3 * 3 = 18.
        let mut c = conv(3, 1, 1, 1, 2)?;
        c.setup(&Cpu, &[4, 6, 6], 2, &mut Stream::new(3, 0))?;
        let bound = 1.0 / 18f32.sqrt();
        assert_eq!(c.params()[0].shape, vec![8, 2, 3, 3]);
        for p in c.params() {
            assert!(p.value.iter().all(|v| v.abs() <= bound), "{}", p.name);
            assert!(p.value.iter().any(|v| v.abs() > bound / 2.0), "{}", p.name);
        }
        Ok(())
    }

    #[test]
    fn export_lists_weight_then_bias_with_the_format_shapes() -> Result<()> {
        let mut c = conv(3, 2, 1, 1, 2)?;
        c.setup(&Cpu, &[4, 7, 7], 2, &mut Stream::new(2, 0))?;
        let ops = c.export(&Cpu)?;
        let (op, tensors) = &ops[0];
        assert_eq!(tensors.len(), op.tensor_count());
        for (j, t) in tensors.iter().enumerate() {
            let (_, _, shape) = op.tensor_spec(j).ok_or_else(|| not_set_up("tensor_spec"))?;
            assert_eq!(t.len() as u64, shape.numel());
        }
        assert_eq!(tensors[0], c.params()[0].value);
        assert_eq!(op.check_params(), Ok(()));
        Ok(())
    }

    #[test]
    fn a_batch_larger_than_setup_is_an_error_not_a_panic() -> Result<()> {
        let mut c = conv(3, 1, 1, 1, 1)?;
        c.setup(&Cpu, &[4, 5, 5], 2, &mut Stream::new(1, 0))?;
        let ctx = Ctx {
            mode: Mode::Train,
            batch: 3,
            seed: 0,
            offset: 0,
            index: 0,
        };
        let x = vec![0.0; 3 * 100];
        let mut y = vec![0.0; 3 * 200];
        assert!(c.forward(&Cpu, &ctx, &x, &mut y).is_err());
        Ok(())
    }
}
