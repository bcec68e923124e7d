//! Error values: every failure names where it happened (line, kernel, block,
//! thread, address) so a failing kernel test points at the PTX to fix.

use std::fmt;

/// Which memory a faulting access went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// `.global` (device heap).
    Global,
    /// `.shared` (per-block scratch).
    Shared,
    /// `.param` (kernel arguments).
    Param,
}

/// Where a thread was when it faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadPos {
    /// `%ctaid` of the block.
    pub block: [u32; 3],
    /// `%tid` of the thread.
    pub thread: [u32; 3],
    /// 1-based PTX source line of the instruction.
    pub line: u32,
}

/// One side of a data race (see `Error::Race`).
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    /// `%ctaid` of the accessing block.
    pub block: [u32; 3],
    /// `%tid` of the accessing thread, when the detector kept it (it keeps only
    /// the block of an earlier global access).
    pub thread: Option<[u32; 3]>,
    /// Instruction index in the kernel (the simulator's pc).
    pub pc: u32,
    /// 1-based PTX source line.
    pub line: u32,
    /// The instruction as written in the PTX source.
    pub text: String,
    /// True for a store (or a `cp.async` landing), false for a load.
    pub write: bool,
}

/// What a read found uninitialised (see `Error::Uninitialized`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Uninit {
    /// A register never written by this thread.
    Register {
        /// The register as declared, e.g. `%f12`.
        name: String,
    },
    /// Shared-memory bytes no thread of the block has written.
    Shared {
        /// Byte offset of the access in the block's shared memory.
        addr: u64,
        /// Access size in bytes.
        size: u32,
    },
}

