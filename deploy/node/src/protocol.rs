//! The node program's interface: `scpc-node serve` reads one JSON [`Request`] on standard
//! input (nothing on its command line) and writes one JSON [`Response`] on standard output,
//! preceded by blank lines while it works (one a second, so that a session reading it sees
//! it alive; a JSON parser skips them). Its exit status is 0 when the response says `ok`, 1
//! when the request was refused as wrong, 2 when the job failed.
//!
//! The deployer drives it this way over SSH, and so can anything else (an Ansible module, a
//! person with `ssh host scpc-node serve < request.json`). docs/deploy.md shows every
//! message with an example; the types here are the schema (unknown keys are refused).
//!
//! Nothing in a request is run as a shell command except a service's own `reload` and
//! `health` commands, which the node runs with `/bin/sh -c`, each under its own time limit,
//! and never echoes back: a failed step is reported by name, exit status and a bounded
//! excerpt of its standard error.

use serde::{Deserialize, Serialize};

use crate::sha256::Sha256;
use crate::state::{Deployed, Last, State};

/// The protocol version this node speaks. A request of another version is refused.
pub const PROTOCOL: u32 = 1;

/// The longest standard-error excerpt a failed step reports (bytes).
pub const STDERR_EXCERPT: usize = 512;

/// One request: `{"protocol": 1, "job": "read", ...}`, the job's fields beside `protocol`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// What to do.
    pub job: Job,
}

/// The jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// What each service's path holds (and, on request, its bytes and whether its processes
    /// run under it), plus the systemd units the node has wrapped. Writes nothing.
    Read {
        /// The services.
        services: Vec<Service>,
        /// Return the bytes of each installed filter (for a dry run's comparison).
        #[serde(default)]
        fetch: bool,
        /// Check each service's processes ([`Enforcement`]).
        #[serde(default)]
        enforcement: bool,
        /// Seconds to wait for a path's lock (a change in progress).
        timeout: u64,
    },
    /// Installs a filter at a service's path, restarts the service under it and checks it;
    /// on a failed check puts the previous filter back (or removes the new one) itself.
    Install {
        /// The service.
        service: Service,
        /// The filter.
        filter: Upload,
        /// What the history records of it.
        record: Record,
        /// Earlier versions kept for rollback.
        keep: usize,
        /// Replace a file that is not a seccomp filter at a path scpc never installed to.
        #[serde(default)]
        force: bool,
        /// Seconds each command (reload, health, systemctl) may run, and the lock wait.
        timeout: u64,
    },
    /// Puts back the version before the current one (a kept copy, verified) and restarts the
    /// service; for a systemd service at its first version, removes the filter and the
    /// drop-in.
    Rollback {
        /// The service.
        service: Service,
        /// Earlier versions kept.
        keep: usize,
        /// Seconds each command may run, and the lock wait.
        timeout: u64,
    },
    /// Removes the drop-in of a systemd unit whose service left the inventory and restarts
    /// the unit as it was.
    Remove {
        /// The unit.
        unit: String,
        /// Seconds each command may run.
        timeout: u64,
    },
}

/// A service: where its filter goes and how it is started under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Its name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// The absolute install path.
    pub path: String,
    /// How it is started under the filter.
    pub kind: Kind,
    /// For `systemd`: the unit (`nginx.service`).
    #[serde(default)]
    pub unit: Option<String>,
    /// For `command`: run after installing (restarts the service so it loads the filter).
    #[serde(default)]
    pub reload: Option<String>,
    /// Run after the service (re)started; a non-zero exit or a timeout fails the install.
    #[serde(default)]
    pub health: Option<String>,
    /// Its processes, for a `command` service: the file holding its main process id.
    #[serde(default)]
    pub pid_file: Option<String>,
    /// Its processes, for a `command` service: their name (`/proc/PID/comm`).
    #[serde(default)]
    pub process: Option<String>,
}

/// How a service is started under its filter.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A systemd unit ([`Service::unit`]): a drop-in runs its `ExecStart=` under
    /// `scpc-node run FILTER --`, and the unit is restarted.
    Systemd,
    /// The service's own start command holds `scpc-node run FILTER -- ...`; its `reload`
    /// command restarts it.
    Command,
}

/// A filter to install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    /// The architecture it is built for (scpc's name: `x86_64`, `aarch64`, `arm`, `i386`,
    /// `riscv64`); it must have code for it.
    pub arch: String,
    /// Its sha256: the bytes must have it.
    pub sha256: Sha256,
    /// Its bytes, base64 (standard alphabet, padded).
    pub bytes: String,
}

