//! The decoded instruction form the interpreter runs. Parsing resolves every
//! name (register, label, shared symbol, parameter) to an index or offset up
//! front, so the hot loop never touches a string.

/// A PTX scalar type as written in an opcode suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Ty {
    U8,
    S8,
    B8,
    U16,
    S16,
    B16,
    F16,
    U32,
    S32,
    B32,
    F32,
    U64,
    S64,
    B64,
    F64,
    Pred,
}

impl Ty {
    /// Parses an opcode component such as `f32` (no leading dot).
    pub fn from_suffix(s: &str) -> Option<Ty> {
        Some(match s {
            "u8" => Ty::U8,
            "s8" => Ty::S8,
            "b8" => Ty::B8,
            "u16" => Ty::U16,
            "s16" => Ty::S16,
            "b16" => Ty::B16,
            "f16" => Ty::F16,
            "u32" => Ty::U32,
            "s32" => Ty::S32,
            "b32" => Ty::B32,
            "f32" => Ty::F32,
            "u64" => Ty::U64,
            "s64" => Ty::S64,
            "b64" => Ty::B64,
            "f64" => Ty::F64,
            "pred" => Ty::Pred,
            _ => return None,
        })
    }

    /// Size in bytes in memory.
    pub fn size(self) -> u32 {
        match self {
            Ty::U8 | Ty::S8 | Ty::B8 | Ty::Pred => 1,
            Ty::U16 | Ty::S16 | Ty::B16 | Ty::F16 => 2,
            Ty::U32 | Ty::S32 | Ty::B32 | Ty::F32 => 4,
            Ty::U64 | Ty::S64 | Ty::B64 | Ty::F64 => 8,
        }
    }

    /// True for the floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::F32 | Ty::F64)
    }

    /// True for the signed integer types.
    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }
}

/// A source operand.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// Register index into the thread's register file.
    Reg(u32),
    /// Immediate, already converted to the instruction type's bit pattern.
    Imm(u64),
    /// A special register such as `%tid.x`.
    Sreg(Sreg),
}

/// Special (read-only) registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sreg {
    /// `%tid.{x,y,z}`.
    Tid(u8),
    /// `%ntid.{x,y,z}`.
    Ntid(u8),
    /// `%ctaid.{x,y,z}`.
    Ctaid(u8),
    /// `%nctaid.{x,y,z}`.
    Nctaid(u8),
    /// `%laneid`.
    Laneid,
    /// `%warpid` (we report the linear warp index within the block).
    Warpid,
}

/// `[base + off]`: a register (or nothing, for a symbol/absolute address) plus a byte offset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Addr {
    /// Register holding the base address, if any.
    pub base: Option<u32>,
    /// Constant byte offset (includes a shared symbol's offset).
    pub off: i64,
}

/// State spaces the interpreter can access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemSpace {
    /// `.global`
    Global,
    /// `.shared`
    Shared,
}

/// Which half/width of an integer product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MulMode {
    /// Low half (same width as the inputs).
    Lo,
    /// High half.
    Hi,
    /// Full product in a register twice as wide.
    Wide,
}

/// Two-operand ALU ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BinOp {
    Add,
    Sub,
    Mul(MulMode),
    Div,
    Rem,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

/// One-operand ALU ops (float ones carry their approximation in the docs of `alu.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum UnOp {
    Neg,
    Abs,
    Not,
    Rcp,
    Sqrt,
    Rsqrt,
    Ex2,
    Lg2,
    Sin,
    Cos,
    Tanh,
}

/// Comparison of `setp`. `unordered` float variants are true when either input is NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Both inputs are numbers (`num`).
    Num,
    /// Either input is NaN (`nan`).
    Nan,
}

/// Boolean combine of `setp.cmp.and/.or/.xor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BoolOp {
    And,
    Or,
    Xor,
}

/// `shfl.sync` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

/// Rounding modifier of `cvt` (and accepted on arithmetic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Rnd {
    None,
    Rn,
    Rz,
    Rm,
    Rp,
    Rni,
    Rzi,
    Rmi,
    Rpi,
}

/// Atomic read-modify-write operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Exch,
}

