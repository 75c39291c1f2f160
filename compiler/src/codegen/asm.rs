//! Symbolic code to instructions: labels resolved to forward offsets, jumps threaded, dead
//! code dropped, and conditional jumps farther than 255 sent to a nearby copy of their
//! target (an *island*: the `ret` itself when the target is a `ret`, else a `ja` to it),
//! shared by every far jump to that target within reach.

use cranelift_entity::{entity_impl, PrimaryMap, SecondaryMap};

use crate::bpf::{Insn, Program, BPF_LD, BPF_MEM, BPF_ST, BPF_W};

/// A jump target: an entity index, printed `L<n>`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);
entity_impl!(Label, "L");

/// The labels of one program: allocated by the code generator, more by the assembler for
/// islands.
pub type Labels = PrimaryMap<Label, ()>;

/// Symbolic instructions.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ld [offset]`.
    Ld(u32),
    /// `ld M[k]`: a word stored before on every path here.
    LdMem(u32),
    /// `st M[k]`.
    St(u32),
    /// `and #k`.
    And(u32),
    /// A conditional jump (`op`: BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET).
    Jmp {
        /// The comparison.
        op: u16,
        /// The constant.
        k: u32,
        /// Where to go if it holds.
        t: Label,
        /// Where to go if not.
        f: Label,
    },
    /// `ja`.
    Ja(Label),
    /// `ret #k`.
    Ret(u32),
    /// A label's position (no instruction).
    Bind(Label),
}

impl Op {
    /// Whether the next instruction can only be reached through a label (inserting code
    /// after this one changes no path).
    fn ends_block(&self) -> bool {
        matches!(self, Op::Jmp { .. } | Op::Ja(_) | Op::Ret(_))
    }
}

/// Why assembly failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsmError {
    /// A jump to a label bound before it, or never bound (a code generator bug).
    BadJump(Label),
    /// Far jumps kept appearing (a bug: each round only inserts one-instruction islands).
    NoFixpoint,
}

/// Resolves labels.
pub fn assemble(mut ops: Vec<Op>, labels: &mut Labels) -> Result<Program, AsmError> {
    simplify(&mut ops, labels);
    place_islands(&mut ops, labels)?;
    let pos = positions(&ops, labels);
    let mut insns = Vec::with_capacity(ops.len());
    for op in &ops {
        let pc = insns.len();
        let off = |l: Label| -> Result<u32, AsmError> {
            let to = pos[l].ok_or(AsmError::BadJump(l))?;
            u32::try_from(i64::from(to) - pc as i64 - 1).map_err(|_| AsmError::BadJump(l))
        };
        let short = |l: Label| -> Result<u8, AsmError> { u8::try_from(off(l)?).map_err(|_| AsmError::BadJump(l)) };
        insns.push(match *op {
            Op::Bind(_) => continue,
            Op::Ld(o) => Insn::ld(o),
            Op::LdMem(k) => Insn { code: BPF_LD | BPF_W | BPF_MEM, jt: 0, jf: 0, k },
            Op::St(k) => Insn { code: BPF_ST, jt: 0, jf: 0, k },
            Op::And(k) => Insn::and(k),
            Op::Ret(k) => Insn::ret(k),
            Op::Ja(l) => Insn::ja(off(l)?),
            Op::Jmp { op, k, t, f } => Insn::jmp(op, k, short(t)?, short(f)?),
        });
    }
    Ok(Program { insns })
}

/// Instruction index of each bound label.
fn positions(ops: &[Op], labels: &Labels) -> SecondaryMap<Label, Option<u32>> {
    let mut pos = SecondaryMap::with_capacity(labels.len());
    let mut pc = 0u32;
    for op in ops {
        match op {
            Op::Bind(l) => pos[*l] = Some(pc),
            _ => pc += 1,
        }
    }
    pos
}

/// The farthest a conditional jump reaches.
const REACH: i64 = 255;

