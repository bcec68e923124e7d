//! `lasagna deploy --predictions FILE.csv`: what the engine saw on the chip,
//! next to what it saw on the host, one CSV row per image.
//!
//! The firmware sends each image's outputs only when asked (a flag in
//! `images.bin`; `LASAGNA-OUT` lines, `lasagna_protocol::outputs`). Before
//! a table is made, the outputs the device sent are checked against what
//! the device itself reported: their FNV-1a must be its `outputs_fnv1a`,
//! and their argmax its prediction, so the CSV shows the values the
//! checksum covered, not a garbled copy.
//!
//! The columns (a header row names them; `N` outputs per image):
//!
//! - int8 models: `index,label,host_prediction,device_prediction,scale,
//!   zero_point,host_q0..host_q{N-1},device_q0..device_q{N-1}`: the output
//!   levels; a logit is `scale * (q - zero_point)`;
//! - f32 and f16 models: `index,label,host_prediction,device_prediction,
//!   host_out0..,device_out0..`: the f32 outputs, in the shortest decimal
//!   that reads back to the same bits.
//!
//! A prediction is the argmax of its outputs, a tie going to the first
//! (lowest) index (`lasagna_protocol::argmax`).

use lasagna_protocol::argmax::{argmax, ordered};
use lasagna_protocol::checksum::Fnv1a;
use lasagna_protocol::outputs;
use std::fmt::Write;

/// Every output of a run, image-major, as the engine gave them.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// int8 levels (an int8 model).
    Levels(Vec<i8>),
    /// f32 values (an f32 or f16 model).
    Floats(Vec<f32>),
}

/// The outputs of every image of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Outputs {
    /// Outputs per image.
    pub per_image: usize,
    /// All of them, image-major.
    pub values: Values,
}

impl Outputs {
    /// Images held.
    pub fn images(&self) -> usize {
        let len = match &self.values {
            Values::Levels(v) => v.len(),
            Values::Floats(v) => v.len(),
        };
        len.checked_div(self.per_image).unwrap_or(0)
    }

    /// The predicted class of image `i` (first largest output).
    pub fn prediction(&self, i: usize) -> Option<u8> {
        let range = i * self.per_image..(i + 1) * self.per_image;
        let best = match &self.values {
            Values::Levels(v) => argmax(v.get(range)?.iter().map(|&x| i32::from(x))),
            Values::Floats(v) => argmax(v.get(range)?.iter().map(|&x| ordered(x))),
        };
        u8::try_from(best).ok()
    }

    /// FNV-1a over every output, as the firmware computes it.
    pub fn fnv1a(&self) -> u32 {
        let mut h = Fnv1a::new();
        match &self.values {
            Values::Levels(v) => v.iter().for_each(|&x| h.i8(x)),
            Values::Floats(v) => v.iter().for_each(|&x| h.f32(x)),
        }
        h.0
    }

    /// Appends image `i`'s outputs as CSV fields (each after a comma).
    fn fields(&self, i: usize, row: &mut String) {
        let range = i * self.per_image..(i + 1) * self.per_image;
        match &self.values {
            Values::Levels(v) => v.get(range).unwrap_or(&[]).iter().for_each(|x| {
                let _ = write!(row, ",{x}");
            }),
            Values::Floats(v) => v.get(range).unwrap_or(&[]).iter().for_each(|x| {
                let _ = write!(row, ",{x}");
            }),
        }
    }

