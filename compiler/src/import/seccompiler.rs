//! `scpc import seccompiler`: Firecracker's seccompiler JSON (the `seccompiler` crate's
//! format, with Firecracker's older key names too) as .scp, one policy per thread filter.
//!
//! The format, and how each part is rendered, following seccompiler's own compiler
//! (rust-vmm/seccompiler 0.5, `backend/filter.rs`, `condition.rs`, `frontend/json.rs`):
//! - The file maps a thread's name to a filter; each becomes `policy NAME` (the name made an
//!   identifier). A name that appears twice is refused, as seccompiler refuses it.
//! - `mismatch_action` (or `default_action`) becomes `default`; `match_action` (or
//!   `filter_action`) is the action of every rule. The same action twice is refused, as
//!   seccompiler refuses it. Actions: `allow`, `trap`, `log`, `kill_thread`, `kill_process`,
//!   `{"errno": N}`, `{"trace": N}` (N is cut to 16 bits by seccompiler; beyond what the
//!   kernel returns, 4095 for errno, it is refused here).
//! - A filter is for one architecture, given to the importer (`--arch`: x86_64, aarch64 or
//!   riscv64, the ones seccompiler builds for). Its first instructions kill calls of any other
//!   architecture (kill_process): the policy's `badarch kill_process`. On x86_64 it does not
//!   tell x32 calls (the x32 bit set) apart: they match no syscall number and get the
//!   mismatch action; the policy says the same with `target x86_64, x32` and every rule `on
//!   x86_64`.
//! - Each rule of `filter` names a syscall (the tables must know it, as seccompiler's must)
//!   and ANDs its `args`; rules of one syscall are ORed. A syscall that has rules with
//!   conditions ignores its rules without conditions: seccompiler builds such a syscall from
//!   its conditional rules only, so the unconditional rule is listed in a comment, not
//!   written as a rule.
//! - A condition compares `args[index]`: `dword` compares the low 32 bits of the register
//!   with the low 32 bits of `val` (and of the mask), `qword` all 64. The language compares an
//!   argument at the width the kernel reads it: a 64-bit parameter compared as a `dword` is
//!   written `name & 0xffffffff OP val` (exact), a 32-bit one `name OP val` (exact). Where the
//!   kernel reads fewer bits than the comparison (a `qword` of an `int`, a `dword` of a
//!   16-bit `umode_t`) the policy compares the bits the kernel reads, and a comment says so:
//!   the two differ only for calls whose unused upper bits hold garbage, which the kernel
//!   ignores. `masked_eq` is `name & MASK == val & MASK`. A value with bits beyond what the
//!   kernel reads of the argument (a `qword` of an `int` against `0x100000000`) is refused: the
//!   comparison would hinge on bits the kernel ignores.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{checked, comment_text, number, param, policy_name, ImportError};
use crate::abi::{Arch, Width};

/// What to import for.
#[derive(Clone, Debug)]
pub struct SeccompilerOptions {
    /// The architecture the filters are compiled for (x86_64, aarch64 or riscv64).
    pub arch: Arch,
}

/// The architecture a file is for, from its name (`x86_64-unknown-linux-musl.json`).
pub fn arch_of_file_name(name: &str) -> Option<Arch> {
    let base = std::path::Path::new(name).file_name()?.to_string_lossy().into_owned();
    [("x86_64", Arch::X86_64), ("aarch64", Arch::Aarch64), ("riscv64", Arch::Riscv64)]
        .into_iter()
        .find(|(n, _)| base.contains(n))
        .map(|(_, a)| a)
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Log,
    Trace(u32),
    Trap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(alias = "default_action")]
    mismatch_action: Action,
    #[serde(alias = "filter_action")]
    match_action: Action,
    filter: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    syscall: String,
    #[serde(default)]
    args: Option<Vec<Condition>>,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    index: u8,
    #[serde(rename = "type")]
    len: ArgLen,
    op: Op,
    val: u64,
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ArgLen {
    Dword,
    Qword,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq(u64),
}

