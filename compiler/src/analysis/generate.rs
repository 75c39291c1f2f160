//! `scpc generate`: a draft least-privilege policy from what a program was seen doing.
//!
//! Reads `strace -f` logs (names and arguments), `strace -c` summaries and TSV profiles
//! (names only) and seccomp audit logs (names). The draft allows the syscalls seen, and those
//! every program needs to end ([`ALWAYS`]: `strace -c` never lists `exit_group`): a stdlib
//! group where every member the target has is allowed, else one rule per syscall with its call
//! count; for arguments that policies commonly filter (socket's family, prctl's option,
//! ioctl's and fcntl's command, personality) it allows only the values seen, when they are few
//! and have names scpc knows. For a target other than the one traced, each call is carried to
//! the calls of its syscall families there ([`DraftOptions::trace_arch`]), with a comment per
//! mapping; a call with no equivalent there is reported ([`Unmapped`]).

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
    /// The architecture the traces were taken on (`None`: each target's own). On every other
    /// target, a traced call becomes the calls of its families the target has
    /// ([`crate::abi::equivalents`]): one the target lacks is replaced (`access` on x86_64 is
    /// `faccessat` on aarch64), one it has brings the other forms its C library may use
    /// instead, newer or older (`getuid` brings `getuid32` on arm; `ppoll` traced on aarch64
    /// brings `poll` on x86_64, whose C library makes poll(2) with it).
    pub trace_arch: Option<Arch>,
}

/// Calls every program needs to end, allowed by every draft whether traced or not (`strace -c`
/// never lists `exit_group`, which does not return).
pub const ALWAYS: &[&str] = &["exit", "exit_group", "rt_sigreturn", "restart_syscall"];

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

/// A traced call that a target has no way to make: neither the call nor one of its family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// The traced call.
    pub syscall: String,
    /// How often it was seen.
    pub calls: u64,
    /// The targets without it.
    pub archs: Vec<Arch>,
}

impl std::fmt::Display for Unmapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let archs = self.archs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        write!(
            f,
            "`{}` ({} call{}) has no equivalent on {archs}: nothing is allowed for it there; check that the program does without it on {archs}",
            self.syscall,
            self.calls,
            if self.calls == 1 { "" } else { "s" }
        )
    }
}

/// A checked draft, and the traced calls some target cannot make.
#[derive(Clone, Debug)]
pub struct Draft {
    /// The policy, in canonical form.
    pub text: String,
    /// Traced calls without an equivalent on some target (a warning each).
    pub unmapped: Vec<Unmapped>,
}

/// The draft for `obs`, checked by the real checker (a bad `--name` or `--default` is caught
/// here) and in canonical form; `file` names it in diagnostics.
pub fn checked_draft(obs: &Observed, opts: &DraftOptions, file: &str) -> Result<Draft, GenerateError> {
    if obs.calls.is_empty() {
        return Err(GenerateError::NoCalls);
    }
    if opts.targets.is_empty() {
        return Err(GenerateError::NoTargets);
    }
    let plan = Plan::of(obs, opts);
    let text = draft_of(obs, opts, &plan);
    let (checked, diagnostics, map) = crate::check_source(file, &text);
    if diagnostics.has_errors() || !checked.policies.contains_key(&opts.name) {
        return Err(GenerateError::DoesNotCheck { diagnostics, map });
    }
    Ok(Draft { text: crate::session::canonical(file, text), unmapped: plan.unmapped })
}

/// Why a draft allows a call on a target.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Why {
    /// Traced on this architecture (or the call is its own equivalent there).
    Seen,
    /// The calls of the traced call's families that the target has.
    For(String),
    /// Every program needs it to end.
    Always,
    /// The run-time of the target makes it where the traced architecture's does not.
    Runtime(&'static str),
}

/// What the draft allows on each target, and why.
struct Plan {
    allowed: BTreeMap<Arch, BTreeMap<&'static str, Why>>,
    unmapped: Vec<Unmapped>,
}

