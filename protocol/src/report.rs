//! The firmware's console lines, one protocol for the writer (the device)
//! and the reader (`lasagna deploy`):
//!
//! - `LASAGNA-PRED <offset> <digits>`: the predicted classes of images
//!   `offset..`, one [`DIGITS`] character each;
//! - one `LASAGNA-REPORT key=value ...` line at the end ([`Report`]);
//! - `LASAGNA-ERROR <message>` when something failed (the exit status is
//!   then failure too);
//! - `LASAGNA-OUT <index> <hex>` per image, only when asked
//!   ([`crate::outputs`]).
//!
//! Other lines (QEMU's own messages) are not part of the protocol.

use core::fmt;

/// Starts a predictions line.
pub const PRED: &str = "LASAGNA-PRED ";
/// Starts the report line.
pub const REPORT: &str = "LASAGNA-REPORT ";
/// Starts an error line.
pub const ERROR: &str = "LASAGNA-ERROR ";

/// The class digits: 0–9, then a–z (36 classes).
pub const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// The digit of `class`, `?` past the last.
pub fn digit(class: usize) -> u8 {
    DIGITS.get(class).copied().unwrap_or(b'?')
}

/// The class a digit stands for.
pub fn class(digit: char) -> Option<u8> {
    let d = u8::try_from(digit).ok()?;
    DIGITS.iter().position(|&c| c == d).map(|i| i as u8)
}

/// The report's keys, in the order they are written.
pub mod keys {
    /// Images run.
    pub const IMAGES: &str = "images";
    /// Predictions equal to the label.
    pub const CORRECT: &str = "correct";
    /// `correct / images` in percent with two decimals (derived; for people).
    pub const ACCURACY: &str = "accuracy";
    /// Mean instructions per inference.
    pub const INSTRUCTIONS_PER_INFERENCE: &str = "instructions_per_inference";
    /// The most instructions one inference took.
    pub const INSTRUCTIONS_WORST: &str = "instructions_worst";
    /// The model's arena.
    pub const ARENA_BYTES: &str = "arena_bytes";
    /// `.data + .bss`.
    pub const STATIC_RAM_BYTES: &str = "static_ram_bytes";
    /// Stack high-water mark.
    pub const PEAK_STACK_BYTES: &str = "peak_stack_bytes";
    /// The embedded model's bytes.
    pub const MODEL_BYTES: &str = "model_bytes";
    /// `true` when the model ran on the int8 path.
    pub const INT8: &str = "int8";
    /// [`crate::checksum::Fnv1a`] over every output, `0x` and 8 hex digits.
    pub const OUTPUTS_FNV1A: &str = "outputs_fnv1a";
}

/// What the firmware measured: its `LASAGNA-REPORT` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Images run.
    pub images: u32,
    /// Predictions equal to the label.
    pub correct: u32,
    /// Mean instructions per inference (SysTick under `-icount shift=0`).
    pub instructions_per_inference: u64,
    /// The most instructions one inference took.
    pub instructions_worst: u64,
    /// The model's arena, a static.
    pub arena_bytes: u64,
    /// `.data + .bss` from the linker symbols.
    pub static_ram_bytes: u64,
    /// Stack high-water mark (painted, then scanned).
    pub peak_stack_bytes: u64,
    /// The embedded model's bytes.
    pub model_bytes: u64,
    /// Whether the model ran on the int8 path.
    pub int8: bool,
    /// FNV-1a (32-bit) over every output byte of every image.
    pub outputs_fnv1a: u32,
}

/// Writes the whole line, `LASAGNA-REPORT` included, without a newline.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use keys::*;
        let n = u64::from(self.images.max(1));
        let c = u64::from(self.correct);
        write!(
            f,
            "{REPORT}{IMAGES}={} {CORRECT}={} {ACCURACY}={}.{:02} \
             {INSTRUCTIONS_PER_INFERENCE}={} {INSTRUCTIONS_WORST}={} \
             {ARENA_BYTES}={} {STATIC_RAM_BYTES}={} {PEAK_STACK_BYTES}={} {MODEL_BYTES}={} \
             {INT8}={} {OUTPUTS_FNV1A}={:#010x}",
            self.images,
            self.correct,
            c * 100 / n,
            (c * 10_000 / n) % 100,
            self.instructions_per_inference,
            self.instructions_worst,
            self.arena_bytes,
            self.static_ram_bytes,
            self.peak_stack_bytes,
            self.model_bytes,
            self.int8,
            self.outputs_fnv1a,
        )
    }
}

