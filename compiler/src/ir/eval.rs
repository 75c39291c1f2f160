//! The reference interpreter: the language's meaning (language.md, "Meaning" and
//! "Architectures and names") in the plainest code, with no optimization. Every compiled filter
//! is checked against it, so it must stay simple enough to trust by reading.

use scpc_lang::ast::CmpOp;

use crate::abi::{Arch, X32_SYSCALL_BIT};
use crate::policy::{Action, ArchPolicy, CondData, CondId, Policy, RuleId};

/// What a policy decides for one call.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The action.
    pub action: Action,
    /// The rule that decided, or `None` for the default, `newer` or badarch action.
    pub rule: Option<RuleId>,
    /// The target architecture the call was judged as, or `None` for badarch.
    pub arch: Option<Arch>,
}

/// Which target a call belongs to: by `seccomp_data.arch`, and on x86_64 by the x32 bit.
pub fn target_of(policy: &Policy, audit_arch: u32, nr: u32) -> Option<&ArchPolicy> {
    policy.targets.iter().find(|t| {
        let table = t.arch.table();
        if table.audit_arch != audit_arch {
            return false;
        }
        match t.arch {
            Arch::X32 => nr & X32_SYSCALL_BIT != 0,
            Arch::X86_64 => nr & X32_SYSCALL_BIT == 0,
            _ => true,
        }
    })
}

/// Decides a call (`seccomp_data.arch`, `.nr`, `.args`):
/// 1. a call from an architecture that is not a target (an x32 call on x86_64 included, unless
///    x32 is a target) gets the badarch action;
/// 2. else the rules for the syscall are tried in order (own rules, then the parent's, ...);
///    the first whose condition holds decides;
/// 3. else, if no rule names the syscall and the oldest kernel does not have it yet, the
///    `newer` action, if any;
/// 4. else the default.
pub fn decide(policy: &Policy, audit_arch: u32, nr: u32, args: &[u64; 6]) -> Decision {
    let Some(target) = target_of(policy, audit_arch, nr) else {
        return Decision { action: policy.badarch, rule: None, arch: None };
    };
    let arch = Some(target.arch);
    let entries = target.syscalls.get(&nr).map_or(&[][..], |v| v.as_slice());
    for entry in entries {
        let holds = entry.cond.is_none_or(|c| holds(target, c, args));
        if holds {
            return Decision { action: policy.rules[entry.rule].action, rule: Some(entry.rule), arch };
        }
    }
    if let Some(newer) = policy.newer {
        let is_newer = target.arch.table().by_nr(nr).is_some_and(|s| !s.since.present_in(policy.kernel));
        if entries.is_empty() && is_newer {
            return Decision { action: newer, rule: None, arch };
        }
    }
    Decision { action: policy.default, rule: None, arch }
}

/// Whether a condition holds for these arguments. Each comparison reads only the bits of the
/// argument the kernel reads (its width), then applies the mask, then compares unsigned.
pub fn holds(target: &ArchPolicy, cond: CondId, args: &[u64; 6]) -> bool {
    match &target.conds[cond] {
        CondData::Cmp { arg, width, mask, op, value } => {
            let v = args[*arg as usize] & width.mask() & mask;
            match op {
                CmpOp::Eq => v == *value,
                CmpOp::Ne => v != *value,
                CmpOp::Lt => v < *value,
                CmpOp::Le => v <= *value,
                CmpOp::Gt => v > *value,
                CmpOp::Ge => v >= *value,
            }
        }
        CondData::In { arg, width, mask, negated, values } => {
            let v = args[*arg as usize] & width.mask() & mask;
            values.contains(&v) != *negated
        }
        CondData::And(a, b) => holds(target, *a, args) && holds(target, *b, args),
        CondData::Or(a, b) => holds(target, *a, args) || holds(target, *b, args),
        CondData::Not(a) => !holds(target, *a, args),
    }
}
