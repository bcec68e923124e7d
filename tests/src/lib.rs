//! Cross-crate parity tests and end-to-end journeys live in `tests/tests/`.
//! They arrive with the trainer and engine issues; each crate's own unit and
//! property tests sit next to its code.
