//! Deploy, status and rollback over a fleet: canaries first, then waves, bounded concurrency,
//! a failure threshold, and a report of what every host got.

use crate::artifacts::{kernel_version, Artifact, ArtifactError, Build, NodePrograms, NodeProgramsError};
use crate::inventory::{Host, Inventory, Service, Start};
use crate::node::{self, Facts};
use crate::report::{Change, Command, HostReport, Report, Verdict};
use crate::transport::{Conn, Timeouts, TransportError};
use base64::Engine;
use scpc_node::protocol::{self as wire, Holding, Job, JobResult, Reading, Request, ServiceReading, PROTOCOL};
use scpc_node::Sha256;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Choices of one run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Connect and report what would change; write nothing.
    pub dry_run: bool,
    /// Record the keys of hosts not yet in known_hosts (never changed ones).
    pub accept_new: bool,
    /// Overrides `rollout.canary`.
    pub canary: Option<usize>,
    /// Overrides `rollout.concurrency`.
    pub concurrency: Option<usize>,
    /// Only these hosts (all when empty).
    pub hosts: Vec<String>,
    /// Recorded in the state files.
    pub operator: String,
    /// Replace a file that is not a seccomp filter at a path scpc never installed to.
    pub force: bool,
}

/// Why a fleet run did not start.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RolloutError {
    /// `--host` names a host the inventory does not have.
    #[error("--host {name}: no such host in the inventory")]
    #[diagnostic(code(scpc::rollout::unknown_host))]
    UnknownHost {
        /// The name.
        name: String,
    },
    /// The local build cannot be shipped.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Artifacts(#[from] ArtifactError),
    /// The node programs cannot be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    NodePrograms(#[from] NodeProgramsError),
}

/// Progress callbacks (the command line draws bars from them). Called from worker threads.
pub trait Observer: Sync {
    /// The number of hosts the run will touch, once known.
    fn start(&self, _total: usize) {}
    /// A host is being worked on; `step` says what is happening.
    fn step(&self, _host: &str, _step: &str) {}
    /// A host is done.
    fn done(&self, _report: &HostReport) {}
}

/// Shows how the decisions of a filter change: `(arch, old bytes, new bytes)` → lines.
pub type Differ<'a> = &'a (dyn Fn(&str, &[u8], &[u8]) -> Vec<String> + Sync);

fn timeouts(inv: &Inventory) -> Timeouts {
    Timeouts { connect: Duration::from_secs(inv.rollout.connect_timeout), command: Duration::from_secs(inv.rollout.command_timeout) }
}

/// The hosts a run touches, in inventory order, and the services each carries.
fn targets<'a>(inv: &'a Inventory, only: &[String]) -> Result<Vec<(&'a Host, Vec<&'a Service>)>, RolloutError> {
    if let Some(name) = only.iter().find(|h| inv.host(h).is_none()) {
        return Err(RolloutError::UnknownHost { name: name.clone() });
    }
    Ok(inv
        .hosts
        .iter()
        .filter(|h| only.is_empty() || only.contains(&h.name))
        .map(|h| (h, inv.services.iter().filter(|s| s.hosts.contains(&h.name)).collect::<Vec<_>>()))
        .filter(|(_, s)| !s.is_empty())
        .collect())
}

fn blank(host: &Host, wave: usize, canary: bool) -> HostReport {
    HostReport {
        host: host.name.clone(),
        address: format!("{}:{}", host.address, host.port),
        machine: None,
        arch: None,
        kernel: None,
        canary,
        wave,
        services: BTreeMap::new(),
        error: None,
        warnings: Vec::new(),
        seconds: 0.0,
        skipped: false,
    }
}

