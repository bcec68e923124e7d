//! Losses: which one a run trains with, and how it is run on a backend.
//!
//! The arithmetic lives in the backend's fused ops ([`LossOps`]; the CPU
//! reference is `backend/cpu/cross_entropy.rs`, `backend/cpu/mse.rs`,
//! `backend/cpu/bce.rs`). This module picks the op, checks that the targets
//! are of the kind it needs, and says what the statistics it accumulates
//! are counted over.

use crate::backend::{LossOps, Memory};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A training loss, with PyTorch's mean reduction.
///
/// Serialized internally tagged, e.g. `{"kind": "cross_entropy", "label_smoothing": 0.1}`
/// or `kind = "mse"` in TOML.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Loss {
    /// `nn.CrossEntropyLoss(label_smoothing)` on raw logits and class indices.
    CrossEntropy {
        /// Mass moved from the target class to a uniform distribution, in `[0, 1)`.
        #[serde(default)]
        label_smoothing: f32,
    },
    /// `nn.MSELoss()`: mean over every element.
    Mse,
    /// `nn.BCEWithLogitsLoss()`: mean over every element, targets in `[0, 1]`.
    BceWithLogits,
}

impl Default for Loss {
    fn default() -> Loss {
        Loss::CrossEntropy {
            label_smoothing: 0.0,
        }
    }
}

/// The names [`Loss::from_str`] accepts, for help texts and error messages.
pub const LOSS_NAMES: [&str; 3] = ["cross_entropy", "mse", "bce_with_logits"];

impl Loss {
    /// The name used on the command line and in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::CrossEntropy { .. } => "cross_entropy",
            Loss::Mse => "mse",
            Loss::BceWithLogits => "bce_with_logits",
        }
    }

    /// Checks the hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        if let Loss::CrossEntropy { label_smoothing } = *self {
            // PyTorch also rejects 1.0: the target would carry no label at all.
            if !(0.0..1.0).contains(&label_smoothing) {
                return Err(Error::config(
                    "label smoothing",
                    format!("{label_smoothing} is outside [0, 1); typical values are 0.0 to 0.2"),
                ));
            }
        }
        Ok(())
    }

    /// Whether the targets are class indices ([`Targets::Classes`]) rather than values.
    pub fn wants_classes(&self) -> bool {
        matches!(self, Loss::CrossEntropy { .. })
    }

    /// How many terms `stats[0]` (the summed loss) and `stats[1]` (correct
    /// predictions) are counted over for a batch of `rows` outputs of `cols`:
    /// rows for cross-entropy, every element for MSE and BCE (their mean is
    /// over elements, as in PyTorch). Divide by it to report means.
    pub fn terms(&self, rows: usize, cols: usize) -> usize {
        match self {
            Loss::CrossEntropy { .. } => rows,
            Loss::Mse | Loss::BceWithLogits => rows * cols,
        }
    }

    /// Runs the fused loss: writes `d(mean loss)/dlogits` into `grad`
    /// (overwriting) and adds the summed loss to `stats[0]` and the correct
    /// count to `stats[1]` (see [`Loss::terms`]). `logits` holds `rows * cols`
    /// outputs; class targets hold `rows` indices, value targets `rows * cols` values.
    pub fn forward_backward<B: LossOps>(
        &self,
        b: &B,
        logits: &B::Buf,
        targets: Targets<'_, B>,
        rows: usize,
        cols: usize,
        grad: &mut B::Buf,
        stats: &mut B::Buf,
    ) -> Result<()> {
        match (*self, targets) {
            (Loss::CrossEntropy { label_smoothing }, Targets::Classes(t)) => {
                b.cross_entropy(logits, t, rows, cols, label_smoothing, grad, stats)
            }
            (Loss::Mse, Targets::Values(t)) => b.mse(logits, t, rows * cols, grad, stats),
            (Loss::BceWithLogits, Targets::Values(t)) => {
                b.bce_with_logits(logits, t, rows * cols, grad, stats)
            }
            (loss, t) => Err(Error::config(
                "loss targets",
                format!(
                    "{} needs {} but was given {}. HINT: use cross_entropy for class labels, \
                     mse or bce_with_logits for value targets",
                    loss.name(),
                    if loss.wants_classes() {
                        "class indices"
                    } else {
                        "target values"
                    },
                    t.describe(),
                ),
            )),
        }
    }
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::CrossEntropy { label_smoothing } if *label_smoothing != 0.0 => {
                write!(f, "cross_entropy (label smoothing {label_smoothing})")
            }
            _ => f.write_str(self.name()),
        }
    }
}

