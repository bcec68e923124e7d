//! Value parsers for numeric options where 0 (or a huge value) means
//! nothing useful: clap refuses them before any work starts, with the unit
//! and an example, instead of a run failing minutes later.

use lasagna_trainer::footprint::parse_bytes;

/// `--max-memory BYTES`: a byte count with an optional K, M, G or T suffix.
pub fn bytes(s: &str) -> Result<u64, String> {
    parse_bytes(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_suffixes_and_refuse_zero() {
        assert_eq!(bytes("4G"), Ok(4 << 30));
        assert!(bytes("0").is_err());
    }
}
