//! The inventory: which hosts exist, how to reach them, which policy goes where, and how to
//! roll it out. One TOML file (see `docs/deploy.md`), read with every mistake located in it.

use miette::{Diagnostic, NamedSource, SourceSpan};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What is wrong with an inventory; each has its own diagnostic code.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The file cannot be read.
    Unreadable,
    /// Not TOML, or a key of the wrong type or unknown.
    Toml,
    /// A number out of its range.
    OutOfRange,
    /// A host name that is not a name.
    HostName,
    /// Two hosts of one name.
    DuplicateHost,
    /// A host without an address.
    NoAddress,
    /// A host with both an identity file and the agent.
    TwoLogins,
    /// A host with no way to log in.
    NoLogin,
    /// A host without a known_hosts file.
    NoKnownHosts,
    /// A group name that is not a name.
    GroupName,
    /// A service name that is not a name.
    ServiceName,
    /// Two services of one name.
    DuplicateService,
    /// A policy name that is not a name.
    PolicyName,
    /// An install path that is not absolute and plain.
    InstallPath,
    /// Two services installing to one path.
    SharedPath,
    /// A service naming neither a host nor a group.
    UnknownTarget,
    /// No service at all.
    NoService,
}

impl Problem {
    /// The diagnostic code.
    pub fn code(self) -> &'static str {
        match self {
            Problem::Unreadable => "scpc::inventory::unreadable",
            Problem::Toml => "scpc::inventory::toml",
            Problem::OutOfRange => "scpc::inventory::out_of_range",
            Problem::HostName => "scpc::inventory::host_name",
            Problem::DuplicateHost => "scpc::inventory::duplicate_host",
            Problem::NoAddress => "scpc::inventory::no_address",
            Problem::TwoLogins => "scpc::inventory::two_logins",
            Problem::NoLogin => "scpc::inventory::no_login",
            Problem::NoKnownHosts => "scpc::inventory::no_known_hosts",
            Problem::GroupName => "scpc::inventory::group_name",
            Problem::ServiceName => "scpc::inventory::service_name",
            Problem::DuplicateService => "scpc::inventory::duplicate_service",
            Problem::PolicyName => "scpc::inventory::policy_name",
            Problem::InstallPath => "scpc::inventory::install_path",
            Problem::SharedPath => "scpc::inventory::shared_path",
            Problem::UnknownTarget => "scpc::inventory::unknown_target",
            Problem::NoService => "scpc::inventory::no_service",
        }
    }
}

/// A mistake in an inventory, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct InventoryError {
    /// What kind of mistake (its code).
    pub problem: Problem,
    /// The file's text, for the report.
    pub src: NamedSource<String>,
    /// Where.
    pub at: Option<SourceSpan>,
    /// What the label says.
    pub label: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic for InventoryError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.problem.code()))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let at = self.at?;
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_with_span(Some(self.label.clone()), at))))
    }
}

impl InventoryError {
    /// The byte range the error points at.
    pub fn span(&self) -> Option<Range<usize>> {
        self.at.map(|s| s.offset()..s.offset() + s.len())
    }
}

/// How a host is logged into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// A private key file.
    KeyFile(PathBuf),
    /// Whatever keys the running ssh-agent offers.
    Agent,
}

/// One host of the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Its name in the inventory (unique).
    pub name: String,
    /// Address to connect to.
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Authentication.
    pub auth: Auth,
    /// The known_hosts file its key is checked against.
    pub known_hosts: PathBuf,
    /// Groups it belongs to.
    pub groups: Vec<String>,
    /// Whether it is in the canary set whatever `rollout.canary` says.
    pub canary: bool,
}

/// One service: a policy's artifacts installed at a path on a set of hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Its name in the inventory (unique).
    pub name: String,
    /// The policy whose artifacts it installs (`NAME.manifest.json` in the artifact directory).
    pub policy: String,
    /// The absolute path the filter is installed at on each host.
    pub path: String,
    /// Host names it goes to (already expanded from groups), in inventory order.
    pub hosts: Vec<String>,
    /// Run after installing (e.g. restart the service so it loads the new filter).
    pub reload: Option<String>,
    /// Run after reloading; a non-zero exit marks the host failed and rolls it back.
    pub health: Option<String>,
}

