//! The training loop: data resident on the device, batches gathered there,
//! statistics read back rarely, and the classic mistakes caught with clear
//! messages.

use crate::amp::GradScaler;
use crate::backend::{Backend, Location, StepRow};
use crate::data::{epoch_batches, Dataset};
use crate::error::{Error, Result};
use crate::loss::{looks_like_probabilities, Loss, Targets};
use crate::model::Model;
use crate::optim::{clip_grad_norm, Optimizer};
use serde::{Deserialize, Serialize};
use std::time::Instant;

mod config;
pub use config::TrainConfig;

/// Dropout's offset is `step * DROPOUT_STEP_STRIDE + layer` (the model's
/// stride): a replayed step's table row holds the step's part.
const DROPOUT_STEP_STRIDE: u64 = crate::model::LAYER_STRIDE;

/// Fewer full batches than this left in an epoch run eagerly: a graph pays
/// for its capture and instantiation over several replays, not one.
const MIN_REPLAYS: usize = 2;

/// Whether the environment allows graphs (`LASAGNA_GRAPHS=0` does not).
fn graphs_allowed_by_env() -> bool {
    std::env::var("LASAGNA_GRAPHS").map_or(true, |v| v.trim() != "0")
}

/// One epoch's numbers, as `--metrics` writes them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (with dropout active, as PyTorch reports it).
    pub train_loss: f32,
    /// Training accuracy over the epoch's batches.
    pub train_acc: f32,
    /// Validation loss (eval mode); `None` without a validation set.
    pub val_loss: Option<f32>,
    /// Validation accuracy.
    pub val_acc: Option<f32>,
    /// Learning rate used in this epoch.
    pub lr: f32,
    /// Wall-clock seconds of the epoch's training steps (evaluation excluded).
    pub seconds: f64,
    /// Optimizer steps skipped by AMP because a gradient was inf/NaN.
    #[serde(default)]
    pub skipped_steps: u64,
    /// AMP's loss scale at the end of the epoch (`None` without AMP).
    #[serde(default)]
    pub loss_scale: Option<f32>,
}

/// Loss and accuracy over a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss.
    pub loss: f32,
    /// Fraction of correct argmax predictions.
    pub accuracy: f32,
}

/// A dataset uploaded to the device once, with the buffers batches are gathered into.
pub struct DeviceData<B: Backend> {
    x: B::Buf,
    y: B::Idx,
    len: usize,
    sample: usize,
}

impl<B: Backend> DeviceData<B> {
    /// Uploads `ds` (the only full copy of the data the device ever receives).
    pub fn upload(b: &B, ds: &Dataset) -> Result<DeviceData<B>> {
        Ok(DeviceData {
            x: b.upload(&ds.x)?,
            y: b.upload_idx(&ds.y)?,
            len: ds.len(),
            sample: ds.sample_shape.iter().product(),
        })
    }
}

/// Buffers one step needs besides the model's own.
struct StepBuffers<B: Backend> {
    idx: B::Idx,
    /// The epoch's shuffled order (training only; empty for evaluation).
    order: B::Idx,
    targets: B::Idx,
    dlogits: B::Buf,
    stats: B::Buf,
    scratch: B::Buf,
    /// AMP's inf/NaN flag, shared by every gradient buffer of a step.
    found_inf: B::Buf,
}

impl<B: Backend> StepBuffers<B> {
    fn new(b: &B, batch: usize, outputs: usize, samples: usize) -> Result<Self> {
        Ok(StepBuffers {
            idx: b.upload_idx(&vec![0; batch])?,
            order: b.upload_idx(&vec![0; samples])?,
            targets: b.upload_idx(&vec![0; batch])?,
            dlogits: b.zeros(batch * outputs)?,
            stats: b.zeros(2)?,
            scratch: b.zeros(1)?,
            found_inf: b.zeros(1)?,
        })
    }
}

