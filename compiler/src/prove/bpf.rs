//! A filter as a decision diagram: symbolic execution of the whole program at once. Jumps
//! only go forward, so the instructions are visited in order; each carries the boolean
//! function "the run reaches here" (its guard) and the registers as symbolic words, merged
//! where paths meet (only the registers still read afterwards: a liveness pass first). A
//! `ret` adds its guard → value to the result. Every instruction [`crate::bpf::sim`] runs is
//! handled, with the same meaning; the result is exact, or the node budget runs out.

use super::dd::{Manager, NodeId, OverBudget, FALSE, TRUE};
use super::word::{self, Word};
use crate::bpf::sim::{decode, AluOp, Op, Src, MEMWORDS};
use crate::bpf::{Program, OFF_ARCH, OFF_NR};

/// What symbolic execution gives.
pub struct Executed {
    /// The return value as a function of the input.
    pub result: NodeId,
    /// Where the run meets an instruction the kernel's action cache cannot follow knowing
    /// only `arch` and `nr` (a load of anything else, or anything but `ld`, `and #k`, jumps
    /// with a constant and `ret #k`): a boolean function of the input.
    pub uncacheable: NodeId,
}

#[derive(Clone)]
struct State {
    guard: NodeId,
    a: Word,
    x: Word,
    mem: [Word; MEMWORDS as usize],
}

/// Registers: A = bit 0, X = bit 1, M[i] = bit 2 + i.
type Regs = u32;
const A: Regs = 1;
const X: Regs = 2;
fn m_reg(k: u32) -> Regs {
    4 << k
}

fn uses_defs(op: &Op) -> (Regs, Regs) {
    match *op {
        Op::LdAbs(_) | Op::LdImm(_) => (0, A),
        Op::LdxImm(_) => (0, X),
        Op::LdMem(k) => (m_reg(k), A),
        Op::LdxMem(k) => (m_reg(k), X),
        Op::St(k) => (A, m_reg(k)),
        Op::Stx(k) => (X, m_reg(k)),
        Op::Alu(_, Src::K(_)) | Op::Neg => (A, A),
        Op::Alu(_, Src::X) => (A | X, A),
        Op::Tax => (A, X),
        Op::Txa => (X, A),
        Op::Ja(_) | Op::RetK(_) => (0, 0),
        Op::Jmp(_, Src::K(_), _, _) | Op::RetA => (A, 0),
        Op::Jmp(_, Src::X, _, _) => (A | X, 0),
    }
}

fn successors(pc: usize, op: &Op) -> Vec<usize> {
    match *op {
        Op::Ja(k) => vec![pc + 1 + k as usize],
        Op::Jmp(_, _, jt, jf) => vec![pc + 1 + usize::from(jt), pc + 1 + usize::from(jf)],
        Op::RetK(_) | Op::RetA => vec![],
        _ => vec![pc + 1],
    }
}

fn cacheable(op: &Op) -> bool {
    matches!(op, Op::LdAbs(OFF_NR | OFF_ARCH) | Op::RetK(_) | Op::Ja(_) | Op::Jmp(_, Src::K(_), _, _) | Op::Alu(AluOp::And, Src::K(_)))
}

/// The merged state of two sets of paths, keeping only the live registers.
fn merge(m: &mut Manager, old: State, new: State, live: Regs) -> Result<State, OverBudget> {
    let guard = m.or(old.guard, new.guard)?;
    let pick = |m: &mut Manager, o: &Word, n: &Word| -> Result<Word, OverBudget> {
        if o == n {
            return Ok(*o);
        }
        let mut w = [FALSE; 32];
        for i in 0..32 {
            w[i] = m.ite(new.guard, n[i], o[i])?;
        }
        Ok(w)
    };
    let dead = word::constant(0);
    let a = if live & A != 0 { pick(m, &old.a, &new.a)? } else { dead };
    let x = if live & X != 0 { pick(m, &old.x, &new.x)? } else { dead };
    let mut mem = [dead; MEMWORDS as usize];
    for (k, slot) in mem.iter_mut().enumerate() {
        if live & m_reg(k as u32) != 0 {
            *slot = pick(m, &old.mem[k], &new.mem[k])?;
        }
    }
    Ok(State { guard, a, x, mem })
}

/// The word's value as a diagram whose terminals are 32-bit values.
fn word_value(m: &mut Manager, w: &Word) -> Result<NodeId, OverBudget> {
    let mut acc = m.terminal(0);
    for (i, bit) in w.iter().enumerate() {
        let with = m.apply(acc, FALSE, &|v, _| v | 1 << i)?;
        acc = m.ite(*bit, with, acc)?;
    }
    Ok(acc)
}