/// The top-level map, in file order, duplicates kept (to refuse them).
struct Threads(Vec<(String, Filter)>);

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Threads, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Threads;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object mapping thread names to filters")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Threads, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Filter>()? {
                    out.push((k, v));
                }
                Ok(Threads(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn parse(source_name: &str, text: &str) -> Result<Threads, ImportError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let threads: Threads = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = comment_text(&inner.to_string().replace(&format!(" at line {} column {}", inner.line(), inner.column()), ""));
        ImportError::Parse {
            source_name: source_name.into(),
            location: format!("{}:{} ({})", inner.line(), inner.column(), if path == "." { "(top)".to_string() } else { path }),
            message,
            help: "a seccompiler file maps thread names to {\"mismatch_action\", \"match_action\", \"filter\": [{\"syscall\", \"args\": [{\"index\", \"type\": \"dword\"|\"qword\", \"op\", \"val\"}]}]}".into(),
        }
    })?;
    de.end().map_err(|inner| ImportError::Parse {
        source_name: source_name.into(),
        location: format!("{}:{}", inner.line(), inner.column()),
        message: "text after the JSON object".into(),
        help: "a seccompiler file is one JSON object".into(),
    })?;
    Ok(threads)
}

/// The .scp action of a seccompiler action.
fn action(a: Action, at: &str, source_name: &str) -> Result<String, ImportError> {
    let value = |message: String, help: &str| ImportError::Value {
        source_name: source_name.into(),
        location: at.into(),
        message,
        help: help.into(),
    };
    Ok(match a {
        Action::Allow => "allow".into(),
        Action::Log => "log".into(),
        Action::Trap => "trap".into(),
        Action::KillThread => "kill_thread".into(),
        Action::KillProcess => "kill_process".into(),
        Action::Errno(n) if n <= 4095 => format!("errno({n})"),
        Action::Errno(n) => {
            return Err(value(format!("errno {n} is past 4095, the largest errno the kernel returns"), "errno values are 0..4095"))
        }
        Action::Trace(n) if n <= 0xffff => format!("trace({n})"),
        Action::Trace(n) => {
            return Err(value(format!("trace data {n} does not fit the 16 bits of SECCOMP_RET_DATA"), "trace data is 0..65535"))
        }
    })
}

/// One condition as .scp, and a note when the kernel reads fewer bits than it compares.
fn condition(arch: Arch, syscall: &str, c: &Condition) -> Result<(String, Option<String>), String> {
    let (name, width) = param(arch, syscall, c.index);
    let compared = if c.len == ArgLen::Dword { Width::W32 } else { Width::W64 };
    let cut = width.mask().min(compared.mask());
    let (mask, val) = match c.op {
        Op::MaskedEq(m) => (m & cut, c.val & m & cut),
        _ => (cut, c.val & compared.mask()),
    };
    if val & !width.mask() != 0 {
        return Err(format!(
            "args[{}] (`{name}`) is {} bits as the kernel reads it, and {} cannot hold there",
            c.index,
            width.bits(),
            number(val)
        ));
    }
    let lhs = if mask == width.mask() { name.clone() } else { format!("{name} & {}", number(mask)) };
    let op = match c.op {
        Op::Eq | Op::MaskedEq(_) => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    };
    let note = (width.bits() < compared.bits()).then(|| {
        format!(
            "{} compares {} bits of args[{}] where the kernel reads {} (`{name}`): this compares the {} it reads",
            if c.len == ArgLen::Dword { "dword" } else { "qword" },
            compared.bits(),
            c.index,
            width.bits(),
            width.bits()
        )
    });
    Ok((format!("{lhs} {op} {}", number(val)), note))
}

/// Reads a seccompiler file and writes one policy per thread filter. What it returns always
/// checks.
pub fn import(source_name: &str, text: &str, opts: &SeccompilerOptions) -> Result<String, ImportError> {
    let arch = opts.arch;
    if !matches!(arch, Arch::X86_64 | Arch::Aarch64 | Arch::Riscv64) {
        return Err(ImportError::Value {
            source_name: source_name.into(),
            location: "--arch".into(),
            message: format!("seccompiler builds filters for x86_64, aarch64 and riscv64, not {arch}"),
            help: "name one of those with --arch".into(),
        });
    }
    let threads = parse(source_name, text)?;
    let mut out = String::new();
    let _ = writeln!(out, "# Imported by `scpc import seccompiler` from {} for {arch}.", comment_text(source_name));
    let _ = writeln!(out, "# One policy per thread filter; a call of another architecture is killed (kill_process), as seccompiler's");
    let _ = writeln!(out, "# filters kill it.");
    if arch == Arch::X86_64 {
        let _ = writeln!(out, "# seccompiler does not tell x32 calls apart: they get the mismatch action, as here (x32 is a");
        let _ = writeln!(out, "# target without rules, and every rule is `on x86_64`).");
    }
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut numbers: BTreeMap<String, usize> = BTreeMap::new();
    for (thread, filter) in &threads.0 {
        if !seen.insert(thread.as_str()) {
            return Err(ImportError::Value {
                source_name: source_name.into(),
                location: comment_text(thread),
                message: "a thread named twice".into(),
                help: "seccompiler refuses a file that names a thread twice (\"duplicate filter key\")".into(),
            });
        }
        // the name made an identifier, numbered when another thread's name already made it
        let base = policy_name(thread);
        let next = numbers.entry(base.clone()).or_insert(1usize);
        let name = loop {
            let candidate = if *next == 1 { base.clone() } else { format!("{base}_{next}") };
            *next += 1;
            if names.insert(candidate.clone()) {
                break candidate;
            }
        };
        out.push('\n');
        out += &thread_policy(source_name, thread, &name, filter, arch)?;
    }
    checked(source_name, out)
}

