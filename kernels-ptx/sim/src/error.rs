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
            Error::BadBuffer { id, msg } => write!(f, "buffer {id}: {msg}"),
            Error::StepLimit { kernel, limit } => {
                write!(f, "kernel `{kernel}`: a block ran past {limit} warp steps (infinite loop?)")
            }
        }
    }
}

impl std::error::Error for Error {}
