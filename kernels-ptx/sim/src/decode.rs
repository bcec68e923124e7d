//! Turns one raw instruction (opcode string + operands as written) into an
//! `Inst` with every name resolved. Anything outside the supported subset is
//! rejected here, at load time, naming the opcode and line.

use std::collections::HashMap;

use crate::error::Result;
use crate::inst::*;

/// An operand as written.
#[derive(Clone, Debug, PartialEq)]
pub enum ROp {
    /// Register, special register, label or symbol.
    Name(String),
    /// Numeric literal (with a leading `-` if negated).
    Num(String),
    /// `!%p` (setp's combine operand).
    Not(String),
    /// `[base+off]`.
    Addr(Option<String>, i64),
    /// `{%a, %b, ...}`.
    Vec(Vec<String>),
    /// `%p|%q`.
    Pair(String, String),
}

/// An instruction as written.
#[derive(Clone, Debug)]
pub struct RawInst {
    /// `@%p` / `@!%p`.
    pub guard: Option<(String, bool)>,
    /// Full dotted opcode.
    pub opcode: String,
    /// Operands.
    pub ops: Vec<ROp>,
    /// Source line.
    pub line: u32,
}

/// The kernel's name tables.
pub struct Syms<'a> {
    /// Register name → index.
    pub regs: &'a HashMap<String, u32>,
    /// Label → instruction index.
    pub labels: &'a HashMap<String, u32>,
    /// Shared symbol → byte offset.
    pub shared: &'a HashMap<String, u32>,
    /// Parameter name → (offset, type).
    pub params: &'a HashMap<String, (u32, Ty)>,
}

struct D<'a> {
    s: &'a Syms<'a>,
    r: &'a RawInst,
}

mod operand;
mod tensor;

/// Splits `ld.global.v4.f32` into base `ld`, its types and its other modifiers.
fn split(opcode: &str) -> (&str, Vec<Ty>, Vec<&str>) {
    let mut it = opcode.split('.');
    let base = it.next().unwrap_or("");
    let (mut tys, mut mods) = (Vec::new(), Vec::new());
    for m in it {
        match Ty::from_suffix(m) {
            Some(t) => tys.push(t),
            None => mods.push(m),
        }
    }
    (base, tys, mods)
}

