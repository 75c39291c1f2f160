//! A resolved policy as a decision diagram: [`crate::eval::decide`]'s meaning, built for
//! every input at once and step for step as `decide` reads: the target by `arch` (and on
//! x86_64 by the x32 bit of `nr`), else badarch; the rules of the number in order, the first
//! whose condition holds deciding; else `newer` for a number no rule names that the oldest
//! kernel lacks; else the default. Conditions read the bits of the argument the kernel
//! reads (its width), masked, compared unsigned.

use scpc_lang::ast::CmpOp;

use super::dd::{Dd, Manager, NodeId, OverBudget, FALSE, TRUE};
use super::word::{arg_var, var_of};
use crate::abi::{Arch, X32_SYSCALL_BIT};
use crate::policy::{Action, ArchPolicy, CondData, CondId, Policy};

/// A diagram mapping a value of the bits `vars` (most significant first; `None` for a bit
/// that is always 0) to the node of its entry, `default` for values no entry has. `entries`
/// are sorted by key and have 0 wherever `vars` has `None`.
pub fn value_map(m: &mut Manager, vars: &[Option<u16>], entries: &[(u64, NodeId)], default: NodeId) -> Dd {
    fn rec(m: &mut Manager, vars: &[Option<u16>], p: usize, entries: &[(u64, NodeId)], default: NodeId) -> Dd {
        if entries.is_empty() {
            return Ok(default);
        }
        if p == vars.len() {
            return Ok(entries[0].1);
        }
        let bit = (vars.len() - 1 - p) as u32;
        let split = entries.partition_point(|(k, _)| k >> bit & 1 == 0);
        match vars[p] {
            None => rec(m, vars, p + 1, &entries[..split], default),
            Some(v) => {
                let lo = rec(m, vars, p + 1, &entries[..split], default)?;
                let hi = rec(m, vars, p + 1, &entries[split..], default)?;
                m.mk(v, lo, hi)
            }
        }
    }
    rec(m, vars, 0, entries, default)
}

/// The variables of a `seccomp_data` word, most significant bit first.
pub fn word_vars(offset: u32) -> Vec<Option<u16>> {
    (0..32).rev().map(|b| var_of(offset, b)).collect()
}

/// The decision diagram of `policy`: terminals are return values.
pub fn diagram(m: &mut Manager, policy: &Policy) -> Dd {
    let badarch = m.terminal(u64::from(policy.badarch.ret_value()));
    let mut arch_entries: Vec<(u64, NodeId)> = Vec::new();
    let mut audits: Vec<u32> = policy.targets.iter().map(|t| t.arch.table().audit_arch).collect();
    audits.sort_unstable();
    audits.dedup();
    for audit in audits {
        let of = |arch: Arch| policy.targets.iter().find(|t| t.arch == arch && t.arch.table().audit_arch == audit);
        let node = match (of(Arch::X86_64), of(Arch::X32)) {
            (None, None) => {
                let t = policy.targets.iter().find(|t| t.arch.table().audit_arch == audit).ok_or(OverBudget)?;
                target(m, policy, t)?
            }
            (native, x32) => {
                let n = match native {
                    Some(t) => target(m, policy, t)?,
                    None => badarch,
                };
                let x = match x32 {
                    Some(t) => target(m, policy, t)?,
                    None => badarch,
                };
                // nr bit 30 is the x32 bit
                let bit30 = var_of(0, X32_SYSCALL_BIT.trailing_zeros()).ok_or(OverBudget)?;
                let sel = m.literal(bit30)?;
                m.ite(sel, x, n)?
            }
        };
        arch_entries.push((u64::from(audit), node));
    }
    value_map(m, &word_vars(4), &arch_entries, badarch)
}

