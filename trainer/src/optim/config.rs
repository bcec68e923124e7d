//! Optimizer hyper-parameters, with PyTorch's defaults and PyTorch's checks.
//!
//! In TOML a config is a table tagged by `kind`; fields left out take
//! PyTorch's defaults:
//!
//! ```toml
//! [optim]
//! kind = "adamw"        # or "adam", "sgd"
//! weight_decay = 0.05   # beta1, beta2, eps default to 0.9, 0.999, 1e-8
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which optimizer, and its hyper-parameters (the learning rate is given per
/// step, so schedules can change it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimConfig {
    /// `torch.optim.SGD`.
    Sgd {
        /// Momentum factor; 0 (the default) keeps no buffer.
        #[serde(default)]
        momentum: f32,
        /// Dampening of new gradients in the momentum buffer.
        #[serde(default)]
        dampening: f32,
        /// Nesterov momentum (needs momentum > 0 and dampening 0).
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f32,
    },
    /// `torch.optim.Adam` (amsgrad off), weight decay as L2 on the gradient.
    Adam {
        /// First-moment decay (PyTorch: 0.9).
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Second-moment decay (PyTorch: 0.999).
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// Added to the denominator (PyTorch: 1e-8).
        #[serde(default = "default_eps")]
        eps: f32,
        /// L2 penalty added to the gradient (PyTorch: 0).
        #[serde(default)]
        weight_decay: f32,
    },
    /// `torch.optim.AdamW` (amsgrad off): decoupled weight decay.
    AdamW {
        /// First-moment decay (PyTorch: 0.9).
        #[serde(default = "default_beta1")]
        beta1: f32,
        /// Second-moment decay (PyTorch: 0.999).
        #[serde(default = "default_beta2")]
        beta2: f32,
        /// Added to the denominator (PyTorch: 1e-8).
        #[serde(default = "default_eps")]
        eps: f32,
        /// Decoupled decay: `p *= 1 - lr * weight_decay` (PyTorch: 0.01).
        #[serde(default = "default_adamw_weight_decay")]
        weight_decay: f32,
    },
}

// PyTorch's defaults (torch.optim.Adam / AdamW signatures).
fn default_beta1() -> f32 {
    0.9
}
fn default_beta2() -> f32 {
    0.999
}
fn default_eps() -> f32 {
    1e-8
}
fn default_adamw_weight_decay() -> f32 {
    0.01
}

impl OptimConfig {
    /// `torch.optim.SGD` defaults: no momentum, dampening, Nesterov or decay.
    pub fn sgd() -> OptimConfig {
        OptimConfig::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// `torch.optim.Adam` defaults: betas (0.9, 0.999), eps 1e-8, no decay.
    pub fn adam() -> OptimConfig {
        OptimConfig::Adam {
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    /// `torch.optim.AdamW` defaults: as Adam, with weight decay 0.01.
    pub fn adamw() -> OptimConfig {
        OptimConfig::AdamW {
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: default_adamw_weight_decay(),
        }
    }

    /// The `kind` tag: `sgd`, `adam` or `adamw`.
    pub fn name(&self) -> &'static str {
        match self {
            OptimConfig::Sgd { .. } => "sgd",
            OptimConfig::Adam { .. } => "adam",
            OptimConfig::AdamW { .. } => "adamw",
        }
    }

    /// State buffers kept per parameter: SGD's momentum buffer (none without
    /// momentum), Adam's `m` and `v`.
    pub(crate) fn slots(&self) -> usize {
        match self {
            OptimConfig::Sgd { momentum, .. } if *momentum == 0.0 => 0,
            OptimConfig::Sgd { .. } => 1,
            OptimConfig::Adam { .. } | OptimConfig::AdamW { .. } => 2,
        }
    }

    /// Fails where PyTorch's constructors fail, and on values that would make
    /// the update NaN (eps = 0 divides 0 by 0 on a zero gradient).
    pub fn validate(&self) -> Result<()> {
        match *self {
            OptimConfig::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => {
                non_negative("SGD momentum", momentum)?;
                if !dampening.is_finite() {
                    return Err(Error::config(
                        "SGD dampening",
                        format!("{dampening} is not finite"),
                    ));
                }
                non_negative("SGD weight_decay", weight_decay)?;
                if nesterov && (momentum <= 0.0 || dampening != 0.0) {
                    return Err(Error::config(
                        "SGD nesterov",
                        format!(
                            "Nesterov momentum needs momentum > 0 and dampening = 0 \
                             (got momentum {momentum}, dampening {dampening}), as in torch.optim.SGD"
                        ),
                    ));
                }
                Ok(())
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
                let name = if matches!(self, OptimConfig::Adam { .. }) {
                    "Adam"
                } else {
                    "AdamW"
                };
                for (which, beta) in [("beta1", beta1), ("beta2", beta2)] {
                    if !(0.0..1.0).contains(&beta) {
                        return Err(Error::config(
                            format!("{name} {which}"),
                            format!("{beta} is outside [0, 1)"),
                        ));
                    }
                }
                if !(eps > 0.0 && eps.is_finite()) {
                    return Err(Error::config(
                        format!("{name} eps"),
                        format!("{eps} must be > 0 (PyTorch's default is 1e-8)"),
                    ));
                }
                non_negative(&format!("{name} weight_decay"), weight_decay)
            }
        }
    }
}

fn non_negative(what: &str, x: f32) -> Result<()> {
    if x >= 0.0 && x.is_finite() {
        Ok(())
    } else {
        Err(Error::config(what, format!("{x} must be finite and >= 0")))
    }
}

/// PyTorch's `repr`-like form, for logs (`AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)`).
impl fmt::Display for OptimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OptimConfig::Sgd {
                momentum,
                dampening,
                nesterov,
                weight_decay,
            } => write!(
                f,
                "SGD(momentum={momentum}, dampening={dampening}, nesterov={nesterov}, weight_decay={weight_decay})"
            ),
            OptimConfig::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => write!(f, "Adam(betas=({beta1}, {beta2}), eps={eps:e}, weight_decay={weight_decay})"),
            OptimConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => write!(f, "AdamW(betas=({beta1}, {beta2}), eps={eps:e}, weight_decay={weight_decay})"),
        }
    }
}