/// How a rollout proceeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollout {
    /// Hosts changed first, alone, before any wave (the first N hosts plus any `canary = true`).
    pub canary: usize,
    /// Hosts per wave after the canaries.
    pub wave_size: usize,
    /// Hosts worked on at once.
    pub concurrency: usize,
    /// Failed hosts tolerated; one more stops the rollout before the next wave.
    pub max_failures: usize,
    /// TCP connect and SSH handshake timeout, seconds.
    pub connect_timeout: u64,
    /// Timeout of each blocking SSH operation (a command, an upload chunk), seconds.
    pub command_timeout: u64,
    /// Previous versions kept on each host for rollback.
    pub keep: usize,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout { canary: 1, wave_size: 10, concurrency: 8, max_failures: 0, connect_timeout: 10, command_timeout: 30, keep: 3 }
    }
}

/// A validated inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    /// Directory holding the built artifacts (`NAME.manifest.json`, `NAME.ARCH.bpf`).
    pub artifacts: PathBuf,
    /// Hosts, in file order.
    pub hosts: Vec<Host>,
    /// Services, in file order.
    pub services: Vec<Service>,
    /// Rollout settings.
    pub rollout: Rollout,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    artifacts: Option<Spanned<String>>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    rollout: RawRollout,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    port: Option<Spanned<i64>>,
    user: Option<String>,
    identity: Option<String>,
    agent: Option<bool>,
    known_hosts: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRollout {
    canary: Option<Spanned<i64>>,
    wave_size: Option<Spanned<i64>>,
    concurrency: Option<Spanned<i64>>,
    max_failures: Option<Spanned<i64>>,
    connect_timeout: Option<Spanned<i64>>,
    command_timeout: Option<Spanned<i64>>,
    keep: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Spanned<String>,
    address: Spanned<String>,
    port: Option<Spanned<i64>>,
    user: Option<String>,
    identity: Option<String>,
    agent: Option<bool>,
    known_hosts: Option<String>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    #[serde(default)]
    canary: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    policy: Spanned<String>,
    path: Spanned<String>,
    hosts: Option<Vec<Spanned<String>>>,
    reload: Option<String>,
    health: Option<String>,
}

struct Ctx<'a> {
    name: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, problem: Problem, span: Option<Range<usize>>, label: &str, message: String, help: Option<&str>) -> InventoryError {
        InventoryError {
            problem,
            src: NamedSource::new(self.name, self.text.to_string()),
            at: span.map(|r| SourceSpan::from(r.start.min(self.text.len())..r.end.min(self.text.len()))),
            label: label.into(),
            message: format!("{}: {message}", self.name),
            help: help.map(str::to_string),
        }
    }

    fn count(&self, v: &Option<Spanned<i64>>, what: &str, min: i64, max: i64, default: usize) -> Result<usize, Box<InventoryError>> {
        match v {
            None => Ok(default),
            Some(s) if (min..=max).contains(s.get_ref()) => Ok(*s.get_ref() as usize),
            Some(s) => Err(Box::new(self.err(
                Problem::OutOfRange,
                Some(s.span()),
                "out of range",
                format!("`{what}` must be between {min} and {max}"),
                None,
            ))),
        }
    }
}