/// Runs `job` over `items` with at most `concurrency` at once; stops taking new items once
/// `stop` is set. Results come back in input order; items never started are `None`.
fn pool<T: Sync, R: Send>(items: &[T], concurrency: usize, stop: &AtomicBool, job: impl Fn(&T) -> R + Sync) -> Vec<Option<R>> {
    let queue = Mutex::new((0..items.len()).collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..concurrency.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Some(i) = queue.lock().map(|mut q| q.pop_front()).ok().flatten() else { break };
                let r = job(&items[i]);
                if let Ok(mut res) = results.lock() {
                    res[i] = Some(r);
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

fn connect(host: &Host, inv: &Inventory, opts: &Options, rep: &mut HostReport, obs: &dyn Observer) -> Option<Conn> {
    obs.step(&host.name, "connecting");
    match Conn::open(host, opts.accept_new, timeouts(inv)) {
        Ok(c) => Some(c),
        Err(e) => {
            rep.error = Some(e.to_string());
            None
        }
    }
}

/// Loads the local build of every service.
pub fn load_builds(inv: &Inventory) -> Result<BTreeMap<String, Build>, ArtifactError> {
    let mut out = BTreeMap::new();
    for s in &inv.services {
        if !out.contains_key(&s.policy) {
            out.insert(s.policy.clone(), Build::load(&inv.artifacts, &s.policy)?);
        }
    }
    Ok(out)
}

/// How a service is described to the node program.
fn wire_service(s: &Service) -> wire::Service {
    let (kind, unit, reload, pid_file, process) = match &s.start {
        Start::Systemd { unit } => (wire::Kind::Systemd, Some(unit.clone()), None, None, None),
        Start::Command { reload, pid_file, process } => (wire::Kind::Command, None, reload.clone(), pid_file.clone(), process.clone()),
    };
    wire::Service { name: s.name.clone(), path: s.path.clone(), kind, unit, reload, health: s.health.clone(), pid_file, process }
}

fn read_request(services: &[&Service], fetch: bool, enforcement: bool, timeout: u64) -> Request {
    let services = services.iter().map(|s| wire_service(s)).collect();
    Request { protocol: PROTOCOL, job: Job::Read { services, fetch, enforcement, timeout } }
}

/// A session with a host's node program, and what it read first.
struct Session<'a> {
    conn: Conn,
    host: &'a Host,
    facts: Facts,
    /// Per service (in the order asked), what its path holds; none when the node program is
    /// not on the host (a dry run does not bring it).
    readings: Option<Vec<ServiceReading>>,
    /// The units carrying the node's drop-in.
    wrapped: Vec<String>,
}

/// Connects, probes, brings the node program when the host lacks it (unless `bring` is off)
/// and reads what each service's path holds.
#[allow(clippy::too_many_arguments)]
fn open_session<'a>(
    host: &'a Host,
    services: &[&Service],
    inv: &Inventory,
    opts: &Options,
    programs: &NodePrograms,
    (fetch, enforcement, bring): (bool, bool, bool),
    rep: &mut HostReport,
    obs: &dyn Observer,
) -> Option<Session<'a>> {
    let conn = connect(host, inv, opts, rep, obs)?;
    obs.step(&host.name, "detecting architecture, reading what is deployed");
    let timeout = inv.rollout.command_timeout;
    let read = read_request(services, fetch, enforcement, timeout);
    let probe = match node::probe(&conn, &host.node_program, programs, &read, Duration::from_secs(timeout)) {
        Ok(p) => p,
        Err(e) => {
            rep.error = Some(e.to_string());
            return None;
        }
    };
    let facts = probe.facts.clone();
    record(&facts, rep);
    let Some(program_arch) = facts.program_arch else {
        rep.error = Some(
            "cannot tell the architecture of this host's programs (/bin/sh is not an ELF program scpc knows); nothing was installed".into(),
        );
        return None;
    };
    let Some((_, expected)) = programs.for_arch(program_arch) else {
        rep.error = Some(format!(
            "no node program for {program_arch} in {} (deploy/node/build.sh builds them); nothing was installed",
            programs.dir.display()
        ));
        return None;
    };
    let answer = match probe.answer {
        Some(a) if probe.installed == Some(expected) && a.node.arch == program_arch => Some(a),
        _ if !bring => None,
        _ => {
            obs.step(&host.name, &format!("bringing the node program ({program_arch})"));
            match node::install_program(&conn, &host.node_program, program_arch, programs, &read, Duration::from_secs(timeout)) {
                Ok(a) => Some(a),
                Err(e) => {
                    rep.error = Some(e.to_string());
                    return None;
                }
            }
        }
    };
    let (readings, wrapped) = match answer.map(|a| node::result(&conn, a)) {
        None => (None, Vec::new()),
        Some(Ok(JobResult::Read { services, wrapped_units })) => (Some(services), wrapped_units),
        Some(Ok(_)) => {
            rep.error = Some(format!("{}: the node program answered another job", conn.name));
            return None;
        }
        Some(Err(e)) => {
            rep.error = Some(e.to_string());
            return None;
        }
    };
    Some(Session { conn, host, facts, readings, wrapped })
}

