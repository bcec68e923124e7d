//! How much memory a model takes, computed from its sizes before anything is
//! allocated, so a model too large for the machine is refused with the bytes
//! it needs instead of aborting in the allocator (TFLite Micro's prepare
//! step: every size is known, and checked, before eval allocates).
//!
//! All counts use checked `u64` arithmetic: a layer of 2^32 outputs must not
//! wrap around to a small number and pass the check.

use crate::alloc::product;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::human_bytes::human;
use crate::layers::Layer;

/// Bytes of one buffer element (`f32` values and `u32` indices alike).
const ELEMENT: u64 = 4;

/// A model's memory, in bytes, by purpose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Trainable parameter values.
    pub parameters: u64,
    /// Their gradients (the same size).
    pub gradients: u64,
    /// Optimizer state (momentum; Adam's two moments).
    pub optimizer: u64,
    /// Activations for the largest batch, the two gradient buffers, the
    /// layers' saved state and scratch, and the host copy of the largest
    /// parameter tensor while it is initialized.
    pub activations: u64,
    /// Trainable parameter count (elements, not bytes).
    pub parameter_count: u64,
}

impl MemoryEstimate {
    /// The sum, or `None` when it overflows `u64`.
    pub fn total(&self) -> Option<u64> {
        self.parameters
            .checked_add(self.gradients)?
            .checked_add(self.optimizer)?
            .checked_add(self.activations)
    }

    /// `parameters 872 KiB, gradients 872 KiB, ...`.
    pub fn detail(&self) -> String {
        format!(
            "parameters {}, gradients {}, optimizer state {}, activations and scratch {}",
            human(self.parameters),
            human(self.gradients),
            human(self.optimizer),
            human(self.activations)
        )
    }
}

/// What [`estimate`] returns when a count overflows `u64`.
fn overflow(index: Option<(usize, String)>) -> Error {
    let what = match index {
        Some((i, d)) => format!("the model (at layer {i}, {d})"),
        None => "the model".to_string(),
    };
    Error::TooLarge {
        what,
        needed: None,
        detail: "the count overflows 64 bits".into(),
        limit: u64::MAX,
        limit_name: "any 64-bit machine",
        hint: "make the layers smaller",
    }
}

/// The memory [`crate::model::Model::build`] and an optimizer with
/// `optimizer_slots` buffers per parameter will allocate for `layers` fed
/// `input`-shaped samples in batches of up to `max_batch`. Allocates nothing.
pub fn estimate<B: Backend>(
    layers: &[Box<dyn Layer<B>>],
    input: &[usize],
    max_batch: usize,
    optimizer_slots: usize,
) -> Result<MemoryEstimate> {
    let batch = u64::try_from(max_batch).map_err(|_| overflow(None))?;
    let mut shape = input.to_vec();
    let first = product(&shape).ok_or_else(|| overflow(None))?;
    // The input buffer, then each layer's output (Flatten shares its input's).
    let mut values = first;
    let mut widest = first;
    let (mut params, mut state, mut largest) = (0u64, 0u64, 0u64);
    for (i, l) in layers.iter().enumerate() {
        let at = || overflow(Some((i, l.describe())));
        let f = l.footprint(&shape, max_batch).ok_or_else(at)?;
        params = params.checked_add(f.params).ok_or_else(at)?;
        state = state.checked_add(f.state).ok_or_else(at)?;
        largest = largest.max(f.largest);
        shape = l.output_shape(&shape).map_err(|reason| Error::Shape {
            index: i,
            layer: l.describe(),
            input: shape.clone(),
            reason,
        })?;
        let n = product(&shape).ok_or_else(at)?;
        widest = widest.max(n);
        if !l.reshapes_only() {
            values = values.checked_add(n).ok_or_else(at)?;
        }
    }
    let big = || overflow(None);
    let per_sample = widest
        .checked_mul(2)
        .and_then(|g| g.checked_add(values))
        .ok_or_else(big)?;
    let activations = per_sample
        .checked_mul(batch)
        .and_then(|a| a.checked_add(state))
        .and_then(|a| a.checked_add(largest))
        .and_then(|a| a.checked_mul(ELEMENT))
        .ok_or_else(big)?;
    let parameters = params.checked_mul(ELEMENT).ok_or_else(big)?;
    let optimizer = parameters
        .checked_mul(optimizer_slots as u64)
        .ok_or_else(big)?;
    let e = MemoryEstimate {
        parameters,
        gradients: parameters,
        optimizer,
        activations,
        parameter_count: params,
    };
    e.total().ok_or_else(big)?;
    Ok(e)
}

