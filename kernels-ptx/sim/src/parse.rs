//! PTX module structure: directives, `.entry` headers, declarations and
//! labels. Instruction bodies are decoded in `decode.rs` once every name of
//! the kernel is known (a branch may target a label declared further down).

use std::collections::HashMap;

use crate::decode::{decode, ROp, RawInst, Syms};
use crate::error::{Error, Result};
use crate::inst::{Inst, Ty};
use crate::lex::{lex, parse_int, Tok, TokKind};
use crate::meta::KernelMeta;

/// A parsed PTX module.
#[derive(Clone, Debug, Default)]
pub struct Module {
    /// `.version` as written (e.g. `8.0`).
    pub version: String,
    /// `.target` entries (e.g. `sm_80`).
    pub target: Vec<String>,
    /// Every `.entry` of the module.
    pub kernels: Vec<Kernel>,
}

/// One kernel parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Name as declared.
    pub name: String,
    /// Element type.
    pub ty: Ty,
    /// Total size in bytes (element size × array length).
    pub size: u32,
    /// Byte offset in the parameter block (naturally aligned, like the CUDA ABI).
    pub offset: u32,
}

/// A decoded `.entry`.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// Entry name.
    pub name: String,
    /// Parameters in declaration order.
    pub params: Vec<Param>,
    /// Size of the parameter block in bytes.
    pub param_bytes: u32,
    /// Registers per thread (predicates included).
    pub nregs: u32,
    /// The instruction stream; branch targets are indices into it.
    pub insts: Vec<Inst>,
    /// Bytes of static `.shared` (module-level and kernel-level).
    pub static_shared: u32,
    /// Offset of the `.extern .shared` array, if the kernel declares one.
    pub dyn_shared_offset: Option<u32>,
}

struct P {
    toks: Vec<Tok>,
    i: usize,
}

fn perr<T>(line: u32, msg: impl Into<String>) -> Result<T> {
    Err(Error::Parse {
        line,
        msg: msg.into(),
    })
}

fn align_up(x: u32, a: u32) -> u32 {
    let a = a.max(1);
    x.div_ceil(a).saturating_mul(a)
}

impl P {
    fn peek(&self) -> Option<&TokKind> {
        self.toks.get(self.i).map(|t| &t.kind)
    }
    fn line(&self) -> u32 {
        self.toks
            .get(self.i)
            .or(self.toks.last())
            .map_or(0, |t| t.line)
    }
    fn next(&mut self) -> Result<TokKind> {
        let line = self.line();
        let t = self.toks.get(self.i).map(|t| t.kind.clone());
        self.i += 1;
        t.ok_or(Error::Parse {
            line,
            msg: "unexpected end of input".into(),
        })
    }
    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&TokKind::Punct(c))
    }
    fn expect_punct(&mut self, c: char) -> Result<()> {
        let line = self.line();
        match self.next()? {
            TokKind::Punct(p) if p == c => Ok(()),
            t => perr(line, format!("expected `{c}`, found {t:?}")),
        }
    }
    fn word(&mut self) -> Result<String> {
        let line = self.line();
        match self.next()? {
            TokKind::Word(w) => Ok(w),
            t => perr(line, format!("expected a name, found {t:?}")),
        }
    }
    fn num(&mut self) -> Result<i64> {
        let line = self.line();
        match self.next()? {
            TokKind::Num(n) => parse_int(&n).ok_or(Error::Parse {
                line,
                msg: format!("bad integer `{n}`"),
            }),
            t => perr(line, format!("expected a number, found {t:?}")),
        }
    }
    /// Skips tokens that are on the current line (for `.loc`, `.file`, perf directives).
    fn skip_line(&mut self, line: u32) {
        while self.toks.get(self.i).is_some_and(|t| t.line == line) {
            self.i += 1;
        }
    }

    /// `[.align A] .type name[SIZE]` after `.shared`; returns (name, align, size or None for `[]`).
    fn var_decl(&mut self) -> Result<(String, u32, Option<u32>)> {
        let line = self.line();
        let mut align = 0u32;
        let mut ty = None;
        loop {
            let w = self.word()?;
            if w == ".align" {
                align = u32::try_from(self.num()?).map_err(|_| Error::Parse {
                    line,
                    msg: "bad .align".into(),
                })?;
            } else if let Some(t) = w.strip_prefix('.').and_then(Ty::from_suffix) {
                ty = Some(t);
            } else if w.starts_with('.') {
                return perr(line, format!("unsupported variable attribute `{w}`"));
            } else {
                let ty = ty.ok_or(Error::Parse {
                    line,
                    msg: format!("variable `{w}` has no type"),
                })?;
                let mut count = Some(1u32);
                if self.is_punct('[') {
                    self.i += 1;
                    if self.is_punct(']') {
                        count = None;
                    } else {
                        count = Some(u32::try_from(self.num()?).map_err(|_| Error::Parse {
                            line,
                            msg: "bad array size".into(),
                        })?);
                    }
                    self.expect_punct(']')?;
                }
                self.expect_punct(';')?;
                let align = if align == 0 { ty.size() } else { align };
                return Ok((w, align, count.map(|c| c.saturating_mul(ty.size()))));
            }
        }
    }
}

