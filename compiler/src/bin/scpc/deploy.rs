//! `scpc deploy`, `scpc status`, `scpc rollback`: the command-line face of `scpc_deploy`.
//! Progress goes to stderr (a line per host in flight and an overall bar, when stderr is a
//! terminal), the summary table or the `--json` report to stdout.
//!
//! Exit status: 0 every host did what was asked (status: every host runs the local build);
//! 1 the inventory or the local build is wrong; 2 a host failed, was unreachable, refused, or
//! (status) drifted or is out of date.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use scpc::abi::Arch;
use scpc::bpf::Program;
use scpc::diff::{diff as compare, Side};
use scpc_deploy::inventory::Inventory;
use scpc_deploy::rollout::{self, Change, HostReport, Observer, Options, Report};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// What to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Deploy,
    Status,
    Rollback,
}

pub(crate) struct FleetArgs {
    pub verb: Verb,
    pub inventory: String,
    pub opts: Options,
    pub json: bool,
}

/// indicatif bars: one spinner per host in flight, one overall bar.
struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} hosts {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Bars { multi, overall, hosts: Mutex::new(BTreeMap::new()) }
    }
}

impl Observer for Bars {
    fn start(&self, total: usize) {
        self.overall.set_length(total as u64);
    }

    fn step(&self, host: &str, step: &str) {
        let Ok(mut hosts) = self.hosts.lock() else { return };
        let bar = hosts.entry(host.to_string()).or_insert_with(|| {
            let b = self.multi.insert_before(&self.overall, ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template("  {spinner} {prefix:>16} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(host.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        bar.set_message(step.to_string());
    }

    fn done(&self, report: &HostReport) {
        if let Ok(mut hosts) = self.hosts.lock() {
            if let Some(b) = hosts.remove(&report.host) {
                b.finish_and_clear();
                self.multi.remove(&b);
            }
        }
        let verdict = if report.failed() { "FAILED" } else { "ok" };
        let _ = self.multi.println(format!("{:>16} {verdict} ({:.1}s)", report.host, report.seconds));
        self.overall.inc(1);
    }
}

/// The differ the dry run shows: what the new filter decides differently from the deployed one.
fn differ(arch: &str, old: &[u8], new: &[u8]) -> Vec<String> {
    let (Some(old), Some(new)) = (Program::from_bytes(old), Program::from_bytes(new)) else {
        return vec!["(the deployed file is not a filter)".into()];
    };
    if Arch::from_name(arch).is_none() {
        return Vec::new();
    }
    let report = match compare(&Side::Filter(old), &Side::Filter(new)) {
        Ok(r) => r,
        Err(e) => return vec![format!("(not compared: {e})")],
    };
    if report.archs.is_empty() {
        return vec!["(the deployed filter covers other architectures)".into()];
    }
    if report.equal {
        return vec!["the same decision for every call (the code differs)".into()];
    }
    report.render()
}

/// The first 12 hex digits of a sha256, `-` for none.
fn short(sha: Option<&str>) -> String {
    sha.map_or_else(|| "-".to_string(), |s| s.chars().take(12).collect())
}

fn describe(c: &Change) -> String {
    match c {
        Change::Installed { from, to } => format!("installed {} → {}", short(from.as_deref()), short(Some(to))),
        Change::Unchanged { sha256 } => format!("unchanged {}", short(Some(sha256))),
        Change::WouldInstall { from, to, .. } => format!("would install {} → {}", short(from.as_deref()), short(Some(to))),
        Change::RolledBack { reason, to } => format!("ROLLED BACK to {}: {reason}", short(to.as_deref())),
        Change::Reverted { from, to } => format!("reverted {} → {}", short(Some(from)), short(Some(to))),
        Change::NothingToRevert => "nothing earlier to revert to".into(),
        Change::Status { actual, recorded, local, verdict } => match verdict.as_str() {
            "drift" => format!("DRIFT: the file is {} but scpc installed {}", short(actual.as_deref()), short(recorded.as_deref())),
            "outdated" => format!("outdated: runs {}, local build {}", short(actual.as_deref()), short(local.as_deref())),
            v => format!("{v} {}", short(actual.as_deref())),
        },
        Change::Failed { reason } => format!("FAILED: {reason}"),
    }
}

fn table(report: &Report) -> String {
    let mut out = String::new();
    let w = report.hosts.iter().map(|h| h.host.len()).max().unwrap_or(4).max(4);
    out.push_str(&format!("{:w$}  {:>4}  {:8}  {:22}  result\n", "host", "wave", "arch", "address"));
    for h in &report.hosts {
        let wave = if h.canary {
            "c".to_string()
        } else if report.command == "deploy" || report.command == "dry-run" {
            h.wave.to_string()
        } else {
            "-".into()
        };
        let arch = h.arch.clone().or_else(|| h.machine.clone()).unwrap_or_else(|| "?".into());
        let result = if h.skipped {
            "skipped (the rollout stopped)".to_string()
        } else if let Some(e) = &h.error {
            format!("FAILED: {e}")
        } else {
            h.services.iter().map(|(s, c)| format!("{s}: {}", describe(c))).collect::<Vec<_>>().join("; ")
        };
        out.push_str(&format!("{:w$}  {wave:>4}  {arch:8}  {:22}  {result}\n", h.host, h.address));
        for warning in &h.warnings {
            out.push_str(&format!("{:w$}  warning: {warning}\n", ""));
        }
        for c in h.services.values() {
            if let Change::WouldInstall { diff, .. } = c {
                for line in diff {
                    out.push_str(&format!("{:w$}      {line}\n", ""));
                }
            }
        }
    }
    let failed = report.failures();
    let n = report.hosts.len();
    match report.command.as_str() {
        "status" => {
            let drift = report.hosts.iter().filter(|h| h.out_of_sync()).count();
            out.push_str(&format!(
                "{n} host(s): {} in sync, {drift} drifted or outdated, {failed} unreachable or failed\n",
                n - drift - failed
            ));
        }
        _ => {
            let skipped = report.hosts.iter().filter(|h| h.skipped).count();
            out.push_str(&format!(
                "{n} host(s): {} ok, {failed} failed, {skipped} skipped, in {:.1}s\n",
                n - failed - skipped,
                report.seconds
            ));
        }
    }
    if let Some(why) = &report.stopped {
        out.push_str(&format!("stopped: {why}\n"));
    }
    out
}

pub(crate) fn run(a: FleetArgs) -> u8 {
    let inv = match Inventory::load(Path::new(&a.inventory)) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{:?}", miette::Report::new(*e));
            return 1;
        }
    };
    let bars = Bars::new();
    let result = match a.verb {
        Verb::Deploy => rollout::deploy(&inv, &a.opts, Some(&differ), &bars),
        Verb::Status => rollout::status(&inv, &a.opts, &bars),
        Verb::Rollback => rollout::rollback(&inv, &a.opts, &bars),
    };
    bars.overall.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", table(&report));
    }
    let bad =
        report.failures() > 0 || report.stopped.is_some() || (a.verb == Verb::Status && report.hosts.iter().any(HostReport::out_of_sync));
    if bad {
        2
    } else {
        0
    }
}
