//! `scpc import docker`: a Docker/OCI seccomp profile (JSON) as readable .scp.
//!
//! Docker's model, and how each part is rendered:
//! - `defaultAction` (+ `defaultErrnoRet`) becomes `default`; entries' actions map one to one
//!   (`SCMP_ACT_KILL` is kill_thread, as in libseccomp).
//! - `archMap` names the hosts a profile serves: each native architecture with its
//!   sub-architectures (amd64 with x86 and x32, arm64 with arm). The policy targets every
//!   architecture of the hosts scpc supports; the others are listed in a comment.
//! - An entry's `includes.arches` / `excludes.arches` name *hosts* (the native architecture):
//!   on an amd64 host, libseccomp adds an amd64-only rule for x86 and x32 calls as well. Such
//!   an entry becomes a rule `on` the architectures of the hosts it applies to.
//! - `includes.caps` / `excludes.caps`: the profile as a container with the capabilities given
//!   to the importer (none by default, as Docker runs containers) sees it; skipped entries are
//!   listed in comments.
//! - `includes.minKernel`: kept, with a comment (Docker adds it only on such kernels).
//! - `args` are ANDed, except that Docker ORs them when an argument index repeats; each
//!   comparison maps to the language's (`SCMP_CMP_MASKED_EQ` is `ARG & MASK == VALUE`).
//!   The language compares 32-bit arguments on their low half, as the kernel reads them;
//!   libseccomp compares all 64 bits, so the two differ only for calls whose unused upper half
//!   holds garbage, which the kernel ignores.
//! - The format has no action for calls of an architecture the filter was not built for;
//!   the policy keeps scpc's `badarch kill_process` (libseccomp's own default kills only the
//!   calling thread), which `--emit oci` also takes as the format's.
//! - Each entry's names become a group (members an architecture lacks are skipped there);
//!   names no supported architecture has are listed in a comment.
//!
//! The profile is read into typed structs (unknown keys are ignored, as runc ignores them), so
//! a value of the wrong type is an error located by its JSON path and line and column: an
//! `errnoRet` of `"38"` or `38.0` is refused, as runc refuses it, never read as EPERM. No
//! string of the profile becomes policy text: names become syscalls only when the ABI tables
//! know them, and everything written into a `#` comment (comments, unknown names,
//! architectures, capabilities, the file name) has its control characters escaped, so a newline
//! cannot end the comment, and `scpc:` is defused, so an imported comment cannot acknowledge a
//! warning.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::Deserialize;

use crate::abi::Arch;

/// What to import for.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The policy's name (default: the file's stem as an identifier).
    pub name: Option<String>,
    /// Capabilities the container has (entries needing others are skipped).
    pub caps: Vec<String>,
}

/// A profile that cannot be imported, with where in it: each kind has its own code.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ImportError {
    /// Not JSON at all.
    #[error("{source_name}: {location}: not JSON: {message}")]
    #[diagnostic(code(scpc::import::json), help("a Docker seccomp profile is one JSON object with `defaultAction` and `syscalls`"))]
    Json {
        /// The file.
        source_name: String,
        /// `line L, column C`.
        location: String,
        /// The parser's complaint.
        message: String,
    },
    /// JSON of the wrong shape: a missing key, or a value of the wrong type.
    #[error("{source_name}: {location}: {message}")]
    #[diagnostic(
        code(scpc::import::shape),
        help(
            "compare with Docker's default profile (moby/profiles/seccomp/default.json); numbers are unsigned integers, as runc reads them"
        )
    )]
    Shape {
        /// The file.
        source_name: String,
        /// The JSON path of the value, then `line L, column C`.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A value the format does not have (an unknown action or comparison, a number out of
    /// range, a bad name).
    #[error("{source_name}: {location}: {message}")]
    #[diagnostic(code(scpc::import::value))]
    Value {
        /// The file.
        source_name: String,
        /// The JSON path of the value.
        location: String,
        /// What is wrong.
        message: String,
        /// What to do.
        #[help]
        help: String,
    },
    /// The translation does not pass scpc's checker.
    #[error("{source_name}: syscalls: the translation does not check: {message}")]
    #[diagnostic(code(scpc::import::check))]
    Check {
        /// The file.
        source_name: String,
        /// The checker's first complaint.
        message: String,
        /// Its help.
        #[help]
        help: String,
    },
}

