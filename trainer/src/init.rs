//! Weight initialization: PyTorch's per-layer defaults, Xavier (Glorot &
//! Bengio, 2010), Kaiming (He et al., 2015) and zeros, with PyTorch's fan
//! and gain conventions (`torch.nn.init`).
//!
//! [`Init::Default`] means "whatever PyTorch's layer does", so each layer
//! passes its own default [`Dist`]. The other schemes apply to a layer's
//! weight only; its bias then starts at zero, the usual practice when a
//! scheme is chosen explicitly (PyTorch itself would keep its default bias).

use crate::error::{Error, Result};
use crate::philox::Stream;
use std::fmt;
use std::str::FromStr;

/// The nonlinearity that follows a layer, for [`Nonlinearity::gain`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity (also Conv and Linear without an activation).
    Linear,
    /// ReLU.
    Relu,
    /// LeakyReLU with this negative slope.
    LeakyRelu(f32),
    /// Tanh.
    Tanh,
    /// Sigmoid.
    Sigmoid,
    /// SELU.
    Selu,
}

impl Nonlinearity {
    /// PyTorch's `torch.nn.init.calculate_gain`: the factor that keeps the
    /// activations' variance steady through the nonlinearity.
    pub fn gain(self) -> f32 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Relu => std::f32::consts::SQRT_2,
            Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
            Nonlinearity::Tanh => 5.0 / 3.0,
            // PyTorch's choice for SELU (self-normalizing networks want a
            // standard normal input, which 3/4 approximates in practice).
            Nonlinearity::Selu => 0.75,
        }
    }
}

/// How a layer's weight is initialized.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// The layer's PyTorch default (Linear: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`
    /// for weight and bias; Embedding: `N(0, 1)`; norms: weight 1, bias 0).
    Default,
    /// `U(-a, a)` with `a = sqrt(6 / (fan_in + fan_out))` (gain 1).
    XavierUniform,
    /// `N(0, 2 / (fan_in + fan_out))` (gain 1).
    XavierNormal,
    /// `U(-a, a)` with `a = gain * sqrt(3 / fan)`.
    KaimingUniform {
        /// Use `fan_out` (preserves gradient magnitudes in backward) instead of `fan_in`.
        fan_out: bool,
        /// The nonlinearity whose gain scales the bound.
        nonlinearity: Nonlinearity,
    },
    /// `N(0, gain^2 / fan)`.
    KaimingNormal {
        /// Use `fan_out` instead of `fan_in`.
        fan_out: bool,
        /// The nonlinearity whose gain scales the standard deviation.
        nonlinearity: Nonlinearity,
    },
    /// All zeros (useful for a last layer, or to test a pipeline).
    Zeros,
}

/// The names [`Init::from_str`] accepts.
pub const INIT_NAMES: [&str; 6] = [
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "zeros",
];

impl FromStr for Init {
    type Err = Error;

    /// Parses a scheme name. The Kaiming names use `fan_in` and ReLU's gain,
    /// PyTorch's `kaiming_*_` defaults (`a = 0`, `leaky_relu`, i.e. gain `sqrt(2)`).
    fn from_str(s: &str) -> Result<Init> {
        let relu = Nonlinearity::Relu;
        Ok(match s {
            "default" => Init::Default,
            "xavier_uniform" => Init::XavierUniform,
            "xavier_normal" => Init::XavierNormal,
            "kaiming_uniform" => Init::KaimingUniform {
                fan_out: false,
                nonlinearity: relu,
            },
            "kaiming_normal" => Init::KaimingNormal {
                fan_out: false,
                nonlinearity: relu,
            },
            "zeros" => Init::Zeros,
            _ => {
                return Err(Error::config(
                    "init",
                    format!(
                        "unknown scheme `{s}`; expected one of {}",
                        INIT_NAMES.join(", ")
                    ),
                ))
            }
        })
    }
}

impl fmt::Display for Init {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, fan_out, nonlinearity) = match *self {
            Init::Default => return f.write_str("default"),
            Init::XavierUniform => return f.write_str("xavier_uniform"),
            Init::XavierNormal => return f.write_str("xavier_normal"),
            Init::Zeros => return f.write_str("zeros"),
            Init::KaimingUniform {
                fan_out,
                nonlinearity,
            } => ("kaiming_uniform", fan_out, nonlinearity),
            Init::KaimingNormal {
                fan_out,
                nonlinearity,
            } => ("kaiming_normal", fan_out, nonlinearity),
        };
        f.write_str(name)?;
        if fan_out || nonlinearity != Nonlinearity::Relu {
            let mode = if fan_out { "fan_out" } else { "fan_in" };
            write!(f, "({mode}, {nonlinearity:?})")?;
        }
        Ok(())
    }
}

