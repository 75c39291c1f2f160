//! `--emit oci`: a resolved policy as a Docker/OCI seccomp JSON profile, when the format can
//! say exactly the same thing, and a clear error naming what it cannot say otherwise.
//!
//! The format's model is flatter than the language's: per syscall name (the same on every
//! architecture), entries whose argument comparisons are all ANDed, entries ORed, one action
//! per entry, no order, a default action, no `badarch` or `newer`. libseccomp compares all
//! 64 bits of an argument, so a 32-bit argument is exported as a masked comparison of its
//! low half (exact for `==`), and ordered comparisons of 32-bit arguments are refused (the
//! upper half would count).

use std::collections::BTreeMap;

use scpc_lang::ast::CmpOp;
use serde_json::{json, Value};

use crate::abi::{Arch, Width};
use crate::policy::{Action, ArchPolicy, CondData, CondId, Policy};

/// Why a policy has no exact OCI rendering.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("policy `{policy}` cannot be expressed as an OCI seccomp profile: {reason}")]
#[diagnostic(
    code(scpc::oci::inexpressible),
    help("emit bpf instead, or simplify the rule so that each syscall has one non-default action and conditions the format can compare")
)]
pub struct ExportError {
    /// The policy.
    pub policy: String,
    /// What the format cannot say.
    pub reason: Inexpressible,
}

/// What the Docker/OCI format cannot say.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inexpressible {
    /// An action with data the format has no field for (`trap(N)`, `trace(N)`).
    #[error("`{action}` carries data the format has no field for")]
    ActionData {
        /// The action.
        action: Action,
    },
    /// A masked comparison other than `==` (the format compares all 64 bits).
    #[error("`arg{arg} & {mask:#x} {} {value:#x}`: the format compares all 64 bits and masks only with ==", op.symbol())]
    MaskedCompare {
        /// The argument.
        arg: u8,
        /// The mask (the argument's width included).
        mask: u64,
        /// The operator.
        op: CmpOp,
        /// The value.
        value: u64,
    },
    /// A condition whose normal form has too many terms.
    #[error("the condition needs more than {MAX_TERMS} entries in the format")]
    TooManyTerms,
    /// A syscall with one action under conditions and another otherwise.
    #[error(
        "`{syscall}` is `{conditional}` under conditions and `{otherwise}` otherwise; the format has one action per entry and no order"
    )]
    TwoLevels {
        /// The syscall.
        syscall: String,
        /// The action under conditions.
        conditional: Action,
        /// The action otherwise.
        otherwise: Action,
    },
    /// A conditional rule that gives the default action before other rules.
    #[error("a conditional rule of `{syscall}` gives the default action before other rules; the format has no order")]
    DefaultFirst {
        /// The syscall.
        syscall: String,
    },
    /// A condition of a syscall the format cannot say.
    #[error("`{syscall}`: {reason}")]
    Condition {
        /// The syscall.
        syscall: String,
        /// Why.
        reason: Box<Inexpressible>,
    },
    /// Rules with two different actions for one syscall.
    #[error("`{syscall}` has rules with two different actions (`{first}`, `{second}`)")]
    TwoActions {
        /// The syscall.
        syscall: String,
        /// One action.
        first: Action,
        /// The other.
        second: Action,
    },
    /// A badarch action other than kill_process.
    #[error("`badarch {action}`: the format has no action for other architectures")]
    Badarch {
        /// The action.
        action: Action,
    },
    /// A `newer` action other than the default.
    #[error("`newer`: the format has no notion of the oldest kernel")]
    Newer,
    /// A syscall decided differently on two targets.
    #[error("`{syscall}` is decided differently on {first} and {second}")]
    ArchDiffers {
        /// The syscall.
        syscall: String,
        /// One architecture.
        first: String,
        /// The other.
        second: Arch,
    },
}

/// One argument comparison of the format.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Atom {
    index: u8,
    op: &'static str,
    value: u64,
    value_two: u64,
}

/// A syscall's meaning in the format: `action` when any conjunction holds (an empty one
/// always holds).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Decision {
    action: Action,
    dnf: Vec<Vec<Atom>>,
}