/// A Docker/OCI seccomp profile, as runc reads it (keys scpc does not use are ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u64>,
    #[serde(default)]
    arch_map: Option<Vec<ArchMapEntry>>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    syscalls: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u64>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    includes: Option<Filter>,
    #[serde(default)]
    excludes: Option<Filter>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u64,
    value: u64,
    #[serde(default)]
    value_two: Option<u64>,
    op: String,
}

/// Hosts scpc supports: Docker's native architecture name and the calls its kernel takes.
const HOSTS: &[(&str, &str, Arch)] = &[
    ("SCMP_ARCH_X86_64", "amd64", Arch::X86_64),
    ("SCMP_ARCH_AARCH64", "arm64", Arch::Aarch64),
    ("SCMP_ARCH_RISCV64", "riscv64", Arch::Riscv64),
    ("SCMP_ARCH_X86", "x86", Arch::I386),
    ("SCMP_ARCH_ARM", "arm", Arch::Arm),
    ("SCMP_ARCH_X32", "x32", Arch::X32),
];

fn scmp_arch(name: &str) -> Option<Arch> {
    Some(match name {
        "SCMP_ARCH_X86_64" => Arch::X86_64,
        "SCMP_ARCH_X86" => Arch::I386,
        "SCMP_ARCH_X32" => Arch::X32,
        "SCMP_ARCH_AARCH64" => Arch::Aarch64,
        "SCMP_ARCH_ARM" => Arch::Arm,
        "SCMP_ARCH_RISCV64" => Arch::Riscv64,
        _ => return None,
    })
}

/// A host: Docker's name for its native architecture and the architectures of its filter.
struct Host {
    docker: &'static str,
    archs: BTreeSet<Arch>,
}

/// Text from the profile made safe to put in a `#` comment: control characters (a newline
/// would end the comment and start policy text) and the Unicode line separators escaped, and
/// `scpc:` defused so that the text cannot acknowledge a warning.
pub fn comment_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.replace("scpc:", "scpc -")
}

struct Ctx<'a> {
    source_name: &'a str,
}

impl Ctx<'_> {
    fn value(&self, path: &str, message: String, help: &str) -> ImportError {
        ImportError::Value { source_name: self.source_name.into(), location: path.into(), message, help: help.into() }
    }

    /// The action of `v` (with its errnoRet), errno values by name where every target gives the
    /// number one name (`errno(ENOSYS)`).
    fn action(&self, v: &str, errno: Option<u64>, path: &str, targets: &BTreeSet<Arch>) -> Result<String, ImportError> {
        let data = errno.unwrap_or(1);
        let limit = if v == "SCMP_ACT_TRACE" { 0xffff } else { 4095 };
        if matches!(v, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") && errno.is_some_and(|e| e > limit) {
            return Err(self.value(
                path,
                format!("errnoRet {data} is out of range 0..={limit} for {v} (the kernel would not return it as written)"),
                "errno values are 0..4095, trace data 0..65535",
            ));
        }
        Ok(match v {
            "SCMP_ACT_ALLOW" => "allow".into(),
            "SCMP_ACT_LOG" => "log".into(),
            "SCMP_ACT_ERRNO" => format!("errno({})", errno_name(data, targets).unwrap_or_else(|| data.to_string())),
            "SCMP_ACT_TRAP" => "trap".into(),
            "SCMP_ACT_TRACE" => format!("trace({})", errno.unwrap_or(0)),
            "SCMP_ACT_NOTIFY" => "notify".into(),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => "kill_thread".into(),
            "SCMP_ACT_KILL_PROCESS" => "kill_process".into(),
            other => {
                return Err(self.value(
                    path,
                    format!("unknown action `{}`", comment_text(other)),
                    "actions are SCMP_ACT_ALLOW, _LOG, _ERRNO, _TRAP, _TRACE, _NOTIFY, _KILL, _KILL_THREAD and _KILL_PROCESS",
                ))
            }
        })
    }
}