/// Executes a program the kernel accepts ([`crate::bpf::sim::check`] passed) on every input
/// at once.
pub fn execute(m: &mut Manager, program: &Program) -> Result<Executed, OverBudget> {
    let ops: Vec<Op> = program.insns.iter().map(|i| decode(i).unwrap_or(Op::RetK(0))).collect();
    let n = ops.len();
    // liveness, backwards (every jump goes forward)
    let mut live_in = vec![0 as Regs; n + 1];
    for pc in (0..n).rev() {
        let out = successors(pc, &ops[pc]).iter().fold(0, |acc, s| acc | live_in.get(*s).copied().unwrap_or(0));
        let (uses, defs) = uses_defs(&ops[pc]);
        live_in[pc] = uses | (out & !defs);
    }
    let zero = word::constant(0);
    let mut pending: Vec<Option<State>> = vec![None; n];
    pending[0] = Some(State { guard: TRUE, a: zero, x: zero, mem: [zero; MEMWORDS as usize] });
    let mut rets: Vec<(NodeId, NodeId)> = Vec::new();
    let mut uncacheable = FALSE;
    for pc in 0..n {
        let Some(mut s) = pending[pc].take() else { continue };
        let op = ops[pc];
        if !cacheable(&op) {
            uncacheable = m.or(uncacheable, s.guard)?;
        }
        let src = |s: &State, src: Src| match src {
            Src::K(k) => word::constant(k),
            Src::X => s.x,
        };
        let mut edges: Vec<(usize, NodeId)> = Vec::new();
        match op {
            Op::LdAbs(k) => s.a = word::input(m, k)?,
            Op::LdImm(k) => s.a = word::constant(k),
            Op::LdxImm(k) => s.x = word::constant(k),
            Op::LdMem(k) => s.a = s.mem[k as usize],
            Op::LdxMem(k) => s.x = s.mem[k as usize],
            Op::St(k) => s.mem[k as usize] = s.a,
            Op::Stx(k) => s.mem[k as usize] = s.x,
            Op::Alu(AluOp::Div, Src::X) => {
                // division by 0 returns 0
                let zero_x = word::test(m, crate::bpf::sim::JmpOp::Eq, &s.x, &zero)?;
                let dead = m.and(s.guard, zero_x)?;
                if dead != FALSE {
                    let ret0 = m.terminal(0);
                    rets.push((dead, ret0));
                }
                let not_zero = m.not(zero_x)?;
                s.guard = m.and(s.guard, not_zero)?;
                if s.guard == FALSE {
                    continue;
                }
                s.a = word::alu(m, AluOp::Div, &s.a, &s.x)?;
            }
            Op::Alu(op, v) => {
                let v = src(&s, v);
                s.a = word::alu(m, op, &s.a, &v)?;
            }
            Op::Neg => s.a = word::neg(m, &s.a)?,
            Op::Tax => s.x = s.a,
            Op::Txa => s.a = s.x,
            Op::Ja(k) => edges.push((pc + 1 + k as usize, s.guard)),
            Op::Jmp(op, v, jt, jf) => {
                let v = src(&s, v);
                let c = word::test(m, op, &s.a, &v)?;
                let t = m.and(s.guard, c)?;
                let nc = m.not(c)?;
                let f = m.and(s.guard, nc)?;
                edges.push((pc + 1 + usize::from(jt), t));
                edges.push((pc + 1 + usize::from(jf), f));
            }
            Op::RetK(k) => {
                let v = m.terminal(u64::from(k));
                rets.push((s.guard, v));
                continue;
            }
            Op::RetA => {
                let v = word_value(m, &s.a)?;
                rets.push((s.guard, v));
                continue;
            }
        }
        if edges.is_empty() {
            edges.push((pc + 1, s.guard));
        }
        for (to, guard) in edges {
            if guard == FALSE || to >= n {
                continue;
            }
            let arriving = State { guard, ..s.clone() };
            pending[to] = Some(match pending[to].take() {
                None => arriving,
                Some(old) => merge(m, old, arriving, live_in[to])?,
            });
        }
    }
    // the guards of the returns are disjoint and cover every input
    let mut result = m.terminal(u64::from(u32::MAX) + 1);
    for (guard, value) in rets.into_iter().rev() {
        result = m.ite(guard, value, result)?;
    }
    Ok(Executed { result, uncacheable })
}
