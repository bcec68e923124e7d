//! Operand resolution for the decoder: registers, special registers, shared
//! symbols, literals converted to the instruction type's bits, addresses.

use super::{ROp, D};
use crate::error::{Error, Result};
use crate::inst::{Addr, Operand, Sreg, Ty};
use crate::lex::parse_int;

pub(super) fn sreg(name: &str) -> Option<Sreg> {
    let (base, dim) = match name.rsplit_once('.') {
        Some((b, d)) => (b, d),
        None => (name, ""),
    };
    let d = match dim {
        "x" => 0,
        "y" => 1,
        "z" => 2,
        _ => 3,
    };
    Some(match (base, d) {
        ("%tid", 0..=2) => Sreg::Tid(d),
        ("%ntid", 0..=2) => Sreg::Ntid(d),
        ("%ctaid", 0..=2) => Sreg::Ctaid(d),
        ("%nctaid", 0..=2) => Sreg::Nctaid(d),
        ("%laneid", 3) => Sreg::Laneid,
        ("%warpid", 3) => Sreg::Warpid,
        _ => return None,
    })
}

/// Converts a literal to the bit pattern of `ty`.
pub(super) fn imm_bits(lit: &str, ty: Ty) -> Option<u64> {
    let (neg, body) = match lit.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, lit),
    };
    // `0fXXXXXXXX` / `0dXXXXXXXXXXXXXXXX` are exact IEEE bit patterns (PTX ISA 4.5.1).
    let hexf = body.strip_prefix("0f").or_else(|| body.strip_prefix("0F"));
    let hexd = body.strip_prefix("0d").or_else(|| body.strip_prefix("0D"));
    let fval: Option<f64> = if let Some(h) = hexf {
        u32::from_str_radix(h, 16)
            .ok()
            .map(|b| f64::from(f32::from_bits(b)))
    } else if let Some(h) = hexd {
        u64::from_str_radix(h, 16).ok().map(f64::from_bits)
    } else if body.contains(['.', 'e', 'E']) && !body.starts_with("0x") {
        body.parse::<f64>().ok()
    } else {
        None
    };
    if ty.is_float() {
        let v = match fval {
            Some(v) => v,
            None => parse_int(body)? as f64,
        };
        let v = if neg { -v } else { v };
        return Some(match ty {
            Ty::F16 => u64::from(half::f16::from_f64(v).to_bits()),
            Ty::F32 => u64::from((v as f32).to_bits()),
            _ => v.to_bits(),
        });
    }
    if fval.is_some() && hexf.is_none() && hexd.is_none() {
        return None;
    }
    let v = match (hexf, hexd) {
        (Some(h), _) => i64::from(u32::from_str_radix(h, 16).ok()?),
        (_, Some(h)) => u64::from_str_radix(h, 16).ok()? as i64,
        _ => parse_int(body)?,
    };
    Some((if neg { v.wrapping_neg() } else { v }) as u64)
}

impl D<'_> {
    pub(super) fn err<T>(&self, msg: impl Into<String>) -> Result<T> {
        Err(Error::Parse {
            line: self.r.line,
            msg: format!("`{}`: {}", self.r.opcode, msg.into()),
        })
    }
    pub(super) fn unknown<T>(&self) -> Result<T> {
        Err(Error::UnknownInstruction {
            line: self.r.line,
            opcode: self.r.opcode.clone(),
        })
    }
    pub(super) fn op(&self, i: usize) -> Result<&ROp> {
        match self.r.ops.get(i) {
            Some(o) => Ok(o),
            None => self.err(format!("missing operand {}", i + 1)),
        }
    }
    pub(super) fn nops(&self, n: usize) -> Result<()> {
        if self.r.ops.len() == n {
            Ok(())
        } else {
            self.err(format!("expected {n} operands, found {}", self.r.ops.len()))
        }
    }
    pub(super) fn reg_name(&self, n: &str) -> Result<u32> {
        match self.s.regs.get(n) {
            Some(&r) => Ok(r),
            None => self.err(format!("undeclared register `{n}`")),
        }
    }
    pub(super) fn dst(&self, i: usize) -> Result<u32> {
        match self.op(i)? {
            ROp::Name(n) => self.reg_name(n),
            o => self.err(format!("destination must be a register, found {o:?}")),
        }
    }
    pub(super) fn src(&self, i: usize, ty: Ty) -> Result<Operand> {
        match self.op(i)? {
            ROp::Name(n) => {
                if let Some(&r) = self.s.regs.get(n) {
                    Ok(Operand::Reg(r))
                } else if let Some(s) = sreg(n) {
                    Ok(Operand::Sreg(s))
                } else if let Some(&o) = self.s.shared.get(n) {
                    Ok(Operand::Imm(u64::from(o)))
                } else {
                    self.err(format!("unknown name `{n}`"))
                }
            }
            ROp::Num(l) => match imm_bits(l, ty) {
                Some(b) => Ok(Operand::Imm(b)),
                None => self.err(format!("literal `{l}` does not fit type {ty:?}")),
            },
            o => self.err(format!("bad source operand {o:?}")),
        }
    }
    pub(super) fn addr(&self, i: usize) -> Result<Addr> {
        match self.op(i)? {
            ROp::Addr(None, off) => Ok(Addr {
                base: None,
                off: *off,
            }),
            ROp::Addr(Some(n), off) => {
                if let Some(&r) = self.s.regs.get(n) {
                    Ok(Addr {
                        base: Some(r),
                        off: *off,
                    })
                } else if let Some(&o) = self.s.shared.get(n) {
                    Ok(Addr {
                        base: None,
                        off: i64::from(o) + off,
                    })
                } else {
                    self.err(format!("unknown address base `{n}`"))
                }
            }
            o => self.err(format!("expected an address, found {o:?}")),
        }
    }
    pub(super) fn pred(&self, i: usize) -> Result<(u32, bool)> {
        match self.op(i)? {
            ROp::Name(n) => Ok((self.reg_name(n)?, false)),
            ROp::Not(n) => Ok((self.reg_name(n)?, true)),
            o => self.err(format!("expected a predicate, found {o:?}")),
        }
    }
}