impl FromStr for Loss {
    type Err = Error;

    /// Parses a name from [`LOSS_NAMES`] (cross-entropy gets no smoothing;
    /// set `label_smoothing` on the value afterwards).
    fn from_str(s: &str) -> Result<Loss> {
        match s.trim() {
            "cross_entropy" => Ok(Loss::CrossEntropy {
                label_smoothing: 0.0,
            }),
            "mse" => Ok(Loss::Mse),
            "bce_with_logits" => Ok(Loss::BceWithLogits),
            other => Err(Error::config(
                "loss",
                format!(
                    "unknown loss `{other}`; expected one of {}",
                    LOSS_NAMES.join(", ")
                ),
            )),
        }
    }
}

/// What a batch's outputs are compared with.
pub enum Targets<'a, B: Memory> {
    /// One class index per row (cross-entropy).
    Classes(&'a B::Idx),
    /// One value per output element (MSE, BCE).
    Values(&'a B::Buf),
}

// Derived Clone/Copy would demand `B: Copy`; the references are Copy regardless.
impl<B: Memory> Clone for Targets<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Memory> Copy for Targets<'_, B> {}

impl<B: Memory> Targets<'_, B> {
    fn describe(&self) -> &'static str {
        match self {
            Targets::Classes(_) => "class indices",
            Targets::Values(_) => "target values",
        }
    }
}