/// Decodes one instruction.
pub fn decode(r: &RawInst, s: &Syms<'_>) -> Result<Inst> {
    let d = D { s, r };
    let (base, tys, mods) = split(&r.opcode);
    let has = |m: &str| mods.contains(&m);
    // Modifiers that only matter for memory ordering or caching, not for a sequential interpreter.
    let inert = |m: &&str| {
        matches!(
            *m,
            "ca" | "cg"
                | "cs"
                | "lu"
                | "cv"
                | "nc"
                | "wb"
                | "wt"
                | "volatile"
                | "relaxed"
                | "acquire"
                | "release"
                | "acq_rel"
                | "cta"
                | "gpu"
                | "sys"
                | "uni"
                | "ftz"
                | "rn"
                | "to"
                | "sync"
                | "aligned"
        )
    };
    let rest: Vec<&str> = mods.iter().copied().filter(|m| !inert(m)).collect();
    let only = |allowed: &[&str]| rest.iter().all(|m| allowed.contains(m));
    let ty1 = match tys.as_slice() {
        [t] => Some(*t),
        _ => None,
    };
    let guard = match &r.guard {
        Some((g, neg)) => Some((d.reg_name(g)?, *neg)),
        None => None,
    };
    let space = |rest: &[&str]| -> Option<MemSpace> {
        if rest.contains(&"global") {
            Some(MemSpace::Global)
        } else if rest.contains(&"shared") {
            Some(MemSpace::Shared)
        } else {
            None
        }
    };
    let float_rnd_ok = !has("rz") && !has("rm") && !has("rp");

    let (op, class) = match base {
        "ld" | "st" => {
            let Some(ty) = ty1 else { return d.unknown() };
            let n: u8 = if has("v4") {
                4
            } else if has("v2") {
                2
            } else {
                1
            };
            if base == "ld" && has("param") && n == 1 && only(&["param"]) {
                d.nops(2)?;
                let (off, _) = match d.op(1)? {
                    ROp::Addr(Some(name), off) => match s.params.get(name) {
                        Some(p) => (p.0 as i64 + off, p.1),
                        None => return d.err(format!("unknown parameter `{name}`")),
                    },
                    o => return d.err(format!("expected [param], found {o:?}")),
                };
                let off = u32::try_from(off).or_else(|_| d.err("negative parameter offset"))?;
                (
                    Op::LdParam {
                        ty,
                        dst: d.dst(0)?,
                        off,
                    },
                    Class::Other,
                )
            } else {
                let Some(sp) = space(&rest) else {
                    return d.unknown();
                };
                if !only(&["global", "shared", "v2", "v4"]) {
                    return d.unknown();
                }
                d.nops(2)?;
                let (vi, ai) = if base == "ld" { (0, 1) } else { (1, 0) };
                let addr = d.addr(ai)?;
                let names: Vec<ROp> = match (n, d.op(vi)?) {
                    (1, o) => vec![o.clone()],
                    (_, ROp::Vec(v)) if v.len() == n as usize => {
                        v.iter().map(|x| ROp::Name(x.clone())).collect()
                    }
                    (_, o) => return d.err(format!("expected a {n}-vector, found {o:?}")),
                };
                let tmp = RawInst {
                    guard: None,
                    opcode: r.opcode.clone(),
                    ops: names,
                    line: r.line,
                };
                let dv = D { s, r: &tmp };
                if base == "ld" {
                    let mut dst = [0u32; 4];
                    for (k, x) in dst.iter_mut().enumerate().take(n as usize) {
                        *x = dv.dst(k)?;
                    }
                    let c = if sp == MemSpace::Global {
                        Class::GlobalLoad
                    } else {
                        Class::SharedLoad
                    };
                    (
                        Op::Ld {
                            space: sp,
                            ty,
                            n,
                            dst,
                            addr,
                        },
                        c,
                    )
                } else {
                    let mut src = [Operand::Imm(0); 4];
                    for (k, x) in src.iter_mut().enumerate().take(n as usize) {
                        *x = dv.src(k, ty)?;
                    }
                    let c = if sp == MemSpace::Global {
                        Class::GlobalStore
                    } else {
                        Class::SharedStore
                    };
                    (
                        Op::St {
                            space: sp,
                            ty,
                            n,
                            src,
                            addr,
                        },
                        c,
                    )
                }
            }
        }
        "mov" | "cvta" => {
            let Some(ty) = ty1 else { return d.unknown() };
            if !only(&["global", "shared"]) {
                return d.unknown();
            }
            d.nops(2)?;
            (
                Op::Mov {
                    ty,
                    dst: d.dst(0)?,
                    src: d.src(1, ty)?,
                },
                Class::Other,
            )
        }
        "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor" | "shl"
        | "shr" => {
            let Some(ty) = ty1 else { return d.unknown() };
            let mode = if has("hi") {
                MulMode::Hi
            } else if has("wide") {
                MulMode::Wide
            } else {
                MulMode::Lo
            };
            let bop = match base {
                "add" => BinOp::Add,
                "sub" => BinOp::Sub,
                "mul" => BinOp::Mul(mode),
                "div" => BinOp::Div,
                "rem" => BinOp::Rem,
                "min" => BinOp::Min,
                "max" => BinOp::Max,
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "xor" => BinOp::Xor,
                "shl" => BinOp::Shl,
                _ => BinOp::Shr,
            };
            let ok = if ty.is_float() {
                ty == Ty::F32 && float_rnd_ok && only(&["sat", "approx", "full"])
            } else {
                only(&["lo", "hi", "wide", "sat"])
                    && (!has("sat") || (ty == Ty::S32 && matches!(bop, BinOp::Add | BinOp::Sub)))
            };
            if !ok || (ty == Ty::Pred && !matches!(bop, BinOp::And | BinOp::Or | BinOp::Xor)) {
                return d.unknown();
            }
            d.nops(3)?;
            // Shift amounts are always .u32 (PTX ISA 9.7.8.7).
            let bty = if matches!(bop, BinOp::Shl | BinOp::Shr) {
                Ty::U32
            } else {
                ty
            };
            let c = if ty.is_float() { Class::Fp } else { Class::Int };
            (
                Op::Bin {
                    op: bop,
                    ty,
                    sat: has("sat"),
                    dst: d.dst(0)?,
                    a: d.src(1, ty)?,
                    b: d.src(2, bty)?,
                },
                c,
            )
        }
        "mad" | "fma" => {
            let Some(ty) = ty1 else { return d.unknown() };
            let mode = if has("hi") {
                MulMode::Hi
            } else if has("wide") {
                MulMode::Wide
            } else {
                MulMode::Lo
            };
            let ok = if ty.is_float() {
                ty == Ty::F32 && float_rnd_ok && only(&["sat"])
            } else {
                base == "mad" && only(&["lo", "hi", "wide"])
            };
            if !ok {
                return d.unknown();
            }
            d.nops(4)?;
            let cty = match (mode, ty) {
                (MulMode::Wide, Ty::S32) => Ty::S64,
                (MulMode::Wide, Ty::U32) => Ty::U64,
                _ => ty,
            };
            let c = if ty.is_float() {
                Class::Fma
            } else {
                Class::Int
            };
            let op = Op::Mad {
                mode,
                ty,
                sat: has("sat"),
                dst: d.dst(0)?,
                a: d.src(1, ty)?,
                b: d.src(2, ty)?,
                c: d.src(3, cty)?,
            };
            (op, c)
        }
        "neg" | "abs" | "not" | "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos"
        | "tanh" => {
            let Some(ty) = ty1 else { return d.unknown() };
            let uop = match base {
                "neg" => UnOp::Neg,
                "abs" => UnOp::Abs,
                "not" => UnOp::Not,
                "rcp" => UnOp::Rcp,
                "sqrt" => UnOp::Sqrt,
                "rsqrt" => UnOp::Rsqrt,
                "ex2" => UnOp::Ex2,
                "lg2" => UnOp::Lg2,
                "sin" => UnOp::Sin,
                "cos" => UnOp::Cos,
                _ => UnOp::Tanh,
            };
            let float_only = !matches!(uop, UnOp::Neg | UnOp::Abs | UnOp::Not);
            let approx_only = matches!(
                uop,
                UnOp::Rsqrt | UnOp::Ex2 | UnOp::Lg2 | UnOp::Sin | UnOp::Cos | UnOp::Tanh
            );
            let ok = if ty.is_float() {
                ty == Ty::F32
                    && uop != UnOp::Not
                    && float_rnd_ok
                    && only(&["approx"])
                    && (!approx_only || has("approx"))
            } else {
                !float_only && rest.is_empty() && (uop != UnOp::Not || !ty.is_signed())
            };
            if !ok {
                return d.unknown();
            }
            d.nops(2)?;
            let c = if ty.is_float() { Class::Fp } else { Class::Int };
            (
                Op::Un {
                    op: uop,
                    ty,
                    dst: d.dst(0)?,
                    a: d.src(1, ty)?,
                },
                c,
            )
        }
        "setp" => {
            let Some(ty) = ty1 else { return d.unknown() };
            let mut cmp = None;
            let mut unordered = false;
            let mut unsigned = false;
            let mut bop = None;
            for m in &rest {
                let c = match *m {
                    "eq" | "equ" => Cmp::Eq,
                    "ne" | "neu" => Cmp::Ne,
                    "lt" | "ltu" | "lo" => Cmp::Lt,
                    "le" | "leu" | "ls" => Cmp::Le,
                    "gt" | "gtu" | "hi" => Cmp::Gt,
                    "ge" | "geu" | "hs" => Cmp::Ge,
                    "num" => Cmp::Num,
                    "nan" => Cmp::Nan,
                    "and" | "or" | "xor" if bop.is_none() => {
                        bop = Some(match *m {
                            "and" => BoolOp::And,
                            "or" => BoolOp::Or,
                            _ => BoolOp::Xor,
                        });
                        continue;
                    }
                    _ => return d.unknown(),
                };
                if cmp.is_some() {
                    return d.unknown();
                }
                unordered = m.len() == 3 && m.ends_with('u');
                unsigned = matches!(*m, "lo" | "ls" | "hi" | "hs");
                cmp = Some(c);
            }
            let Some(cmp) = cmp else { return d.unknown() };
            if (unordered || matches!(cmp, Cmp::Num | Cmp::Nan)) && !ty.is_float() {
                return d.unknown();
            }
            let (p, q) = match d.op(0)? {
                ROp::Name(n) => (d.reg_name(n)?, None),
                ROp::Pair(a, b) => (d.reg_name(a)?, Some(d.reg_name(b)?)),
                o => return d.err(format!("bad setp destination {o:?}")),
            };
            let comb = match bop {
                Some(b) => {
                    d.nops(4)?;
                    let (c, neg) = d.pred(3)?;
                    Some((b, c, neg))
                }
                None => {
                    d.nops(3)?;
                    None
                }
            };
            let c = if ty.is_float() { Class::Fp } else { Class::Int };
            (
                Op::Setp {
                    cmp,
                    unordered,
                    unsigned,
                    ty,
                    p,
                    q,
                    a: d.src(1, ty)?,
                    b: d.src(2, ty)?,
                    comb,
                },
                c,
            )
        }
        "selp" => {
            let Some(ty) = ty1 else { return d.unknown() };
            if !rest.is_empty() {
                return d.unknown();
            }
            d.nops(4)?;
            let c = if ty.is_float() { Class::Fp } else { Class::Int };
            (
                Op::Selp {
                    ty,
                    dst: d.dst(0)?,
                    a: d.src(1, ty)?,
                    b: d.src(2, ty)?,
                    p: d.dst(3)?,
                },
                c,
            )
        }
        "cvt" => {
            let [dty, sty] = tys.as_slice() else {
                return d.unknown();
            };
            let mut rnd = if has("rn") { Rnd::Rn } else { Rnd::None };
            for m in &rest {
                rnd = match *m {
                    "rz" => Rnd::Rz,
                    "rm" => Rnd::Rm,
                    "rp" => Rnd::Rp,
                    "rni" => Rnd::Rni,
                    "rzi" => Rnd::Rzi,
                    "rmi" => Rnd::Rmi,
                    "rpi" => Rnd::Rpi,
                    "sat" => continue,
                    _ => return d.unknown(),
                };
            }
            d.nops(2)?;
            let c = if dty.is_float() || sty.is_float() {
                Class::Fp
            } else {
                Class::Int
            };
            (
                Op::Cvt {
                    dty: *dty,
                    sty: *sty,
                    rnd,
                    sat: has("sat"),
                    dst: d.dst(0)?,
                    a: d.src(1, *sty)?,
                },
                c,
            )
        }
        "bra" => {
            if !rest.is_empty() {
                return d.unknown();
            }
            d.nops(1)?;
            let target = match d.op(0)? {
                ROp::Name(n) => match s.labels.get(n) {
                    Some(&t) => t,
                    None => return d.err(format!("unknown label `{n}`")),
                },
                o => return d.err(format!("bad branch target {o:?}")),
            };
            (Op::Bra { target }, Class::Control)
        }
        "bar" | "barrier" => {
            // Only the whole-CTA form: `bar.sync 0` (`barrier.sync 0`). A thread count operand
            // would need partial-barrier bookkeeping we do not model.
            if !(has("sync") && rest.is_empty() && tys.is_empty()) {
                return d.unknown();
            }
            d.nops(1)?;
            if d.op(0)? != &ROp::Num("0".into()) {
                return d.unknown();
            }
            (Op::Bar, Class::Barrier)
        }
        "shfl" => {
            let mode = match rest.as_slice() {
                ["up"] => ShflMode::Up,
                ["down"] => ShflMode::Down,
                ["bfly"] => ShflMode::Bfly,
                ["idx"] => ShflMode::Idx,
                _ => return d.unknown(),
            };
            if !has("sync") || tys.as_slice() != [Ty::B32] {
                return d.unknown();
            }
            d.nops(5)?;
            let (dst, pdst) = match d.op(0)? {
                ROp::Name(n) => (d.reg_name(n)?, None),
                ROp::Pair(a, b) => (d.reg_name(a)?, Some(d.reg_name(b)?)),
                o => return d.err(format!("bad shfl destination {o:?}")),
            };
            let op = Op::Shfl {
                mode,
                dst,
                pdst,
                a: d.src(1, Ty::B32)?,
                b: d.src(2, Ty::B32)?,
                c: d.src(3, Ty::B32)?,
                mask: d.src(4, Ty::B32)?,
            };
            (op, Class::Shuffle)
        }
        "atom" | "red" => {
            let Some(ty) = ty1 else { return d.unknown() };
            let Some(sp) = space(&rest) else {
                return d.unknown();
            };
            let aop = if has("add") {
                AtomOp::Add
            } else if has("min") {
                AtomOp::Min
            } else if has("max") {
                AtomOp::Max
            } else if has("exch") && base == "atom" {
                AtomOp::Exch
            } else {
                return d.unknown();
            };
            if rest.len() != 2
                || (ty.is_float() && (ty != Ty::F32 || aop != AtomOp::Add))
                || ty.size() < 4
            {
                return d.unknown();
            }
            let (dst, ai) = if base == "atom" {
                d.nops(3)?;
                (Some(d.dst(0)?), 1)
            } else {
                d.nops(2)?;
                (None, 0)
            };
            (
                Op::Atom {
                    op: aop,
                    space: sp,
                    ty,
                    dst,
                    addr: d.addr(ai)?,
                    src: d.src(ai + 1, ty)?,
                },
                Class::Atomic,
            )
        }
        "fence" | "membar" => {
            let ok = if base == "fence" {
                only(&["sc"]) && (has("acq_rel") || has("sc"))
            } else {
                only(&["gl"]) || rest.is_empty()
            };
            if !ok {
                return d.unknown();
            }
            d.nops(0)?;
            (Op::Fence, Class::Other)
        }
        "ret" | "exit" => {
            if !rest.is_empty() {
                return d.unknown();
            }
            d.nops(0)?;
            (Op::Exit, Class::Control)
        }
        "mma" => tensor::mma(&d, &tys, &rest)?,
        "ldmatrix" => tensor::ldmatrix(&d, &tys, &rest)?,
        "cp" => tensor::cp(&d, &tys, &rest, has("cg"))?,
        _ => return d.unknown(),
    };
    Ok(Inst {
        guard,
        op,
        class,
        line: r.line,
    })
}
