//! `scpc explain`: seccomp audit records decoded, counted, and traced back to the rule that
//! decided them.

use std::io::Read;

use crate::build::load_policy;
use crate::MessageFormat;

/// `scpc explain`'s arguments.
#[derive(clap::Args)]
pub(crate) struct ExplainArgs {
    /// The log (standard input when absent).
    log: Option<String>,
    /// The policy file that the filters were built from.
    #[arg(long = "policy", requires = "name")]
    policy_file: Option<String>,
    /// The policy in that file.
    #[arg(long, requires = "policy_file")]
    name: Option<String>,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
    /// Only the records of this process (the thread id the record names).
    #[arg(long)]
    pid: Option<u32>,
    /// Only the records of this program (its thread name, `comm`, or its executable's name).
    #[arg(long)]
    comm: Option<String>,
    /// Only records from this time on: seconds since the epoch or YYYY-MM-DD[THH:MM[:SS]] (UTC).
    #[arg(long, value_parser = scpc::analysis::explain::parse_since)]
    since: Option<f64>,
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
    let filter = scpc::analysis::explain::RecordFilter { pid: a.pid, comm: a.comm.clone(), since: a.since };
    let report = scpc::analysis::explain::report_filtered(&source, &text, loaded.as_ref().map(|(p, m)| (p, m)), &filter);
    let unreadable = || {
        for u in &report.unreadable {
            eprintln!("{source}:{}: error: cannot read this seccomp record: {}", u.line, u.error);
        }
    };
    if a.json {
        unreadable();
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", report.records_text());
        unreadable();
        print!("{}", report.summary_text());
        if let Some((policy, _)) = &loaded {
            print!("{}", unfiltered_notes(policy));
        }
    }
    u8::from(!report.unreadable.is_empty())
}

/// Notes on syscalls the policy names but the kernel never lets reach a filter (from the
/// version the tables give): no record of them is ever logged.
fn unfiltered_notes(policy: &scpc::ir::Policy) -> String {
    let mut out = String::new();
    for target in &policy.targets {
        let table = target.arch.table();
        for s in table.syscalls.iter().filter(|s| target.syscalls.contains_key(&s.nr)) {
            let Some(since) = s.unfiltered_since else { continue };
            let decision = scpc::ir::eval::decide(policy, table.audit_arch, s.nr, &[0; 6]).action;
            if !decision.lets_through() {
                out += &format!(
                    "note: the policy decides {decision} for `{}` ({}) on {}, but from Linux {since} the kernel lets it through without running the filter (no record is ever logged for it)\n",
                    s.name, s.nr, target.arch
                );
            }
        }
    }
    out
}