impl Plan {
    fn of(obs: &Observed, opts: &DraftOptions) -> Plan {
        let mut allowed: BTreeMap<Arch, BTreeMap<&'static str, Why>> = BTreeMap::new();
        let mut unmapped = Vec::new();
        // the traced calls, most frequent first, so that a call claims what it brings
        let mut rows: Vec<(&String, &u64)> = obs.calls.iter().collect();
        rows.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        for (name, count) in rows {
            // its flags are in memory the filter cannot read: answered ENOSYS (below)
            if name == "clone3" || !crate::abi::all_syscall_names().contains(&name.as_str()) {
                continue;
            }
            let mut missing = Vec::new();
            for &arch in &opts.targets {
                let table = arch.table();
                let native = opts.trace_arch.is_none_or(|t| t == arch);
                let own = table.syscall(name).map(|s| s.name);
                let calls: Vec<&'static str> = match own {
                    Some(own) if native => vec![own],
                    // the call, and the other forms its C library there may use instead
                    Some(own) => {
                        std::iter::once(own).chain(crate::abi::equivalents(name, arch).into_iter().filter(|c| *c != own)).collect()
                    }
                    None => crate::abi::equivalents(name, arch),
                };
                if calls.is_empty() {
                    missing.push(arch);
                }
                let entry = allowed.entry(arch).or_default();
                for c in calls {
                    let why = if own == Some(c) { Why::Seen } else { Why::For(name.clone()) };
                    entry.entry(c).or_insert(why);
                }
            }
            // a call no target has, or one only some have natively (their own rules say so)
            let foreign_missing: Vec<Arch> = missing.iter().copied().filter(|a| opts.trace_arch.is_some_and(|t| t != *a)).collect();
            if !foreign_missing.is_empty() {
                unmapped.push(Unmapped { syscall: name.clone(), calls: *count, archs: foreign_missing });
            }
        }
        if obs.calls.contains_key("clone3") {
            // answered ENOSYS, so the C library makes threads and processes with clone
            for &arch in &opts.targets {
                if let Some(s) = arch.table().syscall("clone") {
                    allowed.entry(arch).or_default().entry(s.name).or_insert(Why::For("clone3".into()));
                }
            }
        }
        for &arch in opts.targets.iter().filter(|a| opts.trace_arch.is_some_and(|t| t != **a)) {
            let entry = allowed.entry(arch).or_default();
            for call in crate::abi::runtime_calls(arch) {
                if let Some(s) = arch.table().syscall(call.syscall) {
                    entry.entry(s.name).or_insert(Why::Runtime(call.why));
                }
            }
        }
        for &arch in &opts.targets {
            let entry = allowed.entry(arch).or_default();
            for name in ALWAYS {
                if let Some(s) = arch.table().syscall(name) {
                    entry.entry(s.name).or_insert(Why::Always);
                }
            }
        }
        Plan { allowed, unmapped }
    }

    /// The calls allowed on every target.
    fn everywhere(&self) -> BTreeSet<&'static str> {
        let mut sets = self.allowed.values().map(|m| m.keys().copied().collect::<BTreeSet<_>>());
        let first = sets.next().unwrap_or_default();
        sets.fold(first, |acc, s| acc.intersection(&s).copied().collect())
    }
}

/// Writes the draft policy.
pub fn draft(obs: &Observed, opts: &DraftOptions) -> String {
    draft_of(obs, opts, &Plan::of(obs, opts))
}

