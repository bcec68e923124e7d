//! Learning-rate schedules, stepped once per epoch as PyTorch's
//! `torch.optim.lr_scheduler` classes are in the usual loop
//! (`for epoch: train(); scheduler.step()`).
//!
//! Each is given in closed form of the 0-based epoch, so resuming from a
//! checkpoint needs only the epoch number, not the scheduler's history.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the learning rate changes from epoch to epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// `StepLR`: multiplied by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays (at least 1).
        step_size: usize,
        /// Decay factor.
        gamma: f32,
    },
    /// `CosineAnnealingLR`: half a cosine from the base to `eta_min` over
    /// `t_max` epochs.
    Cosine {
        /// Epochs from the base to the minimum (at least 1).
        t_max: usize,
        /// The minimum learning rate (PyTorch's default: 0).
        #[serde(default)]
        eta_min: f32,
    },
}

impl Schedule {
    /// The learning rate used during 0-based epoch `epoch`.
    ///
    /// StepLR: `base * gamma^(epoch / step_size)` (integer division).
    /// CosineAnnealingLR (the closed form in its docs,
    /// <https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.CosineAnnealingLR.html>):
    /// `eta_min + (base - eta_min) * (1 + cos(pi * epoch / t_max)) / 2`.
    /// Past `t_max` the cosine rises again, as PyTorch's does.
    /// The arithmetic is `f64` (Python floats in PyTorch), rounded once.
    pub fn lr(&self, base_lr: f32, epoch: usize) -> f32 {
        match *self {
            Schedule::Constant => base_lr,
            Schedule::Step { step_size, gamma } => {
                // `validate` rejects 0; max(1) keeps an unvalidated value from panicking.
                let k = epoch / step_size.max(1);
                let k = i32::try_from(k).unwrap_or(i32::MAX);
                (base_lr as f64 * (gamma as f64).powi(k)) as f32
            }
            Schedule::Cosine { t_max, eta_min } => {
                let (base, min) = (base_lr as f64, eta_min as f64);
                let phase = std::f64::consts::PI * epoch as f64 / t_max.max(1) as f64;
                (min + (base - min) * (1.0 + phase.cos()) / 2.0) as f32
            }
        }
    }

    /// Fails on a schedule whose learning rate would be undefined or negative.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                if step_size == 0 {
                    return Err(Error::config(
                        "StepLR step_size",
                        "must be at least 1 epoch",
                    ));
                }
                if !(gamma > 0.0 && gamma.is_finite()) {
                    return Err(Error::config(
                        "StepLR gamma",
                        format!("{gamma} must be finite and > 0"),
                    ));
                }
                Ok(())
            }
            Schedule::Cosine { t_max, eta_min } => {
                if t_max == 0 {
                    return Err(Error::config(
                        "CosineAnnealingLR t_max",
                        "must be at least 1 epoch",
                    ));
                }
                if !(eta_min >= 0.0 && eta_min.is_finite()) {
                    return Err(Error::config(
                        "CosineAnnealingLR eta_min",
                        format!("{eta_min} must be finite and >= 0"),
                    ));
                }
                Ok(())
            }
        }
    }
}

const SYNTAX: &str = "expected `constant`, `step:STEP_SIZE:GAMMA` (e.g. `step:2:0.5`), \
                      `cosine:T_MAX` or `cosine:T_MAX:ETA_MIN` (e.g. `cosine:10:1e-5`)";

fn bad(s: &str, why: &str) -> Error {
    Error::config("learning-rate schedule", format!("`{s}`: {why}; {SYNTAX}"))
}

fn number<T: FromStr>(s: &str, field: &str, text: &str) -> Result<T> {
    text.trim()
        .parse()
        .map_err(|_| bad(s, &format!("{field} `{text}` is not a number")))
}

/// The CLI form: `constant`, `step:STEP_SIZE:GAMMA`, `cosine:T_MAX[:ETA_MIN]`.
impl FromStr for Schedule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Schedule> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let sched = match parts.as_slice() {
            [kind] if kind.eq_ignore_ascii_case("constant") => Schedule::Constant,
            [kind, step_size, gamma] if kind.eq_ignore_ascii_case("step") => Schedule::Step {
                step_size: number(s, "STEP_SIZE", step_size)?,
                gamma: number(s, "GAMMA", gamma)?,
            },
            [kind, t_max] if kind.eq_ignore_ascii_case("cosine") => Schedule::Cosine {
                t_max: number(s, "T_MAX", t_max)?,
                eta_min: 0.0,
            },
            [kind, t_max, eta_min] if kind.eq_ignore_ascii_case("cosine") => Schedule::Cosine {
                t_max: number(s, "T_MAX", t_max)?,
                eta_min: number(s, "ETA_MIN", eta_min)?,
            },
            _ => return Err(bad(s, "unknown schedule or wrong number of fields")),
        };
        sched.validate().map_err(|e| bad(s, &e.to_string()))?;
        Ok(sched)
    }
}

