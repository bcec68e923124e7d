//! `lasagna-kernels`: hand-written PTX kernels and their launch rules.
//!
//! Not implemented yet: the kernels arrive with the "hand-written PTX kernels"
//! issue. This crate exposes no API until then.
#![deny(missing_docs)]
