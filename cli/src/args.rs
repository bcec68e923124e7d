//! Value parsers for numeric options where 0 (or a huge value) means
//! nothing useful: clap refuses them before any work starts, with the unit
//! and an example, instead of a run failing minutes later.

use lasagna_trainer::footprint::parse_bytes;

/// `--timeout SECONDS`: a whole number of seconds, at least 1.
pub fn seconds(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(0) => Err("0 seconds stops the emulator before it starts; \
             give whole seconds, at least 1 (e.g. --timeout 600, the default)"
            .into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{s}` is not a whole number of seconds (e.g. --timeout 600, the default)"
        )),
    }
}

/// `--max-memory BYTES`: a byte count with an optional K, M, G or T suffix.
pub fn bytes(s: &str) -> Result<u64, String> {
    parse_bytes(s)
}

/// A count of at least 1 (`--limit N`).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// A finite number (`--input-mean`): NaN or infinity would turn every
/// input into NaN.
pub fn finite(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(x) if x.is_finite() => Ok(x),
        Ok(_) => Err(format!("`{s}` is not a finite number (e.g. 0.1307)")),
        Err(_) => Err(format!("`{s}` is not a number (e.g. 0.1307)")),
    }
}

/// A finite number above 0 (`--input-std`): every input is divided by it.
pub fn positive_finite(s: &str) -> Result<f32, String> {
    match finite(s) {
        Ok(x) if x > 0.0 => Ok(x),
        Ok(_) => Err(format!(
            "`{s}` is not above 0; inputs are divided by it (e.g. 0.3081)"
        )),
        Err(_) => Err(format!(
            "`{s}` is not a finite number above 0 (e.g. 0.3081)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_seconds_and_non_numbers_are_refused_with_an_example() {
        assert_eq!(seconds("600"), Ok(600));
        for bad in ["0", "-1", "1.5", "ten"] {
            let e = seconds(bad).err().unwrap_or_default();
            assert!(e.contains("--timeout 600"), "{bad}: {e}");
        }
        assert_eq!(bytes("4G"), Ok(4 << 30));
        assert!(bytes("0").is_err());
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err());
        assert_eq!(finite("-0.5"), Ok(-0.5));
        assert_eq!(positive_finite("0.3081"), Ok(0.3081));
        for bad in ["nan", "inf", "-inf", "x"] {
            assert!(finite(bad).is_err(), "{bad}");
        }
        for bad in ["0", "-1", "nan", "inf", "1e39"] {
            assert!(positive_finite(bad).is_err(), "{bad}");
        }
    }
}