impl Inventory {
    /// Reads an inventory file; relative paths in it are taken from the file's directory.
    pub fn load(path: &Path) -> Result<Inventory, Box<InventoryError>> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Box::new(InventoryError {
                problem: Problem::Unreadable,
                src: NamedSource::new(&name, String::new()),
                at: None,
                label: String::new(),
                message: format!("cannot read `{name}`: {e}"),
                help: None,
            })
        })?;
        let mut inv = Inventory::parse(&name, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rebase(&mut inv.artifacts);
        for h in &mut inv.hosts {
            rebase(&mut h.known_hosts);
            if let Auth::KeyFile(k) = &mut h.auth {
                rebase(k);
            }
        }
        Ok(inv)
    }

    /// Parses and validates an inventory held in memory (paths left as written).
    pub fn parse(name: &str, text: &str) -> Result<Inventory, Box<InventoryError>> {
        let cx = Ctx { name, text };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let help =
                if e.message().contains("unknown field") { Some("see docs/deploy.md for the keys an inventory may hold") } else { None };
            Box::new(cx.err(Problem::Toml, e.span(), "here", e.message().trim().to_string(), help))
        })?;
        let r = &raw.rollout;
        let d = Rollout::default();
        let rollout = Rollout {
            canary: cx.count(&r.canary, "canary", 0, 10_000, d.canary)?,
            wave_size: cx.count(&r.wave_size, "wave_size", 1, 10_000, d.wave_size)?,
            concurrency: cx.count(&r.concurrency, "concurrency", 1, 256, d.concurrency)?,
            max_failures: cx.count(&r.max_failures, "max_failures", 0, 10_000, d.max_failures)?,
            connect_timeout: cx.count(&r.connect_timeout, "connect_timeout", 1, 3600, d.connect_timeout as usize)? as u64,
            command_timeout: cx.count(&r.command_timeout, "command_timeout", 1, 86_400, d.command_timeout as usize)? as u64,
            keep: cx.count(&r.keep, "keep", 1, 100, d.keep)?,
        };
        let default_port = cx.count(&raw.defaults.port, "port", 1, 65535, 22)?;
        let mut hosts: Vec<Host> = Vec::new();
        let mut seen: BTreeMap<String, Range<usize>> = BTreeMap::new();
        for h in &raw.host {
            let h = h.get_ref();
            let hname = h.name.get_ref();
            if !valid_name(hname) {
                return Err(Box::new(cx.err(
                    Problem::HostName,
                    Some(h.name.span()),
                    "not a host name",
                    format!("host name `{hname}` is not a name"),
                    Some("use letters, digits, `-`, `_` and `.`"),
                )));
            }
            if let Some(first) = seen.insert(hname.clone(), h.name.span()) {
                let (l, _) = line_col(text, first.start);
                return Err(Box::new(cx.err(
                    Problem::DuplicateHost,
                    Some(h.name.span()),
                    "second host of this name",
                    format!("host `{hname}` is defined twice"),
                    Some(&format!("the first is on line {l}")),
                )));
            }
            if h.address.get_ref().trim().is_empty() {
                return Err(Box::new(cx.err(Problem::NoAddress, Some(h.address.span()), "empty", "a host needs an address".into(), None)));
            }
            let port = match &h.port {
                Some(_) => cx.count(&h.port, "port", 1, 65535, 22)?,
                None => default_port,
            } as u16;
            let identity = h.identity.clone().or_else(|| raw.defaults.identity.clone());
            let agent = h.agent.or(raw.defaults.agent).unwrap_or(false);
            let auth = match (identity, agent) {
                (Some(_), true) => {
                    return Err(Box::new(cx.err(
                        Problem::TwoLogins,
                        Some(h.name.span()),
                        "this host",
                        format!("host `{hname}` has both an identity file and `agent = true`"),
                        Some("choose one: `identity = \"path/to/key\"` or `agent = true`"),
                    )))
                }
                (Some(k), false) => Auth::KeyFile(PathBuf::from(k)),
                (None, true) => Auth::Agent,
                (None, false) => {
                    return Err(Box::new(cx.err(
                        Problem::NoLogin,
                        Some(h.name.span()),
                        "this host",
                        format!("host `{hname}` has no way to log in"),
                        Some("set `identity = \"path/to/key\"` or `agent = true` on the host or in [defaults]"),
                    )))
                }
            };
            let Some(known_hosts) = h.known_hosts.clone().or_else(|| raw.defaults.known_hosts.clone()) else {
                return Err(Box::new(cx.err(
                    Problem::NoKnownHosts,
                    Some(h.name.span()),
                    "this host",
                    format!("host `{hname}` has no known_hosts file"),
                    Some("host keys are always verified: set `known_hosts = \"path\"` on the host or in [defaults]"),
                )));
            };
            let mut groups = Vec::new();
            for g in &h.groups {
                if !valid_name(g.get_ref()) {
                    return Err(Box::new(cx.err(
                        Problem::GroupName,
                        Some(g.span()),
                        "not a group name",
                        format!("group name `{}` is not a name", g.get_ref()),
                        None,
                    )));
                }
                groups.push(g.get_ref().clone());
            }
            hosts.push(Host {
                name: hname.clone(),
                address: h.address.get_ref().trim().to_string(),
                port,
                user: h.user.clone().or_else(|| raw.defaults.user.clone()).unwrap_or_else(|| "root".into()),
                auth,
                known_hosts: PathBuf::from(known_hosts),
                groups,
                canary: h.canary,
            });
        }
        let groups: BTreeSet<&str> = hosts.iter().flat_map(|h| h.groups.iter().map(String::as_str)).collect();
        let mut services = Vec::new();
        let mut seen_services: BTreeMap<String, Range<usize>> = BTreeMap::new();
        let mut paths: BTreeMap<String, String> = BTreeMap::new();
        for s in &raw.service {
            let s = s.get_ref();
            let sname = s.name.get_ref();
            if !valid_name(sname) {
                return Err(Box::new(cx.err(
                    Problem::ServiceName,
                    Some(s.name.span()),
                    "not a name",
                    format!("service name `{sname}` is not a name"),
                    None,
                )));
            }
            if seen_services.insert(sname.clone(), s.name.span()).is_some() {
                return Err(Box::new(cx.err(
                    Problem::DuplicateService,
                    Some(s.name.span()),
                    "second service of this name",
                    format!("service `{sname}` is defined twice"),
                    None,
                )));
            }
            // the language's rule, which the build's file names and manifests follow
            if !scpc_node::manifest::is_policy_name(s.policy.get_ref()) {
                return Err(Box::new(cx.err(
                    Problem::PolicyName,
                    Some(s.policy.span()),
                    "not a policy name",
                    format!("`{}` is not a policy name", s.policy.get_ref()),
                    Some("a policy name is a letter or `_`, then letters, digits, `_` and `-` (`modbus-gateway`)"),
                )));
            }
            let path = s.path.get_ref();
            if !valid_remote_path(path) {
                return Err(Box::new(cx.err(
                    Problem::InstallPath,
                    Some(s.path.span()),
                    "not an absolute, plain path",
                    format!("install path `{path}` must be absolute, name a file, and hold no `..`, spaces or shell characters"),
                    Some("for example `/etc/scpc/nginx.bpf`"),
                )));
            }
            if let Some(other) = paths.insert(path.clone(), sname.clone()) {
                return Err(Box::new(cx.err(
                    Problem::SharedPath,
                    Some(s.path.span()),
                    "used twice",
                    format!("services `{other}` and `{sname}` install to the same path"),
                    None,
                )));
            }
            let selected: Vec<String> = match &s.hosts {
                None => hosts.iter().map(|h| h.name.clone()).collect(),
                Some(sel) => {
                    let mut names = BTreeSet::new();
                    for x in sel {
                        let x_ref = x.get_ref().as_str();
                        if hosts.iter().any(|h| h.name == x_ref) {
                            names.insert(x_ref.to_string());
                        } else if groups.contains(x_ref) {
                            names.extend(hosts.iter().filter(|h| h.groups.iter().any(|g| g == x_ref)).map(|h| h.name.clone()));
                        } else {
                            return Err(Box::new(cx.err(
                                Problem::UnknownTarget,
                                Some(x.span()),
                                "no such host or group",
                                format!("service `{sname}` names `{x_ref}`, which is neither a host nor a group"),
                                Some("list host names or group names from the [[host]] entries"),
                            )));
                        }
                    }
                    hosts.iter().filter(|h| names.contains(&h.name)).map(|h| h.name.clone()).collect()
                }
            };
            services.push(Service {
                name: sname.clone(),
                policy: s.policy.get_ref().clone(),
                path: path.clone(),
                hosts: selected,
                reload: s.reload.clone(),
                health: s.health.clone(),
            });
        }
        if services.is_empty() {
            return Err(Box::new(cx.err(
                Problem::NoService,
                Some(text.len()..text.len()),
                "add a [[service]] here",
                "the inventory has no [[service]]: nothing to deploy".into(),
                Some("add [[service]] name = \"...\" policy = \"...\" path = \"/etc/scpc/NAME.bpf\""),
            )));
        }
        let artifacts = raw.artifacts.as_ref().map_or_else(|| PathBuf::from("."), |a| PathBuf::from(a.get_ref()));
        Ok(Inventory { artifacts, hosts, services, rollout })
    }

    /// The host of that name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !s.starts_with('-')
}

