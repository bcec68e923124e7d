//! Model descriptions in TOML, so users describe a network without writing
//! Rust. The presets (`--model mlp`) are such files, embedded in the binary.

use crate::alloc::product;
use crate::backend::{Act, Backend};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::layers::{
    Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Dropout2d,
    Embedding, Flatten, Layer, LayerNorm, Linear, Lstm, MaxPool2d, Softmax,
};
use crate::loss::Loss;
use crate::optim::{OptimConfig, Schedule};
use serde::Deserialize;
use std::path::Path;

/// The presets `--model NAME` accepts, with their TOML source.
pub const PRESETS: &[(&str, &str)] = &[
    ("mlp", include_str!("../presets/mlp.toml")),
    ("cnn", include_str!("../presets/cnn.toml")),
    ("lstm", include_str!("../presets/lstm.toml")),
];

/// A size given as one number (both axes) or as `[height, width]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Pair {
    /// The same size on both axes.
    One(usize),
    /// `[height, width]`.
    Two([usize; 2]),
}

impl Pair {
    /// `(height, width)`.
    pub fn get(self) -> (usize, usize) {
        match self {
            Pair::One(v) => (v, v),
            Pair::Two([h, w]) => (h, w),
        }
    }
}

/// One layer of a TOML description.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `y = x W^T + b`; the input size comes from the layer before.
    Linear {
        /// Output features.
        out: usize,
        /// Whether to learn a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
        /// Weight init (`default`, `xavier_uniform`, `kaiming_normal`, ...).
        #[serde(default)]
        init: Option<String>,
    },
    /// Flatten each sample to a vector.
    Flatten,
    /// ReLU.
    Relu,
    /// LeakyReLU.
    LeakyRelu {
        /// Negative slope (PyTorch's default 0.01).
        #[serde(default = "leaky_default")]
        alpha: f32,
    },
    /// GELU.
    Gelu {
        /// `"none"` (exact erf, default) or `"tanh"`.
        #[serde(default)]
        approximate: Option<String>,
    },
    /// SiLU.
    Silu,
    /// Sigmoid.
    Sigmoid,
    /// Tanh.
    Tanh,
    /// Softmax over the last dimension (not before CrossEntropy: it applies its own).
    Softmax,
    /// Inverted dropout.
    Dropout {
        /// Drop probability.
        p: f32,
    },
    /// BatchNorm1d over the features of the layer before.
    BatchNorm1d {
        /// Added to the variance.
        #[serde(default = "bn_eps")]
        eps: f32,
        /// Running-statistics momentum.
        #[serde(default = "bn_momentum")]
        momentum: f32,
    },
    /// LayerNorm over the last dimension.
    LayerNorm {
        /// Added to the variance.
        #[serde(default = "bn_eps")]
        eps: f32,
    },
    /// 2-D convolution over `[C, H, W]`; input channels come from the layer before.
    Conv2d {
        /// Output channels.
        out: usize,
        /// Kernel size.
        kernel: Pair,
        /// Stride (default 1).
        #[serde(default = "pair_one")]
        stride: Pair,
        /// Zero padding on each side (default 0).
        #[serde(default = "pair_zero")]
        padding: Pair,
        /// Dilation (default 1).
        #[serde(default = "pair_one")]
        dilation: Pair,
        /// Groups (default 1; input channels for depthwise).
        #[serde(default = "one")]
        groups: usize,
        /// Whether to learn a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
        /// Weight init.
        #[serde(default)]
        init: Option<String>,
    },
    /// 2-D max pooling.
    MaxPool2d {
        /// Window size.
        kernel: Pair,
        /// Stride (default: the kernel size, as PyTorch).
        #[serde(default)]
        stride: Option<Pair>,
        /// Padding (default 0).
        #[serde(default = "pair_zero")]
        padding: Pair,
    },
    /// 2-D average pooling.
    AvgPool2d {
        /// Window size.
        kernel: Pair,
        /// Stride (default: the kernel size).
        #[serde(default)]
        stride: Option<Pair>,
        /// Padding (default 0).
        #[serde(default = "pair_zero")]
        padding: Pair,
        /// Count padded zeros in the divisor (PyTorch's default, true).
        #[serde(default = "yes")]
        count_include_pad: bool,
    },
    /// Adaptive average pooling to a fixed size (`out = 1` is global average pooling).
    AdaptiveAvgPool2d {
        /// Output size.
        out: Pair,
    },
    /// BatchNorm2d over the channels of `[C, H, W]`.
    BatchNorm2d {
        /// Added to the variance.
        #[serde(default = "bn_eps")]
        eps: f32,
        /// Running-statistics momentum.
        #[serde(default = "bn_momentum")]
        momentum: f32,
    },
    /// Drops whole channels of `[C, H, W]`.
    Dropout2d {
        /// Drop probability.
        p: f32,
    },
    /// LSTM over `[T, features]` (batch first), PyTorch's gate order.
    Lstm {
        /// Hidden units.
        hidden: usize,
        /// Stacked layers (default 1).
        #[serde(default = "one")]
        layers: usize,
        /// Output every step `[T, hidden]` instead of the last `[hidden]`.
        #[serde(default)]
        return_sequences: bool,
    },
    /// Embedding table.
    Embedding {
        /// Vocabulary size.
        num: usize,
        /// Vector width.
        dim: usize,
    },
}