/// The errno name of `v` on every architecture of `targets`, when there is one (EAGAIN, not its
/// other name EWOULDBLOCK).
fn errno_name(v: u64, targets: &BTreeSet<Arch>) -> Option<String> {
    const OTHER_NAMES: &[&str] = &["EWOULDBLOCK", "EDEADLOCK", "ENOTSUP"];
    let hits: Vec<&str> = crate::abi::all_constant_names()
        .iter()
        .copied()
        .filter(|n| n.starts_with('E') && !n.contains('_') && !n.starts_with("EPOLL") && !OTHER_NAMES.contains(n))
        .filter(|n| !targets.is_empty() && targets.iter().all(|a| a.table().constant(n) == Some(v)))
        .collect();
    match hits.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

fn number(n: u64) -> String {
    if n > 255 {
        format!("{n:#x}")
    } else {
        n.to_string()
    }
}

/// Reads a Docker profile and writes the policy. The policy written always checks: a
/// profile whose translation scpc's checker rejects (a comparison with a value wider than the
/// argument the kernel reads, say) is an import error carrying the checker's first complaint.
pub fn import(source_name: &str, text: &str, opts: &ImportOptions) -> Result<String, ImportError> {
    let policy = translate(source_name, text, opts)?;
    let (_, diags, _) = crate::check_source("imported.scp", &policy);
    if diags.has_errors() {
        let first = diags.into_sorted().into_iter().find(|d| d.severity().is_none_or(|s| s == miette::Severity::Error));
        return Err(ImportError::Check {
            source_name: source_name.into(),
            message: first.as_ref().map_or_else(|| "no diagnostic".into(), |d| d.to_string()),
            help: first.and_then(|d| d.help().map(|h| h.to_string())).unwrap_or_else(|| "report the profile".into()),
        });
    }
    Ok(policy)
}

/// Parses the profile: a syntax error is located by line and column, a value of the wrong
/// type or a missing key by its JSON path too.
fn parse(source_name: &str, text: &str) -> Result<Profile, ImportError> {
    let json_error = |inner: &serde_json::Error| {
        let at = format!("line {}, column {}", inner.line(), inner.column());
        let message = inner.to_string().replace(&format!(" at line {} column {}", inner.line(), inner.column()), "");
        (comment_text(&message), at)
    };
    if let Some(first) = text.trim_start().chars().next().filter(|c| *c != '{') {
        // (serde would read a struct from an array too)
        let kind = if first == '[' { "an array" } else { "not an object" };
        return Err(ImportError::Shape {
            source_name: source_name.into(),
            location: "(top), line 1, column 1".into(),
            message: format!("a profile is a JSON object, this is {kind}"),
        });
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let profile: Profile = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (message, at) = json_error(&inner);
        if inner.is_syntax() || inner.is_eof() {
            ImportError::Json { source_name: source_name.into(), location: at, message }
        } else {
            let path = if path == "." { "(top)".to_string() } else { path };
            ImportError::Shape { source_name: source_name.into(), location: format!("{path}, {at}"), message }
        }
    })?;
    de.end().map_err(|inner| {
        let (message, location) = json_error(&inner);
        ImportError::Json { source_name: source_name.into(), location, message }
    })?;
    Ok(profile)
}