/// The policy of one thread filter.
fn thread_policy(source_name: &str, thread: &str, name: &str, filter: &Filter, arch: Arch) -> Result<String, ImportError> {
    let at = comment_text(thread);
    if filter.mismatch_action == filter.match_action {
        return Err(ImportError::Value {
            source_name: source_name.into(),
            location: format!("{at}.match_action"),
            message: "the mismatch and match actions are the same".into(),
            help: "seccompiler refuses such a filter (IdenticalActions): every call would get the same action".into(),
        });
    }
    let default = action(filter.mismatch_action, &format!("{at}.mismatch_action"), source_name)?;
    let act = action(filter.match_action, &format!("{at}.match_action"), source_name)?;
    let on = if arch == Arch::X86_64 { " on x86_64" } else { "" };
    let conditional: Vec<&str> = filter.filter.iter().filter(|r| r.args.is_some()).map(|r| r.syscall.as_str()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "# thread `{at}`");
    let _ = writeln!(out, "policy {name} {{");
    let _ = writeln!(out, "    target {}", if arch == Arch::X86_64 { "x86_64, x32" } else { arch.name() });
    let _ = writeln!(out, "    default {default}");
    let _ = writeln!(out, "    badarch kill_process");
    for (j, r) in filter.filter.iter().enumerate() {
        let loc = format!("{at}.filter[{j}]");
        if arch.table().syscall(&r.syscall).is_none() {
            return Err(ImportError::Value {
                source_name: source_name.into(),
                location: format!("{loc}.syscall"),
                message: format!("`{}` is not a syscall of {arch}", comment_text(&r.syscall)),
                help: "seccompiler refuses an unknown syscall name too (Invalid syscall name)".into(),
            });
        }
        if let Some(c) = r.comment.as_deref().filter(|c| !c.is_empty()) {
            let _ = writeln!(out, "    # {}", comment_text(c));
        }
        let Some(args) = &r.args else {
            if conditional.contains(&r.syscall.as_str()) {
                let _ = writeln!(
                    out,
                    "    # ({} without conditions: seccompiler ignores it, since other rules of {} have conditions)",
                    r.syscall, r.syscall
                );
            } else {
                let _ = writeln!(out, "    {act} {}{on}", r.syscall);
            }
            continue;
        };
        if args.is_empty() {
            return Err(ImportError::Value {
                source_name: source_name.into(),
                location: format!("{loc}.args"),
                message: "a rule with an empty `args` list".into(),
                help: "seccompiler refuses it (EmptyRule): leave `args` out to match the syscall whatever its arguments".into(),
            });
        }
        let mut conds = Vec::new();
        for (k, c) in args.iter().enumerate() {
            if c.index > 5 {
                return Err(ImportError::Value {
                    source_name: source_name.into(),
                    location: format!("{loc}.args[{k}].index"),
                    message: format!("argument index {} is not 0..5", c.index),
                    help: "seccomp sees six argument registers (seccompiler refuses it too)".into(),
                });
            }
            if let Some(cm) = c.comment.as_deref().filter(|c| !c.is_empty()) {
                let _ = writeln!(out, "    # args[{}]: {}", c.index, comment_text(cm));
            }
            let (text, note) = condition(arch, &r.syscall, c).map_err(|message| ImportError::Inexpressible {
                source_name: source_name.into(),
                location: format!("{loc}.args[{k}]"),
                construct: message,
                help: "the comparison hinges on bits the kernel ignores; compare the bits it reads".into(),
            })?;
            if let Some(n) = note {
                let _ = writeln!(out, "    # {n}");
            }
            conds.push(text);
        }
        let _ = writeln!(out, "    {act} {}{on} if {}", r.syscall, conds.join(" && "));
    }
    out.push_str("}\n");
    Ok(out)
}
