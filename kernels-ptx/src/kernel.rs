//! The descriptions every op file fills in: modules, kernels, parameters and
//! launch shapes.

use core::fmt;

/// One PTX module (one `ptx/<op>.ptx` file).
#[derive(Debug)]
pub struct Module {
    /// The op family, as in `ptx/<name>.ptx` and `trainer/src/backend/cpu/<name>.rs`.
    pub name: &'static str,
    /// The PTX text, ready for `cuModuleLoadData` (append a NUL for the C API).
    pub ptx: &'static str,
}

/// The kind of one kernel parameter, in PTX terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamKind {
    /// A global-memory pointer to `f32` data (`.param .u64`).
    PtrF32,
    /// A global-memory pointer to `u32` data (`.param .u64`).
    PtrU32,
    /// A global-memory pointer to IEEE binary16 data (`.param .u64`).
    PtrF16,
    /// A pointer that may be null (0) to disable a feature (`.param .u64`).
    OptPtrF32,
    /// A 32-bit unsigned integer (`.param .u32`); flags are 0 or 1.
    U32,
    /// A 64-bit unsigned integer (`.param .u64`), for element counts.
    U64,
    /// A 32-bit float (`.param .f32`).
    F32,
}

impl ParamKind {
    /// The PTX type the parameter is declared with.
    pub const fn ptx_type(self) -> &'static str {
        match self {
            ParamKind::PtrF32
            | ParamKind::PtrU32
            | ParamKind::PtrF16
            | ParamKind::OptPtrF32
            | ParamKind::U64 => "u64",
            ParamKind::U32 => "u32",
            ParamKind::F32 => "f32",
        }
    }
}

/// One kernel parameter, in declaration order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    /// The name in the PTX signature.
    pub name: &'static str,
    /// Its kind.
    pub kind: ParamKind,
}

/// Shorthand for the parameter tables.
pub(crate) const fn p(name: &'static str, kind: ParamKind) -> Param {
    Param { name, kind }
}

/// One `.visible .entry` of a module.
#[derive(Debug)]
pub struct Kernel {
    /// The entry name (`cuModuleGetFunction`).
    pub name: &'static str,
    /// The module that defines it.
    pub module: &'static Module,
    /// Its parameters, in order.
    pub params: &'static [Param],
}

/// A grid or block shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim3 {
    /// x extent.
    pub x: u32,
    /// y extent.
    pub y: u32,
    /// z extent.
    pub z: u32,
}

impl Dim3 {
    /// A 1-D shape.
    pub const fn x(x: u32) -> Dim3 {
        Dim3 { x, y: 1, z: 1 }
    }

    /// The number of threads or blocks.
    pub const fn count(self) -> u64 {
        self.x as u64 * self.y as u64 * self.z as u64
    }
}

/// How to launch a kernel for one problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in the grid (every extent is at least 1, so a launch for an
    /// empty problem is valid and does nothing).
    pub grid: Dim3,
    /// Threads per block.
    pub block: Dim3,
    /// Dynamic shared memory in bytes (static shared memory is in the PTX).
    pub shared_bytes: u32,
}

/// A problem the kernels cannot be launched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LaunchError {
    /// A size exceeds what the kernel's index arithmetic or the grid can hold.
    TooLarge {
        /// The kernel.
        kernel: &'static str,
        /// Which size (`m`, `rows`, ...).
        what: &'static str,
        /// The value given.
        value: usize,
        /// The largest supported value.
        max: usize,
    },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::TooLarge {
                kernel,
                what,
                value,
                max,
            } => write!(
                f,
                "{kernel}: {what} = {value} exceeds the supported maximum {max}"
            ),
        }
    }
}

impl std::error::Error for LaunchError {}

/// `ceil(a / b)` for `b > 0`, at least 1.
pub(crate) const fn blocks_for(a: usize, b: usize) -> usize {
    let q = a.div_ceil(b);
    if q == 0 {
        1
    } else {
        q
    }
}

/// A 1-D launch for a grid-stride kernel over `n` items: `block` threads per
/// block and enough blocks to cover `n`, at most `max_grid` (the kernels'
/// loops stride over the rest), at least 1 (an empty launch is a no-op).
pub(crate) fn grid_stride(n: usize, block: u32, max_grid: u32) -> Launch {
    let blocks = blocks_for(n, block as usize).min(max_grid as usize);
    Launch {
        grid: Dim3::x(blocks as u32),
        block: Dim3::x(block),
        shared_bytes: 0,
    }
}

/// Checks `value <= max`, naming the kernel and size otherwise.
/// The grid's y extent is limited to 65535 by CUDA.
pub(crate) const MAX_GRID_Y: usize = 65_535;

/// The launch of a tiled matrix product: one `block`-thread block per
/// `tile x tile` tile of C (`m x n`), grid `(ceil(n / tile), ceil(m / tile))`,
/// with every size at most `max_dim` and the row tiles within [`MAX_GRID_Y`]. Shared by `gemm` and `gemm_f16`.
pub(crate) fn tile_launch(
    kernel: &'static str,
    [m, n, k]: [usize; 3],
    tile: usize,
    block: u32,
    max_dim: usize,
) -> Result<Launch, LaunchError> {
    at_most(kernel, "m", m, max_dim.min(MAX_GRID_Y * tile))?;
    at_most(kernel, "n", n, max_dim)?;
    at_most(kernel, "k", k, max_dim)?;
    Ok(Launch {
        grid: Dim3 {
            x: blocks_for(n, tile) as u32,
            y: blocks_for(m, tile) as u32,
            z: 1,
        },
        block: Dim3::x(block),
        shared_bytes: 0,
    })
}

pub(crate) fn at_most(
    kernel: &'static str,
    what: &'static str,
    value: usize,
    max: usize,
) -> Result<(), LaunchError> {
    if value <= max {
        Ok(())
    } else {
        Err(LaunchError::TooLarge {
            kernel,
            what,
            value,
            max,
        })
    }
}

/// Test helpers shared by the op files.
#[cfg(test)]
pub(crate) mod testing {
    use super::Kernel;

    /// The kernel's entry exists in its module and its parameter list there
    /// has the names and PTX types of [`Kernel::params`], in order.
    pub fn assert_declared(k: &Kernel) {
        let ptx = k.module.ptx;
        let head = format!(".visible .entry {}(", k.name);
        let start = ptx
            .find(&head)
            .unwrap_or_else(|| panic!("{}: no `{head}` in {}.ptx", k.name, k.module.name));
        let rest = &ptx[start + head.len()..];
        let sig = &rest[..rest.find(')').unwrap()];
        let declared: Vec<(String, String)> = sig
            .split(',')
            .map(|s| {
                let w: Vec<&str> = s.split_whitespace().collect();
                assert_eq!(w.len(), 3, "{}: odd parameter `{s}`", k.name);
                assert_eq!(w[0], ".param");
                (w[2].to_string(), w[1].trim_start_matches('.').to_string())
            })
            .collect();
        let want: Vec<(String, String)> = k
            .params
            .iter()
            .map(|p| (p.name.to_string(), p.kind.ptx_type().to_string()))
            .collect();
        assert_eq!(declared, want, "{}: parameters", k.name);
    }

    /// Every `.visible .entry` in the module is described by one of `ks`.
    pub fn assert_all_described(ptx: &str, ks: &[&Kernel]) {
        for line in ptx.lines().filter(|l| l.starts_with(".visible .entry ")) {
            let name = line[".visible .entry ".len()..].split('(').next().unwrap();
            assert!(
                ks.iter().any(|k| k.name == name),
                "entry {name} has no Kernel description"
            );
        }
    }
}
