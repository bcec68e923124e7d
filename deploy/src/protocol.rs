//! Reading the firmware's console (the protocol is `lasagna-protocol`,
//! which the firmware writes with): `LASAGNA-PRED <offset> <digits>` lines,
//! one `LASAGNA-REPORT key=value ...` line, or `LASAGNA-ERROR <message>`;
//! `LASAGNA-OUT <index> <hex>` lines when every output was asked for.

use crate::predictions::Outputs;
use lasagna_protocol::outputs::{self, OUT};
pub use lasagna_protocol::report::Report as DeviceReport;
use lasagna_protocol::report::{self, ReportError, ERROR, PRED, REPORT};

/// A complete run: one prediction per image and the report.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceRun {
    /// Predicted class of each image, in order.
    pub predictions: Vec<u8>,
    /// The report line.
    pub report: DeviceReport,
    /// Every output, when the firmware sent them (`LASAGNA-OUT` lines).
    pub outputs: Option<Outputs>,
}

/// Why the firmware's output is not a complete run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The firmware said it failed.
    #[error("the firmware failed: {0}")]
    Device(String),
    /// No `LASAGNA-REPORT` line (it crashed, hung or was cut off).
    #[error("the firmware printed no LASAGNA-REPORT line")]
    NoReport,
    /// A protocol line that does not parse.
    #[error("line {line} of the firmware's output does not parse ({reason}): {text}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
        /// The line.
        text: String,
    },
    /// The report lacks a key.
    #[error("the LASAGNA-REPORT line has no {0}=")]
    MissingKey(&'static str),
    /// Some image got no prediction, or a prediction is out of range.
    #[error("image {image} has no prediction (expected {images} images)")]
    MissingPrediction {
        /// The first image without one.
        image: usize,
        /// How many were expected.
        images: usize,
    },
    /// Some images got `LASAGNA-OUT` lines, this one none.
    #[error("image {image} has no LASAGNA-OUT line (expected {images} images)")]
    MissingOutputs {
        /// The first image without one.
        image: usize,
        /// How many were expected.
        images: usize,
    },
    /// The `LASAGNA-OUT` lines do not decode to one run's outputs.
    #[error("{0}")]
    BadOutputs(String),
}

