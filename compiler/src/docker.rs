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

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::Value;

use crate::abi::Arch;

/// What to import for.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The policy's name (default: the file's stem as an identifier).
    pub name: Option<String>,
    /// Capabilities the container has (entries needing others are skipped).
    pub caps: Vec<String>,
}

/// A profile that cannot be read, with where in it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{source_name}: {location}: {message}")]
#[diagnostic(code(scpc::import::docker))]
pub struct ImportError {
    /// The file.
    pub source_name: String,
    /// `line L, column C` for JSON syntax, or the JSON path of the offending value.
    pub location: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    #[help]
    pub help: Option<String>,
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

fn action(v: &str, errno: Option<u64>, path: &str, err: &dyn Fn(&str, String) -> ImportError) -> Result<String, ImportError> {
    let data = errno.unwrap_or(1);
    let limit = if v == "SCMP_ACT_TRACE" { 0xffff } else { 4095 };
    if matches!(v, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") && errno.is_some_and(|e| e > limit) {
        return Err(err(path, format!("errnoRet {data} is out of range 0..={limit} for {v} (the kernel would not return it as written)")));
    }
    Ok(match v {
        "SCMP_ACT_ALLOW" => "allow".into(),
        "SCMP_ACT_LOG" => "log".into(),
        "SCMP_ACT_ERRNO" => format!("errno({data})"),
        "SCMP_ACT_TRAP" => "trap".into(),
        "SCMP_ACT_TRACE" => format!("trace({})", errno.unwrap_or(0)),
        "SCMP_ACT_NOTIFY" => "notify".into(),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => "kill_thread".into(),
        "SCMP_ACT_KILL_PROCESS" => "kill_process".into(),
        other => return Err(err(path, format!("unknown action `{other}`"))),
    })
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
        return Err(ImportError {
            source_name: source_name.into(),
            location: "syscalls".into(),
            message: first
                .as_ref()
                .map_or_else(|| "the translation does not check".into(), |d| format!("the translation does not check: {d}")),
            help: first.and_then(|d| d.help().map(|h| h.to_string())),
        });
    }
    Ok(policy)
}

