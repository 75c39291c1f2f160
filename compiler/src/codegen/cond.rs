//! Argument conditions to short-circuit jumps: each condition node is compiled once with a
//! true and a false target, so `&&`, `||` and `!` cost no duplication. 64-bit arguments are
//! compared high half first, then low; 32- and 16-bit ones on the low half only (masked to
//! their width), as the kernel reads them.

use scpc_lang::ast::CmpOp;

use super::{Emitter, Label};
use crate::abi::Width;
use crate::bpf::{off_arg_hi, off_arg_lo, BPF_JEQ, BPF_JGE, BPF_JGT};
use crate::policy::{ArchPolicy, CondData, CondId, Policy};

/// The code of one syscall whose decision depends on its arguments: its rules in order,
/// each condition jumping to the rule's `ret` or on to the next rule, then the default.
pub(super) fn leaf(e: &mut Emitter, policy: &Policy, target: &ArchPolicy, nr: u32) {
    let entries = target.syscalls.get(&nr).map_or(&[][..], |v| v.as_slice());
    for entry in entries {
        let ret = e.ret_label(policy.rules[entry.rule].action.ret_value());
        match entry.cond {
            None => {
                e.ja(ret);
                return;
            }
            Some(c) => {
                let next = e.label();
                cond(e, target, c, ret, next);
                e.bind(next);
            }
        }
    }
    let default = e.ret_label(policy.default.ret_value());
    e.ja(default);
}

/// Jumps to `t` if the condition holds, else to `f`.
fn cond(e: &mut Emitter, target: &ArchPolicy, c: CondId, t: Label, f: Label) {
    match &target.conds[c] {
        CondData::And(a, b) => {
            let mid = e.label();
            cond(e, target, *a, mid, f);
            e.bind(mid);
            cond(e, target, *b, t, f);
        }
        CondData::Or(a, b) => {
            let mid = e.label();
            cond(e, target, *a, t, mid);
            e.bind(mid);
            cond(e, target, *b, t, f);
        }
        CondData::Not(a) => cond(e, target, *a, f, t),
        CondData::Cmp { arg, width, mask, op, value } => compare(e, *arg, *width, *mask, *op, *value, t, f),
        CondData::In { arg, width, mask, negated, values } => {
            let (t, f) = if *negated { (f, t) } else { (t, f) };
            for (i, v) in values.iter().enumerate() {
                let miss = if i + 1 == values.len() { f } else { e.label() };
                compare(e, *arg, *width, *mask, CmpOp::Eq, *v, t, miss);
                if i + 1 < values.len() {
                    e.bind(miss);
                }
            }
        }
    }
}

/// `(args[arg] & mask) OP value` on the argument's width.
#[allow(clippy::too_many_arguments)]
fn compare(e: &mut Emitter, arg: u8, width: Width, mask: u64, op: CmpOp, value: u64, t: Label, f: Label) {
    // Normalise to ==, >, >= by swapping targets: != is !(==), < is !(>=), <= is !(>).
    let (op, t, f) = match op {
        CmpOp::Eq => (CmpOp::Eq, t, f),
        CmpOp::Ne => (CmpOp::Eq, f, t),
        CmpOp::Gt => (CmpOp::Gt, t, f),
        CmpOp::Ge => (CmpOp::Ge, t, f),
        CmpOp::Lt => (CmpOp::Ge, f, t),
        CmpOp::Le => (CmpOp::Gt, f, t),
    };
    let lo = (off_arg_lo(arg), mask as u32, value as u32);
    if width != Width::W64 {
        return word(e, lo, op, t, f);
    }
    let hi = (off_arg_hi(arg), (mask >> 32) as u32, (value >> 32) as u32);
    // 64 bits, high half first: it decides unless equal.
    let on_equal = e.label();
    match op {
        CmpOp::Eq => word(e, hi, CmpOp::Eq, on_equal, f),
        _ => {
            let not_greater = e.label();
            word(e, hi, CmpOp::Gt, t, not_greater);
            e.bind_fallthrough(not_greater);
            if hi.2 == 0 {
                // not greater than 0: equal
                e.ja(on_equal);
            } else {
                word(e, hi, CmpOp::Eq, on_equal, f);
            }
        }
    }
    e.bind(on_equal);
    word(e, lo, op, t, f);
}

/// One 32-bit comparison of `word & mask` with `k`, folded when its outcome is fixed.
fn word(e: &mut Emitter, (offset, mask, k): (u32, u32, u32), op: CmpOp, t: Label, f: Label) {
    let fixed = match op {
        _ if mask == 0 => Some(match op {
            CmpOp::Eq => k == 0,
            CmpOp::Gt => false,
            _ => k == 0,
        }),
        CmpOp::Eq if k & !mask != 0 => Some(false),
        CmpOp::Gt if k >= mask => Some(false),
        CmpOp::Ge if k == 0 => Some(true),
        CmpOp::Ge if k > mask => Some(false),
        _ => None,
    };
    if let Some(holds) = fixed {
        e.ja(if holds { t } else { f });
        return;
    }
    e.load(offset, mask);
    let code = match op {
        CmpOp::Eq => BPF_JEQ,
        CmpOp::Gt => BPF_JGT,
        _ => BPF_JGE,
    };
    e.jmp(code, k, t, f);
}