/// What a reading says the path holds, or why it cannot be read.
fn holding(r: &ServiceReading) -> Result<&Holding, String> {
    match &r.holding {
        Reading::Holding(h) => Ok(h),
        Reading::Error(e) => Err(format!("{} [{}]", e.message, e.code)),
    }
}

/// One host of a deploy (or dry run).
#[allow(clippy::too_many_arguments)]
fn deploy_host(
    host: &Host,
    services: &[&Service],
    inv: &Inventory,
    builds: &BTreeMap<String, Build>,
    programs: &NodePrograms,
    opts: &Options,
    differ: Option<Differ>,
    rep: &mut HostReport,
    obs: &dyn Observer,
) {
    let Some(session) = open_session(host, services, inv, opts, programs, (opts.dry_run, false, !opts.dry_run), rep, obs) else {
        return;
    };
    let Some(arch) = session.facts.arch else {
        rep.error = Some(format!("unknown architecture `{}` (uname -m); nothing was installed", session.facts.machine));
        return;
    };
    let kernel = session.facts.kernel.clone();
    // refuse the host before touching it if any of its services has no artifact for it
    for s in services {
        let build = &builds[&s.policy];
        if build.for_arch(arch).is_none() {
            rep.error = Some(format!(
                "policy `{}` has no artifact for {arch} (built for {}); nothing was installed on this host",
                build.policy,
                build.arches().join(", ")
            ));
            return;
        }
        if let (Some(need), Some(have)) = (build.kernel.as_deref().and_then(kernel_version), kernel_version(&kernel)) {
            if have < need {
                rep.warnings.push(format!(
                    "kernel {} is older than policy `{}` needs ({}.{}): syscalls and actions newer than the kernel are decided by the policy's `newer` rule",
                    kernel, build.policy, need.0, need.1
                ));
            }
        }
    }
    let Some(readings) = &session.readings else {
        // a dry run on a host without the node program
        for s in services {
            let Some(art) = builds[&s.policy].for_arch(arch) else { continue };
            let diff =
                vec!["(the node program is not on this host yet: `scpc deploy` brings it first; what the path holds is read by it)".into()];
            rep.services.insert(s.name.clone(), Change::WouldInstall { from: None, to: art.sha256, diff });
        }
        return;
    };
    if !opts.dry_run {
        unwrap_departed(&session, services, inv, rep, obs);
    }
    for (s, reading) in services.iter().zip(readings) {
        let build = &builds[&s.policy];
        let Some(art) = build.for_arch(arch) else { continue };
        let change = match holding(reading) {
            Err(why) => Change::Failed { reason: why },
            Ok(h) if opts.dry_run && h.actual == Some(art.sha256) => Change::Unchanged { sha256: art.sha256 },
            Ok(h) if opts.dry_run => {
                let old = reading.bytes.as_ref().and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                let diff = match (differ, old) {
                    (Some(d), Some(old)) => d(arch, &old, &art.bytes),
                    (Some(_), None) => vec!["(no filter installed yet)".into()],
                    (None, _) => Vec::new(),
                };
                Change::WouldInstall { from: h.actual, to: art.sha256, diff }
            }
            Ok(_) => install_one(&session, s, build, art, inv, opts, rep, obs),
        };
        let stop = matches!(change, Change::Failed { .. } | Change::RolledBack { .. });
        rep.services.insert(s.name.clone(), change);
        if stop {
            break;
        }
    }
}

