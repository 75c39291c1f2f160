//! The resolved policy: what the front end hands to the back end. For each target
//! architecture, syscall number → the rules that can decide it, in the order they are tried,
//! each with a condition already typed for that syscall on that architecture (argument index,
//! width, constants as numbers); plus the default, `newer` and badarch actions.
//!
//! Rules and conditions are [`cranelift_entity`] indices into maps owned by the policy.

use std::collections::BTreeMap;
use std::fmt;

use cranelift_entity::{entity_impl, PrimaryMap};
use scpc_lang::ast::CmpOp;
use scpc_lang::source::Span;

use crate::abi::{Arch, KernelVersion, Width};

/// A rule of the source, shared by every architecture.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(u32);
entity_impl!(RuleId, "rule");

/// A typed condition node of one architecture's policy.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CondId(u32);
entity_impl!(CondId, "cond");

/// A seccomp action with its data.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// SECCOMP_RET_ALLOW.
    Allow,
    /// SECCOMP_RET_LOG: allow, and audit.
    Log,
    /// SECCOMP_RET_ERRNO with the errno (0..=4095).
    Errno(u16),
    /// SECCOMP_RET_TRAP: SIGSYS with this si_errno.
    Trap(u16),
    /// SECCOMP_RET_TRACE: notify a ptrace tracer with this message.
    Trace(u16),
    /// SECCOMP_RET_USER_NOTIF.
    Notify,
    /// SECCOMP_RET_KILL_THREAD.
    KillThread,
    /// SECCOMP_RET_KILL_PROCESS.
    KillProcess,
}

impl Action {
    /// The value the filter returns (`SECCOMP_RET_*` | data).
    pub fn ret_value(self) -> u32 {
        match self {
            Action::KillProcess => 0x8000_0000,
            Action::KillThread => 0x0000_0000,
            Action::Trap(d) => 0x0003_0000 | d as u32,
            Action::Errno(d) => 0x0005_0000 | d as u32,
            Action::Notify => 0x7fc0_0000,
            Action::Trace(d) => 0x7ff0_0000 | d as u32,
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
        }
    }

    /// The first kernel that knows the action.
    pub fn min_kernel(self) -> KernelVersion {
        match self {
            Action::KillProcess | Action::Log => KernelVersion::new(4, 14),
            Action::Notify => KernelVersion::new(5, 0),
            _ => KernelVersion::new(3, 5),
        }
    }

    /// Whether the call goes through (possibly logged).
    pub fn lets_through(self) -> bool {
        matches!(self, Action::Allow | Action::Log)
    }

    /// The action a filter's return value stands for (the inverse of [`Action::ret_value`]);
    /// `None` for a value no kernel defines.
    pub fn from_ret_value(k: u32) -> Option<Action> {
        let data = (k & 0xffff) as u16;
        Some(match k & 0xffff_0000 {
            0x8000_0000 => Action::KillProcess,
            0x0000_0000 => Action::KillThread,
            0x0003_0000 => Action::Trap(data),
            0x0005_0000 => Action::Errno(data),
            0x7fc0_0000 => Action::Notify,
            0x7ff0_0000 => Action::Trace(data),
            0x7ffc_0000 => Action::Log,
            0x7fff_0000 => Action::Allow,
            _ => return None,
        })
    }
}

/// What a filter's return value means, as `scpc sim`, `disasm` and reports spell it
/// (`errno(13)`, `trap(0)`; an undefined value in hex).
pub fn ret_name(k: u32) -> String {
    let data = k & 0xffff;
    match Action::from_ret_value(k) {
        Some(Action::Trap(_)) => format!("trap({data})"),
        Some(a) => a.to_string(),
        None => format!("{k:#010x}"),
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => f.write_str("allow"),
            Action::Log => f.write_str("log"),
            Action::Errno(n) => write!(f, "errno({n})"),
            Action::Trap(0) => f.write_str("trap"),
            Action::Trap(n) => write!(f, "trap({n})"),
            Action::Trace(n) => write!(f, "trace({n})"),
            Action::Notify => f.write_str("notify"),
            Action::KillThread => f.write_str("kill_thread"),
            Action::KillProcess => f.write_str("kill_process"),
        }
    }
}

/// A rule as written, independent of architecture.
#[derive(Clone, Debug)]
pub struct RuleData {
    /// What it decides.
    pub action: Action,
    /// The policy (layer) it belongs to.
    pub layer: String,
    /// Whether it is a `final` guard rail.
    pub is_final: bool,
    /// The whole rule in the source.
    pub span: Span,
}

/// A typed condition node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CondData {
    /// `(args[arg] & width mask & mask) OP value`, unsigned.
    Cmp {
        /// Argument index 0..=5.
        arg: u8,
        /// The bits the kernel reads.
        width: Width,
        /// `& MASK` (already cut to the width); the width's mask when none was written.
        mask: u64,
        /// The operator.
        op: CmpOp,
        /// The right side, cut to the width.
        value: u64,
    },
    /// `(args[arg] & width mask & mask) [not] in {values}`.
    In {
        /// Argument index 0..=5.
        arg: u8,
        /// The bits the kernel reads.
        width: Width,
        /// `& MASK`, cut to the width.
        mask: u64,
        /// `not in`.
        negated: bool,
        /// The members, cut to the width, sorted, without duplicates.
        values: Vec<u64>,
    },
    /// Both.
    And(CondId, CondId),
    /// Either.
    Or(CondId, CondId),
    /// Not.
    Not(CondId),
}

/// One rule that may decide a syscall: the rule, and its condition typed for this syscall.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The rule.
    pub rule: RuleId,
    /// Its condition for this syscall; `None` always matches.
    pub cond: Option<CondId>,
}

/// A policy resolved for one architecture.
#[derive(Clone, Debug)]
pub struct ArchPolicy {
    /// The architecture.
    pub arch: Arch,
    /// Syscall number (`seccomp_data.nr`) → rules in the order they are tried: the policy's
    /// own first, then its parent's, and so on up.
    pub syscalls: BTreeMap<u32, Vec<Entry>>,
    /// The condition nodes.
    pub conds: PrimaryMap<CondId, CondData>,
}

/// A policy resolved for all its targets.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// The oldest kernel it must work on.
    pub kernel: KernelVersion,
    /// Decision when no rule matches.
    pub default: Action,
    /// Decision for syscalls no rule names that `kernel` does not have yet.
    pub newer: Option<Action>,
    /// Decision for calls of an architecture that is not a target.
    pub badarch: Action,
    /// Every rule of the chain.
    pub rules: PrimaryMap<RuleId, RuleData>,
    /// One per target, in the order of [`Arch::ALL`].
    pub targets: Vec<ArchPolicy>,
}

impl Policy {
    /// The resolved policy of one architecture, if it is a target.
    pub fn arch(&self, arch: Arch) -> Option<&ArchPolicy> {
        self.targets.iter().find(|t| t.arch == arch)
    }
}
