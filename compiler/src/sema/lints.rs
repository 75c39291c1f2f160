//! Checks over whole rules: unreachable rules, conditions that always or never hold, `final`
//! guard rails, and syscalls known to widen the kernel's attack surface.

use std::collections::{BTreeMap, BTreeSet};

use cranelift_entity::PrimaryMap;
use miette::LabeledSpan;
use scpc_lang::ast::{self, CondKind};
use scpc_lang::diag::Diagnostics;
use scpc_lang::source::Span;

use super::rules::{ref_name, ChainRule};
use super::{Checker, SemaError};
use crate::abi::Arch;
use crate::ir::diagram::{Diagrams, NodeData};
use crate::policy::{Action, ArchPolicy, CondData, CondId, Policy, RuleData, RuleId};

/// Collects, over every target, whether a syscall named directly in a rule is always decided
/// first by an earlier unconditional rule of the same policy; reported once per rule.
#[derive(Default)]
pub(super) struct Shadowing {
    /// (rule, reference span, syscall) -> (targets where it exists, the earlier rule on each).
    seen: BTreeMap<(RuleId, Span, String), (usize, Vec<RuleId>)>,
}

/// How many shadowed names a diagnostic lists before "and N more".
const SHADOWED_SHOWN: usize = 8;

impl Shadowing {
    pub fn record(&mut self, rule: RuleId, span: Span, name: &str, earlier: Option<RuleId>) {
        let e = self.seen.entry((rule, span, name.to_string())).or_default();
        e.0 += 1;
        e.1.extend(earlier);
    }

    /// Warns once for every rule with references shadowed on every target where their
    /// syscalls exist, listing them, with advice that fits the two rules' actions.
    pub fn report(self, rules: &PrimaryMap<RuleId, RuleData>, diags: &mut Diagnostics) {
        // rule -> [(reference span, syscall, the earlier rule)]
        let mut by_rule: BTreeMap<RuleId, Vec<(Span, String, RuleId)>> = BTreeMap::new();
        for ((rule, span, name), (exists, earlier)) in self.seen {
            if exists > 0 && earlier.len() == exists && !earlier.contains(&rule) {
                by_rule.entry(rule).or_default().push((span, name, earlier[0]));
            }
        }
        for (rule, mut refs) in by_rule {
            refs.sort_by_key(|r| r.0);
            let names: Vec<&str> = refs.iter().map(|r| r.1.as_str()).collect();
            let mut shown: Vec<String> = names.iter().take(SHADOWED_SHOWN).map(|n| format!("`{n}`")).collect();
            if names.len() > SHADOWED_SHOWN {
                shown.push(format!("{} more", names.len() - SHADOWED_SHOWN));
            }
            let list = match shown.as_slice() {
                [one] => one.clone(),
                [init @ .., last] => format!("{} and {last}", init.join(", ")),
                [] => continue,
            };
            let mut earlier: Vec<RuleId> = refs.iter().map(|r| r.2).collect();
            earlier.sort();
            earlier.dedup();
            let action = rules[rule].action;
            let same = earlier.iter().all(|e| rules[*e].action == action);
            let whom = if names.len() == 1 { "it" } else { "them" };
            let help = if same {
                format!("the earlier rule already decides {whom} `{action}`, so this one changes nothing for {whom}: remove {list} from this rule")
            } else {
                format!(
                    "the earlier rule decides {whom} first with `{}`: to have this rule's `{action}` apply, move this rule above it, or give the earlier rule a condition that leaves {whom} out; otherwise remove {list} from this rule",
                    rules[earlier[0]].action
                )
            };
            let (first, rest) = (refs[0].0, &refs[1..]);
            let mut others: Vec<LabeledSpan> = rest.iter().map(|r| LabeledSpan::new_with_span(None, r.0)).collect();
            others.extend(earlier.iter().map(|e| LabeledSpan::new_with_span(Some("always decides first".into()), rules[*e].span)));
            diags.push(SemaError::Unreachable { syscalls: list, count: names.len(), span: first.into(), others, help });
        }
    }
}

/// Collects, over every target a rule is typed for, the `&&` and `||` conditions whose outcome
/// is fixed although neither part's is: `arg1 < 2 && arg1 >= 0x40` never holds,
/// `fd < 3 || fd > 1` always does. Decided on the condition's decision diagram, so exactly. A
/// comparison fixed on its own gets `constant_condition` where it is typed, and a combination
/// with a fixed part is not reported again.
#[derive(Default)]
pub(super) struct Combinations {
    /// condition span -> (`&&` or `||`; targets where it is fixed; targets where it was typed).
    seen: BTreeMap<Span, Combination>,
}

