//! `scpc explain`: seccomp audit records decoded, counted, and traced back to the rule that
//! decided them.

use std::collections::BTreeMap;
use std::io::Read;

use scpc::auditlog::{explain as culprits, parse, Culprit, Record};
use scpc::policy::{Action, Policy};
use scpc_lang::source::SourceMap;
use serde_json::json;

use crate::build::load_policy;
use crate::MessageFormat;

pub(crate) struct ExplainArgs {
    pub log: Option<String>,
    pub policy_file: Option<String>,
    pub name: Option<String>,
    pub json: bool,
}

/// Where a culprit is written, for people.
fn describe(policy: &Policy, map: &SourceMap, c: &Culprit) -> String {
    match c {
        Culprit::Rule(rule) => {
            let data = &policy.rules[*rule];
            let at = map.locate(data.span.lo).map_or_else(String::new, |(f, lc)| format!("{f}:{}:{}", lc.line, lc.column));
            let text = map.text(data.span).lines().next().unwrap_or("").trim();
            format!("{at}: `{text}` (policy {})", data.layer)
        }
        Culprit::Default => format!("the default action of policy {} (`default {}`)", policy.name, policy.default),
        Culprit::Newer => format!("the `newer` action of policy {}", policy.name),
        Culprit::Badarch => "the badarch action: the call's architecture is not a target".to_string(),
    }
}

pub(crate) fn explain(a: &ExplainArgs) -> u8 {
    let (source, text) = match &a.log {
        Some(path) => match std::fs::read(path) {
            Ok(b) => (path.clone(), String::from_utf8_lossy(&b).into_owned()),
            Err(e) => {
                eprintln!("error: cannot read `{path}`: {e}");
                return 2;
            }
        },
        None => {
            let mut b = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut b) {
                eprintln!("error: cannot read standard input: {e}");
                return 2;
            }
            ("<stdin>".to_string(), String::from_utf8_lossy(&b).into_owned())
        }
    };
    let loaded = match (&a.policy_file, &a.name) {
        (Some(file), Some(name)) => match load_policy(file, name, &[], MessageFormat::Human) {
            Ok((policy, map, _)) => Some((policy, map)),
            Err(code) => return code,
        },
        (None, None) => None,
        _ => {
            eprintln!("error: --policy FILE and --name NAME go together");
            return 1;
        }
    };
    let parsed = parse(&text);
    let action = |r: &Record| r.action.map_or_else(|| format!("unknown action {:#x}", r.code), |a| a.to_string());
    let arch = |r: &Record| r.arch.map_or_else(|| format!("arch {:#x}", r.audit_arch), |a| a.to_string());
    let mut summary: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    let mut json_records = Vec::new();
    let mut mismatches = 0;
    for r in &parsed.records {
        *summary.entry((action(r), arch(r), r.syscall_name(), r.program().to_string())).or_default() += 1;
        let explanation = loaded.as_ref().map(|(policy, map)| {
            let e = culprits(policy, r);
            let said: Vec<String> = e
                .matches
                .iter()
                .map(|(c, act)| {
                    let would = if Some(*act) == r.action { String::new() } else { format!(" (enforcing, it would be {act})") };
                    format!("{}{would}", describe(policy, map, c))
                })
                .collect();
            let possible: Vec<String> = e.possible.iter().map(|(c, a)| format!("{a} by {}", describe(policy, map, c))).collect();
            (said, possible)
        });
        if a.json {
            let mut j = json!({
                "line": r.line, "stamp": r.stamp, "pid": r.pid, "comm": r.comm, "exe": r.exe,
                "arch": r.arch.map(|a| a.to_string()), "audit_arch": format!("{:#x}", r.audit_arch),
                "nr": r.nr, "syscall": r.syscall, "code": format!("{:#x}", r.code), "action": r.action.map(|a| a.to_string()),
            });
            if let Some((said, _)) = &explanation {
                j["decided_by"] = json!(said);
            }
            json_records.push(j);
            continue;
        }
        let who = match (&r.comm, &r.exe) {
            (Some(c), Some(e)) => format!("{c} ({e})"),
            (Some(c), None) => c.clone(),
            (None, Some(e)) => e.clone(),
            (None, None) => "?".to_string(),
        };
        let pid = r.pid.map_or_else(String::new, |p| format!(" pid {p}"));
        let audit_only = if r.action == Some(Action::Log) { " (allowed and logged)" } else { "" };
        println!("{source}:{}: {who}{pid}: {} {} ({}): {}{audit_only}", r.line, arch(r), r.syscall_name(), r.nr, action(r));
        if let Some((said, possible)) = explanation {
            match said.as_slice() {
                [] => {
                    mismatches += 1;
                    println!("    the policy does not decide this call this way; it decides: {}", possible.join("; or "));
                    println!("    help: the filter that logged this was not built from this policy (or from an older version of it)");
                }
                [one] => println!("    decided by {one}"),
                many => {
                    println!("    decided by one of these, depending on the arguments (audit records carry none):");
                    for m in many {
                        println!("      {m}");
                    }
                }
            }
        }
    }
    for (line, why) in &parsed.unreadable {
        eprintln!("{source}:{line}: error: cannot read this seccomp record: {why}");
    }
    if a.json {
        let summary: Vec<_> = summary
            .iter()
            .map(|((action, arch, syscall, program), n)| json!({"count": n, "action": action, "arch": arch, "syscall": syscall, "program": program}))
            .collect();
        let unreadable: Vec<_> = parsed.unreadable.iter().map(|(line, why)| json!({"line": line, "error": why})).collect();
        let out = json!({"source": source, "records": json_records, "unreadable": unreadable, "other_lines": parsed.other_lines, "summary": summary});
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!(
            "\n{} seccomp record(s), {} unreadable, {} other line(s) skipped",
            parsed.records.len(),
            parsed.unreadable.len(),
            parsed.other_lines
        );
        if !summary.is_empty() {
            let mut rows: Vec<_> = summary.into_iter().collect();
            rows.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            println!("{:>7}  {:<14} {:<8} {:<20} program", "count", "action", "arch", "syscall");
            for ((action, arch, syscall, program), n) in rows {
                println!("{n:>7}  {action:<14} {arch:<8} {syscall:<20} {program}");
            }
        }
        if mismatches > 0 {
            println!("{mismatches} record(s) disagree with the policy");
        }
        if let Some((policy, _)) = &loaded {
            for target in &policy.targets {
                // (a rule names it: the default deciding it says nothing worth a note)
                for s in target.arch.table().syscalls.iter().filter(|s| s.unfiltered_since.is_some() && target.syscalls.contains_key(&s.nr))
                {
                    let decision = scpc::eval::decide(policy, target.arch.table().audit_arch, s.nr, &[0; 6]).action;
                    if let (false, Some(since)) = (decision.lets_through(), s.unfiltered_since) {
                        println!(
                            "note: the policy decides {decision} for `{}` ({}) on {}, but from Linux {since} the kernel lets it through without running the filter (no record is ever logged for it)",
                            s.name, s.nr, target.arch
                        );
                    }
                }
            }
        }
    }
    u8::from(!parsed.unreadable.is_empty())
}