/// What the history records of an install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The policy.
    pub policy: String,
    /// sha256 of its build manifest.
    pub manifest_sha256: Sha256,
    /// The compiler.
    pub compiler: String,
    /// Who deploys.
    pub operator: String,
}

/// One response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// The node program and its machine.
    pub node: NodeInfo,
    /// Whether the job was done (its result may still say that a check failed and was rolled
    /// back).
    pub ok: bool,
    /// The job's result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// Why not, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// The node program and its machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node program's version.
    pub version: String,
    /// The architecture it was built for (scpc's name).
    pub arch: String,
    /// `uname -m`.
    pub machine: String,
    /// `uname -r`.
    pub kernel: String,
}

/// An error, with its stable code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// `scpc::node::...`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// A job's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum JobResult {
    /// Of [`Job::Read`].
    Read {
        /// Per service, in request order.
        services: Vec<ServiceReading>,
        /// The systemd units that carry the node's drop-in.
        wrapped_units: Vec<String>,
    },
    /// Of [`Job::Install`].
    Install(Outcome),
    /// Of [`Job::Rollback`].
    Rollback(Outcome),
    /// Of [`Job::Remove`].
    Remove {
        /// Whether the unit had the drop-in.
        removed: bool,
        /// A step that failed after the drop-in was removed.
        #[serde(default)]
        failure: Option<StepFailure>,
    },
}

/// What one service's path holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceReading {
    /// The service.
    pub name: String,
    /// What the path holds, or why it cannot be read.
    #[serde(flatten)]
    pub holding: Reading,
    /// The installed filter's bytes (base64), when asked and there is one.
    #[serde(default)]
    pub bytes: Option<String>,
    /// Whether the service's processes run under it, when asked.
    #[serde(default)]
    pub enforcement: Option<Enforcement>,
}

/// What a path holds, or why it cannot be told.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// Read.
    Holding(Holding),
    /// Refused (a link where a file should be, a damaged state file, ...).
    Error(ErrorReport),
}

/// What a path holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// sha256 of the file at the path (none: no file).
    pub actual: Option<Sha256>,
    /// Whether the path's directory exists.
    pub dir_exists: bool,
    /// The history, a pending change settled against `actual`.
    pub history: Vec<Deployed>,
    /// How the last change ended.
    pub last: Option<Last>,
}

impl Holding {
    /// The holding of a path from its settled state.
    pub fn of(state: &State, actual: Option<Sha256>, dir_exists: bool) -> Holding {
        Holding { actual, dir_exists, history: state.history.clone(), last: state.last.clone() }
    }

    /// What scpc last installed there.
    pub fn recorded(&self) -> Option<Sha256> {
        self.history.first().map(|d| d.sha256)
    }
}

/// How an install or rollback ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// What happened.
    pub result: Change,
    /// What the path held before.
    pub from: Option<Sha256>,
    /// What the path holds now (verified by hashing it).
    pub now: Option<Sha256>,
    /// The step that failed (the change was then undone).
    #[serde(default)]
    pub failure: Option<StepFailure>,
    /// A step of the undoing that failed too.
    #[serde(default)]
    pub undo_failure: Option<StepFailure>,
}

/// What an install or rollback did.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// The new filter is in place, the service restarted and checked.
    Installed,
    /// The path already held it, as recorded.
    Unchanged,
    /// A step failed; the previous filter was put back (or the new one removed).
    RolledBack,
    /// Rollback: the previous version is back.
    Reverted,
    /// Rollback past the first version of a systemd service: filter and drop-in removed.
    Removed,
    /// Rollback: there is nothing earlier.
    NothingToRevert,
}

/// A step that failed: never the command line (it may hold secrets).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    /// `reload`, `health`, `daemon-reload`, `restart`, `enforcement`, `drop-in`...
    pub step: String,
    /// How it ended.
    pub status: StepStatus,
    /// The end of its standard error (at most [`STDERR_EXCERPT`] bytes), or the node's reason.
    pub stderr: String,
}

