//! The deploy tool in one call: [`prepare`] does every check that needs
//! neither the images nor a build (the model loads, it fits the board, the
//! emulator and the Rust target are there), then [`Prepared::run`] writes
//! the images, builds the firmware, runs it and checks it against the
//! host. [`deploy`] is both. The caller (the `lasagna` CLI) only parses
//! arguments, loads the images and prints.

use crate::boards::Board;
use crate::elf::FirmwareSizes;
use crate::error::{Error, Result};
use crate::firmware::{self, BuildRequest};
use crate::host::{self, HostRun, ModelFacts, MNIST_INPUT_LEN};
use crate::predictions::Predictions;
use crate::protocol::DeviceRun;
use crate::report::{self, Parts, Report, Timings};
use crate::rust_target::{self, CoreLibs};
use crate::{budget, emulator, images_bin, protocol, thousands, TempDir, MAX_IMAGES};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How to deploy, beyond the model and the board.
#[derive(Clone, Debug)]
pub struct Options {
    /// The firmware crate; `None`: `firmware/` of the source tree this
    /// crate was built from.
    pub firmware_dir: Option<PathBuf>,
    /// Stop the emulator after this long.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            firmware_dir: None,
            timeout: Duration::from_secs(600),
        }
    }
}

/// The test images the device and the host both run: `labels.len()` images
/// of [`MNIST_INPUT_LEN`] grey levels each, image-major in `pixels`.
#[derive(Clone, Copy, Debug)]
pub struct Images<'a> {
    /// Grey levels, 0–255.
    pub pixels: &'a [u8],
    /// One label per image.
    pub labels: &'a [u8],
}

/// The long steps, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `cargo build` of the firmware.
    Build,
    /// The firmware running in the emulator.
    Run,
}

/// Told what is happening while [`Prepared::run`] works.
pub trait Progress {
    /// A step starts (`images`: how many images the run takes).
    fn start(&mut self, step: Step, board: &Board, images: usize);
    /// A line cargo printed while building.
    fn build_line(&mut self, line: &str);
    /// The step ended, well or not.
    fn finish(&mut self, step: Step);
}

/// No progress display.
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: Step, _: &Board, _: usize) {}
    fn build_line(&mut self, _: &str) {}
    fn finish(&mut self, _: Step) {}
}

/// A model checked against a board, ready to build and run.
pub struct Prepared {
    model: PathBuf,
    model_abs: PathBuf,
    bytes: Vec<u8>,
    facts: ModelFacts,
    board: &'static Board,
    firmware_dir: PathBuf,
    core: CoreLibs,
    timeout: Duration,
}

