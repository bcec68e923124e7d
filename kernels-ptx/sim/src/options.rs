//! The simulator's strictness switches. Each check is off by default (the
//! simulator then behaves exactly as before these options existed) and
//! `SimOptions::strict` turns them all on; `Simulator::new()` reads
//! `LASAGNA_SIM_STRICT` and `LASAGNA_SIM_SEED` so CI can run every kernel
//! test strictly without editing the tests.

/// How `.approx` instructions round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ApproxError {
    /// The correctly rounded libm result (the historical behaviour).
    #[default]
    Exact,
    /// A seeded perturbation of the libm result anywhere inside the PTX ISA's
    /// stated error bound for the instruction.
    Random,
    /// The largest whole-ulp perturbation the ISA's bound allows, with a seeded
    /// sign: the harshest result a conforming GPU could return.
    Max,
}

/// Checks and hardware-like behaviours of the simulator (README "Strict mode").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// Seed of every random choice (warp and block order, approx perturbation).
    pub seed: u64,
    /// Interleave the warps of a block one instruction at a time in a seeded
    /// random order, and run the blocks of a grid in a shuffled order.
    pub interleave: bool,
    /// Report conflicting shared accesses by two warps with no `bar.sync`
    /// between them, and conflicting global accesses by two blocks of a launch.
    pub race_detection: bool,
    /// Poison registers and shared memory at block start and report any read of
    /// a byte or register that was never written.
    pub poison: bool,
    /// `cp.async` data lands at the matching `cp.async.wait_group`/`wait_all`,
    /// not when the copy issues.
    pub deferred_cp_async: bool,
    /// Error model of the `.approx` instructions.
    pub approx_error: ApproxError,
    /// `.ftz` flushes subnormal inputs and results to signed zero.
    pub ftz: bool,
    /// Contract a dependent `mul.f32` + `add.f32`/`sub.f32` pair (neither with an
    /// explicit rounding modifier) into one fused multiply-add, as ptxas may.
    pub fma_contraction: bool,
    /// Refuse launches over the hardware's register and shared-memory limits
    /// (registers from the resource usage registered with `Simulator::set_resources`).
    pub limits: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 0,
            interleave: false,
            race_detection: false,
            poison: false,
            deferred_cp_async: false,
            approx_error: ApproxError::Exact,
            ftz: false,
            fma_contraction: false,
            limits: false,
        }
    }
}

/// Environment variable that turns strict mode on (`1`, `true` or `yes`).
pub const ENV_STRICT: &str = "LASAGNA_SIM_STRICT";
/// Environment variable holding the seed (decimal or `0x` hex); default 0.
pub const ENV_SEED: &str = "LASAGNA_SIM_SEED";

impl SimOptions {
    /// Every check and hardware-like behaviour on, with `seed`.
    pub fn strict(seed: u64) -> Self {
        SimOptions {
            seed,
            interleave: true,
            race_detection: true,
            poison: true,
            deferred_cp_async: true,
            approx_error: ApproxError::Max,
            ftz: true,
            fma_contraction: true,
            limits: true,
        }
    }

    /// `strict(seed)` when `LASAGNA_SIM_STRICT` is set to a true value, else the
    /// defaults (with the seed from `LASAGNA_SIM_SEED` either way).
    pub fn from_env() -> Self {
        let seed = std::env::var(ENV_SEED)
            .ok()
            .and_then(|s| parse_seed(&s))
            .unwrap_or(0);
        let v = std::env::var(ENV_STRICT).unwrap_or_default();
        SimOptions::from_list(v.trim(), seed)
    }

    /// `1`/`true`/`yes`/`on`/`all`: `strict(seed)`; otherwise a comma-separated
    /// subset of `interleave,race,poison,cpasync,approx,ftz,fma,limits` (for
    /// bisecting which check a kernel trips); anything else is ignored.
    pub fn from_list(v: &str, seed: u64) -> Self {
        if matches!(v, "1" | "true" | "yes" | "on" | "all") {
            return SimOptions::strict(seed);
        }
        let mut o = SimOptions {
            seed,
            ..SimOptions::default()
        };
        for name in v.split(',').map(str::trim) {
            match name {
                "interleave" => o.interleave = true,
                "race" => o.race_detection = true,
                "poison" => o.poison = true,
                "cpasync" => o.deferred_cp_async = true,
                "approx" => o.approx_error = ApproxError::Max,
                "ftz" => o.ftz = true,
                "fma" => o.fma_contraction = true,
                "limits" => o.limits = true,
                _ => {}
            }
        }
        o
    }

    /// True when any option changes how a launch runs (not just its seed).
    pub fn any(&self) -> bool {
        self.interleave
            || self.race_detection
            || self.poison
            || self.deferred_cp_async
            || self.approx_error != ApproxError::Exact
            || self.ftz
            || self.fma_contraction
            || self.limits
    }
}

fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed generator, so the
/// simulator needs no `rand` dependency and a seed reproduces a run exactly.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant for scheduling.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The SplitMix64 finaliser: a stateless hash of one word.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_in_decimal_and_hex() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed(" 0x10 "), Some(16));
        assert_eq!(parse_seed("x"), None);
    }

    #[test]
    fn a_list_turns_on_only_the_named_checks() {
        let o = SimOptions::from_list("race, fma", 3);
        assert!(o.race_detection && o.fma_contraction && !o.interleave && !o.poison);
        assert_eq!(SimOptions::from_list("all", 3), SimOptions::strict(3));
        assert!(!SimOptions::from_list("", 3).any());
    }

    #[test]
    fn strict_turns_every_check_on_and_default_none() {
        assert!(!SimOptions::default().any());
        let s = SimOptions::strict(7);
        assert!(s.interleave && s.race_detection && s.poison && s.deferred_cp_async);
        assert!(s.ftz && s.fma_contraction && s.limits && s.seed == 7);
    }
}
