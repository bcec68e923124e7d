//! Checkers of strict mode: the race detector (`race.rs`) and the
//! initialised-state shadow (`poison.rs`). They only record and answer
//! questions; `exec` turns their answers into `Error` values with the
//! instruction text.

pub(crate) mod poison;
pub(crate) mod race;