fn yes() -> bool {
    true
}
/// A schedule from its command-line form; a bare `cosine` means
/// `cosine:EPOCHS`, so changing `--epochs` keeps one full half-cosine.
pub fn parse_schedule(s: &str, epochs: usize) -> Result<Schedule> {
    if s.trim() == "cosine" {
        return Ok(Schedule::Cosine {
            t_max: epochs.max(1),
            eta_min: 0.0,
        });
    }
    s.parse()
}

fn one() -> usize {
    1
}
fn pair_one() -> Pair {
    Pair::One(1)
}
fn pair_zero() -> Pair {
    Pair::One(0)
}
fn leaky_default() -> f32 {
    0.01
}
fn bn_eps() -> f32 {
    1e-5
}
fn bn_momentum() -> f32 {
    0.1
}

/// How errors name a model description: `the mlp preset`, or the file's path.
pub fn origin_name(model: &str) -> String {
    if PRESETS.iter().any(|(n, _)| *n == model) {
        format!("the {model} preset")
    } else {
        model.to_string()
    }
}

/// An optimizer kind's defaults from its name.
pub fn optimizer_kind(name: &str) -> Result<OptimConfig> {
    match name {
        "adam" => Ok(OptimConfig::adam()),
        "adamw" => Ok(OptimConfig::adamw()),
        "sgd" => Ok(OptimConfig::sgd()),
        other => Err(Error::config(
            "optimizer type",
            format!("`{other}`; use sgd, adam or adamw"),
        )),
    }
}

/// Renames the setting a configuration error names, so a check is written
/// once and each caller says where the value came from: `--lr` on the
/// command line, `[optimizer] lr in model.toml` from a file.
pub fn named(what: &str) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        Error::Config { reason, .. } => Error::config(what, reason),
        other => other,
    }
}

/// A positive, finite number (learning rate, clip norm).
pub fn positive(what: &str, x: f32) -> Result<()> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(Error::config(what, format!("{x} is not a positive number")))
    }
}

/// A finite number at least 0 (weight decay, momentum).
pub fn non_negative(what: &str, x: f32) -> Result<()> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(Error::config(what, format!("{x} must be finite and >= 0")))
    }
}

/// A count of at least 1 (epochs, batch size, patience).
pub fn at_least_one(what: &str, n: usize) -> Result<()> {
    if n >= 1 {
        Ok(())
    } else {
        Err(Error::config(what, "must be at least 1"))
    }
}

/// CrossEntropy label smoothing: in [0, 1), as PyTorch requires.
pub fn label_smoothing(what: &str, x: f32) -> Result<()> {
    if (0.0..1.0).contains(&x) {
        Ok(())
    } else {
        Err(Error::config(
            what,
            format!("{x} is outside [0, 1); typical values are 0.0 to 0.2"),
        ))
    }
}

/// `[optimizer]`: the kind and its hyper-parameters (PyTorch's defaults when omitted).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    /// `sgd`, `adam` or `adamw`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Learning rate.
    pub lr: Option<f32>,
    /// Weight decay.
    pub weight_decay: Option<f32>,
    /// SGD momentum.
    pub momentum: Option<f32>,
    /// SGD Nesterov momentum.
    pub nesterov: Option<bool>,
    /// Adam betas.
    pub betas: Option<(f32, f32)>,
    /// Adam epsilon.
    pub eps: Option<f32>,
    /// Learning-rate schedule (`constant`, `step:2:0.5`, `cosine:5`).
    pub schedule: Option<String>,
}