/// Sends every conditional jump farther than [`REACH`] to an island: a copy of its target's
/// `ret`, or a `ja` to the target, inserted after an instruction that does not fall through,
/// as far down as the first far jump it serves can reach, and shared by every far jump to
/// the same target before it. Inserting moves code, so rounds repeat until nothing is far.
fn place_islands(ops: &mut Vec<Op>, labels: &mut Labels) -> Result<(), AsmError> {
    for _ in 0..64 {
        let pos = positions(ops, labels);
        // the `ret` each label sits on, if it does
        let mut ret_at: SecondaryMap<Label, Option<u32>> = SecondaryMap::with_capacity(labels.len());
        for (i, op) in ops.iter().enumerate() {
            if let Op::Bind(l) = op {
                if let Some(Op::Ret(k)) = ops[i + 1..].iter().find(|o| !matches!(o, Op::Bind(_))) {
                    ret_at[*l] = Some(*k);
                }
            }
        }
        // (op index, pc, far true side, far false side)
        let mut far: Vec<(usize, i64, bool, bool)> = Vec::new();
        // pc of each op, and the ops after which an island may go
        let mut pcs = Vec::with_capacity(ops.len());
        let mut pc = 0i64;
        for (i, op) in ops.iter().enumerate() {
            pcs.push(pc);
            if let Op::Bind(_) = op {
                continue;
            }
            if let Op::Jmp { t, f, .. } = op {
                let dist = |l: &Label| pos[*l].map(|p| i64::from(p) - pc - 1).ok_or(AsmError::BadJump(*l));
                let (dt, df) = (dist(t)?, dist(f)?);
                if dt < 0 || df < 0 {
                    return Err(AsmError::BadJump(if dt < 0 { *t } else { *f }));
                }
                if dt > REACH || df > REACH {
                    far.push((i, pc, dt > REACH, df > REACH));
                }
            }
            pc += 1;
        }
        if far.is_empty() {
            return Ok(());
        }
        let breaks: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].ends_block()).collect();
        // leave room for the islands this round inserts between a jump and its island
        const MARGIN: i64 = 16;
        // target → islands planned this round: (pc of the op each follows, its label)
        let mut planned: std::collections::BTreeMap<Label, Vec<(i64, Label)>> = std::collections::BTreeMap::new();
        let mut inserts: Vec<(usize, Label, Op)> = Vec::new();
        for &(i, pc, t_far, f_far) in &far {
            let Op::Jmp { t, f, .. } = ops[i] else { continue };
            for (is_far, target) in [(t_far, t), (f_far, f)] {
                let islands = planned.entry(target).or_default();
                if !is_far || islands.last().is_some_and(|&(at, _)| at >= pc && at - pc <= REACH - MARGIN) {
                    continue;
                }
                // the last op that ends a block within reach (the jump itself at worst)
                let limit = pc + REACH - MARGIN;
                let idx = breaks.partition_point(|&b| pcs[b] <= limit);
                let after = breaks[..idx].last().copied().filter(|&b| b >= i).unwrap_or(i);
                let island = labels.push(());
                let body = match ret_at[target] {
                    Some(v) => Op::Ret(v),
                    None => Op::Ja(target),
                };
                inserts.push((after, island, body));
                islands.push((pcs[after], island));
            }
        }
        // every jump to a target with islands goes to the first island after it, when that
        // is nearer than the target: a jump near the edge of its reach is not pushed past it
        // by the islands inserted before its old target
        for (i, op) in ops.iter_mut().enumerate() {
            let Op::Jmp { t, f, .. } = op else { continue };
            let pc = pcs[i];
            for side in [t, f] {
                let Some(islands) = planned.get(side) else { continue };
                let k = islands.partition_point(|&(at, _)| at < pc);
                if let (Some(&(at, island)), Some(now)) = (islands.get(k), pos[*side]) {
                    if at - pc <= REACH - MARGIN && at < i64::from(now) {
                        *side = island;
                    }
                }
            }
        }
        inserts.sort_by_key(|(after, island, _)| (*after, *island));
        let mut out = Vec::with_capacity(ops.len() + 2 * inserts.len());
        let mut next = inserts.into_iter().peekable();
        for (i, op) in ops.drain(..).enumerate() {
            out.push(op);
            while let Some((_, island, body)) = next.next_if(|(after, _, _)| *after == i) {
                out.push(Op::Bind(island));
                out.push(body);
            }
        }
        *ops = out;
    }
    Err(AsmError::NoFixpoint)
}