/// A decoded instruction body.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub enum Op {
    /// `ld.param`: `off` is the byte offset in the parameter block.
    LdParam {
        ty: Ty,
        dst: u32,
        off: u32,
    },
    /// `ld.{global,shared}[.vN]`.
    Ld {
        space: MemSpace,
        ty: Ty,
        n: u8,
        dst: [u32; 4],
        addr: Addr,
    },
    /// `st.{global,shared}[.vN]`.
    St {
        space: MemSpace,
        ty: Ty,
        n: u8,
        src: [Operand; 4],
        addr: Addr,
    },
    /// `mov`, `cvta` (our addresses are already generic == global/shared).
    Mov {
        ty: Ty,
        dst: u32,
        src: Operand,
    },
    Bin {
        op: BinOp,
        ty: Ty,
        sat: bool,
        dst: u32,
        a: Operand,
        b: Operand,
    },
    /// `mad`/`fma`: float types are a fused multiply-add.
    Mad {
        mode: MulMode,
        ty: Ty,
        sat: bool,
        dst: u32,
        a: Operand,
        b: Operand,
        c: Operand,
    },
    Un {
        op: UnOp,
        ty: Ty,
        dst: u32,
        a: Operand,
    },
    Setp {
        cmp: Cmp,
        unordered: bool,
        /// Force unsigned compare (`lo/ls/hi/hs`).
        unsigned: bool,
        ty: Ty,
        p: u32,
        q: Option<u32>,
        a: Operand,
        b: Operand,
        comb: Option<(BoolOp, u32, bool)>,
    },
    Selp {
        ty: Ty,
        dst: u32,
        a: Operand,
        b: Operand,
        p: u32,
    },
    Cvt {
        dty: Ty,
        sty: Ty,
        rnd: Rnd,
        sat: bool,
        dst: u32,
        a: Operand,
    },
    Bra {
        target: u32,
    },
    Bar,
    Shfl {
        mode: ShflMode,
        dst: u32,
        pdst: Option<u32>,
        a: Operand,
        b: Operand,
        c: Operand,
        mask: Operand,
    },
    Atom {
        op: AtomOp,
        space: MemSpace,
        ty: Ty,
        dst: Option<u32>,
        addr: Addr,
        src: Operand,
    },
    Exit,
    /// `fence.{sc,acq_rel}.{cta,gpu,sys}` / `membar.{cta,gl,sys}`: orders a
    /// thread's memory accesses; a no-op for an interpreter that runs blocks
    /// one after another and makes every store visible at once.
    Fence,
    /// `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 d, a, b, c` (exec/tensor.rs).
    Mma {
        d: [u32; 4],
        a: [u32; 4],
        b: [u32; 2],
        c: [u32; 4],
    },
    /// `ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16`: `num` matrices.
    LdMatrix {
        num: u8,
        trans: bool,
        dst: [u32; 4],
        addr: Addr,
    },
    /// `cp.async.{ca,cg}.shared.global [dst], [src], size{, src_size}`: copies
    /// `src_size` bytes (default `size`) and zero-fills the rest of `size`.
    CpAsync {
        size: u32,
        dst: Addr,
        src: Addr,
        src_size: Option<Operand>,
    },
    /// `cp.async.commit_group`, `cp.async.wait_group N`, `cp.async.wait_all`: no-ops,
    /// because the simulator completes every `cp.async` when it issues.
    CpAsyncFence,
}

/// Counter class of an instruction (see `LaunchStats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Class {
    Fp,
    Fma,
    Int,
    GlobalLoad,
    GlobalStore,
    SharedLoad,
    SharedStore,
    Barrier,
    Shuffle,
    Atomic,
    Control,
    /// Warp-level matrix multiply-accumulate (`mma`).
    Mma,
    /// `mov`, `cvta`, `ld.param`: data movement inside the core.
    Other,
}

/// One instruction with its guard predicate and source line.
#[derive(Clone, Debug, PartialEq)]
pub struct Inst {
    /// `@%p` / `@!%p`: register index and whether it is negated.
    pub guard: Option<(u32, bool)>,
    /// The operation.
    pub op: Op,
    /// Counter class.
    pub class: Class,
    /// 1-based source line.
    pub line: u32,
}
