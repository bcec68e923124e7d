//! `lasagna deploy`: the model on a (emulated) microcontroller, measured and
//! checked against the host.

use crate::error::CliError;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lasagna_deploy::firmware::{self, BuildRequest};
use lasagna_deploy::host::{self, MNIST_INPUT_LEN};
use lasagna_deploy::report::{self, Parts, Report, Timings};
use lasagna_deploy::Error;
use lasagna_deploy::{
    budget, emulator, images_bin, protocol, rust_target, thousands, Board, TempDir, BOARDS,
    MAX_IMAGES,
};
use lasagna_trainer::data::{load_mnist_test_pixels, resolve_data_dir};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

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
    /// Stop the emulator after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,
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

fn read_model(path: &Path) -> lasagna_deploy::Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
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
    let bytes = read_model(&a.model_file)?;
    let facts = host::check_model(&a.model_file, &bytes)?;
    budget::precheck(&a.model_file, board, &facts)?;
    let model_abs = std::fs::canonicalize(&a.model_file).map_err(|source| Error::Io {
        path: a.model_file.clone(),
        source,
    })?;
    let firmware_dir = a
        .firmware_dir
        .clone()
        .unwrap_or_else(firmware::default_firmware_dir);
    firmware::check_firmware_dir(&firmware_dir)?;
    emulator::check_emulator(board)?;
    let core = rust_target::find_core(board, &firmware_dir)?;

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
    let (pixels, labels) = (
        images.pixels.get(..n * MNIST_INPUT_LEN).unwrap_or(&[]),
        labels.get(..n).unwrap_or(&[]),
    );
    let work = TempDir::new("deploy")?;
    let images_path = work.path().join("images.bin");
    std::fs::write(&images_path, images_bin(pixels, labels, MNIST_INPUT_LEN)?).map_err(
        |source| Error::Io {
            path: images_path.clone(),
            source,
        },
    )?;

    let t0 = Instant::now();
    let bar = spinner(format!(
        "building the firmware for {} ({})",
        board.name, board.target
    ));
    let built = firmware::build(
        &BuildRequest {
            firmware_dir: &firmware_dir,
            model: &model_abs,
            board,
            weights: facts.weights,
            core: &core,
        },
        &mut |line| {
            let line = line.trim();
            if line.starts_with("Compiling") || line.starts_with("Finished") {
                bar.set_message(format!("building the firmware for {}: {line}", board.name));
            }
        },
    );
    bar.finish_and_clear();
    let elf = built?;
    let build_seconds = t0.elapsed().as_secs_f64();
    let sizes = lasagna_deploy::elf::FirmwareSizes::read(&elf)?;

    let bar = spinner(format!(
        "running {} images on {} ({})",
        thousands(n as u64),
        board.emulator,
        board.cpu
    ));
    let ran = emulator::run_emulator(board, &elf, work.path(), Duration::from_secs(a.timeout));
    bar.finish_and_clear();
    let out = ran?;
    let device = protocol::parse_output(&out.stdout, n).map_err(|e| Error::Device {
        board: board.name.into(),
        reason: format!(
            "{e}{}",
            if matches!(e, protocol::ProtocolError::Device(_)) {
                String::new()
            } else {
                format!(
                    " (exit code {}); the end of its output:\n{}\n{}",
                    out.code.map_or("none".into(), |c| c.to_string()),
                    firmware::tail(&out.stdout, 10),
                    firmware::tail(&out.stderr, 10)
                )
            }
        ),
    })?;
    report::check_device(&facts, n, &device).map_err(|reason| Error::Device {
        board: board.name.into(),
        reason,
    })?;
    let host = host::run_host(&a.model_file, &bytes, pixels, labels)?;

    let report = Report::new(Parts {
        model: &a.model_file,
        facts: &facts,
        board,
        sizes: &sizes,
        device: &device,
        host: &host,
        timings: Timings {
            build_seconds,
            run_seconds: out.seconds,
        },
    });
    print!("{}", report.render());
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::config("--json", format!("cannot encode the report: {e}")))?;
        std::fs::write(path, text + "\n").map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
    }
    if report.ram.bytes >= board.ram_bytes() {
        return Err(CliError::from(Error::Device {
            board: board.name.into(),
            reason: format!(
                "the stack reached the statics: static {} B + peak stack {} B fill all {} KiB \
                 of RAM, so the results above may be corrupt. HINT: a smaller model (its arena \
                 and stack), or a board with more RAM",
                thousands(report.ram.static_bytes),
                thousands(report.ram.peak_stack_bytes),
                board.ram_kib
            ),
        }));
    }
    if !report.host_check.passed {
        return Err(CliError::from(Error::Device {
            board: board.name.into(),
            reason: "the device disagrees with the host (see `host check` above). HINT: this \
                     is a bug in lasagna-infer on this target; please report it with the model"
                .into(),
        }));
    }
    Ok(())
}
