//! Runs the embedded model on MNIST images streamed from the host, and
//! reports accuracy, every prediction and what each inference costs.
//!
//! Protocol (what `lasagna deploy` and CI rely on): the crate
//! `lasagna-protocol`, shared with the host. Images come from the host file
//! `images.bin` in QEMU's working directory, read through semihosting (so
//! they are not part of the flash budget); the console gets
//! `LASAGNA-PRED` lines, one `LASAGNA-REPORT` line with what was measured,
//! and the FNV-1a checksum of every output (when `images.bin` asks, also a
//! `LASAGNA-OUT` line per image with every output), or `LASAGNA-ERROR` and a
//! failing exit status (a HardFault, e.g. the stack overflowing into the
//! statics, is reported the same way).
//!
//! Cost is counted, not timed: QEMU runs with `-icount shift=0`, one
//! instruction per virtual nanosecond, and SysTick counts the 25 MHz core
//! clock of the MPS2 board, so one tick is exactly 40 instructions. The
//! counter is read right before and after `run`, summed over all images,
//! and divided: the mean is exact to 40 / images instructions.

#![no_std]
#![no_main]

#[cfg(feature = "rp2040-boot2")]
mod boot2;
mod cost;
mod images;
mod outputs;

use core::fmt::Write;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};
use lasagna_infer::quant::QParams;
use lasagna_infer::EngineWith;
use lasagna_protocol::argmax::{argmax, ordered};
use lasagna_protocol::checksum::Fnv1a;
use lasagna_protocol::report::{self, Report, ERROR, PRED};

#[allow(dead_code)]
mod model {
    include!(concat!(env!("OUT_DIR"), "/model_info.rs"));
}

static MODEL: &[u8] = lasagna_format::include_model!(concat!(env!("OUT_DIR"), "/model.lsn"));

/// The arena, exactly the model's plan, 4-byte aligned.
#[repr(C, align(4))]
struct Arena([u8; model::ARENA_BYTES]);
static mut ARENA: Arena = Arena([0; model::ARENA_BYTES]);

/// One image's pixels as read from the host.
static mut PIXELS: [u8; model::INPUT_LEN] = [0; model::INPUT_LEN];

#[entry]
fn main() -> ! {
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            if let Ok(mut out) = hio::hstdout() {
                let _ = writeln!(out, "{ERROR}{e}");
            }
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Level of a normalized input for an int8 model (the engine's own rule).
fn level(q: QParams, pixel: u8, mean: f32, std: f32) -> i8 {
    q.quantize((f32::from(pixel) / 255.0 - mean) / std)
}

fn run() -> Result<(), &'static str> {
    cost::paint_stack();
    let mut out = hio::hstdout().map_err(|_| "no semihosting console")?;
    let engine = EngineWith::<'_, { model::OPS }, { model::TENSORS }>::new(MODEL)
        .map_err(|_| "the embedded model does not load (run it on the host for the error)")?;
    let mut images = images::Images::open(model::INPUT_LEN)?;
    // SAFETY: single-threaded bare metal; these statics are only touched
    // here, through these two references, for the whole run.
    let (arena, pixels) = unsafe {
        (
            &mut (*core::ptr::addr_of_mut!(ARENA)).0,
            &mut *core::ptr::addr_of_mut!(PIXELS),
        )
    };
    let (mean, std) = engine.normalization();
    let q = engine
        .input_quant()
        .map(|(scale, zero_point)| QParams { scale, zero_point });
    let mut ticks = cost::Counter::start();
    let (mut correct, mut line_len) = (0u32, 0usize);
    let mut worst = 0u32;
    let mut preds = [0u8; 100];
    let mut fnv = Fnv1a::new();
    for i in 0..images.count {
        let label = images.next(pixels)?;
        let mut input = [0i8; model::INPUT_LEN];
        let mut input_f = [0.0f32; if model::INT8_INPUT {
            1
        } else {
            model::INPUT_LEN
        }];
        let best = if let Some(q) = q {
            for (x, &p) in input.iter_mut().zip(pixels.iter()) {
                *x = level(q, p, mean, std);
            }
            let t0 = ticks.now();
            let y = engine.run_i8(arena, &input).map_err(|_| "run_i8 failed")?;
            let spent = ticks.since(t0);
            worst = worst.max(spent);
            if images.outputs {
                outputs::send(&mut out, i, y)?;
            }
            y.iter().for_each(|&v| fnv.i8(v));
            argmax(y.iter().map(|&v| i32::from(v)))
        } else {
            for (x, &p) in input_f.iter_mut().zip(pixels.iter()) {
                *x = (f32::from(p) / 255.0 - mean) / std;
            }
            let t0 = ticks.now();
            let y = engine.run(arena, &input_f).map_err(|_| "run failed")?;
            let spent = ticks.since(t0);
            worst = worst.max(spent);
            if images.outputs {
                outputs::send(&mut out, i, y)?;
            }
            y.iter().for_each(|&v| fnv.f32(v));
            argmax(y.iter().map(|&v| ordered(v)))
        };
        correct += u32::from(usize::from(label) == best);
        preds[line_len] = report::digit(best);
        line_len += 1;
        if line_len == preds.len() || i + 1 == images.count {
            let start = i + 1 - line_len as u32;
            let text = core::str::from_utf8(&preds[..line_len]).unwrap_or("?");
            writeln!(out, "{PRED}{start} {text}").map_err(|_| "console write")?;
            line_len = 0;
        }
    }
    let n = images.count.max(1);
    let total = ticks.total();
    let peak_stack = cost::peak_stack();
    let report = Report {
        images: images.count,
        correct,
        instructions_per_inference: total / u64::from(n),
        instructions_worst: cost::scaled(u64::from(worst)),
        arena_bytes: model::ARENA_BYTES as u64,
        static_ram_bytes: cost::static_ram() as u64,
        peak_stack_bytes: peak_stack as u64,
        model_bytes: MODEL.len() as u64,
        int8: engine.is_int8(),
        outputs_fnv1a: fnv.0,
    };
    writeln!(out, "{report}").map_err(|_| "console write")?;
    Ok(())
}

/// A fault (most often the stack grown down into the statics when the RAM
/// budget is tight) would otherwise spin in cortex-m-rt's default handler
/// until the host's timeout; say what happened and stop instead.
#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(
            out,
            "{ERROR}HardFault at pc={:#010x}: the firmware crashed; static RAM is {} B \
             of {} B, so if the model's stack needs more than the rest, it overflowed into \
             the statics",
            ef.pc(),
            cost::static_ram(),
            cost::ram_bytes(),
        );
    }
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}

/// The engine never panics (its lints deny it); this is for the firmware's
/// own code and reports like any other failure.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "{ERROR}panic: {info}");
    }
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
