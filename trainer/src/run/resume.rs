//! `--resume`: the run continues as its checkpoint says. Every option the
//! command gives is checked against the checkpoint's [`Recipe`]; the same
//! value is fine, a different one is refused by name with both values
//! ([`Error::ResumeConflict`]), because a resumed run that silently trained
//! with other settings (or labelled its model file with them) would be a run
//! no single command produces.
//!
//! What may change: `--epochs` to a larger total (the run continues past
//! its planned end; the schedule stays as it was resolved when the run
//! began, so `cosine` keeps its T_MAX), `--data` (where the same MNIST files
//! are; the step counter is checked against them), `--device`, and the
//! output paths.

use super::options::TrainOptions;
use crate::checkpoint::{Checkpoint, Recipe};
use crate::config::parse_schedule;
use crate::error::{Error, Result};
use crate::loss::Loss;
use crate::optim::OptimConfig;
use std::fmt::Display;
use std::path::Path;

/// The checkpoint's recipe, with the total epochs this command asks for.
pub(super) fn resume_recipe(o: &TrainOptions, path: &Path, c: &Checkpoint) -> Result<Recipe> {
    let r = &c.recipe;
    let t = &r.train;
    let done = c.state.epochs_done;
    let conflict = |option: &str, checkpoint: &dyn Display, given: &dyn Display| {
        Err(Error::ResumeConflict {
            path: path.to_path_buf(),
            option: option.into(),
            checkpoint: checkpoint.to_string(),
            given: given.to_string(),
        })
    };
    // In the order `lasagna train --help` lists them.
    if let Some(m) = o.model.as_ref().filter(|m| **m != r.model) {
        return conflict("--model", &r.model, m);
    }
    if let Some(n) = o.batch_size.filter(|n| *n != t.batch_size) {
        return conflict("--batch-size", &t.batch_size, &n);
    }
    if let Some(lr) = o.lr.filter(|lr| *lr != t.lr) {
        return conflict("--lr", &t.lr, &lr);
    }
    if let Some(name) = o.optimizer.as_ref().filter(|n| *n != t.optimizer.name()) {
        return conflict("--optimizer", &t.optimizer.name(), name);
    }
    if let Some(wd) = o
        .weight_decay
        .filter(|wd| *wd != weight_decay(&t.optimizer))
    {
        return conflict("--weight-decay", &weight_decay(&t.optimizer), &wd);
    }
    if let Some(m) = o.momentum {
        match t.optimizer {
            OptimConfig::Sgd { momentum, .. } if momentum == m => {}
            OptimConfig::Sgd { momentum, .. } => return conflict("--momentum", &momentum, &m),
            ref other => {
                let none = format!("none ({} has no momentum)", other.name());
                return conflict("--momentum", &none, &m);
            }
        }
    }
    if let Some(s) = &o.schedule {
        // Resolved as when the run began: `cosine` spans the run's first total.
        if parse_schedule(s, t.epochs)? != t.schedule {
            return conflict("--schedule", &t.schedule, s);
        }
    }
    if let Some(c) = o.clip_grad_norm.filter(|c| Some(*c) != t.clip_grad_norm) {
        return conflict("--clip-grad-norm", &or_none(t.clip_grad_norm), &c);
    }
    if let Some(ls) = o.label_smoothing {
        match t.loss {
            Loss::CrossEntropy { label_smoothing } if label_smoothing == ls => {}
            Loss::CrossEntropy { label_smoothing } => {
                return conflict("--label-smoothing", &label_smoothing, &ls)
            }
            other => {
                let none = format!("none (the loss is {other})");
                return conflict("--label-smoothing", &none, &ls);
            }
        }
    }
    if let Some(p) = o.early_stopping.filter(|p| Some(*p) != t.early_stopping) {
        return conflict("--early-stopping", &or_none(t.early_stopping), &p);
    }
    if let Some(amp) = o.amp.filter(|a| *a != t.amp) {
        return conflict("--amp", &on_off(t.amp), &on_off(amp));
    }
    if let Some(seed) = o.seed.filter(|s| *s != t.seed) {
        return conflict("--seed", &t.seed, &seed);
    }
    let norm = r.normalization;
    if let Some(m) = o.norm_mean.filter(|m| *m != norm.mean) {
        return conflict("--norm-mean", &norm.mean, &m);
    }
    if let Some(s) = o.norm_std.filter(|s| *s != norm.std) {
        return conflict("--norm-std", &norm.std, &s);
    }
    if let Some(v) = o.val.filter(|v| *v != r.val) {
        return conflict("--val", &r.val, &v);
    }
    if let Some(n) = o.train_subset.filter(|n| Some(*n) != r.subset) {
        return conflict("--train-subset", &or_none(r.subset), &n);
    }

    let mut recipe = r.clone();
    if let Some(n) = o.epochs {
        if n < done {
            return Err(Error::config(
                "--epochs",
                format!(
                    "{n} is fewer than the {done} epochs --resume {} has done. HINT: --epochs \
                     is the run's total: give more than {done} to continue past them, or drop \
                     --epochs to finish the run's {}",
                    path.display(),
                    t.epochs
                ),
            ));
        }
        recipe.train.epochs = n;
    }
    // Early stopping ends a run before its planned epochs; its checkpoint
    // holds the last weights, not the best, so training on would start
    // from the wrong weights and keep them.
    if let (Some(patience), Some((_, best))) = (t.early_stopping, c.state.best) {
        if done - best >= patience && recipe.train.epochs > done {
            return Err(Error::config(
                "--resume",
                format!(
                    "{} is a run that early stopping ended after epoch {done} (no better \
                     validation loss than epoch {best}'s for {patience} epochs); there is \
                     nothing to continue. HINT: the run's --out file holds epoch {best}'s \
                     weights; to train longer, start a new run without --resume",
                    path.display()
                ),
            ));
        }
    }
    Ok(recipe)
}