/// Whether a batch of model outputs (`rows * cols` values, row-major) already
/// looks like a probability distribution per row: every value in `[0, 1]` and
/// every row summing to 1 within 1e-3. Cross-entropy applies its own
/// log-softmax, so a model ending in Softmax trains on a squashed signal
/// (PyTorch users' classic double-softmax mistake); the trainer checks the
/// first batch with this and warns. Empty input, `cols == 0` or a length
/// that is not a whole number of rows is not a probability batch.
pub fn looks_like_probabilities(rows_of_outputs: &[f32], cols: usize) -> bool {
    if cols == 0 || rows_of_outputs.is_empty() || !rows_of_outputs.len().is_multiple_of(cols) {
        return false;
    }
    rows_of_outputs.chunks_exact(cols).all(|row| {
        row.iter().all(|v| (0.0..=1.0).contains(v))
            && (row.iter().map(|&v| v as f64).sum::<f64>() - 1.0).abs() <= 1e-3
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::backend::Memory;

    #[test]
    fn names_parse_and_print_back() {
        for name in LOSS_NAMES {
            let loss: Loss = name.parse().unwrap();
            assert_eq!(loss.name(), name);
            assert_eq!(loss.to_string(), name);
        }
        let err = "softmax".parse::<Loss>().unwrap_err().to_string();
        assert!(
            err.contains("softmax") && err.contains("bce_with_logits"),
            "{err}"
        );
    }

    #[test]
    fn serde_round_trips_and_defaults_smoothing() {
        let l = Loss::CrossEntropy {
            label_smoothing: 0.1,
        };
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(j, r#"{"kind":"cross_entropy","label_smoothing":0.1}"#);
        assert_eq!(serde_json::from_str::<Loss>(&j).unwrap(), l);
        assert_eq!(
            serde_json::from_str::<Loss>(r#"{"kind":"cross_entropy"}"#).unwrap(),
            Loss::default()
        );
        assert_eq!(
            serde_json::from_str::<Loss>(r#"{"kind":"mse"}"#).unwrap(),
            Loss::Mse
        );
        assert_eq!(
            toml::from_str::<Loss>("kind = \"bce_with_logits\"").unwrap(),
            Loss::BceWithLogits
        );
    }

    #[test]
    fn validate_rejects_smoothing_outside_zero_one() {
        for ok in [0.0, 0.1, 0.99] {
            Loss::CrossEntropy {
                label_smoothing: ok,
            }
            .validate()
            .unwrap();
        }
        for bad in [-0.1, 1.0, f32::NAN, f32::INFINITY] {
            let err = Loss::CrossEntropy {
                label_smoothing: bad,
            }
            .validate()
            .unwrap_err()
            .to_string();
            assert!(err.contains("label smoothing"), "{err}");
        }
        Loss::Mse.validate().unwrap();
    }

    #[test]
    fn forward_backward_dispatches_and_accumulates_stats() {
        let b = Cpu;
        let logits = b.upload(&[1.0, 2.0, 3.0, 3.0, 2.0, 1.0]).unwrap();
        let classes = b.upload_idx(&[2, 1]).unwrap();
        let mut grad = b.zeros(6).unwrap();
        let mut stats = b.zeros(2).unwrap();
        let ce = Loss::default();
        ce.forward_backward(
            &b,
            &logits,
            Targets::Classes(&classes),
            2,
            3,
            &mut grad,
            &mut stats,
        )
        .unwrap();
        ce.forward_backward(
            &b,
            &logits,
            Targets::Classes(&classes),
            2,
            3,
            &mut grad,
            &mut stats,
        )
        .unwrap();
        let z = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!(
            (stats[0] as f64 - 2.0 * ((z - 3.0) + (z - 2.0))).abs() < 1e-5,
            "{stats:?}"
        );
        assert_eq!(stats[1], 2.0);
        assert_eq!(ce.terms(2, 3), 2);

        let values = b.upload(&[1.0, 2.0, 3.0, 3.0, 2.0, 0.0]).unwrap();
        let mut stats = b.zeros(2).unwrap();
        Loss::Mse
            .forward_backward(
                &b,
                &logits,
                Targets::Values(&values),
                2,
                3,
                &mut grad,
                &mut stats,
            )
            .unwrap();
        assert_eq!(stats[0], 1.0);
        assert_eq!(grad[5], 2.0 / 6.0);
        assert_eq!(Loss::Mse.terms(2, 3), 6);
    }

    #[test]
    fn mismatched_targets_are_a_config_error() {
        let b = Cpu;
        let logits = b.upload(&[0.0; 4]).unwrap();
        let classes = b.upload_idx(&[0, 1]).unwrap();
        let values = b.upload(&[0.0; 4]).unwrap();
        let (mut grad, mut stats) = (b.zeros(4).unwrap(), b.zeros(2).unwrap());
        let err = Loss::Mse
            .forward_backward(
                &b,
                &logits,
                Targets::Classes(&classes),
                2,
                2,
                &mut grad,
                &mut stats,
            )
            .unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
        assert!(
            err.to_string()
                .contains("mse needs target values but was given class indices"),
            "{err}"
        );
        let err = Loss::default()
            .forward_backward(
                &b,
                &logits,
                Targets::Values(&values),
                2,
                2,
                &mut grad,
                &mut stats,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("cross_entropy needs class indices"),
            "{err}"
        );
    }

    #[test]
    fn probability_rows_are_recognized_and_logits_are_not() {
        assert!(looks_like_probabilities(
            &[0.2, 0.8, 1.0, 0.0, 0.5, 0.5004],
            2
        ));
        assert!(!looks_like_probabilities(&[0.2, 0.8, 0.5, 0.6], 2));
        assert!(!looks_like_probabilities(&[1.5, -0.5], 2));
        assert!(!looks_like_probabilities(&[-1.3, 2.0, 0.1], 3));
        assert!(!looks_like_probabilities(&[0.5, 0.5, 1.0], 2));
        assert!(!looks_like_probabilities(&[], 2));
        assert!(!looks_like_probabilities(&[1.0], 0));
    }
}