#[cfg(test)]
// A failed expect is a failed test; the crate-wide deny is for library code.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn reason(cfg: OptimConfig) -> String {
        match cfg.validate() {
            Err(e @ Error::Config { .. }) => e.to_string(),
            other => panic!("{cfg:?} should fail validation, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_pytorchs_and_valid() {
        for cfg in [
            OptimConfig::sgd(),
            OptimConfig::adam(),
            OptimConfig::adamw(),
        ] {
            cfg.validate().expect("defaults are valid");
        }
        assert_eq!(
            OptimConfig::adamw(),
            OptimConfig::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.01
            }
        );
        assert_eq!(
            OptimConfig::adamw().to_string(),
            "AdamW(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)"
        );
    }

    #[test]
    fn invalid_hyper_parameters_are_rejected_with_the_setting_named() {
        let sgd = |momentum, dampening, nesterov, weight_decay| OptimConfig::Sgd {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        };
        assert!(reason(sgd(0.0, 0.0, true, 0.0)).contains("SGD nesterov"));
        assert!(reason(sgd(0.9, 0.1, true, 0.0)).contains("dampening = 0"));
        assert!(reason(sgd(-0.1, 0.0, false, 0.0)).contains("SGD momentum"));
        assert!(reason(sgd(0.9, 0.0, false, -1e-4)).contains("SGD weight_decay"));
        sgd(0.9, 0.0, true, 1e-4)
            .validate()
            .expect("Nesterov with momentum is valid");

        let adam = |beta1, beta2, eps, weight_decay| OptimConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
        };
        assert!(reason(adam(1.0, 0.999, 1e-8, 0.0)).contains("Adam beta1"));
        assert!(reason(adam(0.9, -0.1, 1e-8, 0.0)).contains("Adam beta2"));
        assert!(reason(adam(0.9, f32::NAN, 1e-8, 0.0)).contains("Adam beta2"));
        assert!(reason(adam(0.9, 0.999, 0.0, 0.0)).contains("Adam eps"));
        assert!(reason(adam(0.9, 0.999, 1e-8, -0.01)).contains("Adam weight_decay"));
        let adamw = OptimConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: f32::INFINITY,
        };
        assert!(reason(adamw).contains("AdamW weight_decay"));
    }

    #[test]
    fn toml_fills_missing_fields_with_pytorch_defaults() {
        let cfg: OptimConfig =
            toml::from_str("kind = \"adamw\"\nweight_decay = 0.05").expect("parses");
        assert_eq!(
            cfg,
            OptimConfig::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 0.05
            }
        );
        let cfg: OptimConfig =
            toml::from_str("kind = \"sgd\"\nmomentum = 0.9\nnesterov = true").expect("parses");
        assert_eq!(
            cfg,
            OptimConfig::Sgd {
                momentum: 0.9,
                dampening: 0.0,
                nesterov: true,
                weight_decay: 0.0
            }
        );
        let cfg: OptimConfig = toml::from_str("kind = \"adam\"").expect("parses");
        assert_eq!(cfg, OptimConfig::adam());
        // A typo is an error, not a silently ignored setting.
        assert!(toml::from_str::<OptimConfig>("kind = \"adam\"\nbeta_1 = 0.8").is_err());
        // And the serialized form reads back.
        let text = toml::to_string(&OptimConfig::adamw()).expect("serializes");
        assert_eq!(
            toml::from_str::<OptimConfig>(&text).expect("parses"),
            OptimConfig::adamw()
        );
    }
}
