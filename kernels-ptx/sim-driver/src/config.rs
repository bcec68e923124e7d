//! What the fake driver simulates, read from the environment at `cuInit`
//! (like the real driver's `CUDA_*` variables), so a test can set up a
//! failure for one run of an unmodified binary.

use crate::errors::{Code, Res, INVALID_VALUE, LAUNCH_FAILED};

/// Device memory reported when `LASAGNA_SIM_DRIVER_MEM` is unset. The
/// simulator allocates host memory for what is used, not for the cap.
pub const DEFAULT_MEMORY: u64 = 4 << 30;

/// The fault-injection and sizing knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `LASAGNA_SIM_DRIVER_MEM`: total device memory in bytes.
    pub memory: u64,
    /// `LASAGNA_SIM_DRIVER_DEVICES`: 0 or 1 (0: `cuInit` says no device).
    pub devices: u32,
    /// `LASAGNA_SIM_DRIVER_INIT_ERROR`: a code `cuInit` returns. Any code
    /// may be given: the trainer calls `cuInit` through its own `int`
    /// declaration, never through cust.
    pub init_error: Option<Code>,
    /// `LASAGNA_SIM_DRIVER_CTX_ERROR`: a code `cuDevicePrimaryCtxRetain`
    /// returns (where a busy GPU says 46); the trainer calls it through its
    /// own `int` declaration too.
    pub ctx_error: Option<Code>,
    /// `LASAGNA_SIM_DRIVER_OOM_AT`: the 1-based `cuMemAlloc` call that fails.
    pub oom_at: Option<u64>,
    /// `LASAGNA_SIM_DRIVER_ALLOC_ERROR`: a code every `cuMemAlloc` returns,
    /// any code (the trainer reads it as an `int`, driver/ffi.rs).
    pub alloc_error: Option<Code>,
    /// `LASAGNA_SIM_DRIVER_FAULT=kernel[:code]`: every launch of `kernel`
    /// faults with `code` (default 719) instead of running.
    pub fault: Option<(String, Code)>,
    /// `LASAGNA_SIM_DRIVER_JIT_FAULT=entry`: loading a module that declares
    /// `entry` fails with 218 and a log.
    pub jit_fault: Option<String>,
    /// `CUDA_LAUNCH_BLOCKING=1`: as on hardware, the launch itself reports
    /// its kernel's fault instead of the next synchronizing call.
    pub launch_blocking: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            memory: DEFAULT_MEMORY,
            devices: 1,
            init_error: None,
            ctx_error: None,
            oom_at: None,
            alloc_error: None,
            fault: None,
            jit_fault: None,
            launch_blocking: false,
        }
    }
}

impl Config {
    /// Reads the variables; a malformed one is reported on stderr and makes
    /// `cuInit` fail with 1, so a typo cannot pass for a clean run.
    pub fn from_env() -> Res<Config> {
        Config::parse(|k| std::env::var(k).ok())
    }

    /// As [`Config::from_env`], with `get` standing for the environment.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Res<Config> {
        let mut c = Config::default();
        if let Some(v) = get("LASAGNA_SIM_DRIVER_MEM") {
            c.memory = number("LASAGNA_SIM_DRIVER_MEM", &v)?;
        }
        if let Some(v) = get("LASAGNA_SIM_DRIVER_DEVICES") {
            c.devices = match v.trim() {
                "0" => 0,
                "1" => 1,
                _ => return bad("LASAGNA_SIM_DRIVER_DEVICES", &v, "0 or 1"),
            };
        }
        if let Some(v) = get("LASAGNA_SIM_DRIVER_INIT_ERROR") {
            c.init_error = Some(code("LASAGNA_SIM_DRIVER_INIT_ERROR", &v)?);
        }
        if let Some(v) = get("LASAGNA_SIM_DRIVER_CTX_ERROR") {
            c.ctx_error = Some(code("LASAGNA_SIM_DRIVER_CTX_ERROR", &v)?);
        }
        if let Some(v) = get("LASAGNA_SIM_DRIVER_OOM_AT") {
            c.oom_at = Some(number("LASAGNA_SIM_DRIVER_OOM_AT", &v)?);
        }
        if let Some(v) = get("LASAGNA_SIM_DRIVER_ALLOC_ERROR") {
            c.alloc_error = Some(code("LASAGNA_SIM_DRIVER_ALLOC_ERROR", &v)?);
        }
        if let Some(v) = get("LASAGNA_SIM_DRIVER_FAULT") {
            let (name, rc) = match v.split_once(':') {
                Some((n, rc)) => (n, code("LASAGNA_SIM_DRIVER_FAULT", rc)?),
                None => (v.as_str(), LAUNCH_FAILED),
            };
            c.fault = Some((name.trim().to_owned(), rc));
        }
        c.jit_fault = get("LASAGNA_SIM_DRIVER_JIT_FAULT").map(|v| v.trim().to_owned());
        c.launch_blocking = get("CUDA_LAUNCH_BLOCKING").is_some_and(|v| v.trim() == "1");
        Ok(c)
    }
}

fn number(var: &str, v: &str) -> Res<u64> {
    v.trim()
        .parse()
        .or_else(|_| bad(var, v, "a non-negative integer"))
}

fn code(var: &str, v: &str) -> Res<Code> {
    match v.trim().parse::<Code>() {
        Ok(c) if c > 0 => Ok(c),
        _ => bad(var, v, "a CUresult code above 0"),
    }
}

fn bad<T>(var: &str, v: &str, want: &str) -> Res<T> {
    eprintln!("lasagna-sim-driver: {var}={v:?} is not {want}");
    Err(INVALID_VALUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn unset_variables_give_one_device_with_the_default_memory() {
        assert_eq!(Config::parse(env(&[])), Ok(Config::default()));
    }

    #[test]
    fn fault_takes_an_optional_code_and_typos_are_refused() {
        let c = Config::parse(env(&[("LASAGNA_SIM_DRIVER_FAULT", "relu_forward:700")]));
        assert_eq!(c.map(|c| c.fault), Ok(Some(("relu_forward".into(), 700))));
        let c = Config::parse(env(&[("LASAGNA_SIM_DRIVER_FAULT", "relu_forward")]));
        assert_eq!(c.map(|c| c.fault), Ok(Some(("relu_forward".into(), 719))));
        // Any code: the trainer reads every result as an int (driver/ffi.rs).
        let c = Config::parse(env(&[("LASAGNA_SIM_DRIVER_FAULT", "relu_forward:46")]));
        assert_eq!(c.map(|c| c.fault), Ok(Some(("relu_forward".into(), 46))));
        let c = Config::parse(env(&[("LASAGNA_SIM_DRIVER_FAULT", "relu_forward:0")]));
        assert_eq!(c, Err(INVALID_VALUE));
        let c = Config::parse(env(&[("LASAGNA_SIM_DRIVER_ALLOC_ERROR", "12345")]));
        assert_eq!(c.map(|c| c.alloc_error), Ok(Some(12345)));
        let c = Config::parse(env(&[("LASAGNA_SIM_DRIVER_MEM", "1G")]));
        assert_eq!(c, Err(INVALID_VALUE));
    }
}