/// Reads the model file with [`lasagna_format::read_file`]: a file whose
/// header does not give its length is refused before its body is read.
fn read_model(model: &Path) -> Result<Vec<u8>> {
    lasagna_format::read_file(model).map_err(|e| match e {
        lasagna_format::ReadFileError::Io(source) => Error::Io {
            path: model.to_path_buf(),
            source,
        },
        e => Error::ModelFile {
            path: model.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

/// Checks everything that can be checked before building: the model file
/// loads in the engine and fits the board's flash and RAM, the firmware
/// crate, the emulator and the board's Rust target are there.
pub fn prepare(model: &Path, board: &'static Board, options: &Options) -> Result<Prepared> {
    let bytes = read_model(model)?;
    let facts = host::check_model(model, &bytes)?;
    budget::precheck(model, board, &facts)?;
    let model_abs = std::fs::canonicalize(model).map_err(|source| Error::Io {
        path: model.to_path_buf(),
        source,
    })?;
    let firmware_dir = options
        .firmware_dir
        .clone()
        .unwrap_or_else(firmware::default_firmware_dir);
    firmware::check_firmware_dir(&firmware_dir)?;
    emulator::check_emulator(board)?;
    let core = rust_target::find_core(board, &firmware_dir)?;
    Ok(Prepared {
        model: model.to_path_buf(),
        model_abs,
        bytes,
        facts,
        board,
        firmware_dir,
        core,
        timeout: options.timeout,
    })
}

impl Prepared {
    /// What the model is (bytes, arena, weights).
    pub fn facts(&self) -> &ModelFacts {
        &self.facts
    }

    /// Builds the firmware, runs `images` on the board and on the host,
    /// and reports. An `Ok` report can still fail [`Report::verdict`]
    /// (the device disagreed, or its stack filled the RAM): the report
    /// says what was seen either way.
    pub fn run(&self, images: Images<'_>, progress: &mut dyn Progress) -> Result<Report> {
        Ok(self.run_both(images, progress, false)?.0)
    }

    /// [`Prepared::run`], with the firmware also sending every output
    /// (only then: it makes the run's console output larger, not its
    /// measured instructions), and the device's outputs next to the
    /// host's for `--predictions`.
    pub fn run_with_predictions(
        &self,
        images: Images<'_>,
        progress: &mut dyn Progress,
    ) -> Result<(Report, Predictions)> {
        let (report, host, device) = self.run_both(images, progress, true)?;
        let table = Predictions::new(
            images.labels,
            &host.predictions,
            host.outputs,
            &device.predictions,
            device.outputs,
            device.report.outputs_fnv1a,
            host.output_quant,
        )
        .map_err(|reason| Error::Device {
            board: self.board.name.into(),
            reason,
        })?;
        Ok((report, table))
    }

    fn run_both(
        &self,
        images: Images<'_>,
        progress: &mut dyn Progress,
        outputs: bool,
    ) -> Result<(Report, HostRun, DeviceRun)> {
        let (board, n) = (self.board, images.labels.len());
        if n == 0 || n > MAX_IMAGES {
            return Err(Error::config(
                "images",
                format!(
                    "{n} is not between 1 and {} (the MNIST test set)",
                    thousands(MAX_IMAGES as u64)
                ),
            ));
        }
        if images.pixels.len() != n * MNIST_INPUT_LEN {
            return Err(Error::config(
                "images",
                format!(
                    "{} pixels for {n} images of {MNIST_INPUT_LEN}",
                    images.pixels.len()
                ),
            ));
        }
        let work = TempDir::new("deploy")?;
        let images_path = work.path().join("images.bin");
        let file = images_bin(images.pixels, images.labels, MNIST_INPUT_LEN, outputs)?;
        lasagna_files::write_atomic(&images_path, &file)?;

        let t0 = Instant::now();
        progress.start(Step::Build, board, n);
        let built = firmware::build(
            &BuildRequest {
                firmware_dir: &self.firmware_dir,
                model: &self.model_abs,
                board,
                weights: self.facts.weights,
                core: &self.core,
            },
            &mut |line| progress.build_line(line),
        );
        progress.finish(Step::Build);
        let elf = built?;
        let build_seconds = t0.elapsed().as_secs_f64();
        let sizes = FirmwareSizes::read(&elf)?;

        progress.start(Step::Run, board, n);
        let ran = emulator::run_emulator(board, &elf, work.path(), self.timeout);
        progress.finish(Step::Run);
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
        report::check_device(&self.facts, n, &device).map_err(|reason| Error::Device {
            board: board.name.into(),
            reason,
        })?;
        let host = host::run_host(&self.model, &self.bytes, images.pixels, images.labels)?;
        let report = Report::new(Parts {
            model: &self.model,
            facts: &self.facts,
            board,
            sizes: &sizes,
            device: &device,
            host: &host,
            timings: Timings {
                build_seconds,
                run_seconds: out.seconds,
            },
        });
        Ok((report, host, device))
    }
}

/// [`prepare`], then [`Prepared::run`], then [`Report::verdict`]: the model
/// on the board, measured and checked against the host.
pub fn deploy(
    model: &Path,
    board: &'static Board,
    images: Images<'_>,
    options: &Options,
    progress: &mut dyn Progress,
) -> Result<Report> {
    let report = prepare(model, board, options)?.run(images, progress)?;
    report.verdict(board)?;
    Ok(report)
}
