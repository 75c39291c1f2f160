//! `--emit systemd`: a resolved policy as the `SystemCallFilter=`, `SystemCallErrorNumber=`
//! and `SystemCallArchitectures=` lines of a systemd unit (systemd.exec(5)), when systemd can
//! say exactly what the policy says, and an error listing everything it cannot otherwise.
//!
//! systemd's model: a list of syscall names, allowed (the rest denied) or, with `~`, denied
//! (the rest allowed); one deny action for the whole list, failing with
//! `SystemCallErrorNumber=` or killing the process (SIGSYS) without it; calls of an
//! architecture `SystemCallArchitectures=` does not list kill the process. So a policy it can
//! express has no argument conditions, lets a call through by `allow` only, denies with one
//! action (an errno, or kill_process), names the same syscalls on every target, kills other
//! architectures' calls (badarch kill_process), and, as an allow list, allows the calls
//! systemd always allows in one (`execve`, `exit`, `exit_group`, `getrlimit`, `rt_sigreturn`,
//! `sigreturn`, and the calls that read clocks and sleep: systemd.exec(5)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::abi::Arch;
use crate::ir::{Action, Policy};

/// Why a policy has no systemd rendering: everything systemd cannot say.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("policy `{policy}` cannot be expressed as systemd's SystemCallFilter=: {}", reasons.join("; "))]
#[diagnostic(
    code(scpc::systemd::inexpressible),
    help("systemd filters by syscall name only, with one deny action; emit bpf and load it with `scpc exec` (or scpc-node run) in ExecStart= instead")
)]
pub struct SystemdError {
    /// The policy.
    pub policy: String,
    /// What systemd cannot say, one reason each.
    pub reasons: Vec<String>,
}

/// systemd's name of an architecture (`SystemCallArchitectures=`).
pub fn systemd_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86-64",
        Arch::X32 => "x32",
        Arch::I386 => "x86",
        Arch::Aarch64 => "arm64",
        Arch::Arm => "arm",
        Arch::Riscv64 => "riscv64",
    }
}

/// Calls systemd allows in every allow list (systemd.exec(5), SystemCallFilter=).
const ALWAYS_ALLOWED: &[&str] = &[
    "execve",
    "exit",
    "exit_group",
    "getrlimit",
    "rt_sigreturn",
    "sigreturn",
    "clock_gettime",
    "clock_gettime64",
    "gettimeofday",
    "time",
    "nanosleep",
    "clock_nanosleep",
    "clock_nanosleep_time64",
];