/// Removes the drop-in of every unit the node wrapped that no service of this host names any
/// more (the service left the inventory).
fn unwrap_departed(session: &Session, services: &[&Service], inv: &Inventory, rep: &mut HostReport, obs: &dyn Observer) {
    let kept: Vec<&str> = services
        .iter()
        .filter_map(|s| match &s.start {
            Start::Systemd { unit } => Some(unit.as_str()),
            Start::Command { .. } => None,
        })
        .collect();
    for unit in session.wrapped.iter().filter(|u| !kept.contains(&u.as_str())) {
        obs.step(&rep.host, &format!("{unit}: removing the drop-in of a service that left the inventory"));
        let req = Request { protocol: PROTOCOL, job: Job::Remove { unit: unit.clone(), timeout: inv.rollout.command_timeout } };
        let change = match node::call(&session.conn, &session.host.node_program, &req, Duration::from_secs(inv.rollout.command_timeout))
            .and_then(|r| node::result(&session.conn, r))
        {
            Ok(JobResult::Remove { failure: Some(f), .. }) => {
                Change::Failed { reason: format!("drop-in of {unit} removed, then {}", step_text(&f)) }
            }
            Ok(_) => Change::Unwrapped { unit: unit.clone() },
            Err(e) => Change::Failed { reason: e.to_string() },
        };
        rep.services.insert(format!("({unit})"), change);
    }
}

/// How a failed step reads in a report: the step, its status, its stderr excerpt (never the
/// command).
fn failure_text(outcome: &wire::Outcome) -> String {
    let mut text = outcome.failure.as_ref().map_or_else(|| "a step failed".to_string(), step_text);
    if let Some(u) = &outcome.undo_failure {
        text.push_str(&format!("; undoing it, {}", step_text(u)));
    }
    text
}

/// A failed step for the table: its name, how it ended, and the last line of its standard
/// error, its last 200 characters (the whole excerpt is in the JSON report's `failure`).
fn step_text(f: &wire::StepFailure) -> String {
    let line = f.stderr.trim().lines().last().unwrap_or("");
    let last: String = line.chars().skip(line.chars().count().saturating_sub(200)).collect();
    if last.is_empty() {
        format!("{} {}", f.step, f.status)
    } else {
        format!("{} {}: {last}", f.step, f.status)
    }
}

#[allow(clippy::too_many_arguments)]
fn install_one(
    session: &Session,
    s: &Service,
    build: &Build,
    art: &Artifact,
    inv: &Inventory,
    opts: &Options,
    rep: &mut HostReport,
    obs: &dyn Observer,
) -> Change {
    obs.step(&session.host.name, &format!("{}: installing {} ({} bytes)", s.name, art.file, art.bytes.len()));
    let timeout = inv.rollout.command_timeout;
    let req = Request {
        protocol: PROTOCOL,
        job: Job::Install {
            service: wire_service(s),
            filter: wire::Upload {
                arch: art.arch.clone(),
                sha256: art.sha256,
                bytes: base64::engine::general_purpose::STANDARD.encode(&art.bytes),
            },
            record: wire::Record {
                policy: build.policy.clone(),
                manifest_sha256: build.manifest_sha256,
                compiler: build.compiler.clone(),
                operator: opts.operator.clone(),
            },
            keep: inv.rollout.keep,
            force: opts.force,
            timeout,
        },
    };
    match node::call(&session.conn, &session.host.node_program, &req, Duration::from_secs(timeout))
        .and_then(|r| node::result(&session.conn, r))
    {
        Ok(JobResult::Install(o)) => outcome_change(&o, art.sha256),
        Ok(_) => Change::Failed { reason: format!("{}: the node program answered another job", session.conn.name) },
        Err(e @ TransportError::Node { .. }) => Change::Failed { reason: e.to_string() },
        Err(e) => recover(session.host, s, art.sha256, &e, inv, opts, rep, obs),
    }
}

