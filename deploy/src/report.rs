//! What a fleet run reports: per host and service what happened ([`Change`], [`Verdict`]),
//! per run which command and what stopped it ([`Report`]). Reports serialize as `--json`
//! gives them and print as the table the command line shows (`Display`).

use std::collections::BTreeMap;
use std::fmt;

use scpc_node::protocol::{Enforcement, EnforcementState, StepFailure};
use scpc_node::Sha256;
use serde::Serialize;

/// The fleet command a report is of.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// `scpc deploy`.
    Deploy,
    /// `scpc deploy --dry-run`.
    DryRun,
    /// `scpc status`.
    Status,
    /// `scpc rollback`.
    Rollback,
}

/// How a service on a host compares with what scpc installed and the local build.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The host runs the local build's filter, as recorded.
    InSync,
    /// The host runs what scpc installed, but the local build has another filter.
    Outdated,
    /// The file is not what scpc recorded installing (changed by hand).
    Drift,
    /// Neither a file nor a record.
    NotInstalled,
}

impl Verdict {
    /// As written in reports.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::InSync => "in-sync",
            Verdict::Outdated => "outdated",
            Verdict::Drift => "drift",
            Verdict::NotInstalled => "not-installed",
        }
    }
}

/// What happened to one service on one host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Change {
    /// The new filter is in place and the checks passed.
    Installed {
        /// sha256 before (none: no file).
        from: Option<Sha256>,
        /// sha256 now.
        to: Sha256,
    },
    /// The host already ran this filter.
    Unchanged {
        /// sha256.
        sha256: Sha256,
    },
    /// Dry run: what would be installed.
    WouldInstall {
        /// sha256 now.
        from: Option<Sha256>,
        /// sha256 after.
        to: Sha256,
        /// How the decisions change (from the caller's differ).
        diff: Vec<String>,
    },
    /// A step after the install failed (or the session was lost); the previous filter was
    /// put back, or the new one removed.
    RolledBack {
        /// Why, in words: the step, its exit status and a bounded excerpt of its standard
        /// error, never its command line.
        reason: String,
        /// The step that failed, when one did.
        failure: Option<StepFailure>,
        /// What the host holds now (read back from it).
        to: Option<Sha256>,
    },
    /// Rollback: the host went back a version.
    Reverted {
        /// sha256 before.
        from: Sha256,
        /// sha256 now.
        to: Sha256,
    },
    /// Rollback past the first version of a systemd service: the filter and the unit's
    /// drop-in are gone, the unit runs as it did before scpc.
    Removed {
        /// sha256 before.
        from: Option<Sha256>,
    },
    /// The service left the inventory: its unit's drop-in was removed and the unit restarted.
    Unwrapped {
        /// The unit.
        unit: String,
    },
    /// Rollback: nothing earlier is kept.
    NothingToRevert,
    /// Status of one service.
    Status {
        /// What the file at the path hashes to.
        actual: Option<Sha256>,
        /// What scpc recorded installing.
        recorded: Option<Sha256>,
        /// What the local build has for this host.
        local: Option<Sha256>,
        /// How the three compare.
        verdict: Verdict,
        /// Whether the service's processes run under the deployed filter.
        enforcement: Option<Enforcement>,
    },
    /// It failed; the host holds what it held before.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One host's result.
#[derive(Clone, Debug, Serialize)]
pub struct HostReport {
    /// Inventory name.
    pub host: String,
    /// `address:port`.
    pub address: String,
    /// `uname -m`, when reached.
    pub machine: Option<String>,
    /// scpc architecture.
    pub arch: Option<String>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// Was it a canary.
    pub canary: bool,
    /// 0 for canaries, then 1, 2...
    pub wave: usize,
    /// Per service.
    pub services: BTreeMap<String, Change>,
    /// Connection or host-level failure (unreachable, key refused, no artifact).
    pub error: Option<String>,
    /// Warnings (kernel older than the policy's `kernel >=`).
    pub warnings: Vec<String>,
    /// Wall time spent on it.
    pub seconds: f64,
    /// Not reached because the rollout stopped.
    pub skipped: bool,
}

impl HostReport {
    /// Whether this host counts as failed.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.services.values().any(|c| matches!(c, Change::Failed { .. } | Change::RolledBack { .. }))
    }

    /// Whether a status run found it out of step with the local build, or a service running
    /// without its filter (or under another one).
    pub fn out_of_sync(&self) -> bool {
        self.services.values().any(|c| match c {
            Change::Status { verdict, enforcement, .. } => {
                *verdict != Verdict::InSync
                    || enforcement
                        .as_ref()
                        .is_some_and(|e| matches!(e.state, EnforcementState::NotEnforced | EnforcementState::EnforcedOther))
            }
            _ => false,
        })
    }
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What was run.
    pub command: Command,
    /// Per host, in rollout order.
    pub hosts: Vec<HostReport>,
    /// Why the rollout stopped early, if it did.
    pub stopped: Option<String>,
    /// Wall time.
    pub seconds: f64,
}

