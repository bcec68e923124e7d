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

use super::train::TrainOptions;
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
