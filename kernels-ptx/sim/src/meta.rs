//! What strict mode needs to know about each instruction beyond its decoded
//! `Inst`: the source text (for error messages), the float modifiers that the
//! default interpreter ignores (`.approx`, `.ftz`, an explicit rounding mode),
//! which `cp.async` fence it is, the register names, and the mul+add pairs
//! ptxas may contract. Kept beside `Kernel` rather than in it so the public
//! `Inst`/`Kernel` types stay as they were.

use std::collections::HashMap;

use crate::decode::{ROp, RawInst};
use crate::inst::{BinOp, Inst, MulMode, Op, Operand, Ty};

/// A `cp.async` group fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fence {
    /// `cp.async.commit_group`.
    Commit,
    /// `cp.async.wait_group N`.
    Wait(u32),
    /// `cp.async.wait_all` (commit, then wait for every group).
    WaitAll,
}

/// Side information of one instruction.
#[derive(Clone, Debug, Default)]
pub(crate) struct InstMeta {
    /// The source line, trimmed.
    pub text: String,
    /// `.approx` (or `div.full`, which has an error bound too).
    pub approx: bool,
    /// `.ftz`.
    pub ftz: bool,
    /// An explicit IEEE rounding modifier (`.rn`, `.rz`, `.rm`, `.rp`): ptxas
    /// never contracts such an instruction (PTX ISA 9.7.3, "mul"/"add" notes).
    pub rounding: bool,
    /// Which fence, for the `cp.async` group instructions.
    pub fence: Option<Fence>,
    /// A morally strong load or store (`.relaxed`, `.acquire`, `.release`,
    /// `.volatile`): the PTX memory model (ISA section 8) has no data race
    /// between two such accesses, so the race detector exempts them, like atomics.
    pub strong: bool,
}

/// A `mul.f32` whose product an `add.f32`/`sub.f32` may consume fused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Contract {
    /// The multiplicands of the mul (unchanged between the mul and the add).
    pub a: Operand,
    /// Second multiplicand.
    pub b: Operand,
    /// Which operand of the add/sub (0 or 1) is the product.
    pub which: u8,
}

/// Side information of one kernel, indexed like `Kernel::insts`.
#[derive(Clone, Debug, Default)]
pub(crate) struct KernelMeta {
    pub insts: Vec<InstMeta>,
    pub reg_names: Vec<String>,
    pub contract: Vec<Option<Contract>>,
}

impl KernelMeta {
    pub(crate) fn new(
        raw: &[RawInst],
        regs: &HashMap<String, u32>,
        insts: &[Inst],
        lines: &[&str],
    ) -> Self {
        let mut metas: Vec<InstMeta> = raw
            .iter()
            .map(|r| {
                let mods: Vec<&str> = r.opcode.split('.').skip(1).collect();
                let has = |m: &str| mods.contains(&m);
                let fence = match r.opcode.as_str() {
                    "cp.async.commit_group" => Some(Fence::Commit),
                    "cp.async.wait_all" => Some(Fence::WaitAll),
                    "cp.async.wait_group" => match r.ops.first() {
                        Some(ROp::Num(n)) => n.parse().ok().map(Fence::Wait),
                        _ => None,
                    },
                    _ => None,
                };
                let text = lines
                    .get((r.line as usize).wrapping_sub(1))
                    .map_or_else(|| r.opcode.clone(), |l| l.trim().to_string());
                InstMeta {
                    text,
                    approx: has("approx") || (r.opcode.starts_with("div.") && has("full")),
                    ftz: has("ftz"),
                    rounding: has("rn") || has("rz") || has("rm") || has("rp"),
                    fence,
                    strong: has("relaxed") || has("acquire") || has("release") || has("volatile"),
                }
            })
            .collect();
        // The implicit `exit` the parser appends.
        metas.resize_with(insts.len(), || InstMeta {
            text: "(end of kernel body)".into(),
            ..InstMeta::default()
        });
        let mut reg_names = vec![String::new(); regs.len()];
        for (n, &i) in regs {
            if let Some(s) = reg_names.get_mut(i as usize) {
                s.clone_from(n);
            }
        }
        let contract = contractions(insts, &metas);
        KernelMeta {
            insts: metas,
            reg_names,
            contract,
        }
    }
}

