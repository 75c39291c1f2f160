//! The node's jobs ([`crate::protocol::Job`]): reading what a path holds, installing a filter
//! and starting the service under it, rolling back, removing a drop-in.
//!
//! Layout for a service installed at `DIR/FILE`:
//! - `DIR/FILE`: the filter, only ever replaced by `rename(2)`, so it always holds a whole
//!   filter, the old one or the new one;
//! - `DIR/.FILE.scpc-tmp.*`: a new filter being written (removed by the next change);
//! - `DIR/.scpc/FILE/` (the node's own: owned by it, writable by no one else, or refused):
//!   `SHA256.bpf`, the versions kept for rollback, and `state.json` ([`crate::state`]); its
//!   `flock` serializes every change of the path.
//!
//! The order of an install, each write whole (temporary file, `fsync`, rename, `fsync` of the
//! directory), after free space for all of it was checked: a copy of the file found at the
//! path (when no copy is kept yet), a copy of the new filter, the new filter beside the path,
//! the state recording the change as pending, the rename into place, the state recording it
//! done. A crash or a full disk at any point leaves the old filter at the path with its copy
//! kept and a state file that says what the path may hold.

use std::time::{Duration, Instant};

use base64::Engine;

use crate::bpf;
use crate::enforce;
use crate::hooks;
use crate::protocol::{
    Change, ErrorReport, Holding, Job, JobResult, Kind, Outcome, Reading, Record, Service, ServiceReading, StepFailure, StepStatus, Upload,
};
use crate::sha256::Sha256;
use crate::state::{Deployed, Last, Pending, State, StateError, FOUND_ON_HOST};
use crate::store::{self, Dir, Entry, StoreError};
use crate::systemd;

/// The largest file the node reads at an install path or keeps (bytes): a filter is at most
/// 4096 instructions of 8 bytes; a file found there may be larger, up to this.
pub const MAX_FILE: u64 = 1 << 20;

/// Why a job was not done.
#[derive(Debug)]
pub enum JobError {
    /// A file operation was refused or failed.
    Store(StoreError),
    /// The state file is damaged.
    State {
        /// The state file.
        path: String,
        /// Why.
        error: StateError,
    },
    /// The filter sent is not the one described, or the kernel would refuse it.
    BadFilter {
        /// Why.
        reason: String,
    },
    /// A file that is not a seccomp filter is at a path scpc never installed to.
    NotAFilter {
        /// The path.
        path: String,
    },
    /// A kept copy is missing or damaged.
    KeptCopy {
        /// The copy.
        path: String,
        /// Why.
        reason: String,
    },
}

impl JobError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            JobError::Store(e) => e.code(),
            JobError::State { .. } => "scpc::node::state::damaged",
            JobError::BadFilter { .. } => "scpc::node::job::bad_filter",
            JobError::NotAFilter { .. } => "scpc::node::job::not_a_filter",
            JobError::KeptCopy { .. } => "scpc::node::job::kept_copy",
        }
    }

    /// As a response carries it.
    pub fn report(&self) -> ErrorReport {
        ErrorReport { code: self.code().to_string(), message: self.to_string() }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Store(e) => e.fmt(f),
            JobError::State { path, error } => write!(f, "`{path}`: {error}; nothing was changed (remove it to start a new history)"),
            JobError::BadFilter { reason } => write!(f, "the filter sent is refused: {reason}"),
            JobError::NotAFilter { path } => write!(
                f,
                "`{path}` exists and is not a seccomp filter, and scpc never installed there: refusing to replace it (deploy with --force to replace it, keeping a copy)"
            ),
            JobError::KeptCopy { path, reason } => write!(f, "the kept copy `{path}` {reason}; nothing was changed"),
        }
    }
}

impl std::error::Error for JobError {}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> JobError {
        JobError::Store(e)
    }
}

/// What a job is given besides its request: its time limit per step and the heartbeat.
pub struct Ctx<'a> {
    /// Each command's limit, and the lock wait.
    pub limit: Duration,
    /// Called while waiting.
    pub beat: &'a dyn Fn(),
}