    /// Decodes the hex of the device's `LASAGNA-OUT` lines, one per image
    /// (levels when `int8`). Every line must hold the same number of
    /// well-formed values; the error names the first image that does not.
    pub fn from_hex(lines: &[&str], int8: bool) -> Result<Outputs, String> {
        let per_image = lines.first().map_or(0, |h| {
            h.len()
                / if int8 {
                    outputs::I8_DIGITS
                } else {
                    outputs::F32_DIGITS
                }
        });
        let bad = |i: usize| format!("the LASAGNA-OUT line of image {i} does not parse");
        let values = if int8 {
            let mut all = Vec::with_capacity(lines.len() * per_image);
            for (i, hex) in lines.iter().enumerate() {
                let before = all.len();
                for v in outputs::levels(hex) {
                    all.push(v.ok_or_else(|| bad(i))?);
                }
                if all.len() - before != per_image {
                    return Err(bad(i));
                }
            }
            Values::Levels(all)
        } else {
            let mut all = Vec::with_capacity(lines.len() * per_image);
            for (i, hex) in lines.iter().enumerate() {
                let before = all.len();
                for v in outputs::floats(hex) {
                    all.push(v.ok_or_else(|| bad(i))?);
                }
                if all.len() - before != per_image {
                    return Err(bad(i));
                }
            }
            Values::Floats(all)
        };
        Ok(Outputs { per_image, values })
    }
}

/// The host's and the device's run of the same images, checked to be
/// complete and consistent: [`Predictions::to_csv`] is the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// One label per image.
    pub labels: Vec<u8>,
    /// The host's class per image.
    pub host_predictions: Vec<u8>,
    /// The device's class per image.
    pub device_predictions: Vec<u8>,
    /// The host's outputs.
    pub host: Outputs,
    /// The device's outputs.
    pub device: Outputs,
    /// An int8 model's output scale and zero point.
    pub output_quant: Option<(f32, i32)>,
}

impl Predictions {
    /// Puts the two runs side by side, refusing (with the reason) a device
    /// run whose outputs are missing, of another shape than the host's,
    /// or not the ones its checksum and its predictions came from.
    pub fn new(
        labels: &[u8],
        host_predictions: &[u8],
        host: Outputs,
        device_predictions: &[u8],
        device: Option<Outputs>,
        device_fnv1a: u32,
        output_quant: Option<(f32, i32)>,
    ) -> Result<Predictions, String> {
        let device = device.ok_or(
            "the firmware sent no LASAGNA-OUT lines although images.bin asked for them \
             (a firmware built before --predictions?)",
        )?;
        let n = labels.len();
        let shape = |o: &Outputs| (o.images(), o.per_image);
        if shape(&device) != shape(&host)
            || host_predictions.len() != n
            || device_predictions.len() != n
            || host.images() != n
        {
            return Err(format!(
                "the device sent {} images of {} outputs, the host has {} of {} for {n} images",
                device.images(),
                device.per_image,
                host.images(),
                host.per_image
            ));
        }
        let same_kind = matches!(
            (&host.values, &device.values),
            (Values::Levels(_), Values::Levels(_)) | (Values::Floats(_), Values::Floats(_))
        );
        if !same_kind {
            return Err("the device's outputs are not of the host's type".into());
        }
        if device.fnv1a() != device_fnv1a {
            return Err(format!(
                "the LASAGNA-OUT lines hash to {:#010x}, but the device reported \
                 outputs_fnv1a={device_fnv1a:#010x}",
                device.fnv1a()
            ));
        }
        if let Some(i) =
            (0..n).find(|&i| device.prediction(i) != device_predictions.get(i).copied())
        {
            return Err(format!(
                "image {i}: the device predicted {:?}, but the outputs it sent say {:?}",
                device_predictions.get(i),
                device.prediction(i)
            ));
        }
        Ok(Predictions {
            labels: labels.to_vec(),
            host_predictions: host_predictions.to_vec(),
            device_predictions: device_predictions.to_vec(),
            host,
            device,
            output_quant,
        })
    }