/// Retargets every jump whose target label is followed by `ja M` (possibly through more
/// labels) to `M`.
fn thread_jumps(ops: &mut [Op], labels: &Labels) {
    let mut forward: SecondaryMap<Label, Option<Label>> = SecondaryMap::with_capacity(labels.len());
    for (i, op) in ops.iter().enumerate() {
        if let Op::Bind(l) = op {
            if let Some(Op::Ja(m)) = ops[i + 1..].iter().find(|o| !matches!(o, Op::Bind(_))) {
                forward[*l] = Some(*m);
            }
        }
    }
    let bound = ops.len() + 1;
    let resolve = |mut l: Label| {
        // jumps go forward, so a chain ends; the bound guards against a bug
        for _ in 0..bound {
            match forward[l] {
                Some(m) if m != l => l = m,
                _ => break,
            }
        }
        l
    };
    for op in ops.iter_mut() {
        match op {
            Op::Ja(l) => *l = resolve(*l),
            Op::Jmp { t, f, .. } => {
                *t = resolve(*t);
                *f = resolve(*f);
            }
            _ => {}
        }
    }
}

/// Threads jumps through labels that sit on a `ja` (a jump to `L: ja M` goes to `M`), drops
/// `ja` to the next instruction, turns a conditional jump with equal targets into `ja`, and
/// removes code after a `ret` or `ja` that no label makes reachable.
fn simplify(ops: &mut Vec<Op>, labels: &Labels) {
    loop {
        thread_jumps(ops, labels);
        let mut used: SecondaryMap<Label, bool> = SecondaryMap::with_capacity(labels.len());
        for op in ops.iter() {
            match *op {
                Op::Ja(l) => used[l] = true,
                Op::Jmp { t, f, .. } => {
                    used[t] = true;
                    used[f] = true;
                }
                _ => {}
            }
        }
        ops.retain(|op| !matches!(op, Op::Bind(l) if !used[*l]));
        let before = ops.len();
        let mut out: Vec<Op> = Vec::with_capacity(ops.len());
        let mut dead = false;
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Bind(_) => dead = false,
                _ if dead => continue,
                _ => {}
            }
            let binds_next = |l: Label| ops[i + 1..].iter().take_while(|o| matches!(o, Op::Bind(_))).any(|o| *o == Op::Bind(l));
            match *op {
                Op::Ja(l) if binds_next(l) => continue,
                Op::Jmp { t, f, .. } if t == f => {
                    if !binds_next(t) {
                        out.push(Op::Ja(t));
                    }
                    dead = true;
                    continue;
                }
                Op::Ja(_) | Op::Ret(_) | Op::Jmp { .. } => dead = true,
                _ => {}
            }
            out.push(*op);
        }
        *ops = out;
        if ops.len() == before {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::BPF_JEQ;

    /// 600 `jeq`s to one `ret` at the end: each far one reaches an island, islands are
    /// shared, and every jump of the result is within reach.
    #[test]
    fn far_jumps_to_a_ret_share_islands() {
        let mut labels = Labels::new();
        let (allow, deny) = (labels.push(()), labels.push(()));
        let mut ops = Vec::new();
        for v in 0..600 {
            let next = labels.push(());
            ops.push(Op::Jmp { op: BPF_JEQ, k: v, t: allow, f: next });
            ops.push(Op::Bind(next));
        }
        ops.extend([Op::Ja(deny), Op::Bind(allow), Op::Ret(1), Op::Bind(deny), Op::Ret(2)]);
        let p = assemble(ops, &mut labels).expect("assembles");
        let rets = p.insns.iter().filter(|i| *i == &Insn::ret(1)).count();
        assert!((2..=4).contains(&rets), "{rets} copies of the ret for 600 jumps");
        assert!(p.insns.len() <= 600 + 2 + 4, "{}", p.insns.len());
        // every jeq still leads to `ret 1` when it holds
        for (pc, insn) in p.insns.iter().enumerate() {
            if insn.code == crate::bpf::BPF_JMP | BPF_JEQ {
                assert_eq!(p.insns[pc + 1 + usize::from(insn.jt)], Insn::ret(1), "at {pc}");
            }
        }
    }
}
