//! What a context keeps for each loaded module and each `CUfunction`: the
//! context ([`crate::context`]) owns them, the module calls
//! ([`crate::module`]) make them, and neither needs the other for that.

use lasagna_ptx_sim::Param;

/// One loaded module: its entries and their parameters.
#[derive(Debug)]
pub struct ModuleEntry {
    /// (entry name, parameters in declaration order).
    pub entries: Vec<(String, Vec<Param>)>,
}

/// One `CUfunction`.
#[derive(Debug)]
pub struct Func {
    /// Index of its module in `Ctx::modules`.
    pub module: usize,
    /// The `.entry` name (the simulator launches by name).
    pub name: String,
    /// Its parameters: `cuLaunchKernel` reads each `void*` with this size.
    pub params: Vec<Param>,
}
