//! `scpc diff OLD NEW`: two policies, two filters, or one of each. Exit 0 when they decide the
//! same everywhere, 1 when not, 2 when an input cannot be read.

use std::collections::BTreeMap;

use scpc::abi::Arch;
use scpc::bpf::disasm::ret_name;
use scpc::diff::{diff as compare, Change, Side};
use serde_json::json;

use crate::build::load_policy;
use crate::MessageFormat;

pub(crate) struct DiffArgs {
    pub old: String,
    pub new: String,
    pub policy: Option<String>,
    pub old_policy: Option<String>,
    pub new_policy: Option<String>,
    pub json: bool,
}

/// The only policy a file defines, when `name` is not given.
fn only_policy(path: &str) -> Result<String, (u8, String)> {
    let (mut map, mut diags) = (scpc_lang::source::SourceMap::new(), scpc_lang::diag::Diagnostics::new());
    let unit = scpc::load(path, &crate::loader(), &mut map, &mut diags).map_err(|reason| (2, reason))?;
    let checked = scpc::sema::analyze(&unit, &scpc::sema::Options::default(), &mut diags);
    let names: Vec<&String> = checked.policies.keys().collect();
    match names.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err((1, format!("`{path}` defines no policy that checks (run `scpc check {path}`)"))),
        many => Err((
            1,
            format!(
                "`{path}` defines {} policies: say which with --policy NAME (or --old-policy/--new-policy): {}",
                many.len(),
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

fn load_side(path: &str, name: Option<&String>) -> Result<Side, u8> {
    if path.ends_with(".bpf") {
        return crate::tools::read_filter(path).map(Side::Filter).map_err(|(code, msg)| {
            eprintln!("error: {msg}");
            code
        });
    }
    let name = match name {
        Some(n) => n.clone(),
        None => only_policy(path).map_err(|(code, msg)| {
            eprintln!("error: {msg}");
            code
        })?,
    };
    load_policy(path, &name, &[], MessageFormat::Human).map(|(p, _, _)| Side::Policy(p))
}

fn call(arch: Arch, c: &Change, args: &[u64; 6]) -> String {
    let name = c.name.map_or_else(|| format!("syscall {}", c.nr), str::to_string);
    let params = arch.table().by_nr(c.nr).map_or(&[][..], |s| s.params);
    let shown: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0)
        .map(|(i, v)| {
            let p = params.get(i).map_or_else(|| format!("arg{i}"), |p| p.name.to_string());
            if *v > 9 {
                format!("{p}={v:#x}")
            } else {
                format!("{p}={v}")
            }
        })
        .collect();
    format!("{name}({})", shown.join(", "))
}

pub(crate) fn diff(a: &DiffArgs) -> u8 {
    let old_name = a.old_policy.as_ref().or(a.policy.as_ref());
    let new_name = a.new_policy.as_ref().or(a.policy.as_ref());
    let old = match load_side(&a.old, old_name) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let new = match load_side(&a.new, new_name) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let report = compare(&old, &new);
    if report.archs.is_empty() {
        eprintln!(
            "error: `{}` and `{}` have no architecture in common to compare (help: a filter covers the architectures it was built for; build both for the same target)",
            a.old, a.new
        );
        return 1;
    }
    if a.json {
        let changes: Vec<_> = report
            .changes
            .iter()
            .map(|c| {
                json!({
                    "arch": c.arch.name(), "nr": c.nr, "syscall": c.name, "whatever_the_arguments": c.whatever_the_arguments,
                    "examples": c.examples.iter().map(|(args, x, y)| json!({"args": args, "old": ret_name(*x), "new": ret_name(*y)})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let out = json!({
            "archs": report.archs.iter().map(|a| a.name()).collect::<Vec<_>>(),
            "not_compared": report.uncovered.iter().map(|(a, side)| json!({"arch": a.name(), "only_in": side})).collect::<Vec<_>>(),
            "calls_compared": report.calls,
            "equal": report.changes.is_empty(),
            "changes": changes,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return u8::from(!report.changes.is_empty());
    }
    for line in render(&report) {
        println!("{line}");
    }
    let archs = report.archs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ");
    if report.changes.is_empty() {
        println!("no differences: the same decision for every one of {} calls compared ({archs})", report.calls);
        0
    } else {
        println!("{} syscall number(s) decided differently ({} calls compared on {archs})", report.changes.len(), report.calls);
        1
    }
}

/// The changes of a report as text lines: whole-syscall changes grouped by (arch, old → new),
/// argument-dependent ones one by one with examples.
pub(crate) fn render(report: &scpc::diff::Report) -> Vec<String> {
    let mut out = Vec::new();
    for (arch, side) in &report.uncovered {
        out.push(format!("note: {arch} is covered only by the {side} side: not compared"));
    }
    // (arch, old, new) → (names, numbers without a name)
    type Whole<'a> = BTreeMap<(Arch, u32, u32), (Vec<&'a str>, Vec<u32>)>;
    let mut whole: Whole = BTreeMap::new();
    for c in report.changes.iter().filter(|c| c.whatever_the_arguments) {
        let (_, x, y) = c.examples[0];
        let entry = whole.entry((c.arch, x, y)).or_default();
        match c.name {
            Some(n) => entry.0.push(n),
            None => entry.1.push(c.nr),
        }
    }
    for ((arch, x, y), (names, numbers)) in &whole {
        let mut parts: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &n in numbers {
            match runs.last_mut() {
                Some((_, hi)) if *hi + 1 == n => *hi = n,
                _ => runs.push((n, n)),
            }
        }
        parts.extend(runs.iter().map(|(lo, hi)| if lo == hi { format!("number {lo}") } else { format!("numbers {lo}..={hi}") }));
        out.push(format!("{arch}: {} → {} ({} syscalls): {}", ret_name(*x), ret_name(*y), parts.len(), parts.join(", ")));
    }
    for c in report.changes.iter().filter(|c| !c.whatever_the_arguments) {
        let name = c.name.map_or_else(|| format!("syscall {}", c.nr), str::to_string);
        out.push(format!("{}: {name}, depending on the arguments; for example:", c.arch));
        for (args, x, y) in &c.examples {
            out.push(format!("    {}: {} → {}", call(c.arch, c, args), ret_name(*x), ret_name(*y)));
        }
    }
    out
}