/// What an install's outcome means for the report.
fn outcome_change(o: &wire::Outcome, new: Sha256) -> Change {
    match o.result {
        wire::Change::Installed if o.now == Some(new) => Change::Installed { from: o.from, to: new },
        wire::Change::Installed => Change::Failed {
            reason: format!("the node says installed, but the path holds {}", o.now.map_or("nothing".into(), |s| s.to_string())),
        },
        wire::Change::Unchanged => Change::Unchanged { sha256: new },
        _ => Change::RolledBack { reason: failure_text(o), failure: o.failure.clone(), to: o.now },
    }
}

/// The session died (or stopped answering) during an install: connect again, see what the
/// host holds (the node finishes its job whatever became of the session), and roll back when
/// it holds the new filter without the node having seen its checks pass.
#[allow(clippy::too_many_arguments)]
fn recover(
    host: &Host,
    s: &Service,
    new: Sha256,
    lost: &TransportError,
    inv: &Inventory,
    opts: &Options,
    rep: &mut HostReport,
    obs: &dyn Observer,
) -> Change {
    obs.step(&host.name, &format!("{}: the session was lost; connecting again to see what the host holds", s.name));
    let conn = match Conn::open(host, opts.accept_new, timeouts(inv)) {
        Ok(c) => c,
        Err(e) => return Change::Failed { reason: format!("{lost}; connecting again failed ({e}): what the host holds is not known") },
    };
    // the node may still be at work: wait for its lock as long as a whole install may take
    let wait = inv.rollout.command_timeout * 8;
    let read = read_request(&[s], false, false, wait);
    let reading = node::call(&conn, &host.node_program, &read, Duration::from_secs(wait)).and_then(|r| node::result(&conn, r));
    let held = match reading {
        Ok(JobResult::Read { services, .. }) => match services.first().map(holding) {
            Some(Ok(h)) => h.clone(),
            Some(Err(why)) => return Change::Failed { reason: format!("{lost}; connected again, but {why}") },
            None => return Change::Failed { reason: format!("{lost}; connected again, but the node read nothing") },
        },
        Ok(_) => return Change::Failed { reason: format!("{lost}; connected again, but the node answered another job") },
        Err(e) => return Change::Failed { reason: format!("{lost}; connected again, but reading the host failed: {e}") },
    };
    let confirmed = held.last.as_ref().is_some_and(|l| l.job == "install" && l.result == "installed" && l.target == Some(new));
    if held.actual == Some(new) && held.recorded() == Some(new) && confirmed {
        rep.warnings.push(format!("{}: {lost}; connected again: the node had finished the install and its checks", s.name));
        return Change::Installed { from: None, to: new };
    }
    let undone = held.last.as_ref().filter(|l| l.job == "install" && l.result == "rolled-back" && l.target == Some(new));
    if let (Some(l), false) = (undone, held.actual == Some(new)) {
        let why = l.failure.as_ref().map_or_else(|| "a step failed".to_string(), step_text);
        return Change::RolledBack {
            reason: format!("{lost}; connected again: the node had rolled back itself ({why})"),
            failure: l.failure.clone(),
            to: held.actual,
        };
    }
    if held.actual != Some(new) {
        let holds = held.actual.map_or("no filter".to_string(), |a| a.to_string());
        return Change::Failed { reason: format!("{lost}; connected again: the host holds {holds} (read back), not the new filter") };
    }
    obs.step(&host.name, &format!("{}: rolling back", s.name));
    let req = Request {
        protocol: PROTOCOL,
        job: Job::Rollback { service: wire_service(s), keep: inv.rollout.keep, timeout: inv.rollout.command_timeout },
    };
    match node::call(&conn, &host.node_program, &req, Duration::from_secs(inv.rollout.command_timeout)).and_then(|r| node::result(&conn, r))
    {
        Ok(JobResult::Rollback(o)) => Change::RolledBack {
            reason: format!(
                "{lost}; connected again and rolled back{}",
                o.failure.as_ref().map_or(String::new(), |f| format!(" ({})", step_text(f)))
            ),
            failure: o.failure.clone(),
            to: o.now,
        },
        Ok(_) => Change::Failed { reason: format!("{lost}; connected again, but the node answered another job") },
        Err(e) => {
            Change::Failed { reason: format!("{lost}; connected again, but the rollback failed: {e}; the host holds the new filter") }
        }
    }
}