/// The memory a run may use: `max` (from `--max-memory`) and, when
/// `host` is true (buffers in host memory), `MemAvailable` from
/// `/proc/meminfo`, whichever is smaller, with its name for messages.
/// `None` when neither is known (no `--max-memory`, not Linux).
pub fn limit(max: Option<u64>, host: bool) -> Option<(u64, &'static str)> {
    let avail = if host { mem_available() } else { None };
    match (max, avail) {
        (Some(m), Some(a)) if a < m => Some((a, "MemAvailable in /proc/meminfo")),
        (Some(m), _) => Some((m, "--max-memory")),
        (None, Some(a)) => Some((a, "MemAvailable in /proc/meminfo")),
        (None, None) => None,
    }
}

/// Fails with the bytes `e` needs when they exceed `limit` (see [`limit`]).
pub fn check(e: &MemoryEstimate, limit: Option<(u64, &'static str)>) -> Result<()> {
    let Some((limit, name)) = limit else {
        return Ok(());
    };
    let needed = e.total();
    if needed.is_some_and(|n| n <= limit) {
        return Ok(());
    }
    Err(Error::TooLarge {
        what: format!("the model ({} parameters)", e.parameter_count),
        needed,
        detail: e.detail(),
        limit,
        limit_name: name,
        hint: "use smaller layers (out, hidden, channels) or a smaller --batch-size; \
               --max-memory BYTES sets the limit",
    })
}

/// `MemAvailable` of `/proc/meminfo` in bytes (Linux); `None` elsewhere or
/// when it cannot be read.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

/// A byte count with an optional binary suffix: `1048576`, `512K`, `512M`,
/// `4G`, `1T` (`K` = 1024; `KiB`, `MB` and lower case read the same). At
/// least 1.
pub fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let example = "e.g. 1048576, 512M or 4G";
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a byte count ({example})"))?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => {
            return Err(format!(
                "`{s}`: unknown suffix `{suffix}`; use K, M, G or T (powers of 1024), {example}"
            ))
        }
    };
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("`{s}` is more than 2^64 bytes"))?;
    if bytes == 0 {
        return Err(format!(
            "`{s}`: the limit must be at least 1 byte ({example})"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::Cpu;
    use crate::config::{ModelSpec, PRESETS};
    use crate::model::Model;

    #[test]
    fn the_estimate_counts_the_parameters_each_preset_allocates() -> Result<()> {
        for (name, text) in PRESETS {
            let spec = ModelSpec::parse(text, name)?;
            let e = estimate(&spec.build_layers::<Cpu>()?, &spec.input, 8, 2)?;
            let model = Model::build(&Cpu, spec.build_layers::<Cpu>()?, &spec.input, 8, 0)?;
            assert_eq!(e.parameter_count, model.parameter_count() as u64, "{name}");
            assert_eq!(e.parameters, 4 * e.parameter_count, "{name}");
            assert_eq!((e.gradients, e.optimizer), (e.parameters, 2 * e.parameters));
            assert!(e.activations > 0, "{name}");
        }
        Ok(())
    }

    #[test]
    fn sizes_that_overflow_64_bits_are_refused_not_wrapped() -> Result<()> {
        // 784 x 2^62 weights: 2^71 elements, which u64 arithmetic would wrap.
        let spec = ModelSpec::parse(
            "[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout = 4611686018427387904\n",
            "huge.toml",
        )?;
        let e = estimate(&spec.build_layers::<Cpu>()?, &spec.input, 1000, 2);
        let msg = e
            .map(|_| ())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("more than 2^64 bytes"), "{msg}");
        // 2^32 outputs fit in 64 bits and are counted exactly.
        let spec = ModelSpec::parse(
            "[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"linear\"\nout = 4294967296\n",
            "wide.toml",
        )?;
        let e = estimate(&spec.build_layers::<Cpu>()?, &spec.input, 1, 0)?;
        assert_eq!(e.parameter_count, 785 * (1 << 32));
        Ok(())
    }

    #[test]
    fn a_limit_below_the_estimate_is_refused_with_the_bytes() {
        let e = MemoryEstimate {
            parameters: 4000,
            gradients: 4000,
            optimizer: 8000,
            activations: 100,
            parameter_count: 1000,
        };
        assert!(check(&e, Some((16_100, "--max-memory"))).is_ok());
        assert!(check(&e, None).is_ok());
        let msg = check(&e, Some((16_099, "--max-memory")))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("16100 bytes") && msg.contains("--max-memory"),
            "{msg}"
        );
    }

    #[test]
    fn byte_counts_take_binary_suffixes_and_refuse_zero_and_overflow() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512K"), Ok(512 << 10));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("4G"), Ok(4 << 30));
        assert_eq!(parse_bytes("4gib"), Ok(4 << 30));
        assert_eq!(parse_bytes("2 MB"), Ok(2 << 20));
        assert_eq!(parse_bytes("1T"), Ok(1 << 40));
        for bad in ["", "G", "-1", "1.5G", "4X", "0", "0M", "99999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text = "MemTotal:       32000000 kB\nMemAvailable:   24065240 kB\n";
        assert_eq!(parse_meminfo(text), Some(24_065_240 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }
}