fn translate(source_name: &str, text: &str, opts: &ImportOptions) -> Result<String, ImportError> {
    let err = |path: &str, message: String| ImportError { source_name: source_name.into(), location: path.into(), message, help: None };
    let json: Value = serde_json::from_str(text).map_err(|e| ImportError {
        source_name: source_name.into(),
        location: format!("line {}, column {}", e.line(), e.column()),
        message: format!("not JSON: {e}"),
        help: Some("a Docker seccomp profile is one JSON object with `defaultAction` and `syscalls`".into()),
    })?;
    let obj = json.as_object().ok_or_else(|| err("(top)", "a profile is a JSON object".into()))?;
    let default_errno = obj.get("defaultErrnoRet").and_then(Value::as_u64);
    let default = match obj.get("defaultAction").and_then(Value::as_str) {
        Some(a) => action(a, default_errno, "defaultAction", &err)?,
        None => return Err(err("defaultAction", "missing or not a string".into())),
    };
    // hosts from archMap (or the older `architectures` list)
    let mut hosts: Vec<Host> = Vec::new();
    let mut unsupported: Vec<String> = Vec::new();
    let add_host = |native: &str, subs: Vec<&str>, hosts: &mut Vec<Host>, unsupported: &mut Vec<String>| match HOSTS
        .iter()
        .find(|(scmp, _, _)| *scmp == native)
    {
        Some(&(_, docker, arch)) => {
            let mut archs: BTreeSet<Arch> = [arch].into();
            for s in subs {
                match scmp_arch(s) {
                    Some(a) => drop(archs.insert(a)),
                    None => unsupported.push(s.to_string()),
                }
            }
            hosts.push(Host { docker, archs });
        }
        None => unsupported.push(native.to_string()),
    };
    for key in ["archMap", "architectures"] {
        if obj.get(key).is_some_and(|v| !v.is_array() && !v.is_null()) {
            return Err(err(key, "not a list".into()));
        }
    }
    if let Some(map) = obj.get("archMap").and_then(Value::as_array) {
        for (i, m) in map.iter().enumerate() {
            let native = m
                .get("architecture")
                .and_then(Value::as_str)
                .ok_or_else(|| err(&format!("archMap[{i}].architecture"), "missing".into()))?;
            let subs = m
                .get("subArchitectures")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            add_host(native, subs, &mut hosts, &mut unsupported);
        }
    } else if let Some(list) = obj.get("architectures").and_then(Value::as_array) {
        for a in list.iter().filter_map(Value::as_str) {
            add_host(a, vec![], &mut hosts, &mut unsupported);
        }
    } else {
        add_host("SCMP_ARCH_X86_64", vec!["SCMP_ARCH_X86", "SCMP_ARCH_X32"], &mut hosts, &mut unsupported);
        add_host("SCMP_ARCH_AARCH64", vec!["SCMP_ARCH_ARM"], &mut hosts, &mut unsupported);
    }
    // a sub-architecture that is also a native host of its own is served by its own filter
    let targets: BTreeSet<Arch> = hosts.iter().flat_map(|h| h.archs.iter().copied()).collect();
    if targets.is_empty() {
        return Err(err("archMap", format!("no architecture scpc supports (the profile names {})", unsupported.join(", "))));
    }
    let name = opts.name.clone().unwrap_or_else(|| {
        let stem = std::path::Path::new(source_name).file_stem().map_or("imported".into(), |s| s.to_string_lossy().into_owned());
        let id: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        if id.starts_with(|c: char| c.is_ascii_digit()) {
            format!("p_{id}")
        } else {
            id
        }
    });
    // the stdlib's groups, by the names they hold on the targets
    let mut std_groups: Vec<(String, BTreeSet<&'static str>)> =
        crate::generate::stdlib_groups(&targets.iter().copied().collect::<Vec<_>>())
            .into_iter()
            .map(|g| (g.name, g.members.into_values().flatten().collect()))
            .collect();
    std_groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let mut uses_std = false;
    let mut groups = String::new();
    let mut rules = String::new();
    let mut skipped = Vec::new();
    let syscalls = obj.get("syscalls").and_then(Value::as_array).ok_or_else(|| err("syscalls", "missing or not a list".into()))?;
    for (i, s) in syscalls.iter().enumerate() {
        let path = format!("syscalls[{i}]");
        let names: Vec<&str> = match (s.get("names").and_then(Value::as_array), s.get("name").and_then(Value::as_str)) {
            (Some(list), _) => list
                .iter()
                .map(|n| n.as_str().ok_or_else(|| err(&format!("{path}.names"), "a name is not a string".into())))
                .collect::<Result<_, _>>()?,
            (None, Some(one)) => vec![one],
            (None, None) => return Err(err(&format!("{path}.names"), "missing".into())),
        };
        let act =
            s.get("action").and_then(Value::as_str).ok_or_else(|| err(&format!("{path}.action"), "missing or not a string".into()))?;
        let act = action(act, s.get("errnoRet").and_then(Value::as_u64), &format!("{path}.action"), &err)?;
        let strs = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect()).unwrap_or_default()
        };
        let inc_caps = strs(s.pointer("/includes/caps"));
        let exc_caps = strs(s.pointer("/excludes/caps"));
        let inc_arches = strs(s.pointer("/includes/arches"));
        let exc_arches = strs(s.pointer("/excludes/arches"));
        let comment = s.get("comment").and_then(Value::as_str).filter(|c| !c.is_empty());
        let shown = names.join(", ");
        if let Some(missing) = inc_caps.iter().find(|c| !opts.caps.contains(c)) {
            skipped.push(format!("{shown}: {act} only with {missing}"));
            continue;
        }
        if let Some(present) = exc_caps.iter().find(|c| opts.caps.contains(c)) {
            skipped.push(format!("{shown}: {act} except with {present}"));
            continue;
        }
        let on: BTreeSet<Arch> = hosts
            .iter()
            .filter(|h| inc_arches.is_empty() || inc_arches.iter().any(|a| a == h.docker))
            .filter(|h| !exc_arches.iter().any(|a| a == h.docker))
            .flat_map(|h| h.archs.iter().copied())
            .collect();
        if on.is_empty() {
            skipped.push(format!("{shown}: {act} only on {}", inc_arches.join(", ")));
            continue;
        }
        let known: Vec<&str> = names.iter().copied().filter(|n| targets.iter().any(|a| a.table().syscall(n).is_some())).collect();
        let unknown: Vec<&str> = names.iter().copied().filter(|n| !known.contains(n)).collect();
        if !unknown.is_empty() {
            skipped.push(format!(
                "{}: not a syscall of {}",
                unknown.join(", "),
                targets.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
            ));
        }
        if known.is_empty() {
            continue;
        }
        // conditions: ANDed, or ORed when an index repeats (Docker's rule)
        let args = match s.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(err(&format!("{path}.args"), "not a list of argument conditions".into())),
        };
        let mut atoms = Vec::new();
        for (j, a) in args.iter().enumerate() {
            let p = format!("{path}.args[{j}]");
            let index = a
                .get("index")
                .and_then(Value::as_u64)
                .filter(|i| *i < 6)
                .ok_or_else(|| err(&format!("{p}.index"), "missing or not 0..5".into()))?;
            let value = a
                .get("value")
                .and_then(Value::as_u64)
                .ok_or_else(|| err(&format!("{p}.value"), "missing or not an unsigned number".into()))?;
            let two = match a.get("valueTwo") {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_u64().ok_or_else(|| err(&format!("{p}.valueTwo"), "not an unsigned number".into()))?,
            };
            let op = a.get("op").and_then(Value::as_str).ok_or_else(|| err(&format!("{p}.op"), "missing".into()))?;
            let param = param_name(&known, index as usize, &on);
            let atom = match op {
                "SCMP_CMP_EQ" => format!("{param} == {}", number(value)),
                "SCMP_CMP_NE" => format!("{param} != {}", number(value)),
                "SCMP_CMP_LT" => format!("{param} < {}", number(value)),
                "SCMP_CMP_LE" => format!("{param} <= {}", number(value)),
                "SCMP_CMP_GT" => format!("{param} > {}", number(value)),
                "SCMP_CMP_GE" => format!("{param} >= {}", number(value)),
                "SCMP_CMP_MASKED_EQ" => format!("{param} & {} == {}", number(value), number(two)),
                other => return Err(err(&format!("{p}.op"), format!("unknown comparison `{other}`"))),
            };
            atoms.push((index, atom));
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
            let _ = writeln!(groups, "\n# syscalls[{i}]{}", comment.map(|c| format!(": {c}")).unwrap_or_default());
            let _ = writeln!(groups, "group {g} = {}", members.join(", "));
            format!("@{g}")
        };
        if let Some(v) = s.pointer("/includes/minKernel").and_then(Value::as_str) {
            let _ = writeln!(rules, "    # Docker adds this rule on kernels from {v} on");
        } else if known.len() == 1 {
            if let Some(c) = comment {
                let _ = writeln!(rules, "    # {c}");
            }
        }
        for c in conds {
            let _ = writeln!(rules, "    {act} {subject}{on_clause}{c}");
        }
    }
    let mut out = String::new();
    let _ = writeln!(out, "# Imported by `scpc import docker` from {source_name}.");
    let caps = if opts.caps.is_empty() { "no added capabilities".to_string() } else { opts.caps.join(", ") };
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
    out.push_str(&rules);
    if !skipped.is_empty() {
        let _ = writeln!(out, "\n    # Entries left out:");
        for s in &skipped {
            let _ = writeln!(out, "    #   {s}");
        }
    }
    out.push_str("}\n");
    Ok(out)
}

/// The kernel's name of argument `index`, when every named syscall has the same one on every
/// architecture it applies on; else `argN`.
fn param_name(names: &[&str], index: usize, on: &BTreeSet<Arch>) -> String {
    let found: BTreeSet<Option<&str>> = names
        .iter()
        .flat_map(|n| on.iter().filter_map(move |a| a.table().syscall(n)).map(move |s| s.params.get(index).map(|p| p.name)))
        .collect();
    match found.into_iter().collect::<Vec<_>>().as_slice() {
        [Some(one)] => one.to_string(),
        _ => format!("arg{index}"),
    }
}