/// How a step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Signal(i32),
    /// Ran past its time limit (seconds) and was killed with its process group.
    TimedOut(u64),
    /// Could not be started, or the node's own check failed.
    Failed,
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepStatus::Exited(n) => write!(f, "exited {n}"),
            StepStatus::Signal(n) => write!(f, "killed by signal {n}"),
            StepStatus::TimedOut(s) => write!(f, "timed out after {s} s"),
            StepStatus::Failed => f.write_str("failed"),
        }
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.step, self.status)?;
        let excerpt = self.stderr.trim();
        if !excerpt.is_empty() {
            write!(f, ": {excerpt}")?;
        }
        Ok(())
    }
}

/// Whether a service's processes run under its filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    /// The verdict over all its processes.
    pub state: EnforcementState,
    /// Why, when `unknown` (or what could not be compared).
    #[serde(default)]
    pub why: Option<String>,
    /// Each process looked at.
    pub processes: Vec<ProcessCheck>,
}

/// The verdict of [`Enforcement`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnforcementState {
    /// Every process runs under the deployed filter, compared byte for byte.
    Enforced,
    /// A process runs under seccomp filters, none of them the deployed one.
    EnforcedOther,
    /// A process runs under no filter at all (restart needed).
    NotEnforced,
    /// It cannot be told ([`Enforcement::why`]).
    Unknown,
}

impl EnforcementState {
    /// As written in reports.
    pub fn name(self) -> &'static str {
        match self {
            EnforcementState::Enforced => "enforced",
            EnforcementState::EnforcedOther => "enforced-other",
            EnforcementState::NotEnforced => "not-enforced",
            EnforcementState::Unknown => "unknown",
        }
    }
}

/// One process of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCheck {
    /// Its id.
    pub pid: u32,
    /// Its name (`/proc/PID/comm`).
    pub comm: String,
    /// `Seccomp:` of `/proc/PID/status` (0 none, 1 strict, 2 filter).
    pub seccomp_mode: u8,
    /// `Seccomp_filters:` (kernels from 5.9 on).
    #[serde(default)]
    pub filters: Option<u32>,
    /// Whether one of its filters is byte for byte the deployed one (none: not compared).
    #[serde(default)]
    pub matches: Option<bool>,
    /// Why it was not compared.
    #[serde(default)]
    pub why: Option<String>,
}

/// A name of a service, unit or process: letters, digits and `-_.@:`, not starting with `-`.
pub fn plain_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.starts_with('-') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b))
}

/// Why a request is refused before anything is done.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestError {
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad request: {}", self.reason)
    }
}

impl std::error::Error for RequestError {}

fn refuse(reason: impl Into<String>) -> RequestError {
    RequestError { reason: reason.into() }
}

/// The longest command a service may name (bytes).
const MAX_COMMAND: usize = 8192;

impl Service {
    /// Checks the names, the path and the commands of a service.
    pub fn validate(&self) -> Result<(), RequestError> {
        if !plain_name(&self.name, 128) {
            return Err(refuse(format!("service name `{}` is not a name", self.name)));
        }
        crate::store::components(&self.path).map_err(|e| refuse(e.to_string()))?;
        match (self.kind, &self.unit, &self.reload) {
            (Kind::Systemd, Some(unit), None) if crate::systemd::unit_name(unit) => {}
            (Kind::Systemd, Some(unit), None) => return Err(refuse(format!("`{unit}` is not a systemd service unit name (NAME.service)"))),
            (Kind::Systemd, None, _) => return Err(refuse(format!("service `{}` is of kind systemd and names no unit", self.name))),
            (Kind::Systemd, _, Some(_)) => {
                return Err(refuse(format!("service `{}` is of kind systemd: the node restarts the unit, no reload command", self.name)))
            }
            (Kind::Command, Some(_), _) => return Err(refuse(format!("service `{}` is of kind command and names a unit", self.name))),
            (Kind::Command, None, _) => {}
        }
        for command in self.reload.iter().chain(&self.health) {
            if command.len() > MAX_COMMAND || command.contains('\0') {
                return Err(refuse(format!("a command of service `{}` is longer than {MAX_COMMAND} bytes or holds NUL", self.name)));
            }
        }
        if let Some(p) = &self.pid_file {
            crate::store::components(p).map_err(|e| refuse(format!("pid_file: {e}")))?;
        }
        if let Some(p) = &self.process {
            if !plain_name(p, 15) {
                return Err(refuse(format!("process `{p}` is not a process name (at most 15 characters)")));
            }
        }
        Ok(())
    }
}

