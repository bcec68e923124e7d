//! The deploy tool in one call: [`prepare`] does every check that needs
//! neither the images nor a build (the model loads, it fits the board, the
//! emulator or probe-rs and the Rust target are there), then
//! [`Prepared::run`] writes the images, builds the firmware, runs it (in
//! QEMU, or on a real board through probe-rs) and checks it against the
//! host; [`Prepared::build_only`] builds and reports the budget. [`deploy`]
//! is the first two. The caller (the `lasagna` CLI) only parses
//! arguments, loads the images and prints.

use crate::boards::Board;
use crate::build_report::BuildReport;
use crate::elf::FirmwareSizes;
use crate::error::{Error, Result};
use crate::firmware::{self, BuildRequest};
use crate::host::{self, HostRun, ModelFacts, MNIST_INPUT_LEN};
use crate::predictions::Predictions;
use crate::protocol::DeviceRun;
use crate::report::{self, Parts, Report, Timings};
use crate::rust_target::{self, CoreLibs};
use crate::{budget, emulator, images_bin, probe, protocol, thousands, TempDir, MAX_IMAGES};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How to deploy, beyond the model and the board.
#[derive(Clone, Debug)]
pub struct Options {
    /// The firmware crate; `None`: `firmware/` of the source tree this
    /// crate was built from.
    pub firmware_dir: Option<PathBuf>,
    /// Stop the emulator (or probe-rs) after this long.
    pub timeout: Duration,
    /// Where the firmware runs, if anywhere.
    pub mode: Mode,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            firmware_dir: None,
            timeout: Duration::from_secs(600),
            mode: Mode::Emulate,
        }
    }
}

/// Where the built firmware runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// In the board's emulator (QEMU); real boards refuse it.
    #[default]
    Emulate,
    /// On a real board on a debug probe: `probe-rs run --chip CHIP ELF`.
    Probe,
    /// Nowhere: build it and report the budget ([`Prepared::build_only`]).
    BuildOnly,
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
    mode: Mode,
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
/// crate, the board's Rust target and what runs it (the emulator, or
/// probe-rs with [`Mode::Probe`]; nothing for [`Mode::BuildOnly`]) are
/// there.
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
    match options.mode {
        Mode::Emulate => emulator::check_emulator(board)?,
        Mode::Probe => probe::check_probe_rs(board)?,
        Mode::BuildOnly => {}
    }
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
        mode: options.mode,
    })
}

impl Prepared {
    /// What the model is (bytes, arena, weights).
    pub fn facts(&self) -> &ModelFacts {
        &self.facts
    }

    /// Builds the firmware: its ELF, its section sizes and the seconds it
    /// took. With `keep`, the ELF is copied there and that path returned.
    ///
    /// Every build for every board and model writes the same
    /// `firmware/target/<target>/release/lasagna-firmware`, so the build
    /// and the reading (or copying) of its ELF hold a lock: a thread
    /// mutex within this process (parallel tests), a file lock between
    /// processes. Without it, a second deploy could replace the ELF
    /// between this build and this run.
    fn build(
        &self,
        progress: &mut dyn Progress,
        images: usize,
        keep: Option<&Path>,
    ) -> Result<(PathBuf, FirmwareSizes, f64)> {
        static BUILDS: Mutex<()> = Mutex::new(());
        let _in_process = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.firmware_dir.join("target");
        std::fs::create_dir_all(&target).map_err(|source| lasagna_files::Error::Write {
            path: target.clone(),
            source,
        })?;
        let _between_processes = lasagna_files::Lock::exclusive(&target.join("lasagna-build"))?;
        let t0 = Instant::now();
        progress.start(Step::Build, self.board, images);
        let built = firmware::build(
            &BuildRequest {
                firmware_dir: &self.firmware_dir,
                model: &self.model_abs,
                board: self.board,
                weights: self.facts.weights,
                core: &self.core,
            },
            &mut |line| progress.build_line(line),
        );
        progress.finish(Step::Build);
        let mut elf = built?;
        let seconds = t0.elapsed().as_secs_f64();
        if let Some(keep) = keep {
            std::fs::copy(&elf, keep).map_err(|source| lasagna_files::Error::Write {
                path: keep.to_path_buf(),
                source,
            })?;
            elf = keep.to_path_buf();
        }
        let sizes = FirmwareSizes::read(&elf)?;
        Ok((elf, sizes, seconds))
    }

    /// Builds the firmware for the board and reports what it takes of the
    /// budget, running nothing (any board, real or emulated).
    pub fn build_only(&self, progress: &mut dyn Progress) -> Result<BuildReport> {
        let (elf, sizes, _) = self.build(progress, 0, None)?;
        let elf = std::fs::canonicalize(&elf).unwrap_or(elf);
        Ok(BuildReport::new(
            &self.model,
            &self.facts,
            self.board,
            &elf,
            &sizes,
        ))
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
        if self.mode == Mode::BuildOnly {
            return Err(Error::config(
                "deploy",
                "prepared with --build-only: nothing runs (call build_only)",
            ));
        }
        let work = TempDir::new("deploy")?;
        let images_path = work.path().join("images.bin");
        let file = images_bin(images.pixels, images.labels, MNIST_INPUT_LEN, outputs)?;
        lasagna_files::write_atomic(&images_path, &file)?;

        let kept = work.path().join("lasagna-firmware.elf");
        let (elf, sizes, build_seconds) = self.build(progress, n, Some(&kept))?;

        progress.start(Step::Run, board, n);
        let ran = match self.mode {
            Mode::Probe => probe::run_probe(board, &elf, work.path(), self.timeout),
            Mode::Emulate | Mode::BuildOnly => {
                emulator::run_emulator(board, &elf, work.path(), self.timeout)
            }
        };
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