/// A path safe to paste into a remote POSIX shell command unquoted and to build temporary
/// names from.
fn valid_remote_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.ends_with('/')
        && p.len() <= 1024
        && p.chars().all(|c| c.is_ascii_alphanumeric() || "/-_.+@%:".contains(c))
        && !p.split('/').any(|seg| seg == ".." || seg == ".")
}

fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    (before.matches('\n').count() + 1, before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "[[host]]\nname = \"a\"\naddress = \"10.0.0.1\"\nidentity = \"k\"\nknown_hosts = \"kh\"\n";
    const SERVICE: &str = "[[service]]\nname = \"s\"\npolicy = \"p\"\npath = \"/etc/scpc/p.bpf\"\n";

    #[test]
    fn each_mistake_has_its_own_code() {
        let cases = [
            ("not toml = = =", Problem::Toml),
            (&format!("[rollout]\nconcurrency = 0\n{HOST}{SERVICE}"), Problem::OutOfRange),
            (&format!("{HOST}{HOST}{SERVICE}"), Problem::DuplicateHost),
            (&format!("{}{SERVICE}", HOST.replace("identity = \"k\"\n", "")), Problem::NoLogin),
            (&format!("{HOST}{}", SERVICE.replace("/etc/scpc/p.bpf", "/etc/../p.bpf")), Problem::InstallPath),
            (&format!("{HOST}{}", SERVICE.replace("path", "hosts = [\"b\"]\npath")), Problem::UnknownTarget),
            (HOST, Problem::NoService),
        ];
        let mut codes = BTreeSet::new();
        for (text, want) in cases {
            let e = Inventory::parse("inv.toml", text).expect_err(text);
            assert_eq!(e.problem, want, "{text}: {e}");
            let code = e.code().map(|c| c.to_string()).unwrap_or_default();
            assert_eq!(code, want.code());
            codes.insert(code);
        }
        assert_eq!(codes.len(), 7, "one code per kind of mistake");
    }

    /// A service's policy is named as the language names policies: `-` is fine, and a name no
    /// policy can have (a `.`, a leading digit) is refused here rather than when its artifacts
    /// are missing.
    #[test]
    fn service_policies_follow_the_languages_name_rule() {
        let with = |name: &str| format!("{HOST}{}", SERVICE.replace("policy = \"p\"", &format!("policy = \"{name}\"")));
        let inv = Inventory::parse("inv.toml", &with("modbus-gateway")).expect("a hyphenated policy name");
        assert_eq!(inv.services[0].policy, "modbus-gateway");
        for bad in ["web.v2", "..", "9web", "-web", "a/b"] {
            let e = Inventory::parse("inv.toml", &with(bad)).expect_err(bad);
            assert_eq!(e.problem, Problem::PolicyName, "{bad}: {e}");
        }
    }
}