const MAX_TERMS: usize = 64;

fn action_json(a: Action) -> Result<(&'static str, Option<u16>), Inexpressible> {
    Ok(match a {
        Action::Allow => ("SCMP_ACT_ALLOW", None),
        Action::Log => ("SCMP_ACT_LOG", None),
        Action::Errno(n) => ("SCMP_ACT_ERRNO", Some(n)),
        Action::Trap(0) => ("SCMP_ACT_TRAP", None),
        Action::Trace(0) => ("SCMP_ACT_TRACE", None),
        Action::Notify => ("SCMP_ACT_NOTIFY", None),
        Action::KillThread => ("SCMP_ACT_KILL_THREAD", None),
        Action::KillProcess => ("SCMP_ACT_KILL_PROCESS", None),
        Action::Trap(_) | Action::Trace(_) => return Err(Inexpressible::ActionData { action: a }),
    })
}

fn arch_json(a: Arch) -> &'static str {
    match a {
        Arch::X86_64 => "SCMP_ARCH_X86_64",
        Arch::X32 => "SCMP_ARCH_X32",
        Arch::I386 => "SCMP_ARCH_X86",
        Arch::Aarch64 => "SCMP_ARCH_AARCH64",
        Arch::Arm => "SCMP_ARCH_ARM",
        Arch::Riscv64 => "SCMP_ARCH_RISCV64",
    }
}

/// A comparison, possibly negated, as atoms ORed (the outer Vec) of atoms ANDed.
fn compare(arg: u8, width: Width, mask: u64, op: CmpOp, value: u64, negated: bool) -> Result<Vec<Vec<Atom>>, Inexpressible> {
    let op = if negated {
        match op {
            CmpOp::Eq => CmpOp::Ne,
            CmpOp::Ne => CmpOp::Eq,
            CmpOp::Lt => CmpOp::Ge,
            CmpOp::Ge => CmpOp::Lt,
            CmpOp::Le => CmpOp::Gt,
            CmpOp::Gt => CmpOp::Le,
        }
    } else {
        op
    };
    let full = mask == u64::MAX && width == Width::W64;
    let atom = |op: &'static str, value: u64, value_two: u64| vec![vec![Atom { index: arg, op, value, value_two }]];
    if full {
        let name = match op {
            CmpOp::Eq => "SCMP_CMP_EQ",
            CmpOp::Ne => "SCMP_CMP_NE",
            CmpOp::Lt => "SCMP_CMP_LT",
            CmpOp::Le => "SCMP_CMP_LE",
            CmpOp::Gt => "SCMP_CMP_GT",
            CmpOp::Ge => "SCMP_CMP_GE",
        };
        return Ok(atom(name, value, 0));
    }
    match op {
        CmpOp::Eq => Ok(atom("SCMP_CMP_MASKED_EQ", mask, value)),
        // a single bit: `x & b != 0` is `x & b == b`, and `x & b != b` is `x & b == 0`
        CmpOp::Ne if mask.count_ones() == 1 && (value == 0 || value == mask) => Ok(atom("SCMP_CMP_MASKED_EQ", mask, mask ^ value)),
        _ => Err(Inexpressible::MaskedCompare { arg, mask, op, value }),
    }
}

fn or(a: Vec<Vec<Atom>>, b: Vec<Vec<Atom>>) -> Vec<Vec<Atom>> {
    let mut out = a;
    out.extend(b);
    out
}

fn and(a: &[Vec<Atom>], b: &[Vec<Atom>]) -> Result<Vec<Vec<Atom>>, Inexpressible> {
    if a.len() * b.len() > MAX_TERMS {
        return Err(Inexpressible::TooManyTerms);
    }
    Ok(a.iter().flat_map(|x| b.iter().map(move |y| x.iter().chain(y).cloned().collect())).collect())
}

