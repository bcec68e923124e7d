//! Modules and functions: `cuModuleLoadDataEx` parses the PTX with the
//! simulator (its parse error is the JIT log), `cuModuleGetFunction` finds an
//! `.entry` of one module (500 otherwise) and keeps its parameter layout for
//! `cuLaunchKernel`.

use std::ffi::{c_char, c_int, c_uint, c_void};

use lasagna_ptx_sim::{parse_module, Device};

use crate::context::Driver;
use crate::errors::{Code, Res, INVALID_HANDLE, INVALID_PTX, INVALID_VALUE, NOT_FOUND};
use crate::handles::{Func, ModuleEntry};

// cuda.h, enum CUjit_option.
const CU_JIT_INFO_LOG_BUFFER: c_int = 3;
const CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES: c_int = 4;
const CU_JIT_ERROR_LOG_BUFFER: c_int = 5;
const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES: c_int = 6;

/// A failed load: the code and the JIT log text.
pub type LoadError = (Code, String);

impl Driver {
    /// `cuModuleLoadDataEx` of PTX text: the module's index.
    pub fn load_module(&mut self, ptx: &str) -> Result<usize, LoadError> {
        let jit_fault = self
            .config()
            .map_err(|c| (c, String::new()))?
            .jit_fault
            .clone();
        let ctx = self.usable().map_err(|c| (c, String::new()))?;
        if let Some(entry) = jit_fault {
            let declared = ptx.lines().position(|l| {
                l.split_whitespace()
                    .skip_while(|w| *w != ".entry")
                    .nth(1)
                    .is_some_and(|n| n.split('(').next() == Some(entry.as_str()))
            });
            if let Some(line) = declared {
                return Err((
                    INVALID_PTX,
                    format!(
                        "ptxas application ptx input, line {}; error   : entry `{entry}` \
                         refused by LASAGNA_SIM_DRIVER_JIT_FAULT",
                        line + 1
                    ),
                ));
            }
        }
        let parsed = parse_module(ptx).map_err(|e| (INVALID_PTX, e.to_string()))?;
        ctx.sim
            .load_module(ptx)
            .map_err(|e| (INVALID_PTX, e.to_string()))?;
        ctx.modules.push(Some(ModuleEntry {
            entries: parsed
                .kernels
                .into_iter()
                .map(|k| (k.name, k.params))
                .collect(),
        }));
        Ok(ctx.modules.len() - 1)
    }

    /// `cuModuleGetFunction`: the function's index.
    pub fn get_function(&mut self, module: usize, name: &str) -> Res<usize> {
        let ctx = self.usable()?;
        let m = ctx
            .modules
            .get(module)
            .and_then(Option::as_ref)
            .ok_or(INVALID_HANDLE)?;
        let (_, params) = m.entries.iter().find(|(n, _)| n == name).ok_or(NOT_FOUND)?;
        if let Some(i) = ctx
            .functions
            .iter()
            .position(|f| f.module == module && f.name == name)
        {
            return Ok(i);
        }
        let params = params.clone();
        ctx.functions.push(Func {
            module,
            name: name.to_owned(),
            params,
        });
        Ok(ctx.functions.len() - 1)
    }

    /// `cuModuleUnload`: its functions become invalid handles. (The
    /// simulator keeps the kernels; nothing can reach them any more.)
    pub fn unload(&mut self, module: usize) -> Res<()> {
        let ctx = self.synced()?;
        ctx.modules
            .get_mut(module)
            .and_then(Option::take)
            .map(|_| ())
            .ok_or(INVALID_HANDLE)
    }
}

/// Writes `log` into the caller's `CU_JIT_ERROR_LOG_BUFFER` (capped at its
/// `CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES`, NUL included) and writes back into
/// the size option how many bytes were filled, NUL included. The info log,
/// if asked for, is left empty.
///
/// # Safety
/// `options` and `values` are null or point to `n` entries each; each log
/// buffer option's value points to at least the size its size option gives.
pub unsafe fn write_logs(
    n: c_uint,
    options: *const c_int,
    values: *mut *mut c_void,
    error_log: &str,
) -> Res<()> {
    if n == 0 {
        return Ok(());
    }
    if options.is_null() || values.is_null() {
        return Err(INVALID_VALUE);
    }
    // SAFETY: the caller promises `n` entries in each array.
    let options = unsafe { std::slice::from_raw_parts(options, n as usize) };
    // SAFETY: as above; the driver writes the size options back.
    let values = unsafe { std::slice::from_raw_parts_mut(values, n as usize) };
    for (buffer, size, text) in [
        (
            CU_JIT_ERROR_LOG_BUFFER,
            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
            error_log,
        ),
        (
            CU_JIT_INFO_LOG_BUFFER,
            CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
            "",
        ),
    ] {
        let (Some(b), Some(s)) = (
            options.iter().position(|&o| o == buffer),
            options.iter().position(|&o| o == size),
        ) else {
            continue;
        };
        // The size option's *value* is the integer (cuda.h's convention).
        let cap = values[s] as usize;
        let dst = values[b].cast::<c_char>();
        if cap == 0 || dst.is_null() {
            continue;
        }
        let len = text.len().min(cap - 1);
        // SAFETY: `dst` holds `cap` bytes (caller's promise) and
        // `len + 1 <= cap`; the source is a Rust string of at least `len` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), dst, len);
            dst.add(len).write(0);
        }
        values[s] = (len + 1) as *mut c_void;
    }
    Ok(())
}
