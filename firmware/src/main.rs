//! Runs the embedded model on MNIST images streamed from the host, and
//! reports accuracy, every prediction and what each inference costs.
//!
//! Protocol (what `lasagna deploy` and CI rely on):
//! - Images come from the host file `images.bin` in QEMU's working
//!   directory, read through semihosting (so they are not part of the flash
//!   budget): the magic `LSNI`, `u32` count, `u32` pixels per image (little
//!   endian), then per image one label byte and the pixels (`u8`, 0–255).
//! - Output lines on the semihosting console:
//!   `LASAGNA-PRED <offset> <digits>` (the predicted class of images
//!   `offset..`, one character each, 0–9 then a–z), and finally one
//!   `LASAGNA-REPORT key=value ...` line: images, correct, accuracy,
//!   instructions_per_inference (mean), instructions_worst,
//!   arena_bytes, static_ram_bytes (.data + .bss), peak_stack_bytes,
//!   model_bytes, int8, and outputs_fnv1a: FNV-1a (32-bit) over every
//!   output of every image in order (int8 levels as bytes, f32 values as
//!   little-endian bytes), so the host can check all outputs, not just the
//!   predictions, bit for bit.
//! - The exit status is success unless something failed (then an
//!   `LASAGNA-ERROR` line says what; a HardFault, e.g. the stack overflowing
//!   into the statics, is reported the same way).
//!
//! Cost is counted, not timed: QEMU runs with `-icount shift=0`, one
//! instruction per virtual nanosecond, and SysTick counts the 25 MHz core
//! clock of the MPS2 board, so one tick is exactly 40 instructions. The
//! counter is read right before and after `run`, summed over all images,
//! and divided: the mean is exact to 40 / images instructions.

#![no_std]
#![no_main]

mod cost;
mod images;

use core::fmt::Write;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};
use lasagna_infer::quant::QParams;
use lasagna_infer::EngineWith;

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

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

#[entry]
fn main() -> ! {
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            if let Ok(mut out) = hio::hstdout() {
                let _ = writeln!(out, "LASAGNA-ERROR {e}");
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
    let mut fnv = Fnv::new();
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
            y.iter().for_each(|&v| fnv.byte(v as u8));
            argmax(y.iter().map(|&v| i32::from(v)))
        } else {
            for (x, &p) in input_f.iter_mut().zip(pixels.iter()) {
                *x = (f32::from(p) / 255.0 - mean) / std;
            }
            let t0 = ticks.now();
            let y = engine.run(arena, &input_f).map_err(|_| "run failed")?;
            let spent = ticks.since(t0);
            worst = worst.max(spent);
            y.iter()
                .for_each(|v| v.to_le_bytes().iter().for_each(|&b| fnv.byte(b)));
            // f32 ordering as integers: fine for the argmax of finite logits.
            argmax(y.iter().map(|&v| ordered(v)))
        };
        correct += u32::from(usize::from(label) == best);
        preds[line_len] = DIGITS.get(best).copied().unwrap_or(b'?');
        line_len += 1;
        if line_len == preds.len() || i + 1 == images.count {
            let start = i + 1 - line_len as u32;
            let text = core::str::from_utf8(&preds[..line_len]).unwrap_or("?");
            writeln!(out, "LASAGNA-PRED {start} {text}").map_err(|_| "console write")?;
            line_len = 0;
        }
    }
    let n = images.count.max(1);
    let total = ticks.total();
    let peak_stack = cost::peak_stack();
    writeln!(
        out,
        "LASAGNA-REPORT images={} correct={} accuracy={}.{:02} \
         instructions_per_inference={} instructions_worst={} \
         arena_bytes={} static_ram_bytes={} peak_stack_bytes={} model_bytes={} int8={} \
         outputs_fnv1a={:#010x}",
        images.count,
        correct,
        correct * 100 / n,
        (correct * 10_000 / n) % 100,
        total / u64::from(n),
        u64::from(worst) * cost::INSTRUCTIONS_PER_TICK,
        model::ARENA_BYTES,
        cost::static_ram(),
        peak_stack,
        MODEL.len(),
        engine.is_int8(),
        fnv.0,
    )
    .map_err(|_| "console write")?;
    Ok(())
}

/// FNV-1a, 32-bit: a checksum of every output byte.
struct Fnv(u32);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0x811c_9dc5)
    }
    fn byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
}

/// A total order on f32 bit patterns that agrees with `<` on finite values.
fn ordered(v: f32) -> i32 {
    let b = v.to_bits() as i32;
    if b < 0 {
        b ^ i32::MAX
    } else {
        b
    }
}

/// Index of the first largest value.
fn argmax(values: impl Iterator<Item = i32>) -> usize {
    let mut best = (0usize, i32::MIN);
    for (i, v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// A fault (most often the stack grown down into the statics when the RAM
/// budget is tight) would otherwise spin in cortex-m-rt's default handler
/// until the host's timeout; say what happened and stop instead.
#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(
            out,
            "LASAGNA-ERROR HardFault at pc={:#010x}: the firmware crashed; static RAM is {} B \
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
        let _ = writeln!(out, "LASAGNA-ERROR panic: {info}");
    }
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