/// Disjunctive normal form of a condition (negation pushed down to the comparisons).
fn dnf(t: &ArchPolicy, c: CondId, negated: bool) -> Result<Vec<Vec<Atom>>, Inexpressible> {
    match &t.conds[c] {
        CondData::Not(a) => dnf(t, *a, !negated),
        CondData::And(a, b) | CondData::Or(a, b) => {
            let is_and = matches!(t.conds[c], CondData::And(..)) != negated;
            let (x, y) = (dnf(t, *a, negated)?, dnf(t, *b, negated)?);
            if is_and {
                and(&x, &y)
            } else {
                Ok(or(x, y))
            }
        }
        CondData::Cmp { arg, width, mask, op, value } => compare(*arg, *width, *mask, *op, *value, negated),
        CondData::In { arg, width, mask, negated: not_in, values } => {
            // in: any equal; not in: all different (and negations swap the two)
            let all_different = *not_in != negated;
            let mut acc: Vec<Vec<Atom>> = if all_different { vec![vec![]] } else { vec![] };
            for v in values {
                let atom = compare(*arg, *width, *mask, CmpOp::Eq, *v, all_different)?;
                acc = if all_different { and(&acc, &atom)? } else { or(acc, atom) };
            }
            Ok(acc)
        }
    }
}

/// The decision of one syscall of one architecture in the format's terms.
fn decision(policy: &Policy, t: &ArchPolicy, nr: u32) -> Result<Option<Decision>, Inexpressible> {
    let Some(entries) = t.syscalls.get(&nr) else { return Ok(None) };
    let mut conditional: Option<Decision> = None;
    for e in entries {
        let action = policy.rules[e.rule].action;
        let Some(c) = e.cond else {
            return match conditional {
                None if action == policy.default => Ok(None),
                None => Ok(Some(Decision { action, dnf: vec![vec![]] })),
                Some(d) if action == policy.default => Ok(Some(d)),
                Some(d) => Err(Inexpressible::TwoLevels { syscall: name_of(t, nr), conditional: d.action, otherwise: action }),
            };
        };
        if action == policy.default {
            return Err(Inexpressible::DefaultFirst { syscall: name_of(t, nr) });
        }
        let terms = dnf(t, c, false).map_err(|r| Inexpressible::Condition { syscall: name_of(t, nr), reason: Box::new(r) })?;
        match &mut conditional {
            None => conditional = Some(Decision { action, dnf: terms }),
            Some(d) if d.action == action => d.dnf.extend(terms),
            Some(d) => return Err(Inexpressible::TwoActions { syscall: name_of(t, nr), first: d.action, second: action }),
        }
    }
    Ok(conditional)
}

fn name_of(t: &ArchPolicy, nr: u32) -> String {
    t.arch.table().by_nr(nr).map_or(nr.to_string(), |s| s.name.to_string())
}