#[derive(Default)]
struct Combination {
    is_and: bool,
    fixed: BTreeSet<Arch>,
    typed: BTreeSet<Arch>,
}

impl Combinations {
    /// Looks at every combination in the conditions `target` holds, `cond_of` giving a rule's
    /// condition as written.
    pub fn record<'a>(&mut self, target: &ArchPolicy, cond_of: impl Fn(RuleId) -> Option<&'a ast::Cond>) {
        let entries = target.syscalls.values().flatten();
        let mut todo: Vec<(&ast::Cond, CondId)> =
            entries.filter_map(|e| Some((cond_of(e.rule)?, e.cond?))).filter(|(c, _)| is_combination(c)).collect();
        if todo.is_empty() {
            return;
        }
        let mut dd = Diagrams::new(target);
        let fixed = |dd: &mut Diagrams, c: CondId| {
            let n = dd.cond(target, c);
            matches!(dd.data(n), NodeData::Leaf(_))
        };
        while let Some((written, id)) = todo.pop() {
            let (a, b, x, y) = match (&written.kind, &target.conds[id]) {
                (CondKind::And(a, b), CondData::And(x, y)) | (CondKind::Or(a, b), CondData::Or(x, y)) => (a, b, *x, *y),
                (CondKind::Not(a), CondData::Not(x)) => {
                    todo.push((a, *x));
                    continue;
                }
                _ => continue,
            };
            let seen = self.seen.entry(written.span).or_default();
            seen.is_and = matches!(written.kind, CondKind::And(..));
            seen.typed.insert(target.arch);
            if fixed(&mut dd, id) && !fixed(&mut dd, x) && !fixed(&mut dd, y) {
                seen.fixed.insert(target.arch);
            }
            todo.extend([(&**a, x), (&**b, y)].into_iter().filter(|(c, _)| is_combination(c)));
        }
    }

    /// One warning per combination fixed on some target, naming the targets when not all.
    pub fn report(self, diags: &mut Diagnostics) {
        for (span, c) in self.seen {
            if c.fixed.is_empty() {
                continue;
            }
            let on = if c.fixed == c.typed {
                String::new()
            } else {
                format!(" on {}", c.fixed.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "))
            };
            let (outcome, why, help) = if c.is_and {
                (
                    "false",
                    "its two parts never hold together",
                    "the rule never applies: check the bounds (comparisons are unsigned, on the argument's width) or whether `||` was meant; remove the rule if it is meant",
                )
            } else {
                (
                    "true",
                    "every value satisfies one of its two parts",
                    "the condition excludes no call: check the bounds (comparisons are unsigned, on the argument's width) or whether `&&` was meant; drop the condition if it is meant",
                )
            };
            diags.push(SemaError::ConstantCombination { outcome, on, why, span: span.into(), help });
        }
    }
}

fn is_combination(c: &ast::Cond) -> bool {
    matches!(c.kind, CondKind::And(..) | CondKind::Or(..) | CondKind::Not(..))
}