/// Progress reporting hooks, so the CLI can draw bars and tests stay quiet.
pub trait Progress {
    /// An epoch of `steps` steps begins.
    fn epoch_start(&mut self, _epoch: usize, _steps: usize) {}
    /// `done` steps of the epoch are finished; `loss` is the running mean.
    fn step(&mut self, _done: usize, _samples: usize, _loss: f32) {}
    /// The epoch is over.
    fn epoch_end(&mut self, _m: &EpochMetrics) {}
    /// A one-time warning (double softmax, dropout on the output).
    fn warn(&mut self, _msg: &str) {}
}

/// Progress that reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// How often the loss is read back to check it is finite: every step on the
/// CPU (free), every 50 steps on a device where a read is a round trip.
fn check_every<B: Backend>(b: &B) -> usize {
    match b.location() {
        Location::Host => 1,
        Location::Device => 50,
    }
}

/// Evaluates in eval mode, without gradients, restoring the previous mode.
pub fn evaluate<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    data: &DeviceData<B>,
    loss: &Loss,
    eval_batch: usize,
) -> Result<Evaluation> {
    evaluate_into(b, model, data, loss, eval_batch, None)
}

/// [`evaluate`], also appending every sample's outputs to `outputs`
/// (sample-major) when given: the same forward pass gives both, so the
/// outputs are exactly those the accuracy was counted on.
pub fn evaluate_into<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    data: &DeviceData<B>,
    loss: &Loss,
    eval_batch: usize,
    mut outputs_to: Option<&mut Vec<f32>>,
) -> Result<Evaluation> {
    let prev = model.mode();
    model.eval();
    let batch = eval_batch.min(model.max_batch()).max(1);
    let outputs: usize = model.output_shape().iter().product();
    let mut bufs = StepBuffers::new(b, batch, outputs, 0)?;
    let mut start = 0;
    while start < data.len {
        let n = batch.min(data.len - start);
        let idx: Vec<u32> = (start as u32..(start + n) as u32).collect();
        b.write_idx(&mut bufs.idx, &idx)?;
        b.gather_rows(&data.x, &bufs.idx, n, data.sample, model.input_mut())?;
        b.gather_idx(&data.y, &bufs.idx, n, &mut bufs.targets)?;
        let logits = model.forward(b, n, 0, 0)?;
        if let Some(all) = outputs_to.as_deref_mut() {
            let at = all.len();
            all.resize(at + n * outputs, 0.0);
            b.read(logits, all.get_mut(at..).unwrap_or(&mut []))?;
        }
        loss.forward_backward(
            b,
            logits,
            Targets::Classes(&bufs.targets),
            n,
            outputs,
            &mut bufs.dlogits,
            &mut bufs.stats,
        )?;
        start += n;
    }
    let mut s = [0.0f32; 2];
    b.read(&bufs.stats, &mut s)?;
    if prev == crate::layers::Mode::Train {
        model.train();
    }
    let n = data.len.max(1) as f32;
    Ok(Evaluation {
        loss: s[0] / n,
        accuracy: s[1] / n,
    })
}

/// Where a training run stands; saved in checkpoints so a resumed run is
/// bit-identical to an uninterrupted one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimizer steps taken (keys the dropout masks).
    pub step: u64,
    /// Metrics of the finished epochs.
    pub history: Vec<EpochMetrics>,
    /// Best validation loss so far and its epoch (early stopping).
    pub best: Option<(f32, usize)>,
    /// AMP's loss scaler (untouched without AMP); absent in older checkpoints.
    #[serde(default)]
    pub scaler: GradScaler,
}

impl RunState {
    /// The state of a run that has not started.
    pub fn new() -> RunState {
        RunState {
            epochs_done: 0,
            step: 0,
            history: Vec::new(),
            best: None,
            scaler: GradScaler::default(),
        }
    }
}

impl Default for RunState {
    fn default() -> Self {
        RunState::new()
    }
}

/// Called after each epoch with the state to checkpoint; return `Ok(false)` to stop.
pub type EpochHook<'a, B> = dyn FnMut(&mut Model<B>, &Optimizer<B>, &RunState) -> Result<bool> + 'a;

