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
use scpc_deploy::report::{Command, HostReport};
use scpc_deploy::rollout::{self, Observer, Options};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

pub(crate) struct FleetArgs {
    pub verb: Command,
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
        Command::Deploy | Command::DryRun => rollout::deploy(&inv, &a.opts, Some(&differ), &bars),
        Command::Status => rollout::status(&inv, &a.opts, &bars),
        Command::Rollback => rollout::rollback(&inv, &a.opts, &bars),
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
        print!("{report}");
    }
    if report.succeeded() {
        0
    } else {
        2
    }
}