fn translate(source_name: &str, text: &str, opts: &ImportOptions) -> Result<String, ImportError> {
    let ctx = Ctx { source_name };
    let profile = parse(source_name, text)?;
    // hosts from archMap (or the older `architectures` list)
    let mut hosts: Vec<Host> = Vec::new();
    let mut unsupported: Vec<String> = Vec::new();
    let add_host = |native: &str, subs: &[String], hosts: &mut Vec<Host>, unsupported: &mut Vec<String>| match HOSTS
        .iter()
        .find(|(scmp, _, _)| *scmp == native)
    {
        Some(&(_, docker, arch)) => {
            let mut archs: BTreeSet<Arch> = [arch].into();
            for s in subs {
                match scmp_arch(s) {
                    Some(a) => drop(archs.insert(a)),
                    None => unsupported.push(comment_text(s)),
                }
            }
            hosts.push(Host { docker, archs });
        }
        None => unsupported.push(comment_text(native)),
    };
    if let Some(map) = &profile.arch_map {
        for m in map {
            add_host(&m.architecture, m.sub_architectures.as_deref().unwrap_or_default(), &mut hosts, &mut unsupported);
        }
    } else if let Some(list) = &profile.architectures {
        for a in list {
            add_host(a, &[], &mut hosts, &mut unsupported);
        }
    } else {
        add_host("SCMP_ARCH_X86_64", &["SCMP_ARCH_X86".into(), "SCMP_ARCH_X32".into()], &mut hosts, &mut unsupported);
        add_host("SCMP_ARCH_AARCH64", &["SCMP_ARCH_ARM".into()], &mut hosts, &mut unsupported);
    }
    let targets: BTreeSet<Arch> = hosts.iter().flat_map(|h| h.archs.iter().copied()).collect();
    let default = ctx.action(&profile.default_action, profile.default_errno_ret, "defaultAction", &targets)?;
    if targets.is_empty() {
        return Err(ctx.value(
            "archMap",
            format!("no architecture scpc supports (the profile names {})", unsupported.join(", ")),
            "scpc supports SCMP_ARCH_X86_64, _X86, _X32, _AARCH64, _ARM and _RISCV64",
        ));
    }
    let name = match &opts.name {
        Some(n) if scpc_node::manifest::is_policy_name(n) => n.clone(),
        Some(n) => {
            return Err(ctx.value(
                "--name",
                format!("`{}` is not a policy name", comment_text(n)),
                "a policy name is a letter or `_` followed by letters, digits, `_` and `-`",
            ))
        }
        None => {
            let stem = std::path::Path::new(source_name).file_stem().map_or("imported".into(), |s| s.to_string_lossy().into_owned());
            let id: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
            match id.chars().next() {
                None => "imported".to_string(),
                Some(c) if c.is_ascii_digit() || c == '-' => format!("p_{id}"),
                _ => id,
            }
        }
    };
    // the stdlib's groups, by the names they hold on the targets
    let mut std_groups: Vec<(String, BTreeSet<&'static str>)> =
        crate::generate::stdlib_groups(&targets.iter().copied().collect::<Vec<_>>())
            .into_iter()
            .map(|g| (g.name, g.members.into_values().flatten().collect()))
            .collect();
    std_groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let mut uses_std = false;
    let mut groups = String::new();
    let mut rules: Vec<RuleLine> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (i, s) in profile.syscalls.iter().enumerate() {
        let path = format!("syscalls[{i}]");
        let names: Vec<&str> = match (&s.names, &s.name) {
            (Some(list), _) => list.iter().map(String::as_str).collect(),
            (None, Some(one)) => vec![one.as_str()],
            (None, None) => return Err(ctx.value(&format!("{path}.names"), "missing".into(), "an entry names its syscalls with `names`")),
        };
        let act = ctx.action(&s.action, s.errno_ret, &format!("{path}.action"), &targets)?;
        let (inc, exc) = (s.includes.as_ref(), s.excludes.as_ref());
        let list = |f: Option<&Filter>, pick: fn(&Filter) -> &Option<Vec<String>>| -> Vec<String> {
            f.and_then(|f| pick(f).clone()).unwrap_or_default()
        };
        let inc_caps = list(inc, |f| &f.caps);
        let exc_caps = list(exc, |f| &f.caps);
        let inc_arches = list(inc, |f| &f.arches);
        let exc_arches = list(exc, |f| &f.arches);
        let comment = s.comment.as_deref().filter(|c| !c.is_empty()).map(comment_text);
        let shown = comment_text(&names.join(", "));
        if let Some(missing) = inc_caps.iter().find(|c| !opts.caps.contains(c)) {
            skipped.push(format!("{path} ({shown}): {act} only with {}", comment_text(missing)));
            continue;
        }
        if let Some(present) = exc_caps.iter().find(|c| opts.caps.contains(c)) {
            skipped.push(format!("{path} ({shown}): {act} except with {}", comment_text(present)));
            continue;
        }
        let on: BTreeSet<Arch> = hosts
            .iter()
            .filter(|h| inc_arches.is_empty() || inc_arches.iter().any(|a| a == h.docker))
            .filter(|h| !exc_arches.iter().any(|a| a == h.docker))
            .flat_map(|h| h.archs.iter().copied())
            .collect();
        let for_hosts = if inc_arches.is_empty() && exc_arches.is_empty() {
            String::new()
        } else {
            let hs: Vec<&str> = hosts
                .iter()
                .filter(|h| inc_arches.is_empty() || inc_arches.iter().any(|a| a == h.docker))
                .filter(|h| !exc_arches.iter().any(|a| a == h.docker))
                .map(|h| h.docker)
                .collect();
            format!(" for {}", hs.join(", "))
        };
        if on.is_empty() {
            skipped.push(format!("{path} ({shown}): {act} only on {}", comment_text(&inc_arches.join(", "))));
            continue;
        }
        // a name becomes a syscall only when the tables know it: no profile string becomes
        // policy text
        let known: Vec<&str> = names.iter().copied().filter(|n| on.iter().any(|a| a.table().syscall(n).is_some())).collect();
        let unknown: Vec<&str> = names.iter().copied().filter(|n| !known.contains(n)).collect();
        if !unknown.is_empty() {
            skipped.push(format!(
                "{path}{for_hosts} ({}): not a syscall of {}",
                comment_text(&unknown.join(", ")),
                on.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        if known.is_empty() {
            continue;
        }
        // conditions: ANDed, or ORed when an index repeats (Docker's rule)
        let mut atoms = Vec::new();
        for (j, a) in s.args.iter().flatten().enumerate() {
            let p = format!("{path}.args[{j}]");
            if a.index > 5 {
                return Err(ctx.value(
                    &format!("{p}.index"),
                    format!("index {} is not 0..5", a.index),
                    "seccomp sees six argument registers",
                ));
            }
            let param = param_name(&known, a.index as usize, &on);
            let named = |v: u64| constant_name(&known, &param, v, &on).unwrap_or_else(|| number(v));
            let value = named(a.value);
            let atom = match a.op.as_str() {
                "SCMP_CMP_EQ" => format!("{param} == {value}"),
                "SCMP_CMP_NE" => format!("{param} != {value}"),
                "SCMP_CMP_LT" => format!("{param} < {value}"),
                "SCMP_CMP_LE" => format!("{param} <= {value}"),
                "SCMP_CMP_GT" => format!("{param} > {value}"),
                "SCMP_CMP_GE" => format!("{param} >= {value}"),
                // (a mask is a shift expression: an OR of names takes parentheses)
                "SCMP_CMP_MASKED_EQ" if value.contains('|') => format!("{param} & ({value}) == {}", named(a.value_two.unwrap_or(0))),
                "SCMP_CMP_MASKED_EQ" => format!("{param} & {value} == {}", named(a.value_two.unwrap_or(0))),
                other => {
                    return Err(ctx.value(
                        &format!("{p}.op"),
                        format!("unknown comparison `{}`", comment_text(other)),
                        "comparisons are SCMP_CMP_EQ, _NE, _LT, _LE, _GT, _GE and _MASKED_EQ",
                    ))
                }
            };
            atoms.push((a.index, atom));
        }
        let repeats = atoms.iter().map(|(i, _)| i).collect::<BTreeSet<_>>().len() < atoms.len();
        let conds: Vec<String> = if atoms.is_empty() {
            vec![String::new()]
        } else if repeats {
            atoms.iter().map(|(_, a)| format!(" if {a}")).collect()
        } else {
            vec![format!(" if {}", atoms.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>().join(" && "))]
        };
        let on_clause =
            if on == targets { String::new() } else { format!(" on {}", on.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")) };
        let subject = if known.len() == 1 {
            known[0].to_string()
        } else {
            // stdlib groups every member of which the entry names, largest first
            let mut members: Vec<String> = Vec::new();
            let mut rest: BTreeSet<&str> = known.iter().copied().collect();
            for (gname, gm) in &std_groups {
                if gm.len() >= 2 && gm.iter().all(|m| known.contains(m)) && gm.iter().any(|m| rest.contains(m)) {
                    members.push(format!("@{gname}"));
                    for m in gm {
                        rest.remove(m);
                    }
                }
            }
            uses_std |= !members.is_empty();
            members.extend(known.iter().filter(|n| rest.contains(*n)).map(|n| n.to_string()));
            let g = format!("docker-{i}");
            let _ = writeln!(groups, "\n# syscalls[{i}]{}", comment.as_ref().map(|c| format!(": {c}")).unwrap_or_default());
            let _ = writeln!(groups, "group {g} = {}", members.join(", "));
            format!("@{g}")
        };
        let mut notes = Vec::new();
        let min_kernel = inc.and_then(|f| f.min_kernel.as_deref());
        if let Some(v) = min_kernel {
            notes.push(format!("Docker adds this rule on kernels from {} on", comment_text(v)));
        } else if known.len() == 1 {
            notes.extend(comment.clone());
        }
        let acks = deliberate(&known, min_kernel);
        for c in conds {
            rules.push(RuleLine { notes: std::mem::take(&mut notes), text: format!("{act} {subject}{on_clause}{c}"), acks: acks.clone() });
        }
    }
    let skipped = {
        let mut seen = BTreeSet::new();
        skipped.into_iter().filter(|l| seen.insert(l.clone())).collect::<Vec<_>>()
    };
    let mut out = String::new();
    let _ = writeln!(out, "# Imported by `scpc import docker` from {}.", comment_text(source_name));
    let caps = if opts.caps.is_empty() { "no added capabilities".to_string() } else { comment_text(&opts.caps.join(", ")) };
    let _ = writeln!(
        out,
        "# The profile as a container with {caps} sees it, on the hosts {}.",
        hosts.iter().map(|h| h.docker).collect::<Vec<_>>().join(", ")
    );
    if !unsupported.is_empty() {
        let _ = writeln!(out, "# Architectures scpc does not support, left out: {}.", unsupported.join(", "));
    }
    if uses_std {
        let _ = writeln!(out, "include \"std/groups.scp\"");
    }
    out.push_str(&groups);
    let _ = writeln!(out, "\npolicy {name} {{");
    let _ = writeln!(out, "    target {}", targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "));
    let _ = writeln!(out, "    default {default}");
    let mut tail = String::new();
    if !skipped.is_empty() {
        let _ = writeln!(tail, "\n    # Entries left out:");
        for s in &skipped {
            let _ = writeln!(tail, "    #   {s}");
        }
    }
    tail.push_str("}\n");
    Ok(acknowledged(&out, &rules, &tail))
}

/// A rule of the translation, with the comments above it and the warnings it may acknowledge.
struct RuleLine {
    /// Comments written above it (from the importer, or escaped from the profile).
    notes: Vec<String>,
    /// The rule.
    text: String,
    /// (warning name, why) that the translation acknowledges for this rule: Docker's
    /// deliberate choices.
    acks: Vec<(&'static str, &'static str)>,
}

/// The warnings a rule of an entry may acknowledge, each with why: choices Docker's default
/// profile makes on purpose and documents. A warning of any other kind stays, so that a
/// reviewer of another profile sees it (a profile allowing kexec_load is warned about).
fn deliberate(known: &[&str], min_kernel: Option<&str>) -> Vec<(&'static str, &'static str)> {
    let mut acks = vec![
        // answering ENOSYS on older kernels is what they do anyway
        ("syscall_too_new", "the profile allows it; kernels older than it answer ENOSYS, as without the rule"),
        // the profile's own semantics: it lets socketcall through, as Docker does for i386 programs
        (
            "multiplexer",
            "the profile also allows socketcall, as Docker's does: on i386 calls made through it bypass these rules, in Docker as here",
        ),
    ];
    let ptrace_family = ["ptrace", "process_vm_readv", "process_vm_writev"];
    let from_4_8 = min_kernel
        .and_then(|v| v.split_once('.'))
        .and_then(|(a, b)| {
            Some((a.parse::<u32>().ok()?, b.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().ok()?))
        })
        .is_some_and(|v| v >= (4, 8));
    if from_4_8 && !known.is_empty() && known.iter().all(|n| ptrace_family.contains(n)) {
        acks.push(("attack_surface", "Docker's choice: from Linux 4.8 on, ptrace can no longer be used to escape seccomp"));
    }
    acks
}

/// The policy text: `head`, the rules (each after its notes, with `# scpc: allow(NAME)` above it
/// for each warning the checker gives it that [`deliberate`] lists), then `tail`.
fn acknowledged(head: &str, rules: &[RuleLine], tail: &str) -> String {
    let assemble = |acks: &[Vec<&'static str>]| -> (String, Vec<usize>) {
        let mut out = head.to_string();
        let mut lines = Vec::new();
        let mut said: &[&'static str] = &[];
        for (r, names) in rules.iter().zip(acks) {
            for n in &r.notes {
                let _ = writeln!(out, "    # {n}");
            }
            // (why is said once for a run of rules acknowledging the same)
            for name in names.iter().filter(|n| !said.contains(n) || !r.notes.is_empty()) {
                let why = r.acks.iter().find(|(a, _)| a == name).map_or("", |(_, w)| w);
                let _ = writeln!(out, "    # {why}");
            }
            said = names;
            if !names.is_empty() {
                // alone on the line above the rule, where the checker looks for it
                let pragmas: Vec<String> = names.iter().map(|n| format!("scpc: allow({n})")).collect();
                let _ = writeln!(out, "    # {}", pragmas.join(", "));
            }
            lines.push(out.matches('\n').count() + 1);
            let _ = writeln!(out, "    {}", r.text);
        }
        out.push_str(tail);
        (out, lines)
    };
    let none: Vec<Vec<&'static str>> = vec![Vec::new(); rules.len()];
    let (text, lines) = assemble(&none);
    let (_, diags, map) = crate::check_source("imported.scp", &text);
    let mut acks = none;
    for d in diags.iter().filter(|d| !scpc_lang::diag::is_error(d.as_ref())) {
        let (Some(code), Some(span)) = (d.code().map(|c| c.to_string()), scpc_lang::diag::primary_span(d.as_ref())) else { continue };
        let name = code.rsplit("::").next().unwrap_or_default();
        let Some((_, at)) = map.locate(span.offset() as u32) else { continue };
        let Some(i) = lines.iter().position(|l| *l == at.line) else { continue };
        if let Some(&(a, _)) = rules[i].acks.iter().find(|(a, _)| *a == name) {
            if !acks[i].contains(&a) {
                acks[i].push(a);
            }
        }
    }
    assemble(&acks).0
}

/// The name of argument `index` for the syscalls of an entry on the architectures it applies
/// on: the kernel's, when it is the same for each and names that register
/// ([`crate::abi::Syscall::arg_name`]: prctl's `arg2` is register 1, so register 2 is written
/// `arg2`, never the kernel's `arg3`); else `argN`.
fn param_name(names: &[&str], index: usize, on: &BTreeSet<Arch>) -> String {
    let found: BTreeSet<String> =
        names.iter().flat_map(|n| on.iter().filter_map(move |a| a.table().syscall(n))).map(|s| s.arg_name(index as u8)).collect();
    match found.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => one.clone(),
        _ => format!("arg{index}"),
    }
}

/// How the values of an argument are named.
#[derive(Copy, Clone)]
enum Naming {
    /// One constant of the prefix (the names in `skip` are other names of the same values).
    Value { prefix: &'static str, skip: &'static [&'static str] },
    /// Flags: an OR of single-bit constants of the prefix.
    Flags { prefix: &'static str, skip: &'static [&'static str] },
    /// personality(2)'s persona: a PER_* execution domain, then flags (UNAME26...).
    Persona,
}

/// The arguments whose values Docker's profiles compare and the language names: socket's
/// address family, personality's persona, the namespace flags of clone and unshare.
const NAMED_ARGS: &[(&str, &str, Naming)] = &[
    ("socket", "family", Naming::Value { prefix: "AF_", skip: &["AF_LOCAL", "AF_FILE", "AF_ROUTE", "AF_MAX"] }),
    ("socketpair", "family", Naming::Value { prefix: "AF_", skip: &["AF_LOCAL", "AF_FILE", "AF_ROUTE", "AF_MAX"] }),
    ("personality", "personality", Naming::Persona),
    // CLONE_NEWTIME is 0x80, a bit of clone's exit signal (CSIGNAL): clone3 and unshare only
    (
        "clone",
        "clone_flags",
        Naming::Flags { prefix: "CLONE_", skip: &["CLONE_NEWTIME", "CLONE_DETACHED", "CLONE_CLEAR_SIGHAND", "CLONE_INTO_CGROUP"] },
    ),
    ("unshare", "unshare_flags", Naming::Flags { prefix: "CLONE_", skip: &["CLONE_DETACHED"] }),
];

/// personality(2)'s flags, above the execution domain's byte.
const PERSONA_FLAGS: &[&str] = &[
    "UNAME26",
    "ADDR_NO_RANDOMIZE",
    "FDPIC_FUNCPTRS",
    "MMAP_PAGE_ZERO",
    "ADDR_COMPAT_LAYOUT",
    "READ_IMPLIES_EXEC",
    "ADDR_LIMIT_32BIT",
    "SHORT_INODE",
    "WHOLE_SECONDS",
    "STICKY_TIMEOUTS",
    "ADDR_LIMIT_3GB",
];

/// `v` written with constant names, where the entry names one syscall whose argument `param`
/// the language names ([`NAMED_ARGS`]) and the names have the same values on every
/// architecture of `on`; `None` keeps the number. The name of a value is unambiguous: one
/// constant, or an OR of distinct flags that covers every bit.
fn constant_name(names: &[&str], param: &str, v: u64, on: &BTreeSet<Arch>) -> Option<String> {
    let [syscall] = names else { return None };
    let &(_, _, naming) = NAMED_ARGS.iter().find(|(s, p, _)| s == syscall && *p == param)?;
    // a name's value, the same on every architecture of the rule
    let value = |name: &str| -> Option<u64> {
        let mut vals = on.iter().map(|a| a.table().constant(name));
        let first = vals.next()??;
        vals.all(|x| x == Some(first)).then_some(first)
    };
    let with_prefix = |prefix: &str, skip: &[&str]| -> Vec<(&'static str, u64)> {
        crate::abi::all_constant_names()
            .iter()
            .copied()
            .filter(|n| n.starts_with(prefix) && !skip.contains(n))
            .filter_map(|n| Some((n, value(n)?)))
            .collect()
    };
    let flags = |v: u64, candidates: &[(&'static str, u64)]| -> Option<String> {
        if v == 0 {
            return None;
        }
        let mut bits: Vec<(&str, u64)> = candidates.iter().copied().filter(|(_, b)| b.is_power_of_two() && v & b != 0).collect();
        bits.sort_by_key(|(n, b)| (*b, *n));
        bits.dedup_by_key(|(_, b)| *b);
        let covered = bits.iter().fold(0, |acc, (_, b)| acc | b);
        (covered == v).then(|| bits.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" | "))
    };
    match naming {
        Naming::Value { prefix, skip } => {
            let hits: Vec<&str> = with_prefix(prefix, skip).into_iter().filter(|(_, x)| *x == v).map(|(n, _)| n).collect();
            match hits.as_slice() {
                [one] => Some(one.to_string()),
                _ => None,
            }
        }
        Naming::Flags { prefix, skip } => flags(v, &with_prefix(prefix, skip)),
        Naming::Persona => {
            let domains: Vec<(&str, u64)> =
                with_prefix("PER_", &["PER_MASK", "PER_CLEAR_ON_SETID"]).into_iter().filter(|(_, x)| *x <= 0xff).collect();
            let persona_flags: Vec<(&'static str, u64)> = PERSONA_FLAGS.iter().filter_map(|n| Some((*n, value(n)?))).collect();
            let (domain, rest) = (v & 0xff, v & !0xff);
            let hits: Vec<&str> = domains.iter().filter(|(_, x)| *x == domain).map(|(n, _)| *n).collect();
            let [domain] = hits.as_slice() else { return None };
            match rest {
                0 => Some(domain.to_string()),
                _ if v == rest => flags(rest, &persona_flags),
                _ => flags(rest, &persona_flags).map(|f| format!("{domain} | {f}")),
            }
        }
    }
}
