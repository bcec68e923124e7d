#[cfg(feature = "cuda")]
pub mod driver;
