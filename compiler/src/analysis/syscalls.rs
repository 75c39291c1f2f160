//! `scpc syscalls` and `scpc groups`: the ABI tables and the stdlib's groups, looked up.
//!
//! A syscall is found by name or by number (`seccomp_data.nr`, decimal or `0x`) on one
//! architecture, as `scmp_sys_resolver -a ARCH NAME|NUMBER` finds it, with what the tables
//! know besides: its signature (parameter types, names and the registers a 32-bit
//! architecture passes a 64-bit value in), the first kernel that has it, the kernel option it
//! depends on, and the groups of `std/groups.scp` that hold it there. Groups are resolved per
//! architecture by the checker itself (a one-line policy `allow @NAME` per group), so what
//! `scpc groups` lists is exactly what a policy naming the group gets.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::abi::{Arch, Syscall};
use crate::analysis::generate::stdlib_groups;

/// One syscall of one architecture, as `scpc syscalls` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyscallInfo {
    /// The architecture.
    pub arch: &'static str,
    /// `seccomp_data.nr` (x32 numbers include the x32 bit).
    pub nr: u32,
    /// The name.
    pub name: &'static str,
    /// `openat(int dfd, const char *filename, int flags, umode_t mode)`; `name(?)` when the
    /// tables do not know the signature.
    pub signature: String,
    /// The first kernel with it (`5.6`, `2.6.16 or earlier`, ...).
    pub since: String,
    /// The kernel option it depends on ("" when none).
    pub kconfig: &'static str,
    /// The last kernel whose tables have it, when it was removed.
    pub removed_after: Option<String>,
    /// The kernel from which x86_64 lets it through without running any filter.
    pub unfiltered_since: Option<String>,
    /// The groups of `std/groups.scp` that hold it on this architecture (`@basic-io`).
    pub groups: Vec<String>,
}

/// A group of `std/groups.scp` on one architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// `@name`.
    pub name: String,
    /// What it is for (the comment above it in `std/groups.scp`).
    pub description: String,
    /// The architecture.
    pub arch: &'static str,
    /// Its members there, sorted.
    pub members: Vec<&'static str>,
}

/// A name or number no syscall of the architecture has, or a group the stdlib lacks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum LookupError {
    /// No syscall of that name.
    #[error("`{query}` is not a syscall of {arch}{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    #[diagnostic(code(scpc::syscalls::unknown_name), help("`scpc syscalls --arch {arch}` lists them all"))]
    UnknownName {
        /// What was asked.
        query: String,
        /// The architecture.
        arch: Arch,
        /// The closest name, if any is close.
        suggestion: Option<String>,
    },
    /// No syscall of that number.
    #[error("no syscall of {arch} has the number {nr}")]
    #[diagnostic(code(scpc::syscalls::unknown_number), help("numbers are seccomp_data.nr: x32's include the x32 bit (0x40000000)"))]
    UnknownNumber {
        /// The number.
        nr: u32,
        /// The architecture.
        arch: Arch,
    },
    /// No group of that name.
    #[error("`{query}` is not a group of std/groups.scp{}", suggestion.as_ref().map(|s| format!(" (did you mean `@{s}`?)")).unwrap_or_default())]
    #[diagnostic(code(scpc::groups::unknown), help("`scpc groups` lists them all"))]
    UnknownGroup {
        /// What was asked.
        query: String,
        /// The closest name, if any is close.
        suggestion: Option<String>,
    },
}

/// `int dfd, const char *filename, ...` with the registers of split values.
fn signature(s: &Syscall) -> String {
    if s.params.is_empty() {
        return format!("{}()", s.name);
    }
    let params: Vec<String> = s
        .params
        .iter()
        .map(|p| {
            let ty = if p.ctype.ends_with('*') { p.ctype.to_string() } else { format!("{} ", p.ctype) };
            match p.reg_hi {
                Some(hi) => format!("{ty}{} (arg{}+arg{hi})", p.name, p.reg),
                None if usize::from(p.reg) != s.params.iter().position(|q| q.name == p.name).unwrap_or(usize::MAX) => {
                    format!("{ty}{} (arg{})", p.name, p.reg)
                }
                None => format!("{ty}{}", p.name),
            }
        })
        .collect();
    format!("{}({})", s.name, params.join(", "))
}

/// Which groups hold each syscall name on `arch`.
fn membership(arch: Arch) -> BTreeMap<&'static str, Vec<String>> {
    let mut out: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for g in stdlib_groups(&[arch]) {
        for name in g.members.get(&arch).into_iter().flatten() {
            out.entry(name).or_default().push(format!("@{}", g.name));
        }
    }
    out
}

fn info(arch: Arch, s: &'static Syscall, groups: &BTreeMap<&'static str, Vec<String>>) -> SyscallInfo {
    SyscallInfo {
        arch: arch.name(),
        nr: s.nr,
        name: s.name,
        signature: signature(s),
        since: s.since.to_string(),
        kconfig: s.kconfig,
        removed_after: s.removed_after.map(|v| v.to_string()),
        unfiltered_since: s.unfiltered_since.map(|v| v.to_string()),
        groups: groups.get(s.name).cloned().unwrap_or_default(),
    }
}

/// A number as `scpc syscalls` takes it: decimal or `0x` hex.
fn number(q: &str) -> Option<u32> {
    match q.strip_prefix("0x").or_else(|| q.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None if q.bytes().all(|b| b.is_ascii_digit()) => q.parse().ok(),
        None => None,
    }
}