/// Shared-memory layout being built: module-level variables first, then the kernel's own.
#[derive(Clone, Default)]
struct SharedLayout {
    syms: HashMap<String, u32>,
    size: u32,
    extern_sym: Option<(String, u32)>,
}

impl SharedLayout {
    fn add(&mut self, line: u32, name: String, align: u32, size: Option<u32>) -> Result<()> {
        match size {
            Some(sz) => {
                let off = align_up(self.size, align);
                self.size = off.saturating_add(sz);
                self.syms.insert(name, off);
            }
            None => {
                if self.extern_sym.is_some() {
                    return perr(line, "only one `.extern .shared` array is supported");
                }
                self.extern_sym = Some((name, align));
            }
        }
        Ok(())
    }
}

/// Parses a whole PTX module.
pub fn parse_module(src: &str) -> Result<Module> {
    parse_module_meta(src).map(|(m, _)| m)
}

/// Parses a whole PTX module and keeps, per kernel, what strict mode needs
/// beyond the decoded instructions (source text, modifiers, register names).
pub(crate) fn parse_module_meta(src: &str) -> Result<(Module, Vec<KernelMeta>)> {
    let mut p = P {
        toks: lex(src)?,
        i: 0,
    };
    let mut m = Module::default();
    let mut metas = Vec::new();
    let lines: Vec<&str> = src.lines().collect();
    let mut shared = SharedLayout::default();
    while let Some(t) = p.peek().cloned() {
        let line = p.line();
        let TokKind::Word(w) = t else {
            return perr(line, format!("unexpected {t:?} at module level"));
        };
        p.i += 1;
        match w.as_str() {
            ".version" => {
                m.version = match p.next()? {
                    TokKind::Num(n) => n,
                    t => return perr(line, format!("bad .version {t:?}")),
                }
            }
            ".target" => loop {
                m.target.push(p.word()?);
                if !p.is_punct(',') {
                    break;
                }
                p.i += 1;
            },
            ".address_size" => {
                if p.num()? != 64 {
                    return perr(line, "only .address_size 64 is supported");
                }
            }
            ".visible" | ".weak" => {}
            ".extern" => {
                if p.word()? != ".shared" {
                    return perr(line, "only `.extern .shared` is supported");
                }
                let (n, a, s) = p.var_decl()?;
                shared.add(line, n, a, s)?;
            }
            ".shared" => {
                let (n, a, s) = p.var_decl()?;
                shared.add(line, n, a, s)?;
            }
            ".file" | ".loc" | ".section" => p.skip_line(line),
            ".entry" => {
                let (k, meta) = parse_entry(&mut p, shared.clone(), &lines)?;
                m.kernels.push(k);
                metas.push(meta);
            }
            other => {
                return perr(
                    line,
                    format!("unsupported module-level directive `{other}`"),
                )
            }
        }
    }
    Ok((m, metas))
}