/// Registers an instruction writes.
fn defs(op: &Op) -> Vec<u32> {
    match *op {
        Op::Mov { dst, .. }
        | Op::Bin { dst, .. }
        | Op::Mad { dst, .. }
        | Op::Un { dst, .. }
        | Op::Selp { dst, .. }
        | Op::Cvt { dst, .. }
        | Op::LdParam { dst, .. } => vec![dst],
        Op::Setp { p, q, .. } => [Some(p), q].into_iter().flatten().collect(),
        Op::Ld { n, dst, .. } => dst.iter().take(n as usize).copied().collect(),
        Op::Atom { dst, .. } => dst.into_iter().collect(),
        Op::Shfl { dst, pdst, .. } => [Some(dst), pdst].into_iter().flatten().collect(),
        Op::Mma { d, .. } => d.to_vec(),
        Op::LdMatrix { num, dst, .. } => dst.iter().take(num as usize).copied().collect(),
        Op::Bra { .. } | Op::Bar | Op::St { .. } | Op::Exit | Op::Fence | Op::CpAsync { .. } => {
            vec![]
        }
        Op::CpAsyncFence => vec![],
    }
}

fn is_plain(insts: &[Inst], metas: &[InstMeta], i: usize, want: BinOp) -> bool {
    let (Some(inst), Some(m)) = (insts.get(i), metas.get(i)) else {
        return false;
    };
    matches!(inst.op, Op::Bin { op, ty: Ty::F32, sat: false, .. } if op == want)
        && !m.rounding
        && !m.approx
}

/// Finds each `add.f32`/`sub.f32` (no rounding modifier, no `.sat`) one of
/// whose operands is the product of a `mul.f32` (no rounding modifier) earlier
/// in the same basic block, under the same guard, whose multiplicands are not
/// redefined in between: exactly the pairs ptxas may fuse into an `fma`.
fn contractions(insts: &[Inst], metas: &[InstMeta]) -> Vec<Option<Contract>> {
    let mut leader = vec![false; insts.len()];
    for i in insts {
        if let Op::Bra { target } = i.op {
            if let Some(l) = leader.get_mut(target as usize) {
                *l = true;
            }
        }
    }
    (0..insts.len())
        .map(|j| {
            let add =
                is_plain(insts, metas, j, BinOp::Add) || is_plain(insts, metas, j, BinOp::Sub);
            let inst = insts.get(j).filter(|_| add)?;
            let Op::Bin { a, b, .. } = inst.op else {
                return None;
            };
            [(0u8, a), (1u8, b)].into_iter().find_map(|(which, o)| {
                let Operand::Reg(r) = o else { return None };
                product_of(insts, metas, &leader, j, r, inst.guard).map(|c| Contract { which, ..c })
            })
        })
        .collect()
}

fn product_of(
    insts: &[Inst],
    metas: &[InstMeta],
    leader: &[bool],
    j: usize,
    r: u32,
    guard: Option<(u32, bool)>,
) -> Option<Contract> {
    let mut i = j;
    while i > 0 && !leader.get(i).copied().unwrap_or(true) {
        i -= 1;
        let inst = insts.get(i)?;
        if matches!(inst.op, Op::Bra { .. }) {
            return None;
        }
        if !defs(&inst.op).contains(&r) {
            continue;
        }
        let Op::Bin {
            op: BinOp::Mul(MulMode::Lo),
            a,
            b,
            dst,
            ..
        } = inst.op
        else {
            return None;
        };
        if !is_plain(insts, metas, i, BinOp::Mul(MulMode::Lo)) || inst.guard != guard {
            return None;
        }
        let srcs: Vec<u32> = [a, b]
            .iter()
            .filter_map(|o| match o {
                Operand::Reg(x) => Some(*x),
                _ => None,
            })
            .collect();
        if srcs.contains(&dst) {
            return None;
        }
        let clobbered = insts
            .get(i + 1..j)?
            .iter()
            .any(|k| defs(&k.op).iter().any(|d| srcs.contains(d)));
        return (!clobbered).then_some(Contract { a, b, which: 0 });
    }
    None
}