/// Looks up each query (a name or a number) on `arch`, in order; the first that is not found
/// is the error.
pub fn lookup(arch: Arch, queries: &[String]) -> Result<Vec<SyscallInfo>, LookupError> {
    let table = arch.table();
    let groups = membership(arch);
    queries
        .iter()
        .map(|q| {
            let found = match number(q) {
                Some(nr) => table.by_nr(nr).ok_or(LookupError::UnknownNumber { nr, arch })?,
                None => table.syscall(q).ok_or_else(|| LookupError::UnknownName {
                    query: q.clone(),
                    arch,
                    suggestion: crate::suggest::closest(q, table.syscalls.iter().map(|s| s.name)).map(str::to_string),
                })?,
            };
            Ok(info(arch, found, &groups))
        })
        .collect()
}

/// Every syscall of `arch`, by number.
pub fn table(arch: Arch) -> Vec<SyscallInfo> {
    let groups = membership(arch);
    arch.table().syscalls.iter().map(|s| info(arch, s, &groups)).collect()
}

/// What each group of `std/groups.scp` is for, from the `# @name: ...` comment above it.
fn descriptions() -> BTreeMap<String, String> {
    scpc_stdlib::get("groups.scp")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("# @"))
        .filter_map(|l| l.split_once(": "))
        .map(|(n, d)| (n.to_string(), d.trim().to_string()))
        .collect()
}

/// The groups named (`@basic-io` or `basic-io`; every group when none is), resolved on each
/// architecture of `archs`: one entry per group and architecture, groups in the file's
/// order.
pub fn groups(names: &[String], archs: &[Arch]) -> Result<Vec<GroupInfo>, LookupError> {
    let all = stdlib_groups(archs);
    let known: BTreeSet<&str> = all.iter().map(|g| g.name.as_str()).collect();
    let wanted: Vec<&str> = names.iter().map(|n| n.strip_prefix('@').unwrap_or(n)).collect();
    if let Some(bad) = wanted.iter().find(|n| !known.contains(**n)) {
        return Err(LookupError::UnknownGroup {
            query: bad.to_string(),
            suggestion: crate::suggest::closest(bad, known.iter().copied()).map(str::to_string),
        });
    }
    let about = descriptions();
    let mut out = Vec::new();
    for g in all.iter().filter(|g| wanted.is_empty() || wanted.contains(&g.name.as_str())) {
        for &arch in archs {
            let mut members: Vec<&'static str> = g.members.get(&arch).into_iter().flatten().copied().collect();
            members.sort_unstable();
            out.push(GroupInfo {
                name: format!("@{}", g.name),
                description: about.get(&g.name).cloned().unwrap_or_default(),
                arch: arch.name(),
                members,
            });
        }
    }
    Ok(out)
}

/// One line per syscall: `x86_64 257 openat(int dfd, ...) since 2.6.16 [@file-system]`.
pub fn syscalls_text(found: &[SyscallInfo]) -> String {
    let mut out = String::new();
    for s in found {
        let mut line = format!("{:<8} {:>10}  {}  since {}", s.arch, s.nr, s.signature, s.since);
        if !s.kconfig.is_empty() {
            line += &format!(", needs {}", s.kconfig);
        }
        if let Some(v) = &s.removed_after {
            line += &format!(", removed after {v}");
        }
        if let Some(v) = &s.unfiltered_since {
            line += &format!(", never filtered from {v}");
        }
        if !s.groups.is_empty() {
            line += &format!("  {}", s.groups.join(" "));
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// Each group as a heading with its description, then its members wrapped at 100 columns
/// (as `systemd-analyze syscall-filter` prints them).
pub fn groups_text(groups: &[GroupInfo]) -> String {
    let mut out = String::new();
    for g in groups {
        out += &format!("{} ({}, {} syscalls)\n", g.name, g.arch, g.members.len());
        if !g.description.is_empty() {
            out += &format!("    # {}\n", g.description);
        }
        let mut line = String::from("   ");
        for m in &g.members {
            if line.len() + m.len() + 1 > 100 {
                out += &line;
                out.push('\n');
                line = String::from("   ");
            }
            line.push(' ');
            line += m;
        }
        if line.trim().is_empty() {
            out += "    (none on this architecture)\n";
        } else {
            out += &line;
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve_per_architecture() {
        assert!(matches!(lookup(Arch::Aarch64, &["999".into()]), Err(LookupError::UnknownNumber { nr: 999, .. })));
        let x = lookup(Arch::X86_64, &["openat".into(), "0x0".into()]).expect("found");
        assert_eq!((x[0].nr, x[1].name), (257, "read"));
        assert!(x[0].signature.starts_with("openat(int dfd, const char *filename"), "{}", x[0].signature);
        assert!(x[1].groups.contains(&"@basic-io".to_string()), "{:?}", x[1].groups);
        let a = lookup(Arch::Aarch64, &["openat".into()]).expect("found");
        assert_eq!(a[0].nr, 56);
        assert!(matches!(lookup(Arch::Aarch64, &["open".into()]), Err(LookupError::UnknownName { .. })));
        assert!(matches!(
            lookup(Arch::X86_64, &["opnat".into()]),
            Err(LookupError::UnknownName { suggestion: Some(s), .. }) if s == "openat"
        ));
    }

    #[test]
    fn groups_hold_what_a_policy_naming_them_gets() {
        let g = groups(&["@basic-io".into()], &[Arch::X86_64, Arch::Arm]).expect("a group");
        assert_eq!(g.len(), 2);
        assert!(g[0].members.contains(&"read") && !g[0].members.contains(&"_llseek"));
        assert!(g[1].members.contains(&"_llseek"), "arm has _llseek");
        assert!(!g[0].description.is_empty());
        assert!(matches!(groups(&["@basic-oi".into()], &[Arch::X86_64]), Err(LookupError::UnknownGroup { .. })));
    }
}