/// Syscalls that widen the kernel attack surface when let through, with one line on why.
/// `clone` and `unshare` only when unconditional (a condition can exclude namespace flags).
const ATTACK_SURFACE: &[(&str, &str)] = &[
    ("ptrace", "it reads and writes other processes' memory and registers"),
    ("process_vm_readv", "it reads other processes' memory"),
    ("process_vm_writev", "it writes other processes' memory"),
    ("bpf", "eBPF programs run in the kernel; the verifier has been a steady source of exploits"),
    ("perf_event_open", "perf events expose kernel internals and have a long CVE history"),
    ("kexec_load", "it replaces the running kernel"),
    ("kexec_file_load", "it replaces the running kernel"),
    ("init_module", "it loads code into the kernel"),
    ("finit_module", "it loads code into the kernel"),
    ("delete_module", "it unloads kernel code other processes rely on"),
    ("userfaultfd", "it lets a process stall kernel threads at will, a classic exploit primitive"),
    ("keyctl", "the keyring is shared kernel state with a history of use-after-free bugs"),
    ("add_key", "the keyring is shared kernel state with a history of use-after-free bugs"),
    ("request_key", "the keyring is shared kernel state with a history of use-after-free bugs"),
    ("mount", "mounts change what every process in the namespace sees"),
    ("umount", "mounts change what every process in the namespace sees"),
    ("umount2", "mounts change what every process in the namespace sees"),
    ("fsopen", "the new mount API exposes file system parsers to the caller"),
    ("fsmount", "the new mount API exposes file system parsers to the caller"),
    ("fsconfig", "the new mount API exposes file system parsers to the caller"),
    ("move_mount", "mounts change what every process in the namespace sees"),
    ("open_tree", "mounts change what every process in the namespace sees"),
    ("pivot_root", "it changes the root file system"),
    ("setns", "it enters other namespaces"),
    ("unshare", "with CLONE_NEWUSER it creates a user namespace, opening root-only kernel code to the caller"),
    ("clone", "with CLONE_NEWUSER it creates a user namespace, opening root-only kernel code to the caller"),
    ("clone3", "its flags are in memory the filter cannot see, so namespace creation cannot be excluded"),
    ("iopl", "it grants raw access to I/O ports"),
    ("ioperm", "it grants raw access to I/O ports"),
    ("io_uring_setup", "io_uring runs I/O outside seccomp's view and has a long CVE history"),
    ("swapon", "it changes system memory management"),
    ("swapoff", "it changes system memory management"),
    ("reboot", "it reboots or halts the machine"),
    ("acct", "it writes process accounting to a file of the caller's choosing"),
];

fn surface_help(syscall: &str) -> String {
    match syscall {
        "clone" => "restrict the flags: `allow clone if clone_flags & CLONE_NEWUSER == 0`".into(),
        "unshare" => "restrict the flags: `allow unshare if unshare_flags & CLONE_NEWUSER == 0`".into(),
        "clone3" => "answer it with `errno(ENOSYS) clone3` so the C library falls back to clone".into(),
        _ => format!("deny `{syscall}` unless the service really needs it; if it does, say why in a comment"),
    }
}

/// Syscalls that a multiplexer also reaches, by the architectures that have it: the multiplexer
/// takes the call's number and arguments in memory the filter cannot read, so a rule on the
/// direct syscall does not hold there.
const MULTIPLEXERS: &[(&str, &[&str])] = &[
    (
        "socketcall",
        &[
            "socket",
            "bind",
            "connect",
            "listen",
            "accept",
            "getsockname",
            "getpeername",
            "socketpair",
            "send",
            "recv",
            "sendto",
            "recvfrom",
            "shutdown",
            "setsockopt",
            "getsockopt",
            "sendmsg",
            "recvmsg",
            "accept4",
            "recvmmsg",
            "sendmmsg",
        ],
    ),
    ("ipc", &["semop", "semget", "semctl", "semtimedop", "msgsnd", "msgrcv", "msgget", "msgctl", "shmat", "shmdt", "shmget", "shmctl"]),
];

