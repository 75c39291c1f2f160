//! Deploy, status and rollback over a fleet: canaries first, then waves, bounded concurrency,
//! a failure threshold, and a report of what every host got.

use crate::artifacts::{kernel_version, ArtifactError, Build};
use crate::inventory::{Host, Inventory, Service};
use crate::remote;
use crate::report::{Change, Command, HostReport, Report, Verdict};
use crate::transport::{Conn, Timeouts};
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

/// One host of a deploy (or dry run).
#[allow(clippy::too_many_arguments)]
fn deploy_host(
    host: &Host,
    services: &[&Service],
    inv: &Inventory,
    builds: &BTreeMap<String, Build>,
    opts: &Options,
    differ: Option<Differ>,
    rep: &mut HostReport,
    obs: &dyn Observer,
) {
    let Some(conn) = connect(host, inv, opts, rep, obs) else { return };
    obs.step(&rep.host, "detecting architecture, reading what is deployed");
    let paths: Vec<&str> = services.iter().map(|s| s.path.as_str()).collect();
    let (arch, installed) = match remote::survey(&conn, &paths) {
        Ok((facts, installed)) => (record(facts, rep), installed),
        Err(e) => {
            rep.error = Some(e.to_string());
            return;
        }
    };
    let Some(arch) = arch else {
        if rep.error.is_none() {
            rep.error = Some(format!("unknown architecture `{}` (uname -m); nothing was installed", rep.machine.as_deref().unwrap_or("")));
        }
        return;
    };
    let kernel = rep.kernel.clone().unwrap_or_default();
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
    for (s, inst) in services.iter().zip(installed) {
        let build = &builds[&s.policy];
        let Some(art) = build.for_arch(arch) else { continue };
        let change = if !opts.dry_run {
            install_one(&conn, host, s, build, art, inst, inv, opts, obs)
        } else if inst.actual == Some(art.sha256) {
            Change::Unchanged { sha256: art.sha256 }
        } else {
            let diff = match (differ, conn.download(&s.path)) {
                (Some(d), Ok(Some(old))) => d(arch, &old, &art.bytes),
                (Some(_), Ok(None)) => vec!["(no filter installed yet)".into()],
                (_, Err(e)) => vec![format!("(cannot read the deployed filter: {e})")],
                (None, _) => Vec::new(),
            };
            Change::WouldInstall { from: inst.actual, to: art.sha256, diff }
        };
        let stop = matches!(change, Change::Failed { .. } | Change::RolledBack { .. });
        rep.services.insert(s.name.clone(), change);
        if stop {
            break;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn install_one(
    conn: &Conn,
    host: &Host,
    s: &Service,
    build: &Build,
    art: &crate::artifacts::Artifact,
    before: remote::Installed,
    inv: &Inventory,
    opts: &Options,
    obs: &dyn Observer,
) -> Change {
    obs.step(&host.name, &format!("{}: installing {} ({} bytes)", s.name, art.file, art.bytes.len()));
    let before = match remote::install(conn, &s.path, art, build, &opts.operator, inv.rollout.keep, before) {
        Ok(Some(before)) => before,
        Ok(None) => return Change::Unchanged { sha256: art.sha256 },
        Err(e) => return Change::Failed { reason: e.to_string() },
    };
    let checks = [("reloading", &s.reload), ("health check", &s.health)];
    for (what, cmd) in checks {
        let Some(cmd) = cmd else { continue };
        obs.step(&host.name, &format!("{}: {what}", s.name));
        if let Err(e) = remote::hook(conn, &s.path, cmd) {
            let reason = format!("{what} failed: {e}");
            obs.step(&host.name, &format!("{}: rolling back", s.name));
            return match remote::rollback(conn, &s.path, inv.rollout.keep) {
                Ok(Some((_, to))) => {
                    if let Some(reload) = &s.reload {
                        let _ = remote::hook(conn, &s.path, reload);
                    }
                    Change::RolledBack { reason, to: Some(to) }
                }
                Ok(None) if before.actual.is_none() => match remote::uninstall(conn, &s.path, inv.rollout.keep) {
                    Ok(()) => {
                        Change::RolledBack { reason: format!("{reason}; the new filter was removed (there was none before)"), to: None }
                    }
                    Err(e2) => Change::Failed { reason: format!("{reason}; removing the new filter failed too: {e2}") },
                },
                Ok(None) => Change::RolledBack {
                    reason: format!("{reason}; no earlier version is kept, the new filter stays"),
                    to: Some(art.sha256),
                },
                Err(e2) => Change::Failed { reason: format!("{reason}; rollback failed too: {e2}") },
            };
        }
    }
    Change::Installed { from: before.actual, to: art.sha256 }
}

/// Pushes the local build to the fleet: canaries, then waves.
pub fn deploy(inv: &Inventory, opts: &Options, differ: Option<Differ>, obs: &dyn Observer) -> Result<Report, RolloutError> {
    let started = Instant::now();
    let builds = load_builds(inv)?;
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
            deploy_host(host, services, inv, &builds, opts, differ, &mut rep, obs);
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

/// Reads a host's architecture and kernel into its report; its scpc architecture, if known.
fn record_facts(conn: &Conn, rep: &mut HostReport, obs: &dyn Observer) -> Option<&'static str> {
    obs.step(&rep.host, "detecting architecture");
    match remote::facts(conn) {
        Ok(f) => record(f, rep),
        Err(e) => {
            rep.error = Some(e.to_string());
            None
        }
    }
}

/// Puts a host's facts into its report; its scpc architecture, if known.
fn record(f: remote::Facts, rep: &mut HostReport) -> Option<&'static str> {
    rep.machine = Some(f.machine);
    rep.kernel = Some(f.kernel);
    rep.arch = f.arch.map(str::to_string);
    f.arch
}

/// Connects to every host of the run (at most `concurrency` at once) and asks `each` what
/// became of each of its services.
fn across_hosts(
    command: Command,
    inv: &Inventory,
    opts: &Options,
    obs: &dyn Observer,
    each: impl Fn(&Conn, &Service, &mut HostReport) -> Change + Sync,
) -> Result<Report, RolloutError> {
    let started = Instant::now();
    let targets = targets(inv, &opts.hosts)?;
    obs.start(targets.len());
    let stop = AtomicBool::new(false);
    let results = pool(&targets, opts.concurrency.unwrap_or(inv.rollout.concurrency), &stop, |(host, services)| {
        let t0 = Instant::now();
        let mut rep = blank(host, 0, false);
        if let Some(conn) = connect(host, inv, opts, &mut rep, obs) {
            for s in services {
                let change = each(&conn, s, &mut rep);
                rep.services.insert(s.name.clone(), change);
            }
        }
        rep.seconds = t0.elapsed().as_secs_f64();
        obs.done(&rep);
        rep
    });
    Ok(Report { command, hosts: results.into_iter().flatten().collect(), stopped: None, seconds: started.elapsed().as_secs_f64() })
}

/// What every host runs compared with the local build.
pub fn status(inv: &Inventory, opts: &Options, obs: &dyn Observer) -> Result<Report, RolloutError> {
    let builds = load_builds(inv)?;
    across_hosts(Command::Status, inv, opts, obs, |conn, s, rep| {
        if rep.machine.is_none() && rep.error.is_none() {
            record_facts(conn, rep, obs);
        }
        obs.step(&rep.host, &format!("{}: reading", s.name));
        let local = rep.arch.as_deref().and_then(|a| builds[&s.policy].for_arch(a)).map(|a| a.sha256);
        match remote::read(conn, &s.path) {
            Ok(inst) => {
                let recorded = inst.state.history.first().map(|d| d.sha256);
                let verdict = if inst.actual.is_none() && recorded.is_none() {
                    Verdict::NotInstalled
                } else if inst.drifted() {
                    Verdict::Drift
                } else if inst.actual != local {
                    Verdict::Outdated
                } else {
                    Verdict::InSync
                };
                Change::Status { actual: inst.actual, recorded, local, verdict }
            }
            Err(e) => Change::Failed { reason: e.to_string() },
        }
    })
}

/// Returns hosts to the version before the current one.
pub fn rollback(inv: &Inventory, opts: &Options, obs: &dyn Observer) -> Result<Report, RolloutError> {
    across_hosts(Command::Rollback, inv, opts, obs, |conn, s, rep| {
        obs.step(&rep.host, &format!("{}: rolling back", s.name));
        match remote::rollback(conn, &s.path, inv.rollout.keep) {
            Ok(Some((from, to))) => match s.reload.as_ref().map(|r| remote::hook(conn, &s.path, r)) {
                Some(Err(e)) => Change::Failed { reason: format!("reverted to {to}, but the reload failed: {e}") },
                _ => Change::Reverted { from, to },
            },
            Ok(None) => Change::NothingToRevert,
            Err(e) => Change::Failed { reason: e.to_string() },
        }
    })
}
