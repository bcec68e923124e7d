//! `lasagna-trainer`: layers, losses, optimizers, data and the `lasagna` CLI.
//!
//! Today it holds `inspect`, which prints what a model file contains. Training
//! arrives with the "trainer core" issue.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod inspect;
