//! Dynamic loss scaling for mixed-precision training, with the semantics of
//! PyTorch's `torch.cuda.amp.GradScaler` (defaults `init_scale = 2**16`,
//! `growth_factor = 2`, `backoff_factor = 0.5`, `growth_interval = 2000`).
//!
//! Each step the loss gradient is multiplied by [`GradScaler::scale`], so
//! small gradients survive fp16 GEMM inputs; the parameter gradients are then
//! unscaled (`AmpOps::unscale_check`) before clipping. If any of them is
//! inf/NaN the optimizer step is skipped and the scale halved; after
//! `growth_interval` consecutive finite steps it doubles.

use serde::{Deserialize, Serialize};

/// PyTorch's `init_scale`.
pub const INIT_SCALE: f32 = 65_536.0;
/// PyTorch's `growth_factor`.
pub const GROWTH_FACTOR: f32 = 2.0;
/// PyTorch's `backoff_factor`.
pub const BACKOFF_FACTOR: f32 = 0.5;
/// PyTorch's `growth_interval`.
pub const GROWTH_INTERVAL: u32 = 2000;

/// The scaler's whole state; saved in checkpoints (`RunState::scaler`) so a
/// resumed run scales exactly as an uninterrupted one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradScaler {
    /// The current loss scale.
    pub scale: f32,
    /// Consecutive finite steps since the last growth or backoff.
    pub growth_tracker: u32,
    /// Optimizer steps skipped because a gradient was inf/NaN, over the run.
    pub skipped_steps: u64,
}

impl Default for GradScaler {
    fn default() -> Self {
        GradScaler::with_scale(INIT_SCALE)
    }
}

impl GradScaler {
    /// A scaler starting at `scale` (tests force an overflow with a huge one).
    pub fn with_scale(scale: f32) -> GradScaler {
        GradScaler {
            scale,
            growth_tracker: 0,
            skipped_steps: 0,
        }
    }

    /// The factor the loss gradient is multiplied by.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// What the gradients are multiplied by to unscale them. PyTorch computes
    /// it in double and rounds to float; the scale stays a power of two
    /// unless set by hand, so the reciprocal is exact either way.
    pub fn inv_scale(&self) -> f32 {
        (1.0 / f64::from(self.scale)) as f32
    }

    /// Records a step: `found_inf` says whether any gradient was inf/NaN
    /// (the step was skipped). PyTorch's `_amp_update_scale_`: backoff and
    /// reset on overflow; otherwise count, and grow after `GROWTH_INTERVAL`
    /// finite steps unless the grown scale would be infinite.
    pub fn update(&mut self, found_inf: bool) {
        if found_inf {
            self.scale *= BACKOFF_FACTOR;
            self.growth_tracker = 0;
            self.skipped_steps += 1;
        } else {
            let successful = self.growth_tracker + 1;
            if successful == GROWTH_INTERVAL {
                let grown = self.scale * GROWTH_FACTOR;
                if grown.is_finite() {
                    self.scale = grown;
                }
                self.growth_tracker = 0;
            } else {
                self.growth_tracker = successful;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An independent model of the rules: the scale is `2^e` with the
    /// exponent moved by +1 per full run of 2000 finite steps (the run
    /// restarts after each growth) and -1 per overflow.
    fn reference(steps: &[bool]) -> (f32, u32, u64) {
        let mut exp: i32 = 16;
        let mut run = 0u32;
        let mut skipped = 0u64;
        for &inf in steps {
            if inf {
                exp -= 1;
                run = 0;
                skipped += 1;
            } else {
                run += 1;
                if run == 2000 {
                    if exp < 127 {
                        exp += 1;
                    }
                    run = 0;
                }
            }
        }
        (2f32.powi(exp), run, skipped)
    }

    /// Sequences of runs: long finite runs (around the growth interval)
    /// broken by bursts of overflows.
    fn steps() -> impl Strategy<Value = Vec<bool>> {
        prop::collection::vec(
            (
                prop_oneof![0usize..10, 1990usize..2010, 3995usize..4005],
                0usize..4,
            ),
            0..12,
        )
        .prop_map(|runs| {
            runs.into_iter()
                .flat_map(|(ok, bad)| {
                    std::iter::repeat_n(false, ok).chain(std::iter::repeat_n(true, bad))
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn scaler_follows_the_reference_rules_on_any_sequence_of_steps(s in steps()) {
            let mut sc = GradScaler::default();
            for &inf in &s {
                sc.update(inf);
            }
            let (scale, tracker, skipped) = reference(&s);
            prop_assert_eq!(sc.scale, scale);
            prop_assert_eq!(sc.growth_tracker, tracker);
            prop_assert_eq!(sc.skipped_steps, skipped);
            prop_assert_eq!(sc.inv_scale() * sc.scale, 1.0);
        }

        #[test]
        fn scaler_state_survives_a_json_round_trip(s in steps()) {
            let mut sc = GradScaler::default();
            for &inf in &s {
                sc.update(inf);
            }
            let back: GradScaler = serde_json::from_str(&serde_json::to_string(&sc).unwrap()).unwrap();
            prop_assert_eq!(back, sc);
        }
    }

    #[test]
    fn defaults_are_pytorchs_and_growth_needs_2000_consecutive_finite_steps() {
        let mut sc = GradScaler::default();
        assert_eq!(sc.scale(), 65536.0);
        for _ in 0..1999 {
            sc.update(false);
        }
        assert_eq!((sc.scale, sc.growth_tracker), (65536.0, 1999));
        sc.update(true);
        assert_eq!(
            (sc.scale, sc.growth_tracker, sc.skipped_steps),
            (32768.0, 0, 1)
        );
        for _ in 0..2000 {
            sc.update(false);
        }
        assert_eq!((sc.scale, sc.growth_tracker), (65536.0, 0));
    }

    #[test]
    fn growth_never_makes_the_scale_infinite() {
        let mut sc = GradScaler::with_scale(f32::MAX);
        for _ in 0..2000 {
            sc.update(false);
        }
        assert_eq!((sc.scale, sc.growth_tracker), (f32::MAX, 0));
    }
}