/// A distribution to draw initial values from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dist {
    /// `U(-bound, bound)`.
    Uniform(f32),
    /// `N(0, std^2)`.
    Normal(f32),
    /// Every value the same.
    Constant(f32),
}

impl Dist {
    /// [`Dist::sample`], or [`Error::Alloc`] instead of an abort when `n`
    /// values do not fit in memory (`n` comes from the model description).
    pub fn try_sample(self, n: usize, rng: &mut Stream) -> Result<Vec<f32>> {
        let mut v = Vec::new();
        v.try_reserve_exact(n)
            .map_err(|_| crate::alloc::alloc_error::<f32>(n, "host", "initial weights"))?;
        match self {
            Dist::Uniform(bound) => v.extend((0..n).map(|_| rng.uniform_range(-bound, bound))),
            Dist::Normal(std) => v.extend((0..n).map(|_| rng.normal() * std)),
            Dist::Constant(c) => v.resize(n, c),
        }
        Ok(v)
    }

    /// `n` values drawn in order from `rng`.
    pub fn sample(self, n: usize, rng: &mut Stream) -> Vec<f32> {
        match self {
            Dist::Uniform(bound) => (0..n).map(|_| rng.uniform_range(-bound, bound)).collect(),
            Dist::Normal(std) => (0..n).map(|_| rng.normal() * std).collect(),
            Dist::Constant(v) => vec![v; n],
        }
    }
}

/// PyTorch's `_calculate_fan_in_and_fan_out`: for a weight `[out, in, k...]`,
/// `fan_in = in * prod(k)` and `fan_out = out * prod(k)`.
pub fn fans(shape: &[usize]) -> Result<(usize, usize)> {
    match shape {
        [out, inp, kernel @ ..] => {
            let receptive: usize = kernel.iter().product();
            Ok((inp * receptive, out * receptive))
        }
        _ => Err(Error::config(
            "init",
            format!("fan in and fan out need a weight of at least 2 dimensions, got {shape:?}"),
        )),
    }
}

/// The `fan` as a divisor, refusing empty weights (which PyTorch warns about).
fn nonzero_fan(fan: usize, shape: &[usize]) -> Result<f32> {
    if fan == 0 {
        return Err(Error::config(
            "init",
            format!("weight of shape {shape:?} has a zero fan"),
        ));
    }
    Ok(fan as f32)
}

impl Init {
    /// The distribution for a weight of `shape`; [`Init::Default`] gives `default`.
    pub fn dist(&self, shape: &[usize], default: Dist) -> Result<Dist> {
        let fan = |fan_out: bool| -> Result<f32> {
            let (fan_in, fan_out_) = fans(shape)?;
            nonzero_fan(if fan_out { fan_out_ } else { fan_in }, shape)
        };
        Ok(match *self {
            Init::Default => default,
            Init::Zeros => Dist::Constant(0.0),
            Init::XavierUniform | Init::XavierNormal => {
                let (fan_in, fan_out) = fans(shape)?;
                let std = (2.0 / nonzero_fan(fan_in + fan_out, shape)?).sqrt();
                if *self == Init::XavierUniform {
                    // U(-a, a) has standard deviation a / sqrt(3).
                    Dist::Uniform(3f32.sqrt() * std)
                } else {
                    Dist::Normal(std)
                }
            }
            Init::KaimingUniform {
                fan_out,
                nonlinearity,
            } => Dist::Uniform(3f32.sqrt() * nonlinearity.gain() / fan(fan_out)?.sqrt()),
            Init::KaimingNormal {
                fan_out,
                nonlinearity,
            } => Dist::Normal(nonlinearity.gain() / fan(fan_out)?.sqrt()),
        })
    }

    /// Initial values of a weight of `shape`, drawn from `rng`.
    pub fn weight(&self, shape: &[usize], default: Dist, rng: &mut Stream) -> Result<Vec<f32>> {
        let n = shape.iter().product();
        self.dist(shape, default)?.try_sample(n, rng)
    }

    /// Initial values of a bias of `n` elements: `default` under
    /// [`Init::Default`], zeros under any explicit scheme.
    pub fn bias(&self, n: usize, default: Dist, rng: &mut Stream) -> Vec<f32> {
        match self {
            Init::Default => default.sample(n, rng),
            _ => vec![0.0; n],
        }
    }
}