fn parse_entry(
    p: &mut P,
    mut shared: SharedLayout,
    lines: &[&str],
) -> Result<(Kernel, KernelMeta)> {
    let name = p.word()?;
    let mut params = Vec::new();
    let mut off = 0u32;
    p.expect_punct('(')?;
    while !p.is_punct(')') {
        let line = p.line();
        if p.word()? != ".param" {
            return perr(line, "expected `.param`");
        }
        let mut ty = None;
        let mut align = 0;
        let pname = loop {
            let w = p.word()?;
            if w == ".align" {
                align = u32::try_from(p.num()?).unwrap_or(0);
            } else if let Some(t) = w.strip_prefix('.').and_then(Ty::from_suffix) {
                ty = Some(t);
            } else if !w.starts_with('.') {
                break w;
            } // `.ptr`, `.global` and friends are hints without effect here
        };
        let ty = ty.ok_or(Error::Parse {
            line,
            msg: format!("parameter `{pname}` has no type"),
        })?;
        let mut size = ty.size();
        if p.is_punct('[') {
            p.i += 1;
            size = size.saturating_mul(u32::try_from(p.num()?).unwrap_or(0));
            p.expect_punct(']')?;
        }
        let a = if align == 0 { ty.size() } else { align };
        let o = align_up(off, a);
        off = o.saturating_add(size);
        params.push(Param {
            name: pname,
            ty,
            size,
            offset: o,
        });
        if p.is_punct(',') {
            p.i += 1;
        }
    }
    p.expect_punct(')')?;
    // Performance directives (`.maxntid 256, 1, 1`, `.reqntid`, ...) sit between `)` and `{`.
    while !p.is_punct('{') {
        p.next()?;
    }
    p.i += 1;

    let mut regs: HashMap<String, u32> = HashMap::new();
    let mut labels: HashMap<String, u32> = HashMap::new();
    let mut raw: Vec<RawInst> = Vec::new();
    let mut depth = 1;
    while depth > 0 {
        let line = p.line();
        match p.next()? {
            TokKind::Punct('{') => depth += 1,
            TokKind::Punct('}') => depth -= 1,
            TokKind::Punct('@') => {
                let neg = p.is_punct('!');
                if neg {
                    p.i += 1;
                }
                let g = p.word()?;
                let op = p.word()?;
                raw.push(parse_inst(p, Some((g, neg)), op, line)?);
            }
            TokKind::Word(w) if w == ".reg" => {
                let mut ty = None;
                loop {
                    let line = p.line();
                    let n = p.word()?;
                    if let Some(t) = n.strip_prefix('.').and_then(Ty::from_suffix) {
                        ty = Some(t);
                        continue;
                    }
                    if n.starts_with('.') {
                        return perr(line, format!("unsupported .reg attribute `{n}`"));
                    }
                    if ty.is_none() {
                        return perr(line, format!("register `{n}` has no type"));
                    }
                    if p.is_punct('<') {
                        p.i += 1;
                        let count = p.num()?;
                        p.expect_punct('>')?;
                        for k in 0..count {
                            let id = regs.len() as u32;
                            regs.entry(format!("{n}{k}")).or_insert(id);
                        }
                    } else {
                        let id = regs.len() as u32;
                        regs.entry(n).or_insert(id);
                    }
                    match p.next()? {
                        TokKind::Punct(',') => {}
                        TokKind::Punct(';') => break,
                        t => {
                            return perr(line, format!("expected `,` or `;` in .reg, found {t:?}"))
                        }
                    }
                }
            }
            TokKind::Word(w) if w == ".shared" => {
                let (n, a, s) = p.var_decl()?;
                shared.add(line, n, a, s)?;
            }
            TokKind::Word(w) if w == ".extern" => {
                if p.word()? != ".shared" {
                    return perr(line, "only `.extern .shared` is supported");
                }
                let (n, a, s) = p.var_decl()?;
                shared.add(line, n, a, s)?;
            }
            TokKind::Word(w) if w == ".loc" || w == ".file" => p.skip_line(line),
            TokKind::Word(w) if w == ".pragma" => {
                while !p.is_punct(';') {
                    p.next()?;
                }
                p.i += 1;
            }
            TokKind::Word(w) if w.starts_with('.') => {
                return perr(line, format!("unsupported directive `{w}` in kernel body"));
            }
            TokKind::Word(w) if p.is_punct(':') => {
                p.i += 1;
                labels.insert(w, raw.len() as u32);
            }
            TokKind::Word(w) => raw.push(parse_inst(p, None, w, line)?),
            t => return perr(line, format!("unexpected {t:?} in kernel body")),
        }
    }

    let mut static_shared = shared.size;
    let mut dyn_shared_offset = None;
    if let Some((n, a)) = shared.extern_sym.take() {
        // Dynamic shared memory starts after the static variables, aligned for its declaration.
        let o = align_up(shared.size, a.max(16));
        shared.syms.insert(n, o);
        dyn_shared_offset = Some(o);
        static_shared = o;
    }
    let param_syms: HashMap<String, (u32, Ty)> = params
        .iter()
        .map(|p| (p.name.clone(), (p.offset, p.ty)))
        .collect();
    let syms = Syms {
        regs: &regs,
        labels: &labels,
        shared: &shared.syms,
        params: &param_syms,
    };
    let mut insts = raw
        .iter()
        .map(|r| decode(r, &syms))
        .collect::<Result<Vec<Inst>>>()?;
    // Falling off the end of the body behaves like `ret`.
    let end_line = insts.last().map_or(0, |i| i.line);
    insts.push(Inst {
        guard: None,
        op: crate::inst::Op::Exit,
        class: crate::inst::Class::Control,
        line: end_line,
    });
    let meta = KernelMeta::new(&raw, &regs, &insts, lines);
    let k = Kernel {
        name,
        params,
        param_bytes: off,
        nregs: regs.len() as u32,
        insts,
        static_shared,
        dyn_shared_offset,
    };
    Ok((k, meta))
}