    /// The CSV: a header row, then one row per image (see the module docs).
    pub fn to_csv(&self) -> String {
        let per = self.host.per_image;
        let int8 = matches!(self.host.values, Values::Levels(_));
        let col = if int8 { "q" } else { "out" };
        let mut out = String::from("index,label,host_prediction,device_prediction");
        if int8 {
            out.push_str(",scale,zero_point");
        }
        for side in ["host", "device"] {
            (0..per).for_each(|k| {
                let _ = write!(out, ",{side}_{col}{k}");
            });
        }
        out.push('\n');
        let quant = match self.output_quant {
            Some((scale, zp)) if int8 => format!(",{scale},{zp}"),
            _ if int8 => ",,".into(),
            _ => String::new(),
        };
        let rows = self
            .labels
            .iter()
            .zip(&self.host_predictions)
            .zip(&self.device_predictions);
        for (i, ((label, host), device)) in rows.enumerate() {
            let _ = write!(out, "{i},{label},{host},{device}{quant}");
            self.host.fields(i, &mut out);
            self.device.fields(i, &mut out);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn levels(v: &[i8]) -> Outputs {
        Outputs {
            per_image: 3,
            values: Values::Levels(v.to_vec()),
        }
    }

    #[test]
    fn an_int8_table_has_scale_zero_point_and_both_sides_levels() {
        let host = levels(&[1, 3, 3, -128, 0, 127]);
        let device = Outputs::from_hex(&["010303", "80007f"], true).unwrap();
        assert_eq!(device, host);
        let fnv = device.fnv1a();
        let p = Predictions::new(
            &[1, 2],
            &[1, 2],
            host,
            &[1, 2],
            Some(device),
            fnv,
            Some((0.25, -3)),
        )
        .unwrap();
        assert_eq!(
            p.to_csv(),
            "index,label,host_prediction,device_prediction,scale,zero_point,\
             host_q0,host_q1,host_q2,device_q0,device_q1,device_q2\n\
             0,1,1,1,0.25,-3,1,3,3,1,3,3\n\
             1,2,2,2,0.25,-3,-128,0,127,-128,0,127\n"
        );
    }

    #[test]
    fn an_f32_table_writes_values_that_read_back_to_the_same_bits() {
        let v = [0.1f32, -0.0, 3.5e-8, 2.0];
        let host = Outputs {
            per_image: 2,
            values: Values::Floats(v.to_vec()),
        };
        let hex = ["3dcccccd80000000", "331652e840000000"];
        let device = Outputs::from_hex(&hex, false).unwrap();
        assert_eq!(device, host);
        let fnv = device.fnv1a();
        let p = Predictions::new(&[0, 1], &[0, 1], host, &[0, 1], Some(device), fnv, None).unwrap();
        let csv = p.to_csv();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("index,label,host_prediction,device_prediction,host_out0,host_out1,device_out0,device_out1")
        );
        let row: Vec<&str> = lines.nth(1).unwrap().split(',').collect();
        assert_eq!(row[..4], ["1", "1", "1", "1"]);
        let back: f32 = row[4].parse().unwrap();
        assert_eq!(back.to_bits(), 3.5e-8f32.to_bits());
    }

    #[test]
    fn device_outputs_that_do_not_match_its_own_report_are_refused() {
        let host = levels(&[1, 3, 3]);
        let device = levels(&[1, 3, 3]);
        let fnv = device.fnv1a();
        let new = |dev: Option<Outputs>, preds: &[u8], fnv: u32| {
            Predictions::new(&[1], &[1], host.clone(), preds, dev, fnv, None)
        };
        assert!(new(Some(device.clone()), &[1], fnv).is_ok());
        let e = new(None, &[1], fnv).unwrap_err();
        assert!(e.contains("LASAGNA-OUT"), "{e}");
        let e = new(Some(device.clone()), &[1], fnv ^ 1).unwrap_err();
        assert!(e.contains("outputs_fnv1a"), "{e}");
        // Ties go to the first index: [1, 3, 3] predicts 1, never 2.
        let e = new(Some(device.clone()), &[2], fnv).unwrap_err();
        assert!(e.contains("image 0"), "{e}");
        let e = new(Some(levels(&[1, 3, 3, 0, 0, 0])), &[1], fnv).unwrap_err();
        assert!(e.contains("2 images"), "{e}");
        assert!(Outputs::from_hex(&["0103", "01"], true).is_err());
        assert!(Outputs::from_hex(&["01zz"], true).is_err());
    }
}