/// AMP's check between backward and the optimizer: unscales every parameter
/// gradient in place (so clipping sees true values) and returns whether any
/// was inf/NaN. The 4-byte flag is read back every step: whether to run the
/// optimizer is a host decision, and PyTorch's `GradScaler.step` makes the
/// same sync (`found_inf.item()`). A device-side skip would need a
/// predicated variant of every optimizer kernel for a 4-byte read.
fn unscale_found_inf<B: Backend>(
    b: &B,
    params: &mut [&mut crate::layers::Param<B>],
    scaler: &GradScaler,
    bufs: &mut StepBuffers<B>,
) -> Result<bool> {
    b.fill(&mut bufs.found_inf, 0.0, 1)?;
    let inv = scaler.inv_scale();
    for p in params.iter_mut() {
        let n = p.numel();
        b.unscale_check(&mut p.grad, n, inv, &mut bufs.found_inf)?;
    }
    let mut flag = [0.0f32];
    b.read(&bufs.found_inf, &mut flag)?;
    Ok(flag[0] != 0.0)
}

/// The running loss statistics of an epoch, read back every `every` steps
/// (between steps, so never inside a captured one).
struct Tally {
    every: usize,
    steps: usize,
    epoch: usize,
    lr: f32,
    seen: usize,
    host: [f32; 2],
}

impl Tally {
    /// Counts step `k` (0-based, `n` samples; `step` steps taken in all) and
    /// reads the statistics when it is time to.
    fn after<B: Backend>(
        &mut self,
        b: &B,
        bufs: &StepBuffers<B>,
        k: usize,
        n: usize,
        step: u64,
        progress: &mut dyn Progress,
    ) -> Result<()> {
        self.seen += n;
        if (k + 1).is_multiple_of(self.every) || k + 1 == self.steps {
            b.read(&bufs.stats, &mut self.host)?;
            if !self.host[0].is_finite() {
                return Err(Error::NonFiniteLoss {
                    epoch: self.epoch + 1,
                    step,
                    value: self.host[0],
                    lr: self.lr,
                    suggest: self.lr / 10.0,
                });
            }
            progress.step(k + 1, self.seen, self.host[0] / self.seen as f32);
        }
        Ok(())
    }
}

/// One training step's ops, from the gather to the optimizer: the same calls
/// whether they run now or are captured into a graph.
#[allow(clippy::too_many_arguments)]
fn step_ops<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    opt: &mut Optimizer<B>,
    train: &DeviceData<B>,
    bufs: &mut StepBuffers<B>,
    cfg: &TrainConfig,
    r: &std::ops::Range<usize>,
    lr: f32,
    state: &mut RunState,
    progress: &mut dyn Progress,
) -> Result<()> {
    let n = r.len();
    let outputs: usize = model.output_shape().iter().product();
    b.gather_batch(
        &train.x,
        &train.y,
        &bufs.order,
        r.start,
        n,
        train.sample,
        model.input_mut(),
        &mut bufs.targets,
    )?;
    model.zero_grad(b)?;
    let logits = model.forward(b, n, cfg.seed, state.step)?;
    if state.step == 0 {
        let mut host = vec![0.0f32; n * outputs];
        b.read(logits, &mut host)?;
        if looks_like_probabilities(&host, outputs) && matches!(cfg.loss, Loss::CrossEntropy { .. })
        {
            progress.warn(
                "the model's outputs already look like probabilities (in [0, 1], rows summing to 1), \
                 but CrossEntropy applies log-softmax itself: this is a double softmax and trains badly. \
                 Remove the final Softmax layer.",
            );
        }
    }
    cfg.loss.forward_backward(
        b,
        logits,
        Targets::Classes(&bufs.targets),
        n,
        outputs,
        &mut bufs.dlogits,
        &mut bufs.stats,
    )?;
    if cfg.amp {
        b.scale(&mut bufs.dlogits, state.scaler.scale(), n * outputs)?;
    }
    model.backward(b, n, cfg.seed, state.step, &bufs.dlogits)?;
    let mut params = model.params_mut();
    let skip = cfg.amp && unscale_found_inf(b, &mut params, &state.scaler, bufs)?;
    if cfg.amp {
        state.scaler.update(skip);
    }
    if !skip {
        if let Some(max) = cfg.clip_grad_norm {
            clip_grad_norm(b, &mut params, max, &mut bufs.scratch)?;
        }
        opt.step(b, &mut params, lr)?;
    }
    Ok(())
}