/// The errno's name on `arch` (the shortest of its names: EAGAIN rather than EWOULDBLOCK).
fn errno_name(arch: Arch, n: u16) -> String {
    let table = arch.table();
    let mut names: Vec<&str> = table
        .constant_names()
        .filter(|c| c.starts_with('E') && c.len() > 2 && c[1..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        .filter(|c| table.constant(c) == Some(u64::from(n)))
        .collect();
    names.sort_by_key(|c| (c.len(), *c));
    names.first().map_or_else(|| n.to_string(), |c| c.to_string())
}

/// What each target decides for each syscall name, when the decision takes no argument into
/// account; reasons for the rest.
fn decisions(policy: &Policy, reasons: &mut Vec<String>) -> BTreeMap<Arch, BTreeMap<&'static str, Action>> {
    let mut out = BTreeMap::new();
    for t in &policy.targets {
        let table = t.arch.table();
        let mut names = BTreeMap::new();
        for s in table.syscalls {
            let entries = t.syscalls.get(&s.nr).map_or(&[][..], |v| v.as_slice());
            let action = match entries.first() {
                Some(e) if e.cond.is_some() => {
                    reasons.push(format!("`{}` has an argument condition on {} (systemd filters by name only)", s.name, t.arch));
                    continue;
                }
                Some(e) => policy.rules[e.rule].action,
                None if !s.since.present_in(policy.kernel) && policy.newer.is_some() => policy.newer.unwrap_or(policy.default),
                None => policy.default,
            };
            names.insert(s.name, action);
        }
        out.insert(t.arch, names);
    }
    out
}

/// The unit lines, or everything systemd cannot say.
pub fn export(policy: &Policy) -> Result<String, SystemdError> {
    let mut reasons = Vec::new();
    let per_arch = decisions(policy, &mut reasons);
    if policy.badarch != Action::KillProcess {
        reasons.push(format!("calls of other architectures get `{}` (systemd kills the process)", policy.badarch));
    }
    let allow_list = policy.default != Action::Allow;
    let deny = if allow_list { policy.default } else { Action::Allow };
    let mut denies: BTreeSet<Action> = BTreeSet::new();
    if allow_list {
        denies.insert(policy.default);
    }
    // the names listed, the same on every target where the name exists
    let mut listed: BTreeMap<&'static str, Vec<(Arch, bool)>> = BTreeMap::new();
    for (arch, names) in &per_arch {
        for (name, action) in names {
            let is_listed = match (*action, allow_list) {
                (Action::Allow, true) => true,
                (_, true) if *action == policy.default => false,
                (Action::Allow, false) => false,
                (a, false) => {
                    denies.insert(a);
                    true
                }
                (a, true) => {
                    reasons.push(format!("`{name}` gets `{a}` on {arch}, a second deny action besides the default `{}`", policy.default));
                    false
                }
            };
            listed.entry(name).or_default().push((*arch, is_listed));
        }
    }
    let lets_through_logged =
        per_arch.values().flat_map(|m| m.iter()).filter(|(_, a)| **a == Action::Log).map(|(n, _)| *n).collect::<BTreeSet<_>>();
    for n in lets_through_logged {
        reasons.push(format!("`{n}` is `log` (systemd has no logging action per call)"));
    }
    let deny_action = if allow_list { Some(deny) } else { denies.iter().next().copied() };
    if denies.len() > 1 {
        reasons.push(format!(
            "the policy denies with {} actions ({}); systemd has one",
            denies.len(),
            denies.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    match deny_action {
        Some(Action::Errno(_) | Action::KillProcess) | None => {}
        Some(a) => reasons.push(format!("the deny action `{a}`: systemd fails calls with an errno or kills the process")),
    }
    for (name, on) in &listed {
        if on.iter().any(|(_, l)| *l) && on.iter().any(|(_, l)| !*l) {
            let (yes, no): (Vec<_>, Vec<_>) = on.iter().partition(|(_, l)| *l);
            reasons.push(format!(
                "`{name}` is decided differently on {} and {} (systemd lists names for every architecture)",
                yes.iter().map(|(a, _)| a.name()).collect::<Vec<_>>().join(", "),
                no.iter().map(|(a, _)| a.name()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if allow_list {
        for name in ALWAYS_ALLOWED {
            if listed.get(name).is_some_and(|on| on.iter().all(|(_, l)| !*l)) {
                reasons.push(format!("`{name}` is denied, but systemd allows it in every allow list"));
            }
        }
    }
    if !reasons.is_empty() {
        reasons.sort();
        reasons.dedup();
        return Err(SystemdError { policy: policy.name.clone(), reasons });
    }
    let names: Vec<&str> = listed.iter().filter(|(_, on)| on.iter().any(|(_, l)| *l)).map(|(n, _)| *n).collect();
    let archs: Vec<&str> = policy.targets.iter().map(|t| systemd_arch(t.arch)).collect();
    let mut out = String::new();
    let _ = writeln!(out, "# generated by scpc from policy {}; a drop-in for the unit's [Service] section", policy.name);
    let _ = writeln!(out, "[Service]");
    let _ = writeln!(out, "SystemCallArchitectures={}", archs.join(" "));
    if names.is_empty() && allow_list {
        let _ = writeln!(out, "# every call is denied but those systemd always allows");
    }
    for chunk in names.chunks(12) {
        let _ = writeln!(out, "SystemCallFilter={}{}", if allow_list { "" } else { "~" }, chunk.join(" "));
    }
    if let Some(Action::Errno(n)) = deny_action {
        let first = policy.targets.first().map_or(Arch::X86_64, |t| t.arch);
        let _ = writeln!(out, "SystemCallErrorNumber={}", errno_name(first, n));
    }
    Ok(out)
}