/// Pushes the local build to the fleet: canaries, then waves.
pub fn deploy(inv: &Inventory, opts: &Options, differ: Option<Differ>, obs: &dyn Observer) -> Result<Report, RolloutError> {
    let started = Instant::now();
    let builds = load_builds(inv)?;
    let programs = NodePrograms::load(&NodePrograms::locate(inv.node_programs.as_deref()))?;
    let targets = targets(inv, &opts.hosts)?;
    let canary_n = opts.canary.unwrap_or(inv.rollout.canary);
    let concurrency = opts.concurrency.unwrap_or(inv.rollout.concurrency).max(1);
    // canaries: hosts marked so, then the first ones until there are canary_n
    let mut canaries: Vec<usize> = (0..targets.len()).filter(|&i| targets[i].0.canary).collect();
    for i in 0..targets.len() {
        if canaries.len() >= canary_n.max(canaries.len()) {
            break;
        }
        if !canaries.contains(&i) {
            canaries.push(i);
        }
    }
    let rest: Vec<usize> = (0..targets.len()).filter(|i| !canaries.contains(i)).collect();
    let mut waves: Vec<Vec<usize>> = Vec::new();
    if !canaries.is_empty() {
        waves.push(canaries.clone());
    }
    waves.extend(rest.chunks(inv.rollout.wave_size.max(1)).map(<[usize]>::to_vec));
    obs.start(targets.len());
    let stop = AtomicBool::new(false);
    let failures = AtomicUsize::new(0);
    let mut reports: Vec<HostReport> = Vec::new();
    let mut stopped = None;
    for (w, wave) in waves.iter().enumerate() {
        let wave_no = if canaries.is_empty() { w + 1 } else { w };
        let is_canary = !canaries.is_empty() && w == 0;
        if stopped.is_some() {
            for &i in wave {
                let mut r = blank(targets[i].0, wave_no, is_canary);
                r.skipped = true;
                reports.push(r);
            }
            continue;
        }
        let results = pool(wave, concurrency, &stop, |&i| {
            let (host, services) = &targets[i];
            let t0 = Instant::now();
            let mut rep = blank(host, wave_no, is_canary);
            deploy_host(host, services, inv, &builds, &programs, opts, differ, &mut rep, obs);
            rep.seconds = t0.elapsed().as_secs_f64();
            if rep.failed() && !opts.dry_run {
                let n = failures.fetch_add(1, Ordering::SeqCst) + 1;
                if is_canary || n > inv.rollout.max_failures {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            obs.done(&rep);
            rep
        });
        for (k, r) in results.into_iter().enumerate() {
            reports.push(r.unwrap_or_else(|| {
                let mut r = blank(targets[wave[k]].0, wave_no, is_canary);
                r.skipped = true;
                r
            }));
        }
        if stop.load(Ordering::SeqCst) && stopped.is_none() {
            let n = failures.load(Ordering::SeqCst);
            stopped = Some(if is_canary {
                format!("a canary failed: the rollout stopped before wave 1; {n} host(s) failed")
            } else {
                format!("{n} host(s) failed, more than rollout.max_failures = {}: the rollout stopped", inv.rollout.max_failures)
            });
        }
    }
    Ok(Report {
        command: if opts.dry_run { Command::DryRun } else { Command::Deploy },
        hosts: reports,
        stopped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Puts a host's facts into its report.
fn record(f: &Facts, rep: &mut HostReport) {
    rep.machine = Some(f.machine.clone());
    rep.kernel = Some(f.kernel.clone());
    rep.arch = f.arch.map(str::to_string);
}

/// Opens a session with every host of the run (at most `concurrency` at once, the node
/// program brought where missing) and asks `each` what became of each of its services.
fn across_hosts(
    command: Command,
    inv: &Inventory,
    opts: &Options,
    obs: &dyn Observer,
    enforcement: bool,
    each: impl Fn(&Session, &Service, Option<&ServiceReading>, &mut HostReport) -> Change + Sync,
) -> Result<Report, RolloutError> {
    let started = Instant::now();
    let programs = NodePrograms::load(&NodePrograms::locate(inv.node_programs.as_deref()))?;
    let targets = targets(inv, &opts.hosts)?;
    obs.start(targets.len());
    let stop = AtomicBool::new(false);
    let results = pool(&targets, opts.concurrency.unwrap_or(inv.rollout.concurrency), &stop, |(host, services)| {
        let t0 = Instant::now();
        let mut rep = blank(host, 0, false);
        if let Some(session) = open_session(host, services, inv, opts, &programs, (false, enforcement, true), &mut rep, obs) {
            for (i, s) in services.iter().enumerate() {
                let reading = session.readings.as_ref().and_then(|r| r.get(i));
                let change = each(&session, s, reading, &mut rep);
                rep.services.insert(s.name.clone(), change);
            }
        }
        rep.seconds = t0.elapsed().as_secs_f64();
        obs.done(&rep);
        rep
    });
    Ok(Report { command, hosts: results.into_iter().flatten().collect(), stopped: None, seconds: started.elapsed().as_secs_f64() })
}

/// What every host runs compared with the local build, and whether each service runs under
/// its filter.
pub fn status(inv: &Inventory, opts: &Options, obs: &dyn Observer) -> Result<Report, RolloutError> {
    let builds = load_builds(inv)?;
    across_hosts(Command::Status, inv, opts, obs, true, |session, s, reading, _rep| {
        let local = session.facts.arch.and_then(|a| builds[&s.policy].for_arch(a)).map(|a| a.sha256);
        let Some(reading) = reading else { return Change::Failed { reason: "the node program read nothing".into() } };
        match holding(reading) {
            Ok(h) => {
                let recorded = h.recorded();
                let verdict = if h.actual.is_none() && recorded.is_none() {
                    Verdict::NotInstalled
                } else if recorded.is_some() && h.actual != recorded {
                    Verdict::Drift
                } else if h.actual != local {
                    Verdict::Outdated
                } else {
                    Verdict::InSync
                };
                Change::Status { actual: h.actual, recorded, local, verdict, enforcement: reading.enforcement.clone() }
            }
            Err(why) => Change::Failed { reason: why },
        }
    })
}

/// Returns hosts to the version before the current one (a systemd service at its first
/// version: to no filter and no drop-in).
pub fn rollback(inv: &Inventory, opts: &Options, obs: &dyn Observer) -> Result<Report, RolloutError> {
    across_hosts(Command::Rollback, inv, opts, obs, false, |session, s, _reading, rep| {
        obs.step(&rep.host, &format!("{}: rolling back", s.name));
        let timeout = inv.rollout.command_timeout;
        let req = Request { protocol: PROTOCOL, job: Job::Rollback { service: wire_service(s), keep: inv.rollout.keep, timeout } };
        match node::call(&session.conn, &session.host.node_program, &req, Duration::from_secs(timeout))
            .and_then(|r| node::result(&session.conn, r))
        {
            Ok(JobResult::Rollback(o)) => match (o.result, &o.failure) {
                (_, Some(f)) => {
                    Change::Failed { reason: format!("reverted to {}, but {f}", o.now.map_or("no filter".into(), |n| n.to_string())) }
                }
                (wire::Change::Reverted, None) => match (o.from, o.now) {
                    (Some(from), Some(to)) => Change::Reverted { from, to },
                    _ => Change::Failed { reason: "the node reverted to no file".into() },
                },
                (wire::Change::Removed, None) => Change::Removed { from: o.from },
                _ => Change::NothingToRevert,
            },
            Ok(_) => Change::Failed { reason: "the node program answered another job".into() },
            Err(e) => Change::Failed { reason: e.to_string() },
        }
    })
}
