//! `scpc generate`: a draft least-privilege policy from what a program was seen doing.
//!
//! Reads `strace -f` logs (names and arguments), `strace -c` summaries and TSV profiles
//! (names only) and seccomp audit logs (names). The draft allows exactly the syscalls seen:
//! a stdlib group where every member the target has was seen, else one rule per syscall with
//! its call count; for arguments that policies commonly filter (socket's family, prctl's
//! option, ioctl's and fcntl's command, personality) it allows only the values seen, when
//! they are few and have names scpc knows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::abi::Arch;
use crate::import::trace::{counts, strace_args, strace_line, TraceError};

/// Arguments worth narrowing: (syscall, argument index).
const WATCHED: &[(&str, usize)] = &[("socket", 0), ("prctl", 0), ("personality", 0), ("ioctl", 1), ("fcntl", 1)];

/// The language's default `kernel >=`.
const DEFAULT_KERNEL: crate::abi::KernelVersion = crate::abi::KernelVersion::new(4, 14);

/// At most this many distinct values make an argument rule.
const MAX_VALUES: usize = 8;

/// What traces showed.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Calls per syscall name.
    pub calls: BTreeMap<String, u64>,
    /// Values seen per watched (syscall, argument), with counts, as strace spelled them.
    pub values: BTreeMap<(String, usize), BTreeMap<String, u64>>,
    /// The traces read.
    pub sources: Vec<String>,
    /// clone/unshare calls whose flags created a user namespace.
    pub new_user_namespace: BTreeSet<String>,
}

impl Observed {
    /// Adds one trace in any format `scpc profile` reads.
    pub fn add(&mut self, source: &str, text: &str) -> Result<(), TraceError> {
        for (name, count) in counts(source, text)? {
            *self.calls.entry(name).or_default() += count.round() as u64;
        }
        self.sources.push(source.to_string());
        // strace -f lines also carry arguments
        for line in text.lines() {
            let Some((name, args)) = strace_line(line.trim()) else { continue };
            if matches!(name, "clone" | "unshare" | "clone3") && args.contains("CLONE_NEWUSER") {
                self.new_user_namespace.insert(name.to_string());
            }
            let Some(&(_, index)) = WATCHED.iter().find(|(w, _)| *w == name) else { continue };
            if let Some(v) = strace_args(args).get(index).filter(|v| !v.is_empty() && !v.contains("unfinished")) {
                *self.values.entry((name.to_string(), index)).or_default().entry(v.clone()).or_default() += 1;
            }
        }
        Ok(())
    }
}

/// A stdlib group: its name and, per target, the syscalls it holds there.
#[derive(Clone, Debug)]
pub struct Group {
    /// Name without `@`.
    pub name: String,
    /// Members per architecture.
    pub members: BTreeMap<Arch, BTreeSet<&'static str>>,
}

/// The groups of `std/groups.scp`, resolved for `targets` by the real resolver.
pub fn stdlib_groups(targets: &[Arch]) -> Vec<Group> {
    let text = scpc_stdlib::get("groups.scp").unwrap_or_default();
    let names: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("group ")).filter_map(|l| l.split_once('=')).map(|(n, _)| n.trim()).collect();
    let arch_list = targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
    let mut out = Vec::new();
    for name in names {
        let probe = format!("include \"std/groups.scp\"\npolicy g {{\n  target {arch_list}\n  default kill_process\n  allow @{name}\n}}\n");
        let (checked, diags, _) = crate::check_source("generate-probe.scp", &probe);
        let Some(policy) = checked.policies.get("g").filter(|_| !diags.has_errors()) else { continue };
        let members = policy
            .targets
            .iter()
            .map(|t| (t.arch, t.syscalls.keys().filter_map(|nr| t.arch.table().by_nr(*nr)).map(|s| s.name).collect()))
            .collect();
        out.push(Group { name: name.to_string(), members });
    }
    out
}

/// Options of a draft.
#[derive(Clone, Debug)]
pub struct DraftOptions {
    /// The policy's name.
    pub name: String,
    /// Its targets.
    pub targets: Vec<Arch>,
    /// Its default action, as written in .scp.
    pub default: String,
}

/// Why `scpc generate` wrote no draft.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum GenerateError {
    /// The traces hold no call.
    #[error("the traces show no syscalls (help: trace with `strace -f -o TRACE CMD`)")]
    #[diagnostic(code(scpc::generate::no_calls))]
    NoCalls,
    /// No target was named and this machine's architecture is not one scpc knows.
    #[error("this machine's architecture is unknown: name the targets with --target")]
    #[diagnostic(code(scpc::generate::no_targets))]
    NoTargets,
    /// The draft does not check: a bad name or default action (the diagnostics say which).
    #[error("the draft does not check (see above): check --name and --default")]
    #[diagnostic(code(scpc::generate::does_not_check))]
    DoesNotCheck {
        /// What the checker said.
        diagnostics: scpc_lang::diag::Diagnostics,
        /// The draft's source map, for printing them.
        map: scpc_lang::source::SourceMap,
    },
}

