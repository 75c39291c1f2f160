//! Symbolic code to instructions: labels resolved to forward offsets, conditional jumps farther
//! than 255 routed through `ja` trampolines, jumps to the next instruction dropped.

use cranelift_entity::entity_impl;

use crate::bpf::{Insn, Program};

/// A jump target: an entity index, printed `L<n>`.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);
entity_impl!(Label, "L");

/// Symbolic instructions.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `ld [offset]`.
    Ld(u32),
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

/// Why assembly failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsmError {
    /// A jump to a label bound before it, or never bound (a code generator bug).
    BadJump(Label),
}

/// Resolves labels; `next_label` is the first label number not in use (for trampolines).
pub fn assemble(mut ops: Vec<Op>, mut next_label: u32) -> Result<Program, AsmError> {
    simplify(&mut ops);
    // Each round routes every far jump of the current layout through trampolines placed
    // right after it (`jxx k, T, F` becomes `jxx k, Lt, Lf; Lt: ja T; Lf: ja F` for the far
    // ones); inserting shifts code, so repeat until nothing is far.
    loop {
        let pos = positions(&ops);
        let mut far = Vec::new();
        let mut pc = 0usize;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Bind(_) => continue,
                Op::Jmp { t, f, .. } => {
                    let off = |l: &Label| pos.get(l).map(|&p| p as i64 - pc as i64 - 1);
                    let (ot, of) = (off(t).ok_or(AsmError::BadJump(*t))?, off(f).ok_or(AsmError::BadJump(*f))?);
                    if ot < 0 || of < 0 {
                        return Err(AsmError::BadJump(if ot < 0 { *t } else { *f }));
                    }
                    if ot > 255 || of > 255 {
                        far.push((i, ot > 255, of > 255));
                    }
                }
                _ => {}
            }
            pc += 1;
        }
        if far.is_empty() {
            break;
        }
        let mut out = Vec::with_capacity(ops.len() + 4 * far.len());
        let mut far = far.into_iter().peekable();
        for (i, op) in ops.into_iter().enumerate() {
            let Some(&(_, t_far, f_far)) = far.peek().filter(|(j, _, _)| *j == i) else {
                out.push(op);
                continue;
            };
            far.next();
            let Op::Jmp { op, k, t, f } = op else { unreachable!("only jumps are far") };
            let mut tramp = Vec::new();
            let (mut nt, mut nf) = (t, f);
            for (is_far, target, slot) in [(t_far, t, &mut nt), (f_far, f, &mut nf)] {
                if is_far {
                    let l = Label::from_u32(next_label);
                    next_label += 1;
                    tramp.push(Op::Bind(l));
                    tramp.push(Op::Ja(target));
                    *slot = l;
                }
            }
            out.push(Op::Jmp { op, k, t: nt, f: nf });
            out.extend(tramp);
        }
        ops = out;
    }
    let pos = positions(&ops);
    let mut insns = Vec::new();
    for op in &ops {
        let pc = insns.len();
        let off = |l: &Label| -> Result<u32, AsmError> {
            let to = *pos.get(l).ok_or(AsmError::BadJump(*l))?;
            u32::try_from(to as i64 - pc as i64 - 1).map_err(|_| AsmError::BadJump(*l))
        };
        insns.push(match *op {
            Op::Bind(_) => continue,
            Op::Ld(o) => Insn::ld(o),
            Op::And(k) => Insn::and(k),
            Op::Ret(k) => Insn::ret(k),
            Op::Ja(l) => Insn::ja(off(&l)?),
            Op::Jmp { op, k, t, f } => Insn::jmp(op, k, off(&t)? as u8, off(&f)? as u8),
        });
    }
    Ok(Program { insns })
}

/// Retargets every jump whose target label is followed by `ja M` (possibly through more
/// labels) to `M`.
fn thread_jumps(ops: &mut [Op]) {
    let mut forward: std::collections::HashMap<Label, Label> = std::collections::HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Bind(l) = op {
            if let Some(Op::Ja(m)) = ops[i + 1..].iter().find(|o| !matches!(o, Op::Bind(_))) {
                forward.insert(*l, *m);
            }
        }
    }
    let resolve = |mut l: Label| {
        for _ in 0..forward.len() + 1 {
            match forward.get(&l) {
                Some(&m) if m != l => l = m,
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

/// Instruction index of each label.
fn positions(ops: &[Op]) -> std::collections::HashMap<Label, usize> {
    let mut pos = std::collections::HashMap::new();
    let mut pc = 0;
    for op in ops {
        match op {
            Op::Bind(l) => {
                pos.insert(*l, pc);
            }
            _ => pc += 1,
        }
    }
    pos
}

/// Threads jumps through labels that sit on a `ja` (a jump to `L: ja M` goes to `M`), drops
/// `ja` to the next instruction, turns a conditional jump with equal targets into `ja`, and
/// removes code after a `ret` or `ja` that no label makes reachable.
fn simplify(ops: &mut Vec<Op>) {
    loop {
        thread_jumps(ops);
        let used: std::collections::HashSet<Label> = ops
            .iter()
            .flat_map(|op| match *op {
                Op::Ja(l) => vec![l],
                Op::Jmp { t, f, .. } => vec![t, f],
                _ => vec![],
            })
            .collect();
        ops.retain(|op| !matches!(op, Op::Bind(l) if !used.contains(l)));
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