/// Runs a job.
pub fn run(job: &Job, cx: &Ctx) -> Result<JobResult, JobError> {
    match job {
        Job::Read { services, fetch, enforcement, .. } => Ok(read(services, *fetch, *enforcement, cx)),
        Job::Install { service, filter, record, keep, force, .. } => {
            install(service, filter, record, *keep, *force, cx).map(JobResult::Install)
        }
        Job::Rollback { service, keep, .. } => rollback(service, *keep, cx).map(JobResult::Rollback),
        Job::Remove { unit, .. } => Ok(remove(unit, cx)),
    }
}

/// A service's install path, opened.
struct Place {
    /// The install path.
    path: String,
    /// Its directory.
    dir: Dir,
    /// Its file name.
    file: String,
    /// `DIR/.scpc/FILE`, the node's own.
    own: Dir,
}

/// What [`Place::open`] found.
enum Opened {
    /// The path's directory does not exist.
    Missing,
    /// The directory exists, the node has no files for the path.
    Bare {
        /// The directory.
        dir: Dir,
        /// The file name.
        file: String,
    },
    /// Both.
    Place(Place),
}

/// The name of a kept copy.
fn kept_name(sha: &Sha256) -> String {
    format!("{sha}.bpf")
}

impl Place {
    /// Opens the path's directory and the node's own directory for it (made when `create`).
    fn open(path: &str, create: bool) -> Result<Opened, JobError> {
        let parts = store::components(path)?;
        let (file, dirs) = parts.split_last().ok_or_else(|| StoreError::BadPath { path: path.to_string() })?;
        let file = file.to_string();
        let Some(dir) = Dir::open(dirs, create)? else { return Ok(Opened::Missing) };
        let mode = |m| rustix::fs::Mode::from_raw_mode(m);
        let Some(scpc) = dir.subdir(".scpc", create, mode(0o755))? else { return Ok(Opened::Bare { dir, file }) };
        scpc.check_own()?;
        let Some(own) = scpc.subdir(&file, create, mode(0o700))? else { return Ok(Opened::Bare { dir, file }) };
        own.check_own()?;
        Ok(Opened::Place(Place { path: path.to_string(), dir, file, own }))
    }

    /// The file at the path: its bytes, or none.
    fn actual(&self) -> Result<Option<Vec<u8>>, JobError> {
        Ok(self.dir.read(&self.file, MAX_FILE)?)
    }

    /// The state file, validated (empty when there is none).
    fn state(&self) -> Result<State, JobError> {
        match self.own.read("state.json", MAX_FILE)? {
            None => Ok(State::new(&self.path)),
            Some(bytes) => State::parse(&bytes, &self.path).map_err(|error| JobError::State { path: self.own.join("state.json"), error }),
        }
    }

    fn write_state(&self, state: &State) -> Result<(), JobError> {
        Ok(self.own.replace("state.json", &state.to_json(), 0o600)?)
    }

