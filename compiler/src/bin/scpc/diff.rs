//! `scpc diff OLD NEW`: two policies, two filters, or one of each. Exit 0 when they decide the
//! same everywhere, 1 when not, 2 when an input cannot be read.

use scpc::diff::{diff as compare, Side};

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
    let unit = scpc::load(path, &crate::loader(), &mut map, &mut diags).map_err(|e| (2, e.to_string()))?;
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
    let report = match compare(&old, &new) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot compare `{}` and `{}`: {e}", a.old, a.new);
            return 2;
        }
    };
    if report.archs.is_empty() {
        eprintln!(
            "error: `{}` and `{}` have no architecture in common to compare (help: a filter covers the architectures it was built for; build both for the same target)",
            a.old, a.new
        );
        return 1;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        for line in report.render() {
            println!("{line}");
        }
    }
    u8::from(!report.equal)
}