/// Prints the CLI form, which [`FromStr`] reads back.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Schedule::Constant => write!(f, "constant"),
            Schedule::Step { step_size, gamma } => write!(f, "step:{step_size}:{gamma}"),
            Schedule::Cosine { t_max, eta_min } => write!(f, "cosine:{t_max}:{eta_min}"),
        }
    }
}

#[cfg(test)]
// A failed expect is a failed test; the crate-wide deny is for library code.
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn close(got: f32, want: f64) {
        assert!(
            (got as f64 - want).abs() <= 1e-7 * (1.0 + want.abs()),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn constant_keeps_the_base() {
        for epoch in [0, 1, 100] {
            assert_eq!(Schedule::Constant.lr(0.01, epoch), 0.01);
        }
    }

    #[test]
    fn step_lr_halves_every_two_epochs() {
        let s = Schedule::Step {
            step_size: 2,
            gamma: 0.5,
        };
        // epoch / 2 = 0, 0, 1, 1, 2, 2 -> 0.1 * 0.5^k
        for (epoch, want) in [
            (0, 0.1),
            (1, 0.1),
            (2, 0.05),
            (3, 0.05),
            (4, 0.025),
            (5, 0.025),
        ] {
            close(s.lr(0.1, epoch), want);
        }
        // step_size 3, gamma 0.1: epoch 7 -> 7 / 3 = 2 -> 1.0 * 0.1^2 = 0.01
        close(
            Schedule::Step {
                step_size: 3,
                gamma: 0.1,
            }
            .lr(1.0, 7),
            0.01,
        );
    }

    #[test]
    fn cosine_follows_half_a_cosine_to_eta_min_and_back() {
        let s = Schedule::Cosine {
            t_max: 10,
            eta_min: 0.0,
        };
        close(s.lr(0.1, 0), 0.1); // cos 0 = 1 -> base
        close(s.lr(0.1, 1), 0.0975528258148); // 0.1 * (1 + cos(pi/10)) / 2, cos(pi/10) = 0.951056516295
        close(s.lr(0.1, 2), 0.0904508497187); // cos(pi/5) = 0.809016994375
        close(s.lr(0.1, 5), 0.05); // cos(pi/2) = 0 -> halfway
        close(s.lr(0.1, 9), 0.00244717418524); // cos(9pi/10) = -0.951056516295
        close(s.lr(0.1, 10), 0.0); // cos(pi) = -1 -> eta_min
        close(s.lr(0.1, 12), 0.00954915028125); // cos(6pi/5) = -0.809016994375: rising again
        let s = Schedule::Cosine {
            t_max: 10,
            eta_min: 0.01,
        };
        close(s.lr(0.1, 5), 0.055); // 0.01 + 0.09 * 0.5
        close(s.lr(0.1, 2), 0.0914057647469); // 0.01 + 0.09 * (1 + 0.809016994375) / 2
        close(s.lr(0.1, 10), 0.01);
    }

    #[test]
    fn cli_forms_parse_and_print_back() {
        let cases = [
            ("constant", Schedule::Constant),
            (
                "step:2:0.5",
                Schedule::Step {
                    step_size: 2,
                    gamma: 0.5,
                },
            ),
            (
                "cosine:10",
                Schedule::Cosine {
                    t_max: 10,
                    eta_min: 0.0,
                },
            ),
            (
                "cosine:10:1e-5",
                Schedule::Cosine {
                    t_max: 10,
                    eta_min: 1e-5,
                },
            ),
        ];
        for (text, want) in cases {
            let got: Schedule = text.parse().expect("parses");
            assert_eq!(got, want, "{text}");
            assert_eq!(
                got.to_string().parse::<Schedule>().expect("round-trips"),
                want
            );
        }
    }

    #[test]
    fn bad_cli_forms_explain_the_syntax() {
        for text in [
            "",
            "linear",
            "step:2",
            "step:x:0.5",
            "step:0:0.5",
            "step:2:-1",
            "cosine",
            "cosine:0",
            "cosine:10:1:2",
        ] {
            match text.parse::<Schedule>() {
                Err(e @ Error::Config { .. }) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains("learning-rate schedule")
                            && msg.contains("step:STEP_SIZE:GAMMA"),
                        "{msg}"
                    );
                }
                other => panic!("`{text}` should fail, got {other:?}"),
            }
        }
    }

    #[test]
    fn toml_form_is_tagged_by_kind() {
        let s: Schedule = toml::from_str("kind = \"cosine\"\nt_max = 20").expect("parses");
        assert_eq!(
            s,
            Schedule::Cosine {
                t_max: 20,
                eta_min: 0.0
            }
        );
        let s: Schedule =
            toml::from_str("kind = \"step\"\nstep_size = 5\ngamma = 0.1").expect("parses");
        assert_eq!(
            s,
            Schedule::Step {
                step_size: 5,
                gamma: 0.1
            }
        );
    }
}
