//! Progress bars and per-epoch lines for the terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lasagna_trainer::train::{EpochMetrics, Progress};
use std::time::Instant;

/// Draws a bar per epoch (hidden when stderr is not a terminal or `--quiet`)
/// and prints one line per epoch.
pub struct Bars {
    bar: Option<ProgressBar>,
    quiet: bool,
    epochs: usize,
    started: Instant,
}

impl Bars {
    /// Bars for a run whose epoch count is set once it is known.
    pub fn new(quiet: bool) -> Bars {
        Bars {
            bar: None,
            quiet,
            epochs: 0,
            started: Instant::now(),
        }
    }

    /// The run's epochs, shown as `epoch N/EPOCHS`.
    pub fn set_epochs(&mut self, epochs: usize) {
        self.epochs = epochs;
    }

    /// Whether `--quiet` asked for no bars and no epoch lines.
    pub fn quiet(&self) -> bool {
        self.quiet
    }
}

fn pct(v: Option<f32>) -> String {
    v.map(|a| format!("{:6.2}%", 100.0 * a))
        .unwrap_or_else(|| "    -  ".into())
}

fn num(v: Option<f32>) -> String {
    v.map(|a| format!("{a:.4}"))
        .unwrap_or_else(|| "  -   ".into())
}

impl Progress for Bars {
    fn epoch_start(&mut self, epoch: usize, steps: usize) {
        self.started = Instant::now();
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "epoch {prefix} [{bar:30}] {pos}/{len} steps  {msg}  eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(format!("{epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    fn step(&mut self, done: usize, samples: usize, loss: f32) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {loss:.4}  {:.0} samples/s",
                samples as f64 / secs
            ));
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            println!(
                "epoch {:>2}/{}  train loss {:.4} acc {}  val loss {} acc {}  lr {:.2e}  {:.2} s",
                m.epoch,
                self.epochs,
                m.train_loss,
                pct(Some(m.train_acc)),
                num(m.val_loss),
                pct(m.val_acc),
                m.lr,
                m.seconds
            );
            if let Some(scale) = m.loss_scale {
                println!(
                    "          AMP: loss scale {scale}, {} skipped steps (inf/NaN gradients)",
                    m.skipped_steps
                );
            }
        }
    }

    fn warn(&mut self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("warning: {msg}")),
            None => eprintln!("warning: {msg}"),
        }
    }
}