/// `[training]`: defaults for the run; command-line flags override them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// Epochs.
    pub epochs: Option<usize>,
    /// Batch size.
    pub batch_size: Option<usize>,
    /// Loss (`cross_entropy`, `mse`, `bce_with_logits`).
    pub loss: Option<String>,
    /// CrossEntropy label smoothing.
    pub label_smoothing: Option<f32>,
    /// Gradient clipping by global norm.
    pub clip_grad_norm: Option<f32>,
    /// Early-stopping patience in epochs.
    pub early_stopping: Option<usize>,
}

/// A whole TOML model description.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Per-sample input shape (default MNIST's `[1, 28, 28]`).
    #[serde(default = "mnist_input")]
    pub input: Vec<usize>,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
    /// Optimizer settings.
    #[serde(default)]
    pub optimizer: OptimizerSpec,
    /// Training settings.
    #[serde(default)]
    pub training: TrainingSpec,
}

fn mnist_input() -> Vec<usize> {
    vec![1, 28, 28]
}

impl ModelSpec {
    /// Parses a description; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ModelSpec> {
        toml::from_str(text)
            .map_err(|e| Error::config(format!("model description {origin}"), e.to_string()))
    }

    /// `--model NAME` (a preset) or `--model FILE.toml`.
    pub fn load(model: &str) -> Result<ModelSpec> {
        if let Some((_, text)) = PRESETS.iter().find(|(name, _)| *name == model) {
            return ModelSpec::parse(text, model);
        }
        let path = Path::new(model);
        if path.extension().is_some_and(|e| e == "toml") || path.exists() {
            let text = crate::read::text_file(path, crate::read::MAX_TEXT_BYTES)?;
            return ModelSpec::parse(&text, model);
        }
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        Err(Error::config(
            "--model",
            format!(
                "`{model}` is neither a preset ({}) nor a .toml file",
                names.join(", ")
            ),
        ))
    }

    /// The layers, with input sizes inferred from the shape flowing through.
    pub fn build_layers<B: Backend>(&self) -> Result<Vec<Box<dyn Layer<B>>>> {
        let mut shape = self.input.clone();
        let mut out: Vec<Box<dyn Layer<B>>> = Vec::new();
        for (i, spec) in self.layers.iter().enumerate() {
            let last = shape.last().copied().unwrap_or(0);
            let layer: Box<dyn Layer<B>> = match spec {
                LayerSpec::Linear { out: o, bias, init } => {
                    let init = match init {
                        Some(s) => s.parse::<Init>()?,
                        None => Init::Default,
                    };
                    Box::new(Linear::new(last, *o, *bias, init))
                }
                LayerSpec::Flatten => Box::new(Flatten::new()),
                LayerSpec::Relu => Box::new(Activation::new(Act::Relu)),
                LayerSpec::LeakyRelu { alpha } => Box::new(Activation::new(Act::LeakyRelu(*alpha))),
                LayerSpec::Gelu { approximate } => match approximate.as_deref() {
                    None | Some("none") => Box::new(Activation::new(Act::Gelu)),
                    Some("tanh") => Box::new(Activation::new(Act::GeluTanh)),
                    Some(other) => {
                        return Err(Error::config(
                            format!("layer {i} (gelu)"),
                            format!("approximate = {other:?}; use \"none\" or \"tanh\""),
                        ))
                    }
                },
                LayerSpec::Silu => Box::new(Activation::new(Act::Silu)),
                LayerSpec::Sigmoid => Box::new(Activation::new(Act::Sigmoid)),
                LayerSpec::Tanh => Box::new(Activation::new(Act::Tanh)),
                LayerSpec::Softmax => Box::new(Softmax::new()),
                LayerSpec::Dropout { p } => Box::new(Dropout::new(*p)?),
                LayerSpec::BatchNorm1d { eps, momentum } => Box::new(BatchNorm1d::new(
                    shape.first().copied().unwrap_or(0),
                    *eps,
                    *momentum,
                )?),
                LayerSpec::LayerNorm { eps } => Box::new(LayerNorm::new(last, *eps)?),
                LayerSpec::Embedding { num, dim } => Box::new(Embedding::new(*num, *dim)),
                LayerSpec::Conv2d {
                    out: o,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    groups,
                    bias,
                    init,
                } => {
                    let init = match init {
                        Some(s) => s.parse::<Init>()?,
                        None => Init::Default,
                    };
                    let c_in = shape.first().copied().unwrap_or(0);
                    Box::new(Conv2d::new(
                        c_in,
                        *o,
                        kernel.get(),
                        stride.get(),
                        padding.get(),
                        dilation.get(),
                        *groups,
                        *bias,
                        init,
                    )?)
                }
                LayerSpec::MaxPool2d {
                    kernel,
                    stride,
                    padding,
                } => Box::new(MaxPool2d::new(
                    kernel.get(),
                    stride.unwrap_or(*kernel).get(),
                    padding.get(),
                )?),
                LayerSpec::AvgPool2d {
                    kernel,
                    stride,
                    padding,
                    count_include_pad,
                } => Box::new(AvgPool2d::new(
                    kernel.get(),
                    stride.unwrap_or(*kernel).get(),
                    padding.get(),
                    *count_include_pad,
                )?),
                LayerSpec::AdaptiveAvgPool2d { out: o } => {
                    let (h, w) = o.get();
                    Box::new(AdaptiveAvgPool2d::new(h, w)?)
                }
                LayerSpec::BatchNorm2d { eps, momentum } => Box::new(BatchNorm2d::new(
                    shape.first().copied().unwrap_or(0),
                    *eps,
                    *momentum,
                )?),
                LayerSpec::Dropout2d { p } => Box::new(Dropout2d::new(*p)?),
                LayerSpec::Lstm {
                    hidden,
                    layers,
                    return_sequences,
                } => Box::new(Lstm::new(last, *hidden, *layers, *return_sequences)?),
            };
            shape = layer.output_shape(&shape).map_err(|reason| Error::Shape {
                index: i,
                layer: layer.describe(),
                input: shape.clone(),
                reason,
            })?;
            out.push(layer);
        }
        Ok(out)
    }

    /// Fails unless the model's output is one value per class (`classes`,
    /// 10 for MNIST), naming the last layer and what to change in `origin`
    /// (see [`origin_name`]). Checked when the model is built: otherwise a
    /// wrong width fails at the first step (too few outputs) or only when
    /// the trained model is exported (too many).
    pub fn check_outputs<B: Backend>(
        &self,
        layers: &[Box<dyn Layer<B>>],
        classes: usize,
        origin: &str,
    ) -> Result<()> {
        let mut shape = self.input.clone();
        for (i, l) in layers.iter().enumerate() {
            shape = l.output_shape(&shape).map_err(|reason| Error::Shape {
                index: i,
                layer: l.describe(),
                input: shape.clone(),
                reason,
            })?;
        }
        let outputs = product(&shape);
        if outputs == Some(classes as u64) {
            return Ok(());
        }
        let Some((last, layer)) = layers.iter().enumerate().next_back() else {
            return Err(Error::config("model", "it has no layers"));
        };
        // The linear layer that sets the width, when the layers after it
        // (activations, dropout, softmax) keep it.
        let sizer = self
            .layers
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, l)| match l {
                LayerSpec::Linear { out, .. } => Some((i, *out)),
                _ => None,
            });
        let hint = match sizer {
            Some((i, out)) if shape.len() == 1 && Some(out as u64) == outputs => {
                let which = if i + 1 == self.layers.len() {
                    "the last [[layers]]".to_string()
                } else {
                    format!("the last linear layer (layer {i})")
                };
                format!("set out = {classes} in {which} of {origin}")
            }
            _ if shape.len() > 1 => format!(
                "the output has shape {shape:?}; end {origin} with [[layers]] of type = \"flatten\" \
                 and then type = \"linear\" with out = {classes}"
            ),
            _ => format!(
                "end {origin} with a [[layers]] of type = \"linear\" and out = {classes}, \
                 one output per class"
            ),
        };
        let outputs = outputs.map_or("more than 2^64".to_string(), |n| n.to_string());
        Err(Error::config(
            "model output",
            format!(
                "the last layer (layer {last}, {}) gives {outputs} outputs but MNIST has {classes} classes. HINT: {hint}",
                layer.describe()
            ),
        ))
    }

    /// Checks every hyper-parameter the description sets, with the rules the
    /// command-line flags follow, naming the TOML key and `origin` (see
    /// [`origin_name`]): `invalid [optimizer] lr in model.toml: ...`.
    pub fn check_hyperparameters(&self, origin: &str) -> Result<()> {
        let key = |k: &str| format!("{k} in {origin}");
        let o = &self.optimizer;
        if let Some(kind) = &o.kind {
            optimizer_kind(kind).map_err(named(&key("[optimizer] type")))?;
        }
        if let Some(v) = o.lr {
            positive(&key("[optimizer] lr"), v)?;
        }
        if let Some(v) = o.weight_decay {
            non_negative(&key("[optimizer] weight_decay"), v)?;
        }
        if let Some(v) = o.momentum {
            non_negative(&key("[optimizer] momentum"), v)?;
        }
        if let Some((b1, b2)) = o.betas {
            for b in [b1, b2] {
                if !(0.0..1.0).contains(&b) {
                    return Err(Error::config(
                        key("[optimizer] betas"),
                        format!("{b} is outside [0, 1) (PyTorch's default is [0.9, 0.999])"),
                    ));
                }
            }
        }
        if let Some(v) = o.eps {
            if !(v > 0.0 && v.is_finite()) {
                return Err(Error::config(
                    key("[optimizer] eps"),
                    format!("{v} must be > 0 (PyTorch's default is 1e-8)"),
                ));
            }
        }
        if let Some(s) = &o.schedule {
            parse_schedule(s, 1).map_err(named(&key("[optimizer] schedule")))?;
        }
        let t = &self.training;
        if let Some(n) = t.epochs {
            at_least_one(&key("[training] epochs"), n)?;
        }
        if let Some(n) = t.batch_size {
            at_least_one(&key("[training] batch_size"), n)?;
        }
        if let Some(s) = &t.loss {
            s.parse::<Loss>().map_err(named(&key("[training] loss")))?;
        }
        if let Some(v) = t.label_smoothing {
            label_smoothing(&key("[training] label_smoothing"), v)?;
        }
        if let Some(v) = t.clip_grad_norm {
            positive(&key("[training] clip_grad_norm"), v)?;
        }
        if let Some(n) = t.early_stopping {
            at_least_one(&key("[training] early_stopping"), n)?;
        }
        Ok(())
    }

    /// The optimizer this description asks for.
    pub fn optimizer(&self) -> Result<OptimConfig> {
        let o = &self.optimizer;
        let mut cfg = optimizer_kind(o.kind.as_deref().unwrap_or("adam"))?;
        match &mut cfg {
            OptimConfig::Sgd {
                momentum,
                nesterov,
                weight_decay,
                ..
            } => {
                *momentum = o.momentum.unwrap_or(*momentum);
                *nesterov = o.nesterov.unwrap_or(*nesterov);
                *weight_decay = o.weight_decay.unwrap_or(*weight_decay);
            }
            OptimConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | OptimConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if let Some((b1, b2)) = o.betas {
                    (*beta1, *beta2) = (b1, b2);
                }
                *eps = o.eps.unwrap_or(*eps);
                *weight_decay = o.weight_decay.unwrap_or(*weight_decay);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The schedule this description asks for.
    /// `epochs` is the run's length: a bare `cosine` anneals over all of it.
    pub fn schedule(&self, epochs: usize) -> Result<Schedule> {
        match &self.optimizer.schedule {
            Some(s) => parse_schedule(s, epochs),
            None => Ok(Schedule::Constant),
        }
    }

    /// The loss this description asks for.
    pub fn loss(&self) -> Result<Loss> {
        let mut loss = match &self.training.loss {
            Some(s) => s.parse::<Loss>()?,
            None => Loss::CrossEntropy {
                label_smoothing: 0.0,
            },
        };
        if let (Loss::CrossEntropy { label_smoothing }, Some(ls)) =
            (&mut loss, self.training.label_smoothing)
        {
            *label_smoothing = ls;
        }
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;

    #[test]
    fn every_preset_parses_and_builds() {
        for (name, text) in PRESETS {
            let spec = ModelSpec::parse(text, name).expect("preset parses");
            let layers = spec.build_layers::<Cpu>().expect("preset builds");
            assert!(!layers.is_empty(), "{name}");
            spec.optimizer().expect("optimizer");
            spec.schedule(5).expect("schedule");
        }
    }

    #[test]
    fn sizes_accept_one_number_or_a_pair_and_bare_cosine_spans_the_run() {
        let spec = ModelSpec::parse(
            "input = [2, 9, 7]\n[[layers]]\ntype = \"conv2d\"\nout = 4\nkernel = [3, 1]\nstride = 2\n[[layers]]\ntype = \"max_pool2d\"\nkernel = 2\n[optimizer]\nschedule = \"cosine\"\n",
            "test",
        )
        .expect("parses");
        let layers = spec.build_layers::<Cpu>().expect("builds");
        let s1 = layers[0].output_shape(&[2, 9, 7]).expect("conv fits");
        assert_eq!(s1, vec![4, 4, 4]);
        assert_eq!(
            layers[1].output_shape(&s1).expect("pool fits"),
            vec![4, 2, 2]
        );
        assert_eq!(
            spec.schedule(7).expect("schedule"),
            Schedule::Cosine {
                t_max: 7,
                eta_min: 0.0
            }
        );
    }

    #[test]
    fn an_output_that_is_not_one_value_per_class_names_the_layer_and_the_fix() -> Result<()> {
        let refusal = |toml: &str| -> Result<String> {
            let spec = ModelSpec::parse(toml, "m.toml")?;
            let layers = spec.build_layers::<Cpu>()?;
            Ok(spec
                .check_outputs(&layers, 10, "m.toml")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default())
        };
        let flat = "[[layers]]\ntype = \"flatten\"\n";
        let e = refusal(&format!(
            "{flat}[[layers]]\ntype = \"linear\"\nout = 9\n[[layers]]\ntype = \"softmax\"\n"
        ))?;
        assert!(
            e.contains("layer 2, Softmax")
                && e.contains("in the last linear layer (layer 1) of m.toml"),
            "{e}"
        );
        let e = refusal(flat)?;
        assert!(
            e.contains("784 outputs") && e.contains("type = \"linear\""),
            "{e}"
        );
        let e = refusal("input = [28, 28]\n[[layers]]\ntype = \"linear\"\nout = 10\n")?;
        assert!(e.contains("shape [28, 10]") && e.contains("flatten"), "{e}");
        let ok = format!("{flat}[[layers]]\ntype = \"linear\"\nout = 10\n");
        assert_eq!(refusal(&ok)?, "");
        Ok(())
    }

    #[test]
    fn every_bad_hyperparameter_key_is_named_with_its_table_and_file() -> Result<()> {
        let cases = [
            ("[optimizer]\ntype = \"adagrad\"", "[optimizer] type"),
            ("[optimizer]\nlr = -1", "[optimizer] lr"),
            ("[optimizer]\nlr = nan", "[optimizer] lr"),
            (
                "[optimizer]\nweight_decay = -0.1",
                "[optimizer] weight_decay",
            ),
            ("[optimizer]\nmomentum = inf", "[optimizer] momentum"),
            ("[optimizer]\nbetas = [0.9, 1.0]", "[optimizer] betas"),
            ("[optimizer]\neps = 0", "[optimizer] eps"),
            (
                "[optimizer]\nschedule = \"cosine:0\"",
                "[optimizer] schedule",
            ),
            ("[training]\nepochs = 0", "[training] epochs"),
            ("[training]\nbatch_size = 0", "[training] batch_size"),
            ("[training]\nloss = \"hinge\"", "[training] loss"),
            (
                "[training]\nlabel_smoothing = -0.1",
                "[training] label_smoothing",
            ),
            (
                "[training]\nclip_grad_norm = 0",
                "[training] clip_grad_norm",
            ),
            (
                "[training]\nearly_stopping = 0",
                "[training] early_stopping",
            ),
        ];
        let layers = "[[layers]]\ntype = \"linear\"\nout = 10\n";
        for (table, key) in cases {
            let spec = ModelSpec::parse(&format!("{layers}{table}\n"), "x.toml")?;
            let e = spec
                .check_hyperparameters("x.toml")
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_default();
            assert!(
                e.starts_with(&format!("invalid {key} in x.toml: ")),
                "{table}: {e}"
            );
        }
        let spec = ModelSpec::parse(&format!("{layers}[optimizer]\nlr = 0.1\n"), "x.toml")?;
        spec.check_hyperparameters("x.toml")?;
        Ok(())
    }

    #[test]
    fn unknown_layer_types_and_fields_are_rejected_with_the_name() {
        let e = ModelSpec::parse("[[layers]]\ntype = \"conv3d\"\n", "x.toml")
            .expect_err("unknown type");
        assert!(e.to_string().contains("conv3d"), "{e}");
        let e = ModelSpec::parse(
            "[[layers]]\ntype = \"linear\"\nout = 3\nouts = 4\n",
            "x.toml",
        )
        .expect_err("typo");
        assert!(e.to_string().contains("outs"), "{e}");
    }
}