impl Request {
    /// The request as sent: one JSON object, `protocol` beside the job's fields.
    pub fn to_json(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(&self.job).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("protocol".into(), self.protocol.into());
        }
        serde_json::to_vec(&value).unwrap_or_default()
    }

    /// Parses and checks a request: the schema, the protocol version, names, paths, digests.
    pub fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        let mut value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| refuse(e.to_string()))?;
        let protocol = value
            .as_object_mut()
            .and_then(|m| m.remove("protocol"))
            .and_then(|p| p.as_u64())
            .ok_or_else(|| refuse("a request is a JSON object with a numeric `protocol`"))?;
        if protocol != u64::from(PROTOCOL) {
            return Err(refuse(format!("protocol {protocol} (this node speaks {PROTOCOL})")));
        }
        let job: Job = serde_json::from_value(value).map_err(|e| refuse(e.to_string()))?;
        let req = Request { protocol: PROTOCOL, job };
        let timeout = |t: u64| if (1..=86_400).contains(&t) { Ok(()) } else { Err(refuse("`timeout` must be 1 to 86400 seconds")) };
        match &req.job {
            Job::Read { services, timeout: t, .. } => {
                timeout(*t)?;
                for s in services {
                    s.validate()?;
                }
            }
            Job::Install { service, filter, record, keep, timeout: t, .. } => {
                timeout(*t)?;
                service.validate()?;
                if crate::run::audit_arch(&filter.arch).is_none() {
                    return Err(refuse(format!("unknown architecture `{}`", filter.arch)));
                }
                if !plain_name(&record.policy, 128) || record.policy.contains(['@', ':', '.', '-']) {
                    return Err(refuse(format!("`{}` is not a policy name", record.policy)));
                }
                for text in [&record.compiler, &record.operator] {
                    if text.len() > 256 || text.chars().any(char::is_control) {
                        return Err(refuse("`compiler` and `operator` are printable text of at most 256 bytes"));
                    }
                }
                if !(1..=100).contains(keep) {
                    return Err(refuse("`keep` must be 1 to 100"));
                }
            }
            Job::Rollback { service, keep, timeout: t } => {
                timeout(*t)?;
                service.validate()?;
                if !(1..=100).contains(keep) {
                    return Err(refuse("`keep` must be 1 to 100"));
                }
            }
            Job::Remove { unit, timeout: t } => {
                timeout(*t)?;
                if !crate::systemd::unit_name(unit) {
                    return Err(refuse(format!("`{unit}` is not a systemd service unit name")));
                }
            }
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service {
            name: "web".into(),
            path: "/etc/scpc/web.bpf".into(),
            kind: Kind::Command,
            unit: None,
            reload: Some("systemctl restart web".into()),
            health: None,
            pid_file: None,
            process: None,
        }
    }

    #[test]
    fn requests_read_back_and_bad_ones_are_refused() {
        let req = Request { protocol: PROTOCOL, job: Job::Read { services: vec![service()], fetch: false, enforcement: true, timeout: 5 } };
        let json = String::from_utf8(req.to_json()).expect("utf-8");
        assert!(json.contains("\"job\":\"read\"") && json.contains("\"kind\":\"command\""), "{json}");
        assert_eq!(Request::parse(json.as_bytes()).expect("parses"), req);
        for (what, bad) in [
            ("version", json.replace("\"protocol\":1", "\"protocol\":2")),
            ("unknown key", json.replace("\"fetch\"", "\"exec\":1,\"fetch\"")),
            ("relative path", json.replace("/etc/scpc/web.bpf", "etc/web.bpf")),
            ("dot dot", json.replace("/etc/scpc/web.bpf", "/etc/scpc/../passwd")),
            ("name", json.replace("\"web\"", "\"web;reboot\"")),
            ("timeout", json.replace("\"timeout\":5", "\"timeout\":0")),
            ("kind", json.replace("\"command\"", "\"shell\"")),
        ] {
            assert!(Request::parse(bad.as_bytes()).is_err(), "{what}: {bad}");
        }
    }

    #[test]
    fn a_systemd_service_names_a_unit() {
        let mut s = service();
        s.kind = Kind::Systemd;
        assert!(s.validate().is_err(), "a reload command");
        s.reload = None;
        assert!(s.validate().is_err(), "no unit");
        s.unit = Some("nginx.service".into());
        assert!(s.validate().is_ok());
        for bad in ["../x.service", "nginx.socket", "-x.service"] {
            s.unit = Some(bad.into());
            assert!(s.validate().is_err(), "{bad}");
        }
    }
}