impl Report {
    /// Hosts that failed.
    pub fn failures(&self) -> usize {
        self.hosts.iter().filter(|h| h.failed()).count()
    }
}

impl Report {
    /// Whether the run did all it was asked: no host failed, nothing stopped the rollout,
    /// and (status) every host runs the local build.
    pub fn succeeded(&self) -> bool {
        let out_of_sync = self.command == Command::Status && self.hosts.iter().any(HostReport::out_of_sync);
        self.failures() == 0 && self.stopped.is_none() && !out_of_sync
    }
}

/// The first 12 hex digits of a sha256, `-` for none.
fn short(sha: Option<&Sha256>) -> String {
    sha.map_or_else(|| "-".to_string(), Sha256::short)
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Installed { from, to } => write!(f, "installed {} → {}", short(from.as_ref()), short(Some(to))),
            Change::Unchanged { sha256 } => write!(f, "unchanged {}", short(Some(sha256))),
            Change::WouldInstall { from, to, .. } => write!(f, "would install {} → {}", short(from.as_ref()), short(Some(to))),
            Change::RolledBack { reason, to, .. } => write!(f, "ROLLED BACK to {}: {reason}", short(to.as_ref())),
            Change::Removed { from } => write!(f, "removed {} and its drop-in", short(from.as_ref())),
            Change::Unwrapped { unit } => write!(f, "drop-in of {unit} removed (the service left the inventory)"),
            Change::Reverted { from, to } => write!(f, "reverted {} → {}", short(Some(from)), short(Some(to))),
            Change::NothingToRevert => f.write_str("nothing earlier to revert to"),
            Change::Status { actual, recorded, local, verdict, enforcement } => {
                match verdict {
                    Verdict::Drift => {
                        write!(f, "DRIFT: the file is {} but scpc installed {}", short(actual.as_ref()), short(recorded.as_ref()))?
                    }
                    Verdict::Outdated => {
                        write!(f, "outdated: the file is {}, local build {}", short(actual.as_ref()), short(local.as_ref()))?
                    }
                    v => write!(f, "{} {}", v.name(), short(actual.as_ref()))?,
                }
                if let Some(e) = enforcement {
                    write!(f, ", {}", e.state.name())?;
                    let pids: Vec<String> = e.processes.iter().map(|p| p.pid.to_string()).collect();
                    if !pids.is_empty() {
                        write!(f, " (pid {})", pids.join(", "))?;
                    }
                    if e.state == EnforcementState::Enforced {
                        f.write_str(" byte for byte")?;
                    }
                    if let Some(why) = &e.why {
                        write!(f, ": {why}")?;
                    }
                }
                Ok(())
            }
            Change::Failed { reason } => write!(f, "FAILED: {reason}"),
        }
    }
}

/// The table: a row per host (wave, architecture, address, what happened to each service),
/// its warnings, a dry run's decision changes, and a total.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.hosts.iter().map(|h| h.host.len()).max().unwrap_or(4).max(4);
        writeln!(f, "{:w$}  {:>4}  {:8}  {:22}  result", "host", "wave", "arch", "address")?;
        for h in &self.hosts {
            let wave = if h.canary {
                "c".to_string()
            } else if matches!(self.command, Command::Deploy | Command::DryRun) {
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
                h.services.iter().map(|(s, c)| format!("{s}: {c}")).collect::<Vec<_>>().join("; ")
            };
            writeln!(f, "{:w$}  {wave:>4}  {arch:8}  {:22}  {result}", h.host, h.address)?;
            for warning in &h.warnings {
                writeln!(f, "{:w$}  warning: {warning}", "")?;
            }
            for c in h.services.values() {
                if let Change::WouldInstall { diff, .. } = c {
                    for line in diff {
                        writeln!(f, "{:w$}      {line}", "")?;
                    }
                }
            }
        }
        let failed = self.failures();
        let n = self.hosts.len();
        if self.command == Command::Status {
            let drift = self.hosts.iter().filter(|h| h.out_of_sync()).count();
            writeln!(f, "{n} host(s): {} in sync, {drift} drifted or outdated, {failed} unreachable or failed", n - drift - failed)?;
        } else {
            let skipped = self.hosts.iter().filter(|h| h.skipped).count();
            writeln!(f, "{n} host(s): {} ok, {failed} failed, {skipped} skipped, in {:.1}s", n - failed - skipped, self.seconds)?;
        }
        if let Some(why) = &self.stopped {
            writeln!(f, "stopped: {why}")?;
        }
        Ok(())
    }
}