/// The profile as pretty JSON, or why it cannot be written.
pub fn export(policy: &Policy) -> Result<String, ExportError> {
    let err = |reason: Inexpressible| ExportError { policy: policy.name.clone(), reason };
    if policy.badarch != Action::KillProcess {
        return Err(err(Inexpressible::Badarch { action: policy.badarch }));
    }
    if policy.newer.is_some_and(|n| n != policy.default) {
        return Err(err(Inexpressible::Newer));
    }
    // name -> (decision, the architectures that have it)
    let mut by_name: BTreeMap<&str, (Option<Decision>, Vec<Arch>)> = BTreeMap::new();
    for t in &policy.targets {
        for s in t.arch.table().syscalls {
            let d = decision(policy, t, s.nr).map_err(err)?;
            let slot = by_name.entry(s.name).or_insert_with(|| (d.clone(), Vec::new()));
            if slot.0 != d {
                return Err(err(Inexpressible::ArchDiffers {
                    syscall: s.name.to_string(),
                    first: slot.1.first().map_or("?", |a| a.name()).to_string(),
                    second: t.arch,
                }));
            }
            slot.1.push(t.arch);
        }
    }
    let (default, default_errno) = action_json(policy.default).map_err(err)?;
    let mut plain: BTreeMap<Action, Vec<&str>> = BTreeMap::new();
    let mut entries: Vec<Value> = Vec::new();
    for (name, (d, _)) in &by_name {
        let Some(d) = d else { continue };
        if d.dnf.iter().any(Vec::is_empty) {
            plain.entry(d.action).or_default().push(name);
            continue;
        }
        let (action, errno) = action_json(d.action).map_err(err)?;
        let mut terms = d.dnf.clone();
        terms.sort();
        terms.dedup();
        for conj in terms {
            let args: Vec<Value> =
                conj.iter().map(|a| json!({"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op})).collect();
            let mut e = json!({"names": [name], "action": action, "args": args});
            if let Some(n) = errno {
                e["errnoRet"] = json!(n);
            }
            entries.push(e);
        }
    }
    let mut syscalls: Vec<Value> = Vec::new();
    for (a, names) in plain {
        let (action, errno) = action_json(a).map_err(err)?;
        let mut e = json!({"names": names, "action": action});
        if let Some(n) = errno {
            e["errnoRet"] = json!(n);
        }
        syscalls.push(e);
    }
    syscalls.extend(entries);
    let mut profile = json!({
        "defaultAction": default,
        "architectures": policy.targets.iter().map(|t| arch_json(t.arch)).collect::<Vec<_>>(),
        "syscalls": syscalls,
    });
    if let Some(n) = default_errno {
        profile["defaultErrnoRet"] = json!(n);
    }
    Ok(serde_json::to_string_pretty(&profile).expect("a JSON value always serializes") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_text(text: &str) -> Result<Value, String> {
        let (checked, diags, _) = crate::check_source("o.scp", text);
        assert!(!diags.has_errors(), "{diags:?}");
        export(&checked.policies["p"]).map(|s| serde_json::from_str(&s).expect("json")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_simple_policy_exports_exactly() {
        let v = export_text(
            "policy p {\n target x86_64, aarch64\n default errno(EPERM)\n allow read, write, close\n\
             allow socket if family in {AF_UNIX, AF_INET}\n allow mprotect if prot & PROT_EXEC == 0\n allow openat if flags & O_CREAT != 0\n}\n",
        )
        .expect("exportable");
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(v["architectures"], json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]));
        assert_eq!(v["syscalls"][0], json!({"names": ["close", "read", "write"], "action": "SCMP_ACT_ALLOW"}));
        let socket: Vec<&Value> = v["syscalls"].as_array().expect("list").iter().filter(|e| e["names"][0] == "socket").collect();
        assert_eq!(socket.len(), 2, "one entry per family");
        assert_eq!(
            socket[0]["args"][0],
            json!({"index": 0, "value": 0xffff_ffffu64, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}),
            "32-bit: low half only"
        );
        let mprotect = v["syscalls"].as_array().expect("list").iter().find(|e| e["names"][0] == "mprotect").expect("mprotect");
        assert_eq!(mprotect["args"][0], json!({"index": 2, "value": 4, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}));
        let openat = v["syscalls"].as_array().expect("list").iter().find(|e| e["names"][0] == "openat").expect("openat");
        assert_eq!(openat["args"][0]["op"], "SCMP_CMP_MASKED_EQ", "a single-bit != becomes a masked ==");
        assert_eq!(openat["args"][0]["value"], openat["args"][0]["valueTwo"]);
    }

    #[test]
    fn what_the_format_cannot_say_is_refused() {
        let refuse = |body: &str, why: &str| {
            let text = format!("policy p {{\n target x86_64\n default errno(EPERM)\n{body}\n}}\n");
            let e = export_text(&text).expect_err(body);
            assert!(e.contains(why), "{body}: {e}");
        };
        refuse(" allow read if fd < 3", "compares all 64 bits");
        refuse(" allow openat if flags & O_ACCMODE != O_RDONLY", "masks only with ==");
        refuse(" errno(EACCES) openat if flags & O_CREAT != 0\n allow openat", "one action per entry");
        refuse(" allow read if fd == 0\n errno(5) read if fd == 1", "two different actions");
        refuse(" badarch errno(1)", "other architectures");
        refuse(" trap(5) ptrace", "carries data");
    }
}