/// Runs the full batches from `k` on (those of the captured batch's size)
/// as one captured step replayed once per batch: the step table gets a row
/// per batch (one upload), step `k`'s ops are captured (not run), and each
/// replay runs the next row's step. `None` when the device or the step
/// cannot be captured (nothing was run; the caller goes on eagerly), else
/// the steps taken (0 where too few batches are left to be worth a graph).
/// The results are those of eager steps, bit for bit (`graph_replay.rs`).
#[allow(clippy::too_many_arguments)]
fn replay_run<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    opt: &mut Optimizer<B>,
    train: &DeviceData<B>,
    bufs: &mut StepBuffers<B>,
    cfg: &TrainConfig,
    batches: &[std::ops::Range<usize>],
    k: usize,
    state: &mut RunState,
    tally: &mut Tally,
    progress: &mut dyn Progress,
) -> Result<Option<usize>> {
    let n = batches[k].len();
    let count = batches[k..].iter().take_while(|r| r.len() == n).count();
    if count < MIN_REPLAYS {
        return Ok(Some(0));
    }
    let rows: Vec<StepRow> = (0..count as u64)
        .map(|j| StepRow {
            start: batches[k + j as usize].start,
            dropout_base: state.step.wrapping_add(j).wrapping_mul(DROPOUT_STEP_STRIDE),
            adam: opt.adam_scalars(tally.lr, j),
        })
        .collect();
    if !b.load_step_table(&rows)? || !b.begin_step_capture()? {
        return Ok(None);
    }
    let steps_before = opt.steps();
    let ops = step_ops(
        b,
        model,
        opt,
        train,
        bufs,
        cfg,
        &batches[k],
        tally.lr,
        state,
        progress,
    );
    let graph = b.end_step_capture();
    let graph = match (ops, graph) {
        (Ok(()), Ok(Some(g))) => g,
        (Ok(()), Ok(None)) => return Ok(None),
        // A step that cannot be captured (a host read inside it, e.g.
        // Embedding's token check) runs eagerly: the capture ran nothing,
        // and nothing on the host moved unless the optimizer did.
        (Err(e), _) | (Ok(()), Err(e)) if opt.steps() == steps_before => {
            progress.warn(&format!(
                "this training step cannot be replayed from a graph ({e}); training eagerly"
            ));
            return Ok(None);
        }
        (Err(e), _) | (Ok(()), Err(e)) => return Err(e),
    };
    for j in 0..count {
        b.replay_step(graph)?;
        if j > 0 {
            // The capture counted the first.
            opt.replayed(1);
        }
        state.step += 1;
        tally.after(b, bufs, k + j, n, state.step, progress)?;
    }
    b.drop_step_graph(graph)?;
    Ok(Some(count))
}