fn weight_decay(o: &OptimConfig) -> f32 {
    match *o {
        OptimConfig::Sgd { weight_decay, .. }
        | OptimConfig::Adam { weight_decay, .. }
        | OptimConfig::AdamW { weight_decay, .. } => weight_decay,
    }
}

fn or_none<T: Display>(v: Option<T>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use crate::data::Normalization;
    use crate::optim::OptimState;
    use crate::train::{EpochMetrics, RunState, TrainConfig};
    use std::time::Instant;

    fn options() -> TrainOptions {
        TrainOptions {
            model: None,
            epochs: None,
            batch_size: None,
            lr: None,
            optimizer: None,
            weight_decay: None,
            momentum: None,
            schedule: None,
            clip_grad_norm: None,
            label_smoothing: None,
            early_stopping: None,
            amp: None,
            seed: None,
            data: None,
            norm_mean: None,
            norm_std: None,
            val: None,
            train_subset: None,
            out: None,
            metrics: None,
            checkpoint: None,
            resume: None,
            started: Instant::now(),
            max_memory: None,
        }
    }

    /// A 3-epoch run with early stopping (patience 2) after `done` epochs,
    /// its best validation loss at epoch `best`.
    fn checkpoint(done: usize, best: usize) -> Checkpoint {
        let mut state = RunState::new();
        state.epochs_done = done;
        state.best = Some((0.5, best));
        state.history = (1..=done)
            .map(|epoch| EpochMetrics {
                epoch,
                train_loss: 1.0,
                train_acc: 0.5,
                val_loss: Some(0.5),
                val_acc: Some(0.5),
                lr: 1e-3,
                seconds: 0.1,
                skipped_steps: 0,
                loss_scale: None,
            })
            .collect();
        Checkpoint {
            recipe: Recipe {
                model: "mlp".into(),
                model_toml: String::new(),
                normalization: Normalization::default(),
                train: TrainConfig {
                    epochs: 3,
                    early_stopping: Some(2),
                    ..TrainConfig::mnist_default()
                },
                val: 5000,
                subset: None,
                train_crc32: 0,
            },
            state,
            weights: Vec::new(),
            optimizer: OptimState {
                kind: "adam".into(),
                step: 0,
                buffers: Vec::new(),
            },
        }
    }

    fn resolve(o: &TrainOptions, c: &Checkpoint) -> std::result::Result<Recipe, String> {
        resume_recipe(o, Path::new("c.ckpt"), c).map_err(|e| e.to_string())
    }

    #[test]
    fn options_equal_to_the_checkpoint_are_accepted_and_more_epochs_continue() {
        let c = checkpoint(1, 1);
        let o = TrainOptions {
            model: Some("mlp".into()),
            lr: Some(1e-3),
            optimizer: Some("adam".into()),
            weight_decay: Some(0.0),
            schedule: Some("constant".into()),
            label_smoothing: Some(0.0),
            early_stopping: Some(2),
            amp: Some(false),
            seed: Some(0),
            norm_mean: Some(Normalization::default().mean),
            val: Some(5000),
            epochs: Some(7),
            ..options()
        };
        let r = resolve(&o, &c).unwrap();
        assert_eq!(r.train.epochs, 7);
        assert_eq!(
            TrainConfig {
                epochs: 3,
                ..r.train
            },
            c.recipe.train,
            "only the epochs change"
        );
    }

    #[test]
    fn each_contradicting_option_is_named_with_both_values() {
        let c = checkpoint(1, 1);
        let cases = [
            (
                TrainOptions {
                    model: Some("cnn".into()),
                    ..options()
                },
                "--model mlp; this command says cnn",
            ),
            (
                TrainOptions {
                    weight_decay: Some(0.1),
                    ..options()
                },
                "--weight-decay 0; this command says 0.1",
            ),
            (
                TrainOptions {
                    momentum: Some(0.9),
                    ..options()
                },
                "--momentum none (adam has no momentum)",
            ),
            (
                TrainOptions {
                    clip_grad_norm: Some(1.0),
                    ..options()
                },
                "--clip-grad-norm none; this command says 1",
            ),
            (
                TrainOptions {
                    label_smoothing: Some(0.1),
                    ..options()
                },
                "--label-smoothing 0; this command says 0.1",
            ),
            (
                TrainOptions {
                    early_stopping: Some(5),
                    ..options()
                },
                "--early-stopping 2; this command says 5",
            ),
            (
                TrainOptions {
                    train_subset: Some(100),
                    ..options()
                },
                "--train-subset none; this command says 100",
            ),
        ];
        for (o, want) in cases {
            let e = resolve(&o, &c).unwrap_err();
            assert!(e.contains(want) && e.contains("HINT"), "want `{want}`: {e}");
        }
    }

    #[test]
    fn a_run_that_early_stopping_ended_is_not_continued() {
        // Epoch 3 of 3 is two epochs past the best: the run is over, and
        // asking for more epochs is refused.
        let e = resolve(
            &TrainOptions {
                epochs: Some(5),
                ..options()
            },
            &checkpoint(3, 1),
        )
        .unwrap_err();
        assert!(
            e.contains("early stopping ended") && e.contains("HINT"),
            "{e}"
        );
        // Stopped before its planned end: refused even without --epochs.
        let mut c = checkpoint(3, 1);
        c.recipe.train.epochs = 6;
        assert!(resolve(&options(), &c).is_err());
        // One epoch past the best with patience 2: still running.
        assert!(resolve(&options(), &checkpoint(2, 1)).is_ok());
    }
}
