//! `lasagna deploy`: the model on a (emulated) microcontroller, measured and
//! checked against the host.

use crate::error::CliError;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lasagna_deploy::host::MNIST_INPUT_LEN;
use lasagna_deploy::{
    thousands, Board, Error, Images, Mode, Options, Progress, Step, BOARDS, MAX_IMAGES,
};
use lasagna_trainer::data::{load_mnist_test_pixels, resolve_data_dir};
use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

/// Build the firmware for a model, run it on an emulated Cortex-M, and check it against the host.
///
/// What happens: the model file is embedded in `firmware/` (a bare-metal
/// Cortex-M program; `cargo build --release` for the board's Rust target,
/// linked for the board's flash and RAM budget, so a model that does not
/// fit fails the link). The firmware runs in QEMU and reads the first N
/// MNIST test images from the host through semihosting, one at a time:
/// images are streamed, not stored, and do not count toward flash. It
/// prints each prediction and a report, and the same images go through
/// the same engine on the host: every prediction must agree, and on the
/// int8 path (integer-only arithmetic) every output bit too.
///
/// What is measured, and how:
///
/// - flash: .vector_table + .text + .rodata + .data of the firmware ELF
///   (the model sits in .rodata, read in place);
///
/// - RAM: the statics (.data + .bss + .uninit: the model's activation
///   arena and one image's pixels) plus the peak stack (the engine's plan,
///   the quantized input, the calls), found by painting the free RAM before
///   the run and scanning it after;
///
/// - cost: instructions per inference, counted, not timed: QEMU runs with
///   `-icount shift=0` (one instruction per virtual nanosecond) and SysTick
///   counts the board's 25 MHz clock, so one tick is exactly 40
///   instructions. Instructions are not cycles: on a real Cortex-M4 a load
///   takes 2 cycles, a multiply-accumulate 1.
///
/// Real boards (nucleo-f411re, nrf52840-dk, rp-pico, stm32f746-disco):
/// `--build-only` builds the firmware for the part's memory map and prints
/// the budget (flash, static RAM, the model's bytes) without running
/// anything; `--probe` flashes a connected board with `probe-rs run --chip
/// CHIP` (cargo install probe-rs-tools) and reads the same report over
/// semihosting, where cost is core cycles, not instructions.
///
/// Needs `qemu-system-arm` (sudo apt-get install qemu-system-arm) and the
/// board's Rust target (`bash scripts/setup.sh` installs both; where rustup
/// does not serve the target it builds it from rust-src). The first
/// build for a model takes about half a minute; `--json` writes everything
/// for CI.
#[derive(Args)]
pub struct DeployArgs {
    /// The deployment file (`lasagna export`; int8 fits the most).
    #[arg(long, value_name = "FILE")]
    pub model_file: PathBuf,
    /// The board: which core, which emulator, what flash and RAM budget.
    #[arg(long, value_enum, value_name = "BOARD")]
    pub board: BoardArg,
    /// Run the first N MNIST test images (1 to 10,000).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub images: usize,
    /// Folder with the MNIST IDX files [default: $LASAGNA_DATA, else data/mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The firmware crate [default: firmware/ of the source tree this
    /// binary was built from].
    #[arg(long, value_name = "DIR")]
    pub firmware_dir: Option<PathBuf>,
    /// Also write the report as JSON (a stable layout: `schema` 1).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also write what the engine saw on the device next to what it saw on
    /// the host: one CSV row per image, after a header row naming the
    /// columns: `index`, `label`, `host_prediction`, `device_prediction`,
    /// then for int8 models `scale`, `zero_point`, `host_q0..host_q9`,
    /// `device_q0..device_q9` (output levels; a logit is
    /// `scale * (q - zero_point)`), for f32 and f16 models `host_out0..`,
    /// `device_out0..` (f32 outputs, the shortest decimals that read back
    /// to the same bits). A prediction is the argmax of the outputs; a tie
    /// goes to the first (lowest) index, on both sides. The firmware then
    /// also sends its outputs: console lines only, outside the counted
    /// instructions. Not with --build-only, which runs no images.
    #[arg(long, value_name = "FILE", conflicts_with = "build_only")]
    pub predictions: Option<PathBuf>,
    /// Stop the emulator after this many seconds (at least 1).
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = crate::args::seconds)]
    pub timeout: u64,
    /// Only build the firmware for the board and print its budget (flash,
    /// RAM, the model's bytes); run nothing (any board, real ones too).
    #[arg(long, conflicts_with = "probe")]
    pub build_only: bool,
    /// Run on a real board connected through a debug probe: `probe-rs run
    /// --chip CHIP` flashes it and serves its semihosting (needs probe-rs:
    /// cargo install probe-rs-tools).
    #[arg(long)]
    pub probe: bool,
}