    /// The kept copy of `sha`, verified; `None` when missing or damaged.
    fn kept(&self, sha: &Sha256) -> Result<Option<Vec<u8>>, JobError> {
        match self.own.read(&kept_name(sha), MAX_FILE) {
            Ok(Some(bytes)) if Sha256::of(&bytes) == *sha => Ok(Some(bytes)),
            Ok(_) => Ok(None),
            Err(StoreError::Symlink { .. } | StoreError::NotRegular { .. } | StoreError::TooLarge { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keeps a copy of `bytes` (unless a good one is kept already); returns whether it wrote.
    fn keep(&self, bytes: &[u8]) -> Result<bool, JobError> {
        let sha = Sha256::of(bytes);
        if self.kept(&sha)?.is_some() {
            return Ok(false);
        }
        self.own.replace(&kept_name(&sha), bytes, 0o600)?;
        Ok(true)
    }

    /// Replaces the file at the path by `to` (none: removes it), recording the change in the
    /// state as pending before and as done after, `history` becoming the state's history.
    fn switch(&self, state: &mut State, to: Option<&[u8]>, history: Vec<Deployed>) -> Result<(), JobError> {
        let temp = store::temp_name(&self.file);
        if let Some(bytes) = to {
            self.dir.write_new(&temp, bytes, 0o644)?;
        }
        let undo = |state: &mut State, e: JobError| {
            let _ = self.dir.remove(&temp);
            if state.pending.take().is_some() {
                let _ = self.write_state(state);
            }
            Err(e)
        };
        state.pending = Some(Pending { to: to.map(Sha256::of), history: history.clone() });
        if let Err(e) = self.write_state(state) {
            state.pending = None;
            return undo(state, e);
        }
        match self.dir.entry(&self.file) {
            Ok(Entry::Missing | Entry::Regular(_)) => {}
            Ok(Entry::Other(kind)) => return undo(state, StoreError::NotRegular { path: self.path.clone(), kind }.into()),
            Err(e) => return undo(state, e.into()),
        }
        let swapped = match to {
            Some(_) => self.dir.rename_unflushed(&temp, &self.file),
            None => self.dir.remove(&self.file),
        };
        if let Err(e) = swapped {
            return undo(state, e.into());
        }
        // the path holds `to` now: a failed flush of the directory is no reason to undo, and
        // no reason to record the old version (the pending record says truly that the path
        // holds one or the other; whoever reads the state next settles it)
        let _ = self.dir.sync();
        state.history = history;
        state.pending = None;
        // a failure here leaves the pending record, which still says truly what is there
        let _ = self.write_state(state);
        Ok(())
    }

    /// Removes kept copies the state no longer names and temporary files left by runs that
    /// died (the lock is held: nobody else is writing them).
    fn tidy(&self, state: &State, keep: usize) {
        let kept: Vec<String> = state.kept(keep).iter().map(kept_name).collect();
        for name in self.own.names().unwrap_or_default() {
            let copy = name.len() == 68 && name.ends_with(".bpf") && name[..64].parse::<Sha256>().is_ok();
            if (copy && !kept.contains(&name)) || name.contains(".scpc-tmp.") {
                let _ = self.own.remove(&name);
            }
        }
        for name in self.dir.names().unwrap_or_default() {
            if store::is_temp_of(&name, &self.file) {
                let _ = self.dir.remove(&name);
            }
        }
        let _ = self.own.sync();
        let _ = self.dir.sync();
    }
}

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil from days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// What every path holds.
fn read(services: &[Service], fetch: bool, enforcement: bool, cx: &Ctx) -> JobResult {
    let services = services
        .iter()
        .map(|s| {
            let mut reading = ServiceReading {
                name: s.name.clone(),
                holding: Reading::Error(ErrorReport { code: String::new(), message: String::new() }),
                bytes: None,
                enforcement: None,
            };
            match read_one(s, cx) {
                Ok((holding, actual, deployed)) => {
                    if fetch {
                        reading.bytes = actual.as_ref().map(|b| base64::engine::general_purpose::STANDARD.encode(b));
                    }
                    if enforcement {
                        reading.enforcement = Some(match enforce::processes(s, cx.limit) {
                            Ok(pids) => enforce::verdict(&pids, deployed.as_deref()),
                            Err(why) => crate::protocol::Enforcement {
                                state: crate::protocol::EnforcementState::Unknown,
                                why: Some(why),
                                processes: Vec::new(),
                            },
                        });
                    }
                    reading.holding = Reading::Holding(holding);
                }
                Err(e) => reading.holding = Reading::Error(e.report()),
            }
            reading
        })
        .collect();
    JobResult::Read { services, wrapped_units: systemd::wrapped_units() }
}

/// What one path holds, its bytes, and the bytes of what scpc deployed there (a verified kept
/// copy; the file itself when no history names it).
#[allow(clippy::type_complexity)]
fn read_one(s: &Service, cx: &Ctx) -> Result<(Holding, Option<Vec<u8>>, Option<Vec<u8>>), JobError> {
    let place = match Place::open(&s.path, false)? {
        Opened::Missing => return Ok((Holding { actual: None, dir_exists: false, history: Vec::new(), last: None }, None, None)),
        Opened::Bare { dir, file } => {
            let actual = dir.read(&file, MAX_FILE)?;
            let sha = actual.as_deref().map(Sha256::of);
            return Ok((Holding { actual: sha, dir_exists: true, history: Vec::new(), last: None }, actual.clone(), actual));
        }
        Opened::Place(place) => place,
    };
    let _lock = place.own.lock(false, cx.limit, cx.beat)?;
    let actual = place.actual()?;
    let sha = actual.as_deref().map(Sha256::of);
    let mut state = place.state()?;
    state.resolve(sha);
    let deployed = match state.current() {
        Some(current) if Some(current) == sha => actual.clone(),
        Some(current) => place.kept(&current)?,
        None => actual.clone(),
    };
    Ok((Holding::of(&state, sha, true), actual, deployed))
}

/// Checks the filter sent: its base64, its sha256, and that the kernel would take it with code
/// for its architecture.
fn check_upload(filter: &Upload) -> Result<(Vec<u8>, Vec<bpf::Insn>), JobError> {
    let bad = |reason: String| JobError::BadFilter { reason };
    let bytes = base64::engine::general_purpose::STANDARD.decode(&filter.bytes).map_err(|e| bad(format!("not base64: {e}")))?;
    let sha = Sha256::of(&bytes);
    if sha != filter.sha256 {
        return Err(bad(format!("its bytes have sha256 {sha}, not {}", filter.sha256)));
    }
    let insns = bpf::decode(&bytes).ok_or_else(|| bad(format!("{} bytes are not whole instructions", bytes.len())))?;
    bpf::check(&insns).map_err(|e| bad(e.to_string()))?;
    let arch = crate::run::audit_arch(&filter.arch).ok_or_else(|| bad(format!("unknown architecture `{}`", filter.arch)))?;
    if !bpf::compares_arch(&insns, arch) {
        return Err(bad(format!("it has no code for {}", filter.arch)));
    }
    Ok((bytes, insns))
}

/// Whether `bytes` are a seccomp filter the kernel would take.
fn is_filter(bytes: &[u8]) -> bool {
    bpf::decode(bytes).is_some_and(|insns| !insns.is_empty() && bpf::check(&insns).is_ok())
}

/// Starts the service under the filter now at its path and checks it: for `command`, its
/// reload and health commands; for `systemd`, the drop-in, daemon-reload, restart, the unit's
/// main process under `insns`, then health.
fn activate(s: &Service, insns: &[bpf::Insn], health: bool, cx: &Ctx) -> Result<(), StepFailure> {
    match (s.kind, &s.unit) {
        (Kind::Systemd, Some(unit)) => {
            if systemd::write_drop_in(unit, &s.name, &s.path, cx.limit)? {
                systemd::daemon_reload(cx.limit, cx.beat)?;
            }
            systemd::restart(unit, false, cx.limit, cx.beat)?;
            wait_enforced(unit, insns, cx)?;
        }
        _ => {
            if let Some(reload) = &s.reload {
                hooks::shell("reload", reload, &s.path, cx.limit, cx.beat)?;
            }
        }
    }
    if health {
        if let Some(h) = &s.health {
            hooks::shell("health", h, &s.path, cx.limit, cx.beat)?;
        }
    }
    Ok(())
}

/// Waits until the unit's main process runs under `insns` (compared byte for byte where the
/// kernel allows; where it does not, until it runs under a filter past `scpc-node run`).
fn wait_enforced(unit: &str, insns: &[bpf::Insn], cx: &Ctx) -> Result<(), StepFailure> {
    let started = Instant::now();
    let mut last = String::from("the unit has no main process");
    while started.elapsed() < cx.limit {
        let pid = systemd::main_pid(unit, cx.limit)?;
        if pid > 0 {
            match enforce::check_process(pid, Some(insns)) {
                Some(p) if p.matches == Some(true) => return Ok(()),
                Some(p) if p.seccomp_mode == 2 && p.matches.is_none() && p.comm != "scpc-node" => return Ok(()),
                Some(p) if p.matches == Some(false) && p.comm != "scpc-node" => {
                    last = format!("its main process {pid} runs under other seccomp filters")
                }
                Some(p) => last = format!("its main process {pid} ({}) runs under no filter of scpc", p.comm),
                None => {}
            }
        }
        (cx.beat)();
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(StepFailure { step: "enforcement".into(), status: StepStatus::TimedOut(cx.limit.as_secs()), stderr: last })
}

/// Undoes an activation of a systemd service whose drop-in did not exist before.
fn unwrap_unit(unit: &str, only_if_running: bool, cx: &Ctx) -> Result<(), StepFailure> {
    if systemd::remove_drop_in(unit)? {
        systemd::daemon_reload(cx.limit, cx.beat)?;
    }
    systemd::restart(unit, only_if_running, cx.limit, cx.beat)
}

fn install(s: &Service, filter: &Upload, record: &Record, keep: usize, force: bool, cx: &Ctx) -> Result<Outcome, JobError> {
    let (bytes, insns) = check_upload(filter)?;
    let new = Sha256::of(&bytes);
    let Opened::Place(place) = Place::open(&s.path, true)? else {
        return Err(StoreError::BadPath { path: s.path.clone() }.into());
    };
    let _lock = place.own.lock(true, cx.limit, cx.beat)?;
    let actual = place.actual()?;
    let from = actual.as_deref().map(Sha256::of);
    let mut state = place.state()?;
    if state.resolve(from) {
        place.write_state(&state)?;
    }
    let before = state.clone();
    let wrapped_before = match (s.kind, &s.unit) {
        (Kind::Systemd, Some(unit)) => systemd::wrapped_units().contains(unit),
        _ => false,
    };
    if from == Some(new) && state.current() == Some(new) && (s.kind == Kind::Command || wrapped_before) {
        return Ok(Outcome { result: Change::Unchanged, from, now: from, failure: None, undo_failure: None });
    }
    if let (Some(old), true) = (&actual, state.history.is_empty()) {
        if !force && !is_filter(old) {
            return Err(JobError::NotAFilter { path: s.path.clone() });
        }
    }
    let entry = Deployed {
        sha256: new,
        policy: record.policy.clone(),
        arch: filter.arch.clone(),
        manifest_sha256: Some(record.manifest_sha256),
        compiler: record.compiler.clone(),
        time: now(),
        operator: record.operator.clone(),
    };
    let mut history = vec![entry];
    if let (Some(old), true) = (from, state.history.is_empty()) {
        history.push(Deployed {
            sha256: old,
            policy: FOUND_ON_HOST.into(),
            arch: filter.arch.clone(),
            manifest_sha256: None,
            compiler: String::new(),
            time: now(),
            operator: FOUND_ON_HOST.into(),
        });
    }
    history.extend(state.history.iter().filter(|d| d.sha256 != new).cloned());
    history.truncate(keep + 1);
    // room for all of it before anything is written
    let block = place.own.block_size();
    let state_size = State { history: history.clone(), ..state.clone() }.to_json().len() as u64;
    let mut needed = store::blocks(bytes.len() as u64, block) * 2 + store::blocks(state_size * 2, block) * 2;
    if let Some(old) = &actual {
        needed += store::blocks(old.len() as u64, block);
    }
    place.own.ensure_space(needed)?;
    if let Some(old) = &actual {
        place.keep(old)?;
    }
    place.keep(&bytes)?;
    place.switch(&mut state, Some(&bytes), history)?;
    let mut outcome = Outcome { result: Change::Installed, from, now: Some(new), failure: None, undo_failure: None };
    if let Err(failure) = activate(s, &insns, true, cx) {
        // put back what was there
        let restored = match &actual {
            Some(old) => place.switch(&mut state, Some(old), before.history.clone()),
            None => place.switch(&mut state, None, before.history.clone()),
        };
        outcome.result = Change::RolledBack;
        outcome.failure = Some(failure);
        outcome.undo_failure = match restored {
            Err(e) => Some(StepFailure { step: "restore".into(), status: StepStatus::Failed, stderr: e.to_string() }),
            Ok(()) => match (s.kind, &s.unit) {
                (Kind::Systemd, Some(unit)) if !wrapped_before => unwrap_unit(unit, false, cx).err(),
                (Kind::Systemd, Some(_)) if actual.as_deref().is_some_and(is_filter) => {
                    let old = actual.as_deref().and_then(bpf::decode).unwrap_or_default();
                    activate(s, &old, false, cx).err()
                }
                (Kind::Systemd, Some(unit)) => unwrap_unit(unit, false, cx).err(),
                _ => s.reload.as_ref().and_then(|r| hooks::shell("reload", r, &s.path, cx.limit, cx.beat).err()),
            },
        };
    }
    outcome.now = place.actual()?.as_deref().map(Sha256::of);
    state.last = Some(Last {
        job: "install".into(),
        result: if outcome.result == Change::Installed { "installed" } else { "rolled-back" }.into(),
        target: Some(new),
        failure: outcome.failure.clone(),
        time: now(),
    });
    let _ = place.write_state(&state);
    place.tidy(&state, keep);
    Ok(outcome)
}

fn rollback(s: &Service, keep: usize, cx: &Ctx) -> Result<Outcome, JobError> {
    let nothing = |from| Outcome { result: Change::NothingToRevert, from, now: from, failure: None, undo_failure: None };
    let Opened::Place(place) = Place::open(&s.path, false)? else { return Ok(nothing(None)) };
    let _lock = place.own.lock(true, cx.limit, cx.beat)?;
    let actual = place.actual()?.as_deref().map(Sha256::of);
    let mut state = place.state()?;
    if state.resolve(actual) {
        place.write_state(&state)?;
    }
    let mut outcome = match (state.history.as_slice(), s.kind, &s.unit) {
        ([], _, _) | ([_], Kind::Command, _) => return Ok(nothing(actual)),
        ([_], Kind::Systemd, Some(unit)) => {
            // past the first version: no filter, no drop-in, the unit as it was
            place.switch(&mut state, None, Vec::new())?;
            let failure = unwrap_unit(unit, true, cx).err();
            Outcome { result: Change::Removed, from: actual, now: None, failure, undo_failure: None }
        }
        ([_, previous, ..], _, _) => {
            let sha = previous.sha256;
            let bytes = place.kept(&sha)?.ok_or_else(|| JobError::KeptCopy {
                path: place.own.join(&kept_name(&sha)),
                reason: "is missing or does not have its sha256".into(),
            })?;
            let history = state.history[1..].to_vec();
            place.switch(&mut state, Some(&bytes), history)?;
            let failure = match bpf::decode(&bytes) {
                Some(insns) if is_filter(&bytes) => activate(s, &insns, false, cx).err(),
                _ => match (s.kind, &s.unit) {
                    // a file found on the host that is no filter: the unit runs without one
                    (Kind::Systemd, Some(unit)) => unwrap_unit(unit, true, cx).err(),
                    _ => s.reload.as_ref().and_then(|r| hooks::shell("reload", r, &s.path, cx.limit, cx.beat).err()),
                },
            };
            Outcome { result: Change::Reverted, from: actual, now: Some(sha), failure, undo_failure: None }
        }
        _ => return Ok(nothing(actual)),
    };
    outcome.now = place.actual()?.as_deref().map(Sha256::of);
    state.last = Some(Last {
        job: "rollback".into(),
        result: if outcome.result == Change::Removed { "removed" } else { "reverted" }.into(),
        target: outcome.now,
        failure: outcome.failure.clone(),
        time: now(),
    });
    let _ = place.write_state(&state);
    place.tidy(&state, keep);
    Ok(outcome)
}

fn remove(unit: &str, cx: &Ctx) -> JobResult {
    match systemd::remove_drop_in(unit) {
        Ok(false) => JobResult::Remove { removed: false, failure: None },
        Ok(true) => {
            let failure = systemd::daemon_reload(cx.limit, cx.beat).and_then(|()| systemd::restart(unit, true, cx.limit, cx.beat)).err();
            JobResult::Remove { removed: true, failure }
        }
        Err(failure) => JobResult::Remove { removed: false, failure: Some(failure) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}
