//! `lasagna eval --predictions FILE.csv`: what the engine gave for every
//! test image, one CSV row each, after a header row naming the columns
//! (`N` outputs per image, 10 for MNIST):
//!
//! - f32 outputs (the trainer's layers, whatever the file stores; the
//!   no_std engine on an f32 or f16 model): `index,label,prediction,
//!   out0..out{N-1}`, each value in the shortest decimal that reads back
//!   to the same f32 bits;
//! - int8 levels (the no_std engine on an int8 model):
//!   `index,label,prediction,scale,zero_point,q0..q{N-1}`; a logit is
//!   `scale * (q - zero_point)`.
//!
//! `index` is the image's place in the MNIST test set, `label` its class,
//! and `prediction` the argmax of its outputs, a tie going to the first
//! (lowest) index: `lasagna_protocol::argmax`, the rule the firmware and
//! `lasagna deploy` use too.

use lasagna_protocol::argmax::{argmax, ordered};
use std::fmt::Write;

/// Every output of the test set, image-major.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalOutputs {
    /// f32 logits.
    Logits(Vec<f32>),
    /// An int8 model's output levels.
    Levels {
        /// The levels.
        levels: Vec<i8>,
        /// Output scale.
        scale: f32,
        /// Output zero point.
        zero_point: i32,
    },
}

/// The labels and every output of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// One label per image.
    pub labels: Vec<u32>,
    /// Outputs per image.
    pub per_image: usize,
    /// The outputs.
    pub outputs: EvalOutputs,
}

impl Predictions {
    /// The class image `i` is predicted as: the first largest output.
    pub fn prediction(&self, i: usize) -> usize {
        let range = i * self.per_image..(i + 1) * self.per_image;
        match &self.outputs {
            EvalOutputs::Logits(v) => {
                argmax(v.get(range).unwrap_or(&[]).iter().map(|&x| ordered(x)))
            }
            EvalOutputs::Levels { levels, .. } => argmax(
                levels
                    .get(range)
                    .unwrap_or(&[])
                    .iter()
                    .map(|&x| i32::from(x)),
            ),
        }
    }

    /// Images whose prediction is their label.
    pub fn correct(&self) -> usize {
        (0..self.labels.len())
            .filter(|&i| self.labels.get(i).map(|&l| l as usize) == Some(self.prediction(i)))
            .count()
    }

    /// The CSV (see the module docs).
    pub fn to_csv(&self) -> String {
        let mut out = String::from("index,label,prediction");
        let col = match self.outputs {
            EvalOutputs::Logits(_) => "out",
            EvalOutputs::Levels { .. } => {
                out.push_str(",scale,zero_point");
                "q"
            }
        };
        (0..self.per_image).for_each(|k| {
            let _ = write!(out, ",{col}{k}");
        });
        out.push('\n');
        for (i, label) in self.labels.iter().enumerate() {
            let _ = write!(out, "{i},{label},{}", self.prediction(i));
            let range = i * self.per_image..(i + 1) * self.per_image;
            match &self.outputs {
                EvalOutputs::Logits(v) => {
                    let row = v.get(range).unwrap_or(&[]);
                    row.iter().for_each(|x| {
                        let _ = write!(out, ",{x}");
                    });
                }
                EvalOutputs::Levels {
                    levels,
                    scale,
                    zero_point,
                } => {
                    let _ = write!(out, ",{scale},{zero_point}");
                    let row = levels.get(range).unwrap_or(&[]);
                    row.iter().for_each(|x| {
                        let _ = write!(out, ",{x}");
                    });
                }
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_go_to_the_first_index_in_the_prediction_column() {
        let p = Predictions {
            labels: vec![1, 2],
            per_image: 3,
            outputs: EvalOutputs::Logits(vec![1.0, 3.0, 3.0, -0.5, 1e-7, 0.25]),
        };
        assert_eq!((p.prediction(0), p.prediction(1)), (1, 2));
        assert_eq!(p.correct(), 2);
        assert_eq!(
            p.to_csv(),
            "index,label,prediction,out0,out1,out2\n0,1,1,1,3,3\n1,2,2,-0.5,0.0000001,0.25\n"
        );
    }

    #[test]
    fn int8_rows_carry_the_scale_and_zero_point_to_dequantize() {
        let p = Predictions {
            labels: vec![0],
            per_image: 3,
            outputs: EvalOutputs::Levels {
                levels: vec![1, 3, 3],
                scale: 0.125,
                zero_point: -7,
            },
        };
        assert_eq!(p.prediction(0), 1);
        assert_eq!(p.correct(), 0);
        assert_eq!(
            p.to_csv(),
            "index,label,prediction,scale,zero_point,q0,q1,q2\n0,0,1,0.125,-7,1,3,3\n"
        );
    }
}
