//! Byte counts as people read them. Its own module, with no imports, so
//! that both the error messages and the memory estimate can use it without
//! `error` depending on `footprint` (which depends on `error`).

/// `3.1 GiB`, `872.2 KiB`, `512 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn units_step_by_1024() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(893_133), "872.2 KiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }
}
