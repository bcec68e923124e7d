//! What a run's curves say: healthy, overfitting, underfitting, or
//! learning-rate trouble (NaN, flat or oscillating loss), with the numbers
//! the verdict rests on and what to try next.
//!
//! A pure function of the per-epoch metrics, so it runs the same on a live
//! run (`lasagna train`), a sweep's JSON files and synthetic curves in tests.
//! The checks run in order and the first that fires wins:
//!
//! | verdict | fires when (defaults in [`Thresholds`]) |
//! | --- | --- |
//! | `non_finite_loss` | any train or validation loss is NaN or infinite |
//! | `flat_loss` | ≥ 3 epochs, the train loss fell less than 1 % from the first epoch to the last, and is still above 20 % of chance loss ln(classes) |
//! | `oscillating_loss` | ≥ 3 epochs and the train loss rose by more than 2 % from one epoch to the next at least twice |
//! | `overfitting` | the validation loss is ≥ 3 % above its minimum (epoch k < last) while the train loss kept falling since k |
//! | `underfitting` | the last validation loss (train loss without validation) is above 25 % of chance loss, about 0.58 nats for 10 classes: the right class gets under ~56 % probability on average |
//! | `healthy` | none of the above |
//!
//! Trend checks need several epochs; with fewer the reason says so.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

use crate::train::EpochMetrics;

/// The kind of verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Nothing to fix.
    Healthy,
    /// Validation loss rising while the train loss falls.
    Overfitting,
    /// The loss stays high.
    Underfitting,
    /// The loss became NaN or infinite.
    NonFiniteLoss,
    /// The loss does not move.
    FlatLoss,
    /// The loss goes up and down from epoch to epoch.
    OscillatingLoss,
}

impl Verdict {
    /// The snake_case name used in JSON and tables.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Overfitting => "overfitting",
            Verdict::Underfitting => "underfitting",
            Verdict::NonFiniteLoss => "non_finite_loss",
            Verdict::FlatLoss => "flat_loss",
            Verdict::OscillatingLoss => "oscillating_loss",
        }
    }
}

/// A verdict, why, what to try, and the numbers it was based on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// What the curves show.
    pub verdict: Verdict,
    /// The evidence, in words with numbers.
    pub reason: String,
    /// What to try next (empty when healthy).
    pub advice: String,
    /// The measurements behind the verdict (loss in nats, epochs 1-based).
    pub numbers: BTreeMap<String, f64>,
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.verdict.name(), self.reason)?;
        if !self.advice.is_empty() {
            write!(f, ". Try: {}", self.advice)?;
        }
        Ok(())
    }
}

/// The limits the checks use; [`Thresholds::default`] is what `lasagna` uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Number of classes; chance loss is ln(classes) (2.303 nats for MNIST).
    pub classes: usize,
    /// Epochs needed before the trend checks (flat, oscillating) run.
    pub min_epochs_trend: usize,
    /// Flat: the train loss fell by less than this fraction over the run.
    pub flat_rel_drop: f32,
    /// Flat only counts while the loss is above this fraction of chance loss
    /// (a converged model is allowed to be flat).
    pub flat_min_loss_frac: f32,
    /// Oscillating: an epoch-to-epoch rise larger than this fraction counts...
    pub rise_rel: f32,
    /// ...and this many of them make the loss oscillating.
    pub rises: usize,
    /// Overfitting: the validation loss is this fraction above its minimum.
    pub overfit_rel_rise: f32,
    /// Underfitting: the final loss is above this fraction of chance loss.
    pub underfit_loss_frac: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            classes: 10,
            min_epochs_trend: 3,
            flat_rel_drop: 0.01,
            flat_min_loss_frac: 0.2,
            rise_rel: 0.02,
            rises: 2,
            overfit_rel_rise: 0.03,
            // 0.25 * ln(10) = 0.58 nats: e^-0.58 = 56 % mean probability on the
            // right class; the chapter's MLP is near 0.1 after one epoch.
            underfit_loss_frac: 0.25,
        }
    }
}