fn parse_operand(p: &mut P) -> Result<ROp> {
    let line = p.line();
    match p.next()? {
        TokKind::Punct('[') => {
            let mut base = None;
            let mut off = 0i64;
            match p.next()? {
                TokKind::Word(w) => base = Some(w),
                TokKind::Num(n) => {
                    off = parse_int(&n).ok_or(Error::Parse {
                        line,
                        msg: format!("bad address `{n}`"),
                    })?
                }
                t => return perr(line, format!("bad address {t:?}")),
            }
            while !p.is_punct(']') {
                let sign = match p.next()? {
                    TokKind::Punct('+') => 1,
                    TokKind::Punct('-') => -1,
                    t => return perr(line, format!("bad address offset {t:?}")),
                };
                let sign = if p.is_punct('-') {
                    p.i += 1;
                    -sign
                } else {
                    sign
                };
                off = off.wrapping_add(sign * p.num()?);
            }
            p.i += 1;
            Ok(ROp::Addr(base, off))
        }
        TokKind::Punct('{') => {
            let mut v = Vec::new();
            loop {
                v.push(p.word()?);
                match p.next()? {
                    TokKind::Punct(',') => {}
                    TokKind::Punct('}') => break,
                    t => return perr(line, format!("bad vector operand {t:?}")),
                }
            }
            Ok(ROp::Vec(v))
        }
        TokKind::Punct('!') => Ok(ROp::Not(p.word()?)),
        TokKind::Punct('-') => match p.next()? {
            TokKind::Num(n) => Ok(ROp::Num(format!("-{n}"))),
            t => perr(line, format!("expected a number after `-`, found {t:?}")),
        },
        TokKind::Num(n) => Ok(ROp::Num(n)),
        TokKind::Word(w) => {
            if p.is_punct('|') {
                p.i += 1;
                Ok(ROp::Pair(w, p.word()?))
            } else {
                Ok(ROp::Name(w))
            }
        }
        t => perr(line, format!("unexpected operand {t:?}")),
    }
}

fn parse_inst(
    p: &mut P,
    guard: Option<(String, bool)>,
    opcode: String,
    line: u32,
) -> Result<RawInst> {
    let mut ops = Vec::new();
    if !p.is_punct(';') {
        loop {
            ops.push(parse_operand(p)?);
            if p.is_punct(',') {
                p.i += 1;
            } else {
                break;
            }
        }
    }
    p.expect_punct(';')?;
    Ok(RawInst {
        guard,
        opcode,
        ops,
        line,
    })
}