/// `--board`: a row of [`BOARDS`], named and described as the table has it.
#[derive(Clone, Copy, Debug)]
pub struct BoardArg(pub &'static Board);

impl clap::ValueEnum for BoardArg {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: LazyLock<Vec<BoardArg>> =
            LazyLock::new(|| BOARDS.iter().map(BoardArg).collect());
        &ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name).help(self.0.help))
    }
}

/// A spinner on stderr (hidden when stderr is not a terminal).
fn spinner(msg: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Spinners for the build and the run (hidden when stderr is not a
/// terminal).
#[derive(Default)]
struct Spinners {
    bar: Option<ProgressBar>,
    board: &'static str,
}

impl Progress for Spinners {
    fn start(&mut self, step: Step, board: &Board, images: usize) {
        self.board = board.name;
        self.bar = Some(spinner(match step {
            Step::Build => format!(
                "building the firmware for {} ({})",
                board.name, board.target
            ),
            Step::Run => format!(
                "running {} images on {} ({})",
                thousands(images as u64),
                board.emulator,
                board.cpu
            ),
        }));
    }

    fn build_line(&mut self, line: &str) {
        let line = line.trim();
        if line.starts_with("Compiling") || line.starts_with("Finished") {
            if let Some(bar) = &self.bar {
                bar.set_message(format!("building the firmware for {}: {line}", self.board));
            }
        }
    }

    fn finish(&mut self, _: Step) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

pub fn run(a: DeployArgs) -> Result<(), CliError> {
    let board = a.board.0;
    if a.images == 0 || a.images > MAX_IMAGES {
        return Err(CliError::from(Error::config(
            "--images",
            format!(
                "{} is not between 1 and {} (the MNIST test set)",
                a.images,
                thousands(MAX_IMAGES as u64)
            ),
        )));
    }
    // The output files are refused (or locked) now, not after the build and run.
    let outputs: Vec<(&str, &std::path::Path)> =
        [("--json", &a.json), ("--predictions", &a.predictions)]
            .into_iter()
            .filter_map(|(flag, p)| p.as_deref().map(|p| (flag, p)))
            .collect();
    let mut named = vec![("--model-file", a.model_file.as_path())];
    named.extend(outputs.iter().copied());
    lasagna_files::check_distinct(&named)?;
    let _locks = lasagna_files::claim(&outputs)?;
    let mode = match (a.build_only, a.probe) {
        (true, _) => Mode::BuildOnly,
        (false, true) => Mode::Probe,
        (false, false) => Mode::Emulate,
    };
    let options = Options {
        firmware_dir: a.firmware_dir.clone(),
        timeout: Duration::from_secs(a.timeout),
        mode,
    };
    let prepared = lasagna_deploy::prepare(&a.model_file, board, &options)?;
    if mode == Mode::BuildOnly {
        let report = prepared.build_only(&mut Spinners::default())?;
        print!("{}", report.render());
        if let Some(path) = &a.json {
            let text = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::config("--json", format!("cannot encode the report: {e}")))?;
            lasagna_files::write_atomic(path, (text + "\n").as_bytes())?;
        }
        return Ok(());
    }

    let data_dir = resolve_data_dir(a.data.as_deref());
    let (images, labels) = load_mnist_test_pixels(&data_dir)?;
    if images.rows * images.cols != MNIST_INPUT_LEN {
        return Err(CliError::from(Error::config(
            "--data",
            format!(
                "the test images are {} x {}, not 28 x 28",
                images.rows, images.cols
            ),
        )));
    }
    if labels.len() < a.images {
        return Err(CliError::from(Error::config(
            "--images",
            format!(
                "{} asked for, but the test set in {} has {}",
                a.images,
                data_dir.display(),
                labels.len()
            ),
        )));
    }
    let n = a.images;
    let images = Images {
        pixels: images.pixels.get(..n * MNIST_INPUT_LEN).unwrap_or(&[]),
        labels: labels.get(..n).unwrap_or(&[]),
    };
    let (report, table) = match &a.predictions {
        Some(_) => {
            let (report, table) =
                prepared.run_with_predictions(images, &mut Spinners::default())?;
            (report, Some(table))
        }
        None => (prepared.run(images, &mut Spinners::default())?, None),
    };
    print!("{}", report.render());
    if let (Some(path), Some(table)) = (&a.predictions, &table) {
        lasagna_files::write_atomic(path, table.to_csv().as_bytes())?;
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::config("--json", format!("cannot encode the report: {e}")))?;
        lasagna_files::write_atomic(path, (text + "\n").as_bytes())?;
    }
    report.verdict(board)?;
    Ok(())
}