/// PyTorch's default for Linear (and Conv) weights and biases:
/// `kaiming_uniform_(a = sqrt(5))` reduces to `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`.
pub fn torch_linear_default(fan_in: usize) -> Dist {
    Dist::Uniform(if fan_in == 0 {
        0.0
    } else {
        1.0 / (fan_in as f32).sqrt()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(v: &[f32]) -> (f64, f64, f32) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        (mean, var.sqrt(), max)
    }

    #[test]
    fn gains_match_pytorch_calculate_gain() -> Result<()> {
        let cases = [
            (Nonlinearity::Linear, 1.0),
            (Nonlinearity::Sigmoid, 1.0),
            (Nonlinearity::Relu, 2f32.sqrt()),
            (Nonlinearity::LeakyRelu(0.01), 1.414_142_8),
            (Nonlinearity::LeakyRelu(5f32.sqrt()), 0.577_350_3),
            (Nonlinearity::Tanh, 1.666_666_7),
            (Nonlinearity::Selu, 0.75),
        ];
        for (nl, want) in cases {
            assert!(
                (nl.gain() - want).abs() < 1e-6,
                "{nl:?}: {} vs {want}",
                nl.gain()
            );
        }
        Ok(())
    }

    #[test]
    fn fans_follow_pytorch_for_linear_and_conv_shapes() {
        assert_eq!(fans(&[256, 784]).ok(), Some((784, 256)));
        assert_eq!(fans(&[8, 3, 5, 5]).ok(), Some((75, 200)));
        assert!(fans(&[10]).is_err());
    }

    #[test]
    fn parsing_accepts_every_listed_name_and_lists_them_on_error() -> Result<()> {
        for name in INIT_NAMES {
            let init: Init = name.parse()?;
            assert_eq!(init.to_string(), name);
        }
        let kaiming: Init = "kaiming_normal".parse()?;
        assert_eq!(
            kaiming,
            Init::KaimingNormal {
                fan_out: false,
                nonlinearity: Nonlinearity::Relu
            }
        );
        let err = "glorot"
            .parse::<Init>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("glorot") && INIT_NAMES.iter().all(|n| err.contains(n)),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn each_scheme_has_the_stated_spread_and_bounds_on_a_large_tensor() -> Result<()> {
        let shape = [300, 400, 3]; // fan_in 1200, fan_out 900
        let (fan_in, fan_out) = (1200.0f64, 900.0f64);
        let relu_gain = 2f64.sqrt();
        let xavier_std = (2.0 / (fan_in + fan_out)).sqrt();
        let default = torch_linear_default(1200);
        let cases: [(Init, f64, Option<f64>); 6] = [
            (
                Init::Default,
                1.0 / fan_in.sqrt() / 3f64.sqrt(),
                Some(1.0 / fan_in.sqrt()),
            ),
            (
                Init::XavierUniform,
                xavier_std,
                Some(xavier_std * 3f64.sqrt()),
            ),
            (Init::XavierNormal, xavier_std, None),
            (
                Init::KaimingUniform {
                    fan_out: true,
                    nonlinearity: Nonlinearity::Relu,
                },
                relu_gain / fan_out.sqrt(),
                Some(relu_gain * (3.0 / fan_out).sqrt()),
            ),
            (
                Init::KaimingNormal {
                    fan_out: false,
                    nonlinearity: Nonlinearity::Tanh,
                },
                (5.0 / 3.0) / fan_in.sqrt(),
                None,
            ),
            (Init::Zeros, 0.0, Some(0.0)),
        ];
        let mut rng = Stream::new(3, 0);
        for (init, want_std, bound) in cases {
            let w = init.weight(&shape, default, &mut rng)?;
            assert_eq!(w.len(), 360_000);
            let (mean, std, max) = moments(&w);
            assert!(
                mean.abs() < 0.01 * want_std.max(1e-3),
                "{init}: mean {mean}"
            );
            assert!(
                (std - want_std).abs() <= 0.01 * want_std,
                "{init}: std {std}, want {want_std}"
            );
            if let Some(bound) = bound {
                assert!(
                    max as f64 <= bound * (1.0 + 1e-6),
                    "{init}: |w| reached {max} > {bound}"
                );
                assert!(
                    max as f64 >= bound * 0.99,
                    "{init}: |w| only reached {max} of {bound}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn explicit_schemes_zero_the_bias_and_default_keeps_the_layer_default() {
        let mut rng = Stream::new(1, 0);
        assert!(Init::XavierUniform
            .bias(16, Dist::Uniform(1.0), &mut rng)
            .iter()
            .all(|&b| b == 0.0));
        let b = Init::Default.bias(16, Dist::Uniform(0.25), &mut rng);
        assert!(b.iter().all(|&b| b.abs() <= 0.25) && b.iter().any(|&b| b != 0.0));
        assert_eq!(
            Init::Default
                .weight(&[2, 2], Dist::Constant(1.0), &mut rng)
                .ok(),
            Some(vec![1.0; 4])
        );
    }
}