/// Why a report line does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportError {
    /// The line lacks this key.
    MissingKey(&'static str),
    /// This key's value is not what it should be (a number, `true`/`false`,
    /// a hex checksum).
    BadValue(&'static str),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::MissingKey(k) => write!(f, "the LASAGNA-REPORT line has no {k}="),
            ReportError::BadValue(k) => write!(f, "{k}= has a value that does not parse"),
        }
    }
}

impl Report {
    /// Reads the `key=value ...` fields of a report line (after
    /// [`REPORT`]). Unknown keys are ignored, so newer firmware can report
    /// more; a missing or malformed known key is an error naming it.
    pub fn parse(fields: &str) -> Result<Report, ReportError> {
        use keys::*;
        let get = |key: &'static str| {
            fields
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v)
                .ok_or(ReportError::MissingKey(key))
        };
        let num = |key: &'static str| -> Result<u64, ReportError> {
            get(key)?.parse().map_err(|_| ReportError::BadValue(key))
        };
        let small = |key: &'static str| -> Result<u32, ReportError> {
            get(key)?.parse().map_err(|_| ReportError::BadValue(key))
        };
        let fnv = get(OUTPUTS_FNV1A)?;
        let int8 = match get(INT8)? {
            "true" => true,
            "false" => false,
            _ => return Err(ReportError::BadValue(INT8)),
        };
        Ok(Report {
            images: small(IMAGES)?,
            correct: small(CORRECT)?,
            instructions_per_inference: num(INSTRUCTIONS_PER_INFERENCE)?,
            instructions_worst: num(INSTRUCTIONS_WORST)?,
            arena_bytes: num(ARENA_BYTES)?,
            static_ram_bytes: num(STATIC_RAM_BYTES)?,
            peak_stack_bytes: num(PEAK_STACK_BYTES)?,
            model_bytes: num(MODEL_BYTES)?,
            int8,
            outputs_fnv1a: u32::from_str_radix(fnv.strip_prefix("0x").unwrap_or(fnv), 16)
                .map_err(|_| ReportError::BadValue(OUTPUTS_FNV1A))?,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use std::string::ToString;

    fn report() -> Report {
        Report {
            images: 3,
            correct: 2,
            instructions_per_inference: 385_073,
            instructions_worst: 385_080,
            arena_bytes: 2608,
            static_ram_bytes: 3392,
            peak_stack_bytes: 3960,
            model_bytes: 221_192,
            int8: true,
            outputs_fnv1a: 0x731f_5e52,
        }
    }

    #[test]
    fn a_report_round_trips_through_its_line() {
        let line = report().to_string();
        assert_eq!(
            line,
            "LASAGNA-REPORT images=3 correct=2 accuracy=66.66 \
             instructions_per_inference=385073 instructions_worst=385080 arena_bytes=2608 \
             static_ram_bytes=3392 peak_stack_bytes=3960 model_bytes=221192 int8=true \
             outputs_fnv1a=0x731f5e52"
        );
        let fields = line.strip_prefix(REPORT).unwrap();
        assert_eq!(Report::parse(fields), Ok(report()));
        let f32_run = Report {
            int8: false,
            outputs_fnv1a: 7,
            ..report()
        };
        let line = f32_run.to_string();
        assert!(
            line.ends_with("int8=false outputs_fnv1a=0x00000007"),
            "{line}"
        );
        assert_eq!(Report::parse(&line[REPORT.len()..]), Ok(f32_run));
    }

    #[test]
    fn missing_and_malformed_keys_are_named_and_unknown_keys_ignored() {
        let line = report().to_string();
        let fields = &line[REPORT.len()..];
        assert_eq!(
            Report::parse(&fields.replace(" int8=true", "")),
            Err(ReportError::MissingKey(keys::INT8))
        );
        assert_eq!(
            Report::parse(&fields.replace("correct=2", "correct=two")),
            Err(ReportError::BadValue(keys::CORRECT))
        );
        assert_eq!(
            Report::parse(&fields.replace("int8=true", "int8=yes")),
            Err(ReportError::BadValue(keys::INT8))
        );
        assert_eq!(
            Report::parse(&std::format!("{fields} cycles=12")),
            Ok(report())
        );
    }

    #[test]
    fn every_class_has_one_digit_and_back() {
        for c in 0..36 {
            assert_eq!(class(char::from(digit(c))), Some(c as u8));
        }
        assert_eq!(digit(36), b'?');
        assert_eq!(class('?'), None);
        assert_eq!(class('é'), None);
    }
}