/// The draft for `obs`, checked by the real checker (a bad `--name` or `--default` is caught
/// here) and in canonical form; `file` names it in diagnostics.
pub fn checked_draft(obs: &Observed, opts: &DraftOptions, file: &str) -> Result<String, GenerateError> {
    if obs.calls.is_empty() {
        return Err(GenerateError::NoCalls);
    }
    if opts.targets.is_empty() {
        return Err(GenerateError::NoTargets);
    }
    let text = draft(obs, opts);
    let (checked, diagnostics, map) = crate::check_source(file, &text);
    if diagnostics.has_errors() || !checked.policies.contains_key(&opts.name) {
        return Err(GenerateError::DoesNotCheck { diagnostics, map });
    }
    Ok(crate::session::canonical(file, text))
}

/// Writes the draft policy.
pub fn draft(obs: &Observed, opts: &DraftOptions) -> String {
    let on_every = |name: &str| opts.targets.iter().all(|a| a.table().syscall(name).is_some());
    let on_some = |name: &str| opts.targets.iter().any(|a| a.table().syscall(name).is_some());
    let seen: BTreeSet<&str> = obs.calls.keys().map(String::as_str).collect();
    // groups whose every member (on every target) was seen, largest first
    let mut groups: Vec<Group> = stdlib_groups(&opts.targets)
        .into_iter()
        .filter(|g| g.members.values().all(|m| !m.is_empty() && m.iter().all(|s| seen.contains(s))))
        .collect();
    groups.sort_by(|a, b| b.members.values().map(BTreeSet::len).sum::<usize>().cmp(&a.members.values().map(BTreeSet::len).sum()));
    let mut covered: BTreeSet<&str> = BTreeSet::new();
    let mut used_groups = Vec::new();
    for g in groups {
        let adds: BTreeSet<&str> = g.members.values().flatten().copied().filter(|s| !covered.contains(s)).collect();
        if adds.len() >= 2 {
            covered.extend(adds);
            used_groups.push(g);
        }
    }
    let total: u64 = obs.calls.values().sum();
    let mut s = String::new();
    let _ = writeln!(s, "# Draft least-privilege policy written by `scpc generate` from {}:", obs.sources.join(", "));
    let _ = writeln!(s, "# {total} calls of {} syscalls. Review it, then roll it out in steps:", obs.calls.len());
    let _ = writeln!(s, "# `scpc build --audit` first, read what it would deny with `scpc explain`, then enforce.");
    if !used_groups.is_empty() {
        let _ = writeln!(s, "include \"std/groups.scp\"");
    }
    let arch_specific: Vec<&str> = seen.iter().copied().filter(|n| !covered.contains(n) && on_some(n) && !on_every(n)).collect();
    if !arch_specific.is_empty() {
        let _ = writeln!(s, "\n# Seen syscalls that only some targets have (a group skips members a target lacks).");
        let _ = writeln!(s, "group {}-arch-specific = {}", opts.name, arch_specific.join(", "));
    }
    let _ = writeln!(s, "\npolicy {} {{", opts.name);
    let _ = writeln!(s, "  target {}", opts.targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "));
    // the oldest kernel that has every syscall the program was seen making
    let mut newest: Option<(crate::abi::KernelVersion, &str)> = None;
    for name in obs.calls.keys() {
        for a in &opts.targets {
            if let Some(crate::abi::Since::Exact(v)) = a.table().syscall(name).map(|s| s.since) {
                if v > DEFAULT_KERNEL && newest.is_none_or(|(n, _)| v > n) {
                    newest = Some((v, name.as_str()));
                }
            }
        }
    }
    if let Some((v, name)) = newest {
        let _ = writeln!(s, "  kernel >= {v}  # the program calls {name}");
    }
    let _ = writeln!(s, "  default {}", opts.default);
    for g in &used_groups {
        let members: BTreeSet<&str> = g.members.values().flatten().copied().collect();
        let calls: u64 = members.iter().filter_map(|m| obs.calls.get(*m)).sum();
        let _ = writeln!(s, "\n  # every member of @{} was seen ({calls} calls)", g.name);
        let _ = writeln!(s, "  allow @{}", g.name);
    }
    if !arch_specific.is_empty() {
        let calls: u64 = arch_specific.iter().filter_map(|m| obs.calls.get(*m)).sum();
        let _ = writeln!(s, "  allow @{}-arch-specific  # {calls} calls", opts.name);
    }
    let _ = writeln!(s);
    let mut unknown = Vec::new();
    let mut rows: Vec<(&String, &u64)> = obs.calls.iter().filter(|(n, _)| !covered.contains(n.as_str())).collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    if seen.contains("clone3") && !covered.contains("clone3") {
        // its flags are in memory the filter cannot read: C libraries fall back to clone
        let _ = writeln!(s, "  errno(ENOSYS) clone3  # {} calls; the C library falls back to clone", obs.calls["clone3"]);
    }
    for (name, count) in rows {
        if name == "clone3" {
            continue;
        }
        if !on_some(name) {
            unknown.push(name.as_str());
            continue;
        }
        if !on_every(name) {
            continue;
        }
        let plural = if *count == 1 { "" } else { "s" };
        match arg_rule(obs, name, &opts.targets).or_else(|| no_user_namespace(obs, name, &opts.targets)) {
            Some((cond, seen)) => {
                let _ = writeln!(s, "  allow {name} if {cond}  # {count} call{plural}: {seen}");
            }
            None => {
                let _ = writeln!(s, "  allow {name}  # {count} call{plural}");
            }
        }
    }
    if !unknown.is_empty() {
        let _ = writeln!(s, "\n  # seen in the trace, but not a syscall of any target: {}", unknown.join(", "));
    }
    s.push_str("}\n");
    s
}

/// `FLAGS & CLONE_NEWUSER == 0` for clone and unshare when the trace created no user namespace.
fn no_user_namespace(obs: &Observed, name: &str, targets: &[Arch]) -> Option<(String, String)> {
    if !matches!(name, "clone" | "unshare") || obs.new_user_namespace.contains(name) {
        return None;
    }
    // the flags come first on every architecture
    let param = targets.iter().find_map(|a| a.table().syscall(name).and_then(|s| s.params.first()).map(|p| p.name))?;
    Some((format!("{param} & CLONE_NEWUSER == 0"), "none created a user namespace".to_string()))
}

/// `PARAM in {VALUES}` for a watched argument whose few seen values all have names or numbers
/// every target knows, with a note of the counts.
fn arg_rule(obs: &Observed, name: &str, targets: &[Arch]) -> Option<(String, String)> {
    let &(_, index) = WATCHED.iter().find(|(w, _)| *w == name)?;
    let values = obs.values.get(&(name.to_string(), index))?;
    if values.is_empty() || values.len() > MAX_VALUES {
        return None;
    }
    let param = targets
        .iter()
        .map(|a| a.table().syscall(name).and_then(|s| s.params.get(index)).map(|p| p.name))
        .collect::<Option<BTreeSet<_>>>()?;
    let param = if param.len() == 1 { param.into_iter().next()?.to_string() } else { format!("arg{index}") };
    let known = |v: &str| {
        v.parse::<u64>().is_ok()
            || (v.starts_with("0x") && u64::from_str_radix(&v[2..], 16).is_ok())
            || targets.iter().all(|a| a.table().constant(v).is_some())
    };
    if !values.keys().all(|v| known(v)) {
        return None;
    }
    let cond = format!("{param} in {{{}}}", values.keys().cloned().collect::<Vec<_>>().join(", "));
    let seen = values.iter().map(|(v, n)| format!("{v} {n}")).collect::<Vec<_>>().join(", ");
    Some((cond, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_arguments_split_at_top_level() {
        assert_eq!(
            strace_args("AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP) = 3"),
            ["AF_INET", "SOCK_STREAM|SOCK_CLOEXEC", "IPPROTO_TCP"]
        );
        assert_eq!(strace_args("3, {st_mode=S_IFREG, st_size=5}, \"a,b)\") = 0"), ["3", "{st_mode=S_IFREG, st_size=5}", "\"a,b)\""]);
    }

    #[test]
    fn a_draft_narrows_socket_and_uses_whole_groups() {
        let trace = "1 socket(AF_INET, SOCK_STREAM, IPPROTO_TCP) = 3\n1 socket(AF_UNIX, SOCK_STREAM, 0) = 4\n\
                     1 socket(AF_INET, SOCK_DGRAM, 0) = 5\n1 fsync(3) = 0\n1 fdatasync(3) = 0\n1 sync() = 0\n\
                     1 syncfs(3) = 0\n1 sync_file_range(3, 0, 0, 0) = 0\n1 msync(0x1000, 4096, MS_SYNC) = 0\n\
                     1 ioctl(1, TCGETS, 0x7ffc) = 0\n1 ioctl(1, _IOC(_IOC_READ, 0x54, 0x13, 0x4), 0x7ffc) = 0\n";
        let mut obs = Observed::default();
        obs.add("t.txt", trace).expect("reads");
        let text = draft(&obs, &DraftOptions { name: "t".into(), targets: vec![Arch::X86_64], default: "kill_process".into() });
        assert!(text.contains("allow socket if family in {AF_INET, AF_UNIX}  # 3 calls: AF_INET 2, AF_UNIX 1"), "{text}");
        assert!(text.contains("allow @sync"), "{text}");
        assert!(!text.contains("allow fsync"), "{text}");
        assert!(text.contains("allow ioctl  # 2 calls"), "an unnamed ioctl command: no argument rule\n{text}");
        let (_, diags, _) = crate::check_source("t.scp", &text);
        assert!(!diags.has_errors(), "{diags:?}\n{text}");
    }
}