fn nums(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn diag(verdict: Verdict, reason: String, advice: &str, numbers: &[(&str, f64)]) -> Diagnosis {
    Diagnosis {
        verdict,
        reason,
        advice: advice.to_string(),
        numbers: nums(numbers),
    }
}

const NAN_ADVICE: &str = "lower the learning rate (10x), clip gradients (--clip-grad-norm 1.0)";

/// The verdict for a run that stopped on a NaN or infinite loss
/// ([`crate::Error::NonFiniteLoss`]), when no metrics exist past that point.
pub fn non_finite(epoch: usize, step: u64, lr: f32) -> Diagnosis {
    diag(
        Verdict::NonFiniteLoss,
        format!(
            "the loss became NaN or infinite at epoch {epoch}, step {step}, learning rate {lr}"
        ),
        NAN_ADVICE,
        &[
            ("epoch", epoch as f64),
            ("step", step as f64),
            ("lr", lr as f64),
        ],
    )
}

/// Diagnoses a run from its per-epoch metrics with the default thresholds.
pub fn diagnose(history: &[EpochMetrics]) -> Diagnosis {
    diagnose_with(history, &Thresholds::default())
}

/// Diagnoses a run from its per-epoch metrics.
pub fn diagnose_with(h: &[EpochMetrics], t: &Thresholds) -> Diagnosis {
    let Some(last) = h.last() else {
        return diag(
            Verdict::Healthy,
            "no finished epoch: nothing to judge".into(),
            "",
            &[("epochs", 0.0)],
        );
    };
    let chance = (t.classes.max(2) as f32).ln();
    let n = h.len();

    if let Some(m) = h
        .iter()
        .find(|m| !m.train_loss.is_finite() || m.val_loss.is_some_and(|v| !v.is_finite()))
    {
        return diag(
            Verdict::NonFiniteLoss,
            format!(
                "the loss is not finite at epoch {} (train {}, val {})",
                m.epoch,
                m.train_loss,
                m.val_loss.map_or("-".into(), |v| v.to_string())
            ),
            NAN_ADVICE,
            &[("epoch", m.epoch as f64), ("lr", m.lr as f64)],
        );
    }

    let first = h[0].train_loss;
    if n >= t.min_epochs_trend {
        let drop = (first - last.train_loss) / first.max(f32::MIN_POSITIVE);
        if drop < t.flat_rel_drop && last.train_loss > t.flat_min_loss_frac * chance {
            return diag(
                Verdict::FlatLoss,
                format!(
                    "train loss {:.4} -> {:.4} over {n} epochs ({:+.1} %, chance is {chance:.3})",
                    first,
                    last.train_loss,
                    -100.0 * drop
                ),
                "a higher learning rate, another optimizer (adam), or check the init and the data",
                &[
                    ("epochs", n as f64),
                    ("train_loss_first", first as f64),
                    ("train_loss_last", last.train_loss as f64),
                    ("relative_drop", drop as f64),
                    ("chance_loss", chance as f64),
                ],
            );
        }

        let rises: Vec<usize> = h
            .windows(2)
            .filter(|w| w[1].train_loss > w[0].train_loss * (1.0 + t.rise_rel))
            .map(|w| w[1].epoch)
            .collect();
        if rises.len() >= t.rises {
            let list: Vec<String> = rises.iter().map(|e| e.to_string()).collect();
            return diag(
                Verdict::OscillatingLoss,
                format!(
                    "train loss rose by more than {:.0} % at epochs {} of {n}",
                    100.0 * t.rise_rel,
                    list.join(", ")
                ),
                "a lower learning rate, a schedule (--schedule cosine or step:2:0.5), gradient clipping",
                &[
                    ("epochs", n as f64),
                    ("rises", rises.len() as f64),
                    ("first_rise_epoch", rises[0] as f64),
                    ("lr", last.lr as f64),
                ],
            );
        }
    }

    // Overfitting: the best validation epoch is behind us and the train loss kept falling.
    let vals: Vec<(usize, f32)> = h
        .iter()
        .filter_map(|m| m.val_loss.map(|v| (m.epoch, v)))
        .collect();
    if let Some(&(k, vmin)) = vals
        .iter()
        .min_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal))
    {
        if let (Some(vlast), Some(at_k)) = (last.val_loss, h.iter().find(|m| m.epoch == k)) {
            let rise = (vlast - vmin) / vmin.max(f32::MIN_POSITIVE);
            if k < last.epoch && rise > t.overfit_rel_rise && last.train_loss < at_k.train_loss {
                return diag(
                    Verdict::Overfitting,
                    format!(
                        "val loss rising since epoch {k} ({vmin:.4} -> {vlast:.4}, {:+.1} %) while train loss falls ({:.4} -> {:.4})",
                        100.0 * rise,
                        at_k.train_loss,
                        last.train_loss
                    ),
                    "add regularization (dropout, --weight-decay) or stop early (--early-stopping 2)",
                    &[
                        ("best_epoch", k as f64),
                        ("val_loss_min", vmin as f64),
                        ("val_loss_last", vlast as f64),
                        ("val_loss_rise", rise as f64),
                        ("train_loss_at_best", at_k.train_loss as f64),
                        ("train_loss_last", last.train_loss as f64),
                    ],
                );
            }
        }
    }

    let (which, final_loss) = match last.val_loss {
        Some(v) => ("val", v),
        None => ("train", last.train_loss),
    };
    let limit = t.underfit_loss_frac * chance;
    if final_loss > limit {
        return diag(
            Verdict::Underfitting,
            format!(
                "{which} loss still {final_loss:.4} after {n} epoch(s) (limit {limit:.3} = {:.0} % of chance {chance:.3}; first train loss {first:.4})",
                100.0 * t.underfit_loss_frac
            ),
            "a bigger model, less dropout, more epochs, or a different learning rate",
            &[
                ("epochs", n as f64),
                ("final_loss", final_loss as f64),
                ("limit", limit as f64),
                ("train_loss_first", first as f64),
                ("chance_loss", chance as f64),
            ],
        );
    }

    let note = if n < t.min_epochs_trend {
        format!(
            " (only {n} epoch(s): trend checks need {})",
            t.min_epochs_trend
        )
    } else {
        String::new()
    };
    diag(
        Verdict::Healthy,
        format!(
            "{which} loss {final_loss:.4} after {n} epoch(s), below {limit:.3}; no rise, plateau or NaN{note}"
        ),
        "",
        &[
            ("epochs", n as f64),
            ("final_loss", final_loss as f64),
            ("limit", limit as f64),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic curves: (train loss, val loss) per epoch.
    fn curve(points: &[(f32, f32)]) -> Vec<EpochMetrics> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(t, v))| EpochMetrics {
                epoch: i + 1,
                train_loss: t,
                train_acc: 0.9,
                val_loss: Some(v),
                val_acc: Some(0.9),
                lr: 1e-3,
                seconds: 1.0,
                skipped_steps: 0,
                loss_scale: None,
            })
            .collect()
    }

    #[test]
    fn falling_curves_are_healthy() {
        let d = diagnose(&curve(&[
            (0.5, 0.3),
            (0.25, 0.2),
            (0.18, 0.15),
            (0.14, 0.13),
        ]));
        assert_eq!(d.verdict, Verdict::Healthy, "{d}");
        assert!(d.advice.is_empty());
    }

    #[test]
    fn val_rising_while_train_falls_is_overfitting_since_the_best_epoch() {
        let d = diagnose(&curve(&[
            (0.4, 0.20),
            (0.2, 0.12),
            (0.1, 0.10),
            (0.05, 0.11),
            (0.02, 0.13),
        ]));
        assert_eq!(d.verdict, Verdict::Overfitting, "{d}");
        assert_eq!(d.numbers["best_epoch"], 3.0);
        assert!(d.reason.contains("since epoch 3"), "{d}");
        assert!(d.advice.contains("early"), "{d}");
    }

    #[test]
    fn a_tiny_val_bump_is_not_overfitting() {
        let d = diagnose(&curve(&[(0.4, 0.2), (0.2, 0.1), (0.15, 0.101)]));
        assert_eq!(d.verdict, Verdict::Healthy, "{d}");
    }

    #[test]
    fn high_loss_from_the_start_is_underfitting() {
        let d = diagnose(&curve(&[(1.9, 1.6), (1.5, 1.3), (1.3, 1.2)]));
        assert_eq!(d.verdict, Verdict::Underfitting, "{d}");
        assert!(d.numbers["final_loss"] > d.numbers["limit"]);
    }

    #[test]
    fn a_nan_loss_says_lower_the_learning_rate() {
        let d = diagnose(&curve(&[(0.5, 0.3), (f32::NAN, f32::NAN)]));
        assert_eq!(d.verdict, Verdict::NonFiniteLoss, "{d}");
        assert_eq!(d.numbers["epoch"], 2.0);
        assert!(d.advice.contains("lower the learning rate"));
        let e = non_finite(1, 17, 10.0);
        assert_eq!(e.verdict, Verdict::NonFiniteLoss);
        assert!(e.reason.contains("step 17"));
    }

    #[test]
    fn a_loss_stuck_at_chance_is_flat_not_underfitting() {
        let d = diagnose(&curve(&[(2.302, 2.301), (2.301, 2.301), (2.300, 2.301)]));
        assert_eq!(d.verdict, Verdict::FlatLoss, "{d}");
        assert!(d.advice.contains("higher learning rate"));
    }

    #[test]
    fn a_converged_flat_loss_is_healthy() {
        let d = diagnose(&curve(&[(0.05, 0.07), (0.0499, 0.07), (0.0498, 0.0699)]));
        assert_eq!(d.verdict, Verdict::Healthy, "{d}");
    }

    #[test]
    fn a_loss_going_up_and_down_is_oscillating() {
        let d = diagnose(&curve(&[
            (0.6, 0.5),
            (0.4, 0.35),
            (0.55, 0.5),
            (0.35, 0.3),
            (0.5, 0.45),
        ]));
        assert_eq!(d.verdict, Verdict::OscillatingLoss, "{d}");
        assert_eq!(d.numbers["rises"], 2.0);
        assert!(d.advice.contains("schedule"));
    }

    #[test]
    fn one_epoch_is_judged_on_its_level_only() {
        let d = diagnose(&curve(&[(0.4, 0.2)]));
        assert_eq!(d.verdict, Verdict::Healthy);
        assert!(d.reason.contains("trend checks need 3"), "{d}");
        assert_eq!(diagnose(&[]).numbers["epochs"], 0.0);
    }

    #[test]
    fn without_validation_the_train_loss_is_judged() {
        let mut h = curve(&[(1.5, 0.0)]);
        h[0].val_loss = None;
        let d = diagnose(&h);
        assert_eq!(d.verdict, Verdict::Underfitting);
        assert!(d.reason.starts_with("train loss"), "{d}");
    }

    #[test]
    fn the_diagnosis_serializes_with_verdict_reason_and_numbers() {
        let d = diagnose(&curve(&[(0.4, 0.2)]));
        let v = serde_json::to_value(&d).expect("json");
        assert_eq!(v["verdict"], "healthy");
        assert!(v["reason"].is_string());
        assert!(v["numbers"]["final_loss"].is_number());
    }
}