/// Parses the firmware's console output for a run of `images` images. Other
/// lines (QEMU's own messages) are ignored.
pub fn parse_output(text: &str, images: usize) -> Result<DeviceRun, ProtocolError> {
    if let Some(msg) = text
        .lines()
        .find_map(|l| l.trim_end().strip_prefix(ERROR).map(str::to_string))
    {
        return Err(ProtocolError::Device(msg));
    }
    let mut preds: Vec<Option<u8>> = vec![None; images];
    let mut outs: Vec<Option<&str>> = vec![None; images];
    let mut report = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let bad = |reason: &str| ProtocolError::BadLine {
            line: i + 1,
            reason: reason.into(),
            text: line.into(),
        };
        if let Some(rest) = line.strip_prefix(PRED) {
            let (offset, digits) = rest.split_once(' ').ok_or_else(|| bad("no digits"))?;
            let offset: usize = offset.parse().map_err(|_| bad("bad offset"))?;
            for (k, c) in digits.chars().enumerate() {
                let class = report::class(c).ok_or_else(|| bad("not a class digit"))?;
                let slot = preds
                    .get_mut(offset + k)
                    .ok_or_else(|| bad("prediction past the last image"))?;
                *slot = Some(class);
            }
        } else if let Some(rest) = line.strip_prefix(OUT) {
            let (index, hex) = outputs::parse_line(rest).ok_or_else(|| bad("no index and hex"))?;
            let slot = usize::try_from(index)
                .ok()
                .and_then(|i| outs.get_mut(i))
                .ok_or_else(|| bad("outputs past the last image"))?;
            *slot = Some(hex);
        } else if let Some(rest) = line.strip_prefix(REPORT) {
            report = Some(DeviceReport::parse(rest).map_err(|e| match e {
                ReportError::MissingKey(key) => ProtocolError::MissingKey(key),
                other => bad(&other.to_string()),
            })?);
        }
    }
    let report = report.ok_or(ProtocolError::NoReport)?;
    let predictions = preds
        .iter()
        .enumerate()
        .map(|(image, p)| p.ok_or(ProtocolError::MissingPrediction { image, images }))
        .collect::<Result<Vec<u8>, _>>()?;
    let outputs = if outs.iter().all(Option::is_none) {
        None
    } else {
        let lines = outs
            .iter()
            .enumerate()
            .map(|(image, h)| h.ok_or(ProtocolError::MissingOutputs { image, images }))
            .collect::<Result<Vec<&str>, _>>()?;
        Some(Outputs::from_hex(&lines, report.int8).map_err(ProtocolError::BadOutputs)?)
    };
    Ok(DeviceRun {
        predictions,
        report,
        outputs,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    const REPORT_LINE: &str = "LASAGNA-REPORT images=3 correct=2 accuracy=66.66 \
        instructions_per_inference=385073 instructions_worst=385080 arena_bytes=2608 \
        static_ram_bytes=3392 peak_stack_bytes=3960 model_bytes=221192 int8=true \
        outputs_fnv1a=0x731f5e52";

    #[test]
    fn a_complete_run_parses_with_qemu_noise_around_it() {
        let text =
            format!("qemu: some warning\nLASAGNA-PRED 0 72\nLASAGNA-PRED 2 1\n{REPORT_LINE}\n");
        let run = parse_output(&text, 3).unwrap();
        assert_eq!(run.predictions, vec![7, 2, 1]);
        let r = run.report;
        assert_eq!((r.images, r.correct), (3, 2));
        assert_eq!(r.instructions_per_inference, 385_073);
        assert_eq!(r.outputs_fnv1a, 0x731f_5e52);
        assert!(r.int8);
        assert_eq!(
            (r.arena_bytes, r.static_ram_bytes, r.peak_stack_bytes),
            (2608, 3392, 3960)
        );
        assert_eq!(run.outputs, None);
    }

    #[test]
    fn outputs_lines_are_read_for_every_image_or_refused() {
        let preds = "LASAGNA-PRED 0 10\n";
        let text = format!(
            "LASAGNA-OUT 1 ff7f\nLASAGNA-OUT 0 0102\n{preds}{}\n",
            REPORT_LINE.replace("images=3", "images=2")
        );
        let run = parse_output(&text, 2).unwrap();
        let want = Outputs {
            per_image: 2,
            values: crate::predictions::Values::Levels(vec![1, 2, -1, 127]),
        };
        assert_eq!(run.outputs, Some(want));
        let text = format!("LASAGNA-OUT 1 ff7f\n{preds}{REPORT_LINE}\n");
        assert_eq!(
            parse_output(&text, 2).unwrap_err(),
            ProtocolError::MissingOutputs {
                image: 0,
                images: 2
            }
        );
        let text = format!("LASAGNA-OUT 2 ff7f\n{preds}{REPORT_LINE}\n");
        assert!(matches!(
            parse_output(&text, 2).unwrap_err(),
            ProtocolError::BadLine { line: 1, .. }
        ));
        let text = format!("LASAGNA-OUT 0 0102\nLASAGNA-OUT 1 ff\n{preds}{REPORT_LINE}\n");
        assert!(matches!(
            parse_output(&text, 2).unwrap_err(),
            ProtocolError::BadOutputs(_)
        ));
    }

    #[test]
    fn device_errors_missing_reports_and_gaps_are_errors() {
        let e = parse_output("LASAGNA-PRED 0 7\nLASAGNA-ERROR run_i8 failed\n", 1).unwrap_err();
        assert_eq!(e, ProtocolError::Device("run_i8 failed".into()));
        assert_eq!(
            parse_output("LASAGNA-PRED 0 7\n", 1).unwrap_err(),
            ProtocolError::NoReport
        );
        let text = format!("LASAGNA-PRED 0 72\n{REPORT_LINE}\n");
        assert_eq!(
            parse_output(&text, 3).unwrap_err(),
            ProtocolError::MissingPrediction {
                image: 2,
                images: 3
            }
        );
        let text = format!("LASAGNA-PRED 2 72\n{REPORT_LINE}\n");
        assert!(matches!(
            parse_output(&text, 3).unwrap_err(),
            ProtocolError::BadLine { line: 1, .. }
        ));
        let text = REPORT_LINE.replace(" int8=true", "");
        assert_eq!(
            parse_output(&format!("LASAGNA-PRED 0 721\n{text}"), 3).unwrap_err(),
            ProtocolError::MissingKey("int8")
        );
        let text = REPORT_LINE.replace("correct=2", "correct=two");
        let e = parse_output(&format!("LASAGNA-PRED 0 721\n{text}"), 3).unwrap_err();
        assert!(e.to_string().contains("correct=two"), "{e}");
    }
}
