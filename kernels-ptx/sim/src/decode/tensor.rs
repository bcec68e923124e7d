//! Decoding of the tensor-core subset: `mma.sync` (m16n8k16, f16 inputs, f32
//! accumulators), `ldmatrix` (m8n8, b16) and `cp.async` with its group fences.

use super::{ROp, D};
use crate::error::Result;
use crate::inst::{Class, Op, Ty};

impl D<'_> {
    /// The registers of a `{%a, %b, ...}` operand of exactly `N` entries.
    fn reg_vec<const N: usize>(&self, i: usize) -> Result<[u32; N]> {
        let mut out = [0u32; N];
        match self.op(i)? {
            ROp::Vec(v) if v.len() == N => {
                for (o, name) in out.iter_mut().zip(v) {
                    *o = self.reg_name(name)?;
                }
                Ok(out)
            }
            o => self.err(format!("expected a {N}-register vector, found {o:?}")),
        }
    }
}

/// `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {d0..d3}, {a0..a3}, {b0, b1}, {c0..c3}`.
pub(super) fn mma(d: &D<'_>, tys: &[Ty], rest: &[&str]) -> Result<(Op, Class)> {
    if tys != [Ty::F32, Ty::F16, Ty::F16, Ty::F32] || rest != ["m16n8k16", "row", "col"] {
        return d.unknown();
    }
    d.nops(4)?;
    let op = Op::Mma {
        d: d.reg_vec::<4>(0)?,
        a: d.reg_vec::<4>(1)?,
        b: d.reg_vec::<2>(2)?,
        c: d.reg_vec::<4>(3)?,
    };
    Ok((op, Class::Mma))
}

/// `ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared.b16 {r..}, [addr]`.
pub(super) fn ldmatrix(d: &D<'_>, tys: &[Ty], rest: &[&str]) -> Result<(Op, Class)> {
    let num: u8 = if rest.contains(&"x4") {
        4
    } else if rest.contains(&"x2") {
        2
    } else if rest.contains(&"x1") {
        1
    } else {
        return d.unknown();
    };
    let ok = tys == [Ty::B16]
        && rest.contains(&"m8n8")
        && rest.contains(&"shared")
        && rest
            .iter()
            .all(|m| matches!(*m, "m8n8" | "x1" | "x2" | "x4" | "trans" | "shared"));
    if !ok {
        return d.unknown();
    }
    d.nops(2)?;
    let mut dst = [0u32; 4];
    match d.op(0)? {
        ROp::Vec(v) if v.len() == num as usize => {
            for (o, name) in dst.iter_mut().zip(v) {
                *o = d.reg_name(name)?;
            }
        }
        ROp::Name(n) if num == 1 => dst[0] = d.reg_name(n)?,
        o => return d.err(format!("expected {num} destination registers, found {o:?}")),
    }
    let op = Op::LdMatrix {
        num,
        trans: rest.contains(&"trans"),
        dst,
        addr: d.addr(1)?,
    };
    Ok((op, Class::SharedLoad))
}

/// `cp.async.{ca,cg}.shared.global [dst], [src], size{, src_size}` and the fences
/// `cp.async.commit_group`, `cp.async.wait_group N`, `cp.async.wait_all`
/// (`.ca`/`.cg` are cache hints and already dropped from `rest`).
pub(super) fn cp(d: &D<'_>, tys: &[Ty], rest: &[&str], cg: bool) -> Result<(Op, Class)> {
    if !tys.is_empty() {
        return d.unknown();
    }
    match rest {
        ["async", "commit_group"] | ["async", "wait_all"] => {
            d.nops(0)?;
            Ok((Op::CpAsyncFence, Class::Other))
        }
        ["async", "wait_group"] => {
            d.nops(1)?;
            match d.op(0)? {
                ROp::Num(_) => Ok((Op::CpAsyncFence, Class::Other)),
                o => d.err(format!("wait_group needs an integer constant, found {o:?}")),
            }
        }
        ["async", "shared", "global"] => {
            let n = d.r.ops.len();
            if n != 3 && n != 4 {
                return d.err(format!("expected 3 or 4 operands, found {n}"));
            }
            let size = match d.op(2)? {
                ROp::Num(s) => match s.as_str() {
                    "4" => 4,
                    "8" => 8,
                    "16" => 16,
                    _ => return d.err(format!("cp-size must be 4, 8 or 16, found {s}")),
                },
                o => return d.err(format!("cp-size must be a constant, found {o:?}")),
            };
            // PTX ISA: `.cg` only supports a cp-size of 16.
            if cg && size != 16 {
                return d.unknown();
            }
            let src_size = if n == 4 {
                Some(d.src(3, Ty::U32)?)
            } else {
                None
            };
            let op = Op::CpAsync {
                size,
                dst: d.addr(0)?,
                src: d.addr(1)?,
                src_size,
            };
            Ok((op, Class::GlobalLoad))
        }
        _ => d.unknown(),
    }
}