fn draft_of(obs: &Observed, opts: &DraftOptions, plan: &Plan) -> String {
    let everywhere = plan.everywhere();
    // groups whose every member (on every target) is allowed there, largest first
    let mut groups: Vec<Group> = stdlib_groups(&opts.targets)
        .into_iter()
        .filter(|g| {
            g.members.iter().all(|(a, m)| !m.is_empty() && m.iter().all(|s| plan.allowed.get(a).is_some_and(|x| x.contains_key(s))))
        })
        .collect();
    groups.sort_by(|a, b| b.members.values().map(BTreeSet::len).sum::<usize>().cmp(&a.members.values().map(BTreeSet::len).sum()));
    let mut covered: BTreeSet<(Arch, &str)> = BTreeSet::new();
    let mut used_groups = Vec::new();
    for g in groups {
        let adds: BTreeSet<(Arch, &str)> =
            g.members.iter().flat_map(|(a, m)| m.iter().map(move |s| (*a, *s))).filter(|k| !covered.contains(k)).collect();
        if adds.len() >= 2 {
            covered.extend(adds);
            used_groups.push(g);
        }
    }
    let is_covered = |name: &str| opts.targets.iter().all(|a| covered.contains(&(*a, name)) || !plan.allowed[a].contains_key(name));
    let total: u64 = obs.calls.values().sum();
    let mut s = String::new();
    let _ = writeln!(s, "# Draft least-privilege policy written by `scpc generate` from {}:", obs.sources.join(", "));
    let _ = writeln!(s, "# {total} calls of {} syscalls. Review it, then roll it out in steps:", obs.calls.len());
    let _ = writeln!(s, "# `scpc build --audit` first, read what it would deny with `scpc explain`, then enforce.");
    if let Some(t) = opts.trace_arch.filter(|t| opts.targets.iter().any(|a| a != t)) {
        let _ = writeln!(
            s,
            "# Traced on {t}: on the other targets each traced call is allowed as the calls of its families there (compiler/abi-sources/families.tsv)."
        );
    }
    if !used_groups.is_empty() {
        let _ = writeln!(s, "include \"std/groups.scp\"");
    }
    let _ = writeln!(s, "\npolicy {} {{", opts.name);
    let _ = writeln!(s, "  target {}", opts.targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "));
    // the oldest kernel that has every syscall the draft allows
    let mut newest: Option<(crate::abi::KernelVersion, &str)> = None;
    for (a, names) in &plan.allowed {
        for name in names.keys() {
            if let Some(crate::abi::Since::Exact(v)) = a.table().syscall(name).map(|s| s.since) {
                if v > DEFAULT_KERNEL && newest.is_none_or(|(n, _)| v > n) {
                    newest = Some((v, name));
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
        let _ = writeln!(s, "\n  # every member of @{} is allowed ({calls} calls)", g.name);
        let _ = writeln!(s, "  allow @{}", g.name);
    }
    let _ = writeln!(s);
    let user_ns = |name: &str| obs.new_user_namespace.contains(name) || obs.new_user_namespace.contains("clone3");
    if obs.calls.contains_key("clone3") {
        let _ = writeln!(s, "  errno(ENOSYS) clone3  # {} calls; the C library falls back to clone", obs.calls["clone3"]);
    }
    // calls allowed on every target, most frequent first
    let mut common: Vec<&'static str> = everywhere.iter().copied().filter(|n| !is_covered(n)).collect();
    let count = |n: &str| obs.calls.get(n).copied().unwrap_or(0);
    common.sort_by(|a, b| count(b).cmp(&count(a)).then_with(|| a.cmp(b)));
    for name in &common {
        let whys: BTreeSet<&Why> = plan.allowed.values().filter_map(|m| m.get(name)).collect();
        let note = why_note(obs, &whys, name);
        match arg_rule(obs, name, &opts.targets).or_else(|| no_user_namespace(name, &opts.targets, user_ns(name))) {
            Some((cond, seen)) => {
                let _ = writeln!(s, "  allow {name} if {cond}  # {note}: {seen}");
            }
            None => {
                let _ = writeln!(s, "  allow {name}  # {note}");
            }
        }
    }
    // calls allowed on some targets only: one rule per reason and set of architectures
    let mut rest: BTreeMap<(Why, Vec<Arch>), Vec<&'static str>> = BTreeMap::new();
    let mut by_name: BTreeMap<(&'static str, Why), Vec<Arch>> = BTreeMap::new();
    for (a, names) in &plan.allowed {
        for (name, why) in names {
            if !everywhere.contains(name) && !covered.contains(&(*a, *name)) {
                by_name.entry((name, why.clone())).or_default().push(*a);
            }
        }
    }
    for ((name, why), archs) in by_name {
        rest.entry((why, archs)).or_default().push(name);
    }
    if !rest.is_empty() {
        let _ = writeln!(s, "\n  # Calls of some targets only.");
    }
    for ((why, archs), names) in rest {
        let on = archs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
        if why == Why::Seen {
            // traced calls the other targets lack: each with its own count
            for name in &names {
                let note = why_note(obs, &[&why].into(), name);
                let _ = writeln!(s, "  allow {name} on {on}  # {note}");
            }
            continue;
        }
        let note = match &why {
            Why::Seen => String::new(),
            Why::For(from) => {
                let traced = opts.trace_arch.map_or(String::new(), |t| format!(" on {t}"));
                format!("{from} ({} call{}{traced}) is done with these on {on}", count(from), if count(from) == 1 { "" } else { "s" })
            }
            Why::Always => "every program needs these to end".to_string(),
            Why::Runtime(why) => (*why).to_string(),
        };
        let (clones, others): (Vec<&str>, Vec<&str>) = names.iter().partition(|n| matches!(**n, "clone" | "unshare"));
        if !others.is_empty() {
            let _ = writeln!(s, "  allow {} on {on}  # {note}", others.join(", "));
        }
        for c in clones {
            match no_user_namespace(c, &archs, user_ns(c)) {
                Some((cond, seen)) => {
                    let _ = writeln!(s, "  allow {c} on {on} if {cond}  # {note}; {seen}");
                }
                None => {
                    let _ = writeln!(s, "  allow {c} on {on}  # {note}");
                }
            }
        }
    }
    let unknown: Vec<&str> =
        obs.calls.keys().map(String::as_str).filter(|n| !crate::abi::all_syscall_names().contains(n) && *n != "clone3").collect();
    if !unknown.is_empty() {
        let _ = writeln!(s, "\n  # seen in the trace, but not a syscall of any architecture: {}", unknown.join(", "));
    }
    for u in &plan.unmapped {
        let _ = writeln!(s, "\n  # {u}");
    }
    s.push_str("}\n");
    s
}

/// The comment of an allowed call: its count, or why it is there untraced.
fn why_note(obs: &Observed, whys: &BTreeSet<&Why>, name: &str) -> String {
    let n = obs.calls.get(name).copied().unwrap_or(0);
    if n > 0 {
        return format!("{n} call{}", if n == 1 { "" } else { "s" });
    }
    match whys.iter().next() {
        Some(Why::For(from)) => format!("does {from}'s work here"),
        Some(Why::Always) => "every program needs it to end".to_string(),
        Some(Why::Runtime(why)) => (*why).to_string(),
        _ => "0 calls".to_string(),
    }
}

/// `FLAGS & CLONE_NEWUSER == 0` for clone and unshare when the trace created no user namespace
/// (`created`: it did).
fn no_user_namespace(name: &str, targets: &[Arch], created: bool) -> Option<(String, String)> {
    if !matches!(name, "clone" | "unshare") || created {
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
    let param = targets.iter().map(|a| a.table().syscall(name).map(|s| s.arg_name(index as u8))).collect::<Option<BTreeSet<_>>>()?;
    let param = if param.len() == 1 { param.into_iter().next()? } else { format!("arg{index}") };
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
        let text =
            draft(&obs, &DraftOptions { name: "t".into(), targets: vec![Arch::X86_64], default: "kill_process".into(), trace_arch: None });
        assert!(text.contains("allow socket if family in {AF_INET, AF_UNIX}  # 3 calls: AF_INET 2, AF_UNIX 1"), "{text}");
        assert!(text.contains("allow @sync"), "{text}");
        assert!(!text.contains("allow fsync"), "{text}");
        assert!(text.contains("allow ioctl  # 2 calls"), "an unnamed ioctl command: no argument rule\n{text}");
        let (_, diags, _) = crate::check_source("t.scp", &text);
        assert!(!diags.has_errors(), "{diags:?}\n{text}");
    }

    #[test]
    fn a_trace_is_carried_to_other_targets_through_the_families() {
        let trace = "1 access(\"/etc/ld.so.preload\", R_OK) = -1 ENOENT\n1 poll([{fd=3, events=POLLIN}], 1, 100) = 1\n\
                     1 open(\"/etc/x\", O_RDONLY) = 3\n1 arch_prctl(ARCH_SET_FS, 0x7f) = 0\n1 getuid() = 0\n1 read(3, \"\", 1) = 0\n";
        let mut obs = Observed::default();
        obs.add("t.txt", trace).expect("reads");
        let opts = DraftOptions {
            name: "t".into(),
            targets: vec![Arch::X86_64, Arch::Aarch64, Arch::Arm],
            default: "kill_process".into(),
            trace_arch: Some(Arch::X86_64),
        };
        let draft = checked_draft(&obs, &opts, "t.scp").expect("checks");
        let (checked, diags, _) = crate::check_source("t.scp", &draft.text);
        assert!(!diags.has_errors() && diags.warning_count() == 0, "{diags:?}\n{}", draft.text);
        let p = &checked.policies["t"];
        let allowed = |arch: Arch, name: &str| {
            let t = arch.table();
            crate::eval::decide(p, t.audit_arch, t.syscall(name).expect(name).nr, &[0; 6]).action == crate::policy::Action::Allow
        };
        // on x86_64, exactly the trace (and what every program needs to end)
        for (name, yes) in [("access", true), ("poll", true), ("open", true), ("faccessat", false), ("ppoll", false), ("exit_group", true)]
        {
            assert_eq!(allowed(Arch::X86_64, name), yes, "x86_64 {name}\n{}", draft.text);
        }
        // elsewhere, what does the same there
        for name in ["faccessat", "faccessat2", "ppoll", "openat", "exit_group", "rt_sigreturn"] {
            assert!(allowed(Arch::Aarch64, name), "aarch64 {name}\n{}", draft.text);
        }
        assert!(allowed(Arch::Arm, "getuid32") && allowed(Arch::Arm, "getuid"), "{}", draft.text);
        assert!(draft.text.contains("access (1 call on x86_64) is done with these on aarch64"), "{}", draft.text);
        // a call with no equivalent: reported, and nothing in its place
        assert_eq!(draft.unmapped, [Unmapped { syscall: "arch_prctl".into(), calls: 1, archs: vec![Arch::Aarch64, Arch::Arm] }]);
        assert!(draft.text.contains("`arch_prctl` (1 call) has no equivalent on aarch64, arm"), "{}", draft.text);
    }

    /// The other way round: a trace taken on aarch64 (whose C library makes poll(2) with
    /// `ppoll` and access(2) with `faccessat`) drafted for x86_64, whose C library makes them
    /// with `poll` and `access`: the older forms are carried too, or the draft kills there.
    #[test]
    fn an_arm_trace_carries_the_older_forms_to_x86() {
        let trace = "1 ppoll([{fd=3, events=POLLIN}], 1, NULL, NULL, 8) = 1\n1 faccessat(AT_FDCWD, \"/x\", R_OK) = 0\n\
                     1 openat(AT_FDCWD, \"/x\", O_RDONLY) = 3\n1 newfstatat(3, \"\", {}, AT_EMPTY_PATH) = 0\n1 read(3, \"\", 1) = 0\n";
        let mut obs = Observed::default();
        obs.add("t.txt", trace).expect("reads");
        let opts = DraftOptions {
            name: "t".into(),
            targets: vec![Arch::Aarch64, Arch::X86_64],
            default: "kill_process".into(),
            trace_arch: Some(Arch::Aarch64),
        };
        let draft = checked_draft(&obs, &opts, "t.scp").expect("checks");
        let (checked, diags, _) = crate::check_source("t.scp", &draft.text);
        assert!(!diags.has_errors() && diags.warning_count() == 0, "{diags:?}\n{}", draft.text);
        let p = &checked.policies["t"];
        let allowed = |arch: Arch, name: &str| {
            let t = arch.table();
            crate::eval::decide(p, t.audit_arch, t.syscall(name).expect(name).nr, &[0; 6]).action == crate::policy::Action::Allow
        };
        for name in ["poll", "ppoll", "access", "faccessat", "open", "openat", "stat", "fstat", "newfstatat", "read"] {
            assert!(allowed(Arch::X86_64, name), "x86_64 {name}\n{}", draft.text);
        }
        // on the traced architecture, the trace only
        assert!(!allowed(Arch::Aarch64, "faccessat2") && !allowed(Arch::Aarch64, "openat2"), "{}", draft.text);
        assert!(draft.unmapped.is_empty(), "{:?}", draft.unmapped);
    }
}