impl<'u> Checker<'u, '_> {
    /// Warns about a rule that restricts a multiplexed syscall (with a condition, or with an
    /// action that does not let it through) on a target where its multiplexer exists and the
    /// policy lets the multiplexer through: there the restriction is bypassed.
    pub(super) fn lint_multiplexers(&mut self, policy: &Policy, chain_rules: &[ChainRule<'u>]) {
        for target in &policy.targets {
            let table = target.arch.table();
            for &(mux, reached) in MULTIPLEXERS {
                let Some(mux_sys) = table.syscall(mux) else { continue };
                let entries = target.syscalls.get(&mux_sys.nr).map_or(&[][..], |v| v.as_slice());
                let mut open = false;
                let mut decided = false;
                for e in entries {
                    open |= policy.rules[e.rule].action.lets_through();
                    if e.cond.is_none() {
                        decided = true;
                        break;
                    }
                }
                if !decided {
                    open |= policy.default.lets_through();
                }
                if !open {
                    continue;
                }
                for cr in chain_rules.iter().filter(|cr| cr.depth == 0) {
                    let restricts = cr.rule.cond.is_some() || !policy.rules[cr.id].action.lets_through();
                    if !restricts || !cr.rule.archs.is_empty() && !cr.rule.archs.iter().any(|a| a.name == target.arch.name()) {
                        continue;
                    }
                    for (name, r, _) in self.expand(&cr.rule.syscalls) {
                        if !reached.contains(&name) || table.syscall(name).is_none() {
                            continue;
                        }
                        self.diags.push(SemaError::Multiplexer {
                            syscall: name.to_string(),
                            multiplexer: mux,
                            arch: target.arch.to_string(),
                            span: r.span().into(),
                            help: format!(
                                "deny `{mux}` on {} (`errno(ENOSYS) {mux} on {}` makes the C library use the direct calls), or restrict it the same way",
                                target.arch,
                                target.arch
                            ),
                        });
                    }
                }
            }
        }
    }

    /// Warns about a rule that would deny a syscall the kernel never lets reach the filter
    /// (uretprobe and uprobe on x86_64): the rule decides nothing on kernels that pass it through.
    pub(super) fn lint_unfiltered(&mut self, policy: &Policy, chain_rules: &[ChainRule<'u>]) {
        for cr in chain_rules.iter().filter(|cr| cr.depth == 0) {
            if policy.rules[cr.id].action.lets_through() {
                continue;
            }
            for (name, r, _) in self.expand(&cr.rule.syscalls) {
                for target in &policy.targets {
                    let Some(since) = target.arch.table().syscall(name).and_then(|s| s.unfiltered_since) else { continue };
                    self.diags.push(SemaError::Unfiltered {
                        syscall: name.to_string(),
                        arch: target.arch.to_string(),
                        since: since.to_string(),
                        span: r.span().into(),
                    });
                }
            }
        }
    }

    /// Lints the policy's own rules: syscalls that widen the attack surface.
    pub(super) fn lint_own_rules(&mut self, policy: &Policy, chain_rules: &[ChainRule<'u>]) {
        for cr in chain_rules.iter().filter(|cr| cr.depth == 0) {
            let action = policy.rules[cr.id].action;
            if !action.lets_through() {
                continue;
            }
            for (name, r, direct) in self.expand(&cr.rule.syscalls) {
                let Some(&(_, why)) = ATTACK_SURFACE.iter().find(|(n, _)| *n == name) else { continue };
                let exists_on_target = policy.targets.iter().any(|t| t.arch.table().syscall(name).is_some());
                if !exists_on_target || (matches!(name, "clone" | "unshare") && cr.rule.cond.is_some()) {
                    continue;
                }
                let via = if direct { "named here".to_string() } else { format!("`{}` includes `{name}`", ref_name(r)) };
                self.diags.push(SemaError::AttackSurface {
                    action: action.to_string(),
                    syscall: name.to_string(),
                    why,
                    span: r.span().into(),
                    via,
                    help: surface_help(name),
                });
            }
        }
    }

    /// A policy may not name a syscall that a `final` rule of an ancestor covers, except with
    /// the same action. (Any condition is fine then: where the derived rule holds it decides as
    /// the final rule would, and where it does not the final rule still decides; so a derived
    /// policy can narrow a guard rail further but never loosen it.) Every layer of the chain is
    /// held to the finals above it, so a middle layer cannot loosen its parent's guard rail for
    /// the layers below it either.
    pub(super) fn check_finals(&mut self, policy: &Policy, chain_rules: &[ChainRule<'u>]) {
        let finals: Vec<&ChainRule<'u>> = chain_rules.iter().filter(|cr| cr.depth > 0 && cr.rule.final_span.is_some()).collect();
        if finals.is_empty() {
            return;
        }
        let mut covered_by: BTreeMap<usize, Vec<(&'u str, &ChainRule<'u>)>> = BTreeMap::new();
        for f in &finals {
            for (n, _, _) in self.expand(&f.rule.syscalls) {
                covered_by.entry(f.depth).or_default().push((n, f));
            }
        }
        for cr in chain_rules {
            let action = policy.rules[cr.id].action;
            for (name, r, _) in self.expand(&cr.rule.syscalls) {
                let above = covered_by.range(cr.depth + 1..).flat_map(|(_, v)| v.iter());
                let Some((_, f)) = above.filter(|(n, _)| *n == name).find(|(_, f)| policy.rules[f.id].action != action) else {
                    continue;
                };
                let f_action: Action = policy.rules[f.id].action;
                let help = format!("a derived policy may name `{name}` only with the final rule's action, `{f_action}`; remove this rule");
                self.diags.push(SemaError::FinalOverride {
                    syscall: name.to_string(),
                    layer: policy.rules[f.id].layer.clone(),
                    span: r.span().into(),
                    final_span: f.span.into(),
                    help,
                });
            }
        }
    }
}