/// Everything that can go wrong while parsing or running PTX.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The PTX text is malformed at `line`.
    Parse {
        /// 1-based source line.
        line: u32,
        /// What the parser expected or found.
        msg: String,
    },
    /// An instruction (or modifier combination) the simulator does not implement.
    UnknownInstruction {
        /// 1-based source line.
        line: u32,
        /// The full opcode as written, e.g. `tex.2d.v4.f32.f32`.
        opcode: String,
    },
    /// No kernel of that name in the loaded modules.
    UnknownKernel {
        /// The requested entry name.
        name: String,
    },
    /// Launch arguments do not match the `.entry` parameter list.
    ArgMismatch {
        /// Kernel name.
        kernel: String,
        /// 0-based parameter index (or the count, for a count mismatch).
        index: usize,
        /// What was wrong.
        msg: String,
    },
    /// A launch configuration the hardware would reject.
    BadLaunch {
        /// Kernel name.
        kernel: String,
        /// What was wrong.
        msg: String,
    },
    /// A load/store/atomic outside any allocation or outside shared memory.
    OutOfBounds {
        /// Kernel name.
        kernel: String,
        /// Memory space of the access.
        space: Space,
        /// Faulting thread.
        at: ThreadPos,
        /// Byte address of the access.
        addr: u64,
        /// Access size in bytes.
        size: u32,
    },
    /// An access whose address is not a multiple of its size.
    Misaligned {
        /// Kernel name.
        kernel: String,
        /// Memory space of the access.
        space: Space,
        /// Faulting thread.
        at: ThreadPos,
        /// Byte address of the access.
        addr: u64,
        /// Required alignment in bytes.
        align: u32,
    },
    /// `bar.sync` was not reached by every thread of the block.
    BarrierDeadlock {
        /// Kernel name.
        kernel: String,
        /// `%ctaid` of the block.
        block: [u32; 3],
        /// Threads parked at a barrier.
        waiting: u32,
        /// Threads that had already exited.
        exited: u32,
        /// Source line of one waiting `bar.sync`.
        line: u32,
    },
    /// `shfl.sync` whose member mask names lanes that are not converged with the caller.
    ShuffleDivergence {
        /// Kernel name.
        kernel: String,
        /// Faulting thread.
        at: ThreadPos,
        /// The member mask operand.
        mask: u32,
        /// Lanes actually executing the instruction together.
        active: u32,
    },
    /// A warp-collective instruction (`mma.sync.aligned`, `ldmatrix.sync.aligned`)
    /// executed by fewer than all 32 lanes of a full warp.
    WarpCollective {
        /// Kernel name.
        kernel: String,
        /// The first executing thread.
        at: ThreadPos,
        /// Lanes actually executing the instruction together.
        active: u32,
    },
    /// A host-side buffer operation with the wrong size or an unknown buffer.
    BadBuffer {
        /// Buffer id.
        id: u32,
        /// What was wrong.
        msg: String,
    },
    /// Two conflicting accesses (at least one a write) to the same address with no
    /// ordering between them: two warps of a block with no `bar.sync` between
    /// them (`.shared`), or two blocks of one launch (`.global`, atomics exempt).
    /// Reported only with `SimOptions::race_detection`.
    Race {
        /// Kernel name.
        kernel: String,
        /// Memory space of the two accesses.
        space: Space,
        /// Byte address (shared offset or global address) of the conflicting word.
        addr: u64,
        /// The earlier access, then the one that found the conflict.
        accesses: Box<[Access; 2]>,
    },
    /// A read of a register or shared-memory byte that was never written.
    /// Reported only with `SimOptions::poison`.
    Uninitialized {
        /// Kernel name.
        kernel: String,
        /// The reading thread and line.
        at: ThreadPos,
        /// The instruction as written in the PTX source.
        text: String,
        /// What was read.
        what: Uninit,
    },
    /// A launch the driver would refuse with `CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES`
    /// (too many registers for the block size, or too much shared memory).
    /// Checked only with `SimOptions::limits`.
    OutOfResources {
        /// Kernel name.
        kernel: String,
        /// Which limit, with the numbers.
        msg: String,
    },
    /// A thread ran past the instruction budget (probably an infinite loop).
    StepLimit {
        /// Kernel name.
        kernel: String,
        /// The limit that was hit.
        limit: u64,
    },
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for ThreadPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (b, t) = (self.block, self.thread);
        write!(
            f,
            "block ({},{},{}) thread ({},{},{}) line {}",
            b[0], b[1], b[2], t[0], t[1], t[2], self.line
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse { line, msg } => write!(f, "PTX parse error at line {line}: {msg}"),
            Error::UnknownInstruction { line, opcode } => {
                write!(f, "unsupported PTX instruction `{opcode}` at line {line}")
            }
            Error::UnknownKernel { name } => write!(f, "no kernel named `{name}` is loaded"),
            Error::ArgMismatch { kernel, index, msg } => {
                write!(f, "kernel `{kernel}` argument {index}: {msg}")
            }
            Error::BadLaunch { kernel, msg } => write!(f, "kernel `{kernel}` launch: {msg}"),
            Error::OutOfBounds { kernel, space, at, addr, size } => write!(
                f,
                "kernel `{kernel}`: out-of-bounds {space:?} access of {size} bytes at {addr:#x} ({at})"
            ),
            Error::Misaligned { kernel, space, at, addr, align } => write!(
                f,
                "kernel `{kernel}`: misaligned {space:?} access at {addr:#x}, needs {align}-byte alignment ({at})"
            ),
            Error::BarrierDeadlock { kernel, block, waiting, exited, line } => write!(
                f,
                "kernel `{kernel}` block ({},{},{}): bar.sync at line {line} not reached by every thread \
                 ({waiting} waiting, {exited} exited)",
                block[0], block[1], block[2]
            ),
            Error::ShuffleDivergence { kernel, at, mask, active } => write!(
                f,
                "kernel `{kernel}`: shfl.sync member mask {mask:#010x} but only lanes {active:#010x} converged ({at})"
            ),
            Error::WarpCollective { kernel, at, active } => write!(
                f,
                "kernel `{kernel}`: warp-collective instruction (.sync.aligned) run by lanes {active:#010x}, not the whole warp ({at})"
            ),
            Error::Race { kernel, space, addr, accesses } => {
                let [a, b] = &**accesses;
                write!(
                    f,
                    "kernel `{kernel}`: data race on {space:?} address {addr:#x} between {a} and {b}"
                )
            }
            Error::Uninitialized { kernel, at, text, what } => {
                let what = match what {
                    Uninit::Register { name } => format!("register {name}"),
                    Uninit::Shared { addr, size } => {
                        format!("{size} bytes of shared memory at {addr:#x}")
                    }
                };
                write!(
                    f,
                    "kernel `{kernel}`: read of uninitialised {what} by `{text}` ({at})"
                )
            }
            Error::OutOfResources { kernel, msg } => write!(
                f,
                "kernel `{kernel}` launch refused (CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES): {msg}"
            ),
            Error::BadBuffer { id, msg } => write!(f, "buffer {id}: {msg}"),
            Error::StepLimit { kernel, limit } => {
                write!(f, "kernel `{kernel}`: a block ran past {limit} warp steps (infinite loop?)")
            }
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.block;
        let kind = if self.write { "write" } else { "read" };
        write!(f, "{kind} by block ({},{},{})", b[0], b[1], b[2])?;
        if let Some(t) = self.thread {
            write!(f, " thread ({},{},{})", t[0], t[1], t[2])?;
        }
        write!(f, " at pc {} line {} `{}`", self.pc, self.line, self.text)
    }
}

impl std::error::Error for Error {}