/// One target's decisions, a function of `nr` and the arguments.
fn target(m: &mut Manager, policy: &Policy, t: &ArchPolicy) -> Dd {
    let default = m.terminal(u64::from(policy.default.ret_value()));
    let table = t.arch.table();
    let mut numbers: Vec<u32> = table.syscalls.iter().map(|s| s.nr).chain(t.syscalls.keys().copied()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    let mut entries = Vec::with_capacity(numbers.len());
    for nr in numbers {
        let rules = t.syscalls.get(&nr).map_or(&[][..], |v| v.as_slice());
        let is_newer = table.by_nr(nr).is_some_and(|s| !s.since.present_in(policy.kernel));
        let fallback = match policy.newer {
            Some(newer) if rules.is_empty() && is_newer => newer,
            _ => policy.default,
        };
        let mut node = m.terminal(u64::from(fallback.ret_value()));
        for entry in rules.iter().rev() {
            let action = m.terminal(u64::from(policy.rules[entry.rule].action.ret_value()));
            let holds = match entry.cond {
                None => TRUE,
                Some(c) => cond(m, t, c)?,
            };
            node = m.ite(holds, action, node)?;
        }
        entries.push((u64::from(nr), node));
    }
    value_map(m, &word_vars(0), &entries, default)
}

/// The argument's bits as the comparison reads them: most significant first, `None` where
/// the width or the mask clears the bit.
fn arg_bits(arg: u8, keep: u64) -> Vec<Option<u16>> {
    (0..64).rev().map(|b| (keep >> b & 1 == 1).then(|| arg_var(arg, b))).collect()
}

/// The boolean function of a condition.
pub fn cond(m: &mut Manager, t: &ArchPolicy, c: CondId) -> Dd {
    match &t.conds[c] {
        CondData::And(a, b) => {
            let (a, b) = (cond(m, t, *a)?, cond(m, t, *b)?);
            m.and(a, b)
        }
        CondData::Or(a, b) => {
            let (a, b) = (cond(m, t, *a)?, cond(m, t, *b)?);
            m.or(a, b)
        }
        CondData::Not(a) => {
            let a = cond(m, t, *a)?;
            m.not(a)
        }
        CondData::In { arg, width, mask, negated, values } => {
            let keep = width.mask() & mask;
            let mut members: Vec<(u64, NodeId)> = values.iter().filter(|v| *v & !keep == 0).map(|v| (*v, TRUE)).collect();
            members.sort_unstable();
            members.dedup();
            let set = value_map(m, &arg_bits(*arg, keep), &members, FALSE)?;
            if *negated {
                m.not(set)
            } else {
                Ok(set)
            }
        }
        CondData::Cmp { arg, width, mask, op, value } => {
            let keep = width.mask() & mask;
            let bits = arg_bits(*arg, keep);
            let eq = |m: &mut Manager| {
                if value & !keep != 0 {
                    Ok(FALSE)
                } else {
                    value_map(m, &bits, &[(*value, TRUE)], FALSE)
                }
            };
            // v > value and v >= value, from the least significant bit up
            let greater = |m: &mut Manager, or_equal: bool| -> Dd {
                let mut r = if or_equal { TRUE } else { FALSE };
                for (p, var) in bits.iter().enumerate().rev() {
                    let b = (63 - p) as u32;
                    let k = value >> b & 1 == 1;
                    r = match (var, k) {
                        // bit always 0: greater only if k's bit is 0 (then lower bits decide)
                        (None, true) => FALSE,
                        (None, false) => r,
                        (Some(v), true) => m.mk(*v, FALSE, r)?,
                        (Some(v), false) => m.mk(*v, r, TRUE)?,
                    };
                }
                Ok(r)
            };
            match op {
                CmpOp::Eq => eq(m),
                CmpOp::Ne => {
                    let e = eq(m)?;
                    m.not(e)
                }
                CmpOp::Gt => greater(m, false),
                CmpOp::Ge => greater(m, true),
                CmpOp::Lt => {
                    let g = greater(m, true)?;
                    m.not(g)
                }
                CmpOp::Le => {
                    let g = greater(m, false)?;
                    m.not(g)
                }
            }
        }
    }
}

/// The `(arch, nr)` whose calls the policy allows whatever their arguments by its first
/// rule (or by an `allow` default no rule overrides): the calls the filter must answer
/// without reading arguments. A boolean function of `arch` and `nr`.
pub fn always_allowed(m: &mut Manager, policy: &Policy) -> Dd {
    let allow = |a: Action| a == Action::Allow;
    let default_allows = allow(policy.default) && policy.newer.is_none_or(allow);
    let per_target = |m: &mut Manager, t: &ArchPolicy| -> Dd {
        let mut entries: Vec<(u64, NodeId)> = Vec::new();
        for (nr, rules) in &t.syscalls {
            let yes = match rules.first() {
                Some(first) => first.cond.is_none() && allow(policy.rules[first.rule].action),
                None => default_allows,
            };
            entries.push((u64::from(*nr), if yes { TRUE } else { FALSE }));
        }
        value_map(m, &word_vars(0), &entries, if default_allows { TRUE } else { FALSE })
    };
    let mut arch_entries: Vec<(u64, NodeId)> = Vec::new();
    let mut audits: Vec<u32> = policy.targets.iter().map(|t| t.arch.table().audit_arch).collect();
    audits.sort_unstable();
    audits.dedup();
    for audit in audits {
        let mine: Vec<&ArchPolicy> = policy.targets.iter().filter(|t| t.arch.table().audit_arch == audit).collect();
        let node = match mine.as_slice() {
            [one] if one.arch != Arch::X86_64 && one.arch != Arch::X32 => per_target(m, one)?,
            _ => {
                let n = match mine.iter().find(|t| t.arch == Arch::X86_64) {
                    Some(t) => per_target(m, t)?,
                    None => FALSE,
                };
                let x = match mine.iter().find(|t| t.arch == Arch::X32) {
                    Some(t) => per_target(m, t)?,
                    None => FALSE,
                };
                let bit30 = var_of(0, X32_SYSCALL_BIT.trailing_zeros()).ok_or(OverBudget)?;
                let sel = m.literal(bit30)?;
                m.ite(sel, x, n)?
            }
        };
        arch_entries.push((u64::from(audit), node));
    }
    value_map(m, &word_vars(4), &arch_entries, FALSE)
}