/// Trains `model` on `train`, evaluating on `val` after each epoch.
pub fn fit<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    opt: &mut Optimizer<B>,
    train: &DeviceData<B>,
    val: Option<&DeviceData<B>>,
    cfg: &TrainConfig,
    state: &mut RunState,
    progress: &mut dyn Progress,
    on_epoch: &mut EpochHook<'_, B>,
) -> Result<()> {
    cfg.validate()?;
    let outputs: usize = model.output_shape().iter().product();
    let batch = cfg.batch_size.min(model.max_batch());
    let mut bufs = StepBuffers::new(b, batch, outputs, train.len)?;
    for w in model.warnings().to_vec() {
        progress.warn(&w);
    }
    // A run resumed right after its best epoch (checkpoints are saved every
    // epoch) holds the best weights now; older ones are not in the checkpoint.
    let mut best_weights: Option<Vec<Vec<f32>>> = match state.best {
        Some((_, e)) if cfg.early_stopping.is_some() && e == state.epochs_done => {
            Some(model.snapshot(b)?)
        }
        _ => None,
    };
    let every = check_every(b);
    model.set_amp(cfg.amp);
    // AMP decides on the host whether to step (a read every step), so its
    // steps stay eager; clipping keeps its norm on the device and is captured.
    let mut graphs = cfg.graphs && !cfg.amp && graphs_allowed_by_env();
    while state.epochs_done < cfg.epochs {
        let epoch = state.epochs_done;
        let lr = cfg.schedule.lr(cfg.lr, epoch);
        let order = crate::data::epoch_order(train.len, cfg.seed, epoch as u64, true);
        let batches = epoch_batches(
            train.len,
            batch,
            cfg.seed,
            epoch as u64,
            true,
            model.has_batchnorm(),
        );
        model.train();
        progress.epoch_start(epoch + 1, batches.len());
        b.fill(&mut bufs.stats, 0.0, 2)?;
        let t0 = Instant::now();
        let skipped_before = state.scaler.skipped_steps;
        // The whole epoch's order in one upload; each step gathers its batch
        // at an offset into it (no host copy, hence no host sync, per step).
        b.write_idx(&mut bufs.order, &order)?;
        let mut tally = Tally {
            every,
            steps: batches.len(),
            epoch,
            lr,
            seen: 0,
            host: [0.0; 2],
        };
        let mut k = 0;
        while k < batches.len() {
            if graphs && k >= 1 {
                let done = replay_run(
                    b, model, opt, train, &mut bufs, cfg, &batches, k, state, &mut tally, progress,
                )?;
                match done {
                    Some(0) => {}
                    Some(done) => {
                        k += done;
                        continue;
                    }
                    // The device or the step cannot: eager from here on.
                    None => graphs = false,
                }
            }
            step_ops(
                b,
                model,
                opt,
                train,
                &mut bufs,
                cfg,
                &batches[k],
                lr,
                state,
                progress,
            )?;
            state.step += 1;
            tally.after(b, &bufs, k, batches[k].len(), state.step, progress)?;
            k += 1;
        }
        let (seen, host_stats) = (tally.seen, tally.host);
        b.sync()?;
        let seconds = t0.elapsed().as_secs_f64();
        let seen_f = seen.max(1) as f32;
        let (val_loss, val_acc) = match val {
            Some(v) if v.len > 0 => {
                let e = evaluate(b, model, v, &cfg.loss, cfg.eval_batch)?;
                (Some(e.loss), Some(e.accuracy))
            }
            _ => (None, None),
        };
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: host_stats[0] / seen_f,
            train_acc: host_stats[1] / seen_f,
            val_loss,
            val_acc,
            lr,
            seconds,
            skipped_steps: state.scaler.skipped_steps - skipped_before,
            loss_scale: cfg.amp.then_some(state.scaler.scale()),
        };
        progress.epoch_end(&m);
        state.history.push(m);
        state.epochs_done += 1;
        let mut stop = false;
        if let (Some(patience), Some(vl)) = (cfg.early_stopping, val_loss) {
            match state.best {
                Some((best, _)) if vl >= best => {
                    let since = state.best.map(|(_, e)| state.epochs_done - e).unwrap_or(0);
                    if since >= patience {
                        stop = true;
                    }
                }
                _ => {
                    state.best = Some((vl, state.epochs_done));
                    best_weights = Some(model.snapshot(b)?);
                }
            }
        }
        if !on_epoch(model, opt, state)? || stop {
            if stop {
                if let Some((best, e)) = state.best {
                    progress.warn(&format!(
                        "early stopping: no better validation loss than {best:.4} (epoch {e}) for {} epochs; restoring epoch {e}'s weights",
                        state.epochs_done - e
                    ));
                }
            }
            break;
        }
    }
    if let Some(w) = best_weights {
        if cfg.early_stopping.is_some() {
            model.restore(b, &w)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::backend::Memory;

    #[test]
    fn the_loss_is_checked_every_step_where_a_read_is_free() {
        assert_eq!(Cpu.location(), Location::Host);
        assert_eq!(check_every(&Cpu), 1);
    }
}
