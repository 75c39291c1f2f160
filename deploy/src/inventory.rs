//! The inventory: which hosts exist, how to reach them, which policy goes where, and how to
//! roll it out. One TOML file (see `docs/deploy.md`), read with every mistake located in it.
//! Its hosts are `[[host]]` entries, or the hosts of an Ansible inventory it names
//! (`ansible_inventory`, read by [`crate::ansible`]); a host behind bastions names its jump
//! hosts (`proxy_jump`, itself, through a `[group.NAME]` or in `[defaults]`), `[[jump]]` entries
//! that may sit behind one another.

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
    /// No host at all.
    NoHost,
    /// A service whose `hosts` is empty.
    EmptyHosts,
    /// Two hosts of one address and port.
    SharedAddress,
    /// An install path outside `install_root`.
    OutsideRoot,
    /// A service whose `kind` and keys do not go together.
    ServiceKind,
    /// A node program path that is not absolute and plain.
    NodeProgram,
    /// A `proxy_jump` naming no `[[jump]]`.
    UnknownJump,
    /// Jump hosts that lead back to themselves.
    JumpCycle,
    /// A host whose groups name different jump hosts.
    JumpConflict,
    /// A `[group.NAME]` table for a group no host is in.
    UnknownGroup,
    /// Both `ansible_inventory` and `[[host]]` entries.
    TwoHostLists,
    /// An Ansible inventory that is not INI or YAML as Ansible reads it.
    AnsibleSyntax,
    /// Something Ansible does that scpc does not (host ranges, templates, ProxyCommand).
    AnsibleUnsupported,
    /// Ansible groups whose `children` lead back to themselves.
    ChildrenCycle,
    /// A `ProxyJump` that is not `[user@]host[:port][,...]`.
    ProxyJump,
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
            Problem::NoHost => "scpc::inventory::no_host",
            Problem::EmptyHosts => "scpc::inventory::empty_hosts",
            Problem::SharedAddress => "scpc::inventory::shared_address",
            Problem::OutsideRoot => "scpc::inventory::outside_root",
            Problem::ServiceKind => "scpc::inventory::service_kind",
            Problem::NodeProgram => "scpc::inventory::node_program",
            Problem::UnknownJump => "scpc::inventory::unknown_jump",
            Problem::JumpCycle => "scpc::inventory::jump_cycle",
            Problem::JumpConflict => "scpc::inventory::jump_conflict",
            Problem::UnknownGroup => "scpc::inventory::unknown_group",
            Problem::TwoHostLists => "scpc::inventory::two_host_lists",
            Problem::AnsibleSyntax => "scpc::inventory::ansible_syntax",
            Problem::AnsibleUnsupported => "scpc::inventory::ansible_unsupported",
            Problem::ChildrenCycle => "scpc::inventory::children_cycle",
            Problem::ProxyJump => "scpc::inventory::proxy_jump",
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
    /// Where the node program lives on it ([`DEFAULT_NODE_PROGRAM`] unless set).
    pub node_program: String,
    /// The jump hosts the connection goes through, the first one reached directly, each
    /// next one through the one before, and the host through the last (OpenSSH's
    /// `ProxyJump`); empty for a host reached directly.
    pub jumps: Vec<Hop>,
}

/// A jump host: an SSH server on the way to a host, whose key is checked like a host's and
/// through which the next hop is reached by a `direct-tcpip` channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Its name (the `[[jump]]` entry's, or `user@address:port` as an Ansible inventory wrote it).
    pub name: String,
    /// Address to connect to (from the hop before it, for every hop but the first).
    pub address: String,
    /// SSH port.
    pub port: u16,
    /// Remote user.
    pub user: String,
    /// Authentication.
    pub auth: Auth,
    /// The known_hosts file its key is checked against.
    pub known_hosts: PathBuf,
}

/// At most this many jump hosts on the way to one host.
pub const MAX_JUMPS: usize = 8;

/// Where the node program is installed on a host unless the inventory says otherwise.
pub const DEFAULT_NODE_PROGRAM: &str = "/var/lib/scpc/scpc-node";

/// The directory install paths must lie under unless the inventory says otherwise.
pub const DEFAULT_INSTALL_ROOT: &str = "/etc/scpc/";

/// How a service is started under its filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// A systemd unit: the node program installs a drop-in that runs the unit's command under
    /// `scpc-node run FILTER --` and restarts the unit.
    Systemd {
        /// The unit (`nginx.service`).
        unit: String,
    },
    /// The service's own start command runs `scpc-node run FILTER -- ...`; `reload`
    /// restarts it.
    Command {
        /// Run after installing (restart the service so it loads the new filter).
        reload: Option<String>,
        /// The file holding the service's main process id (for `status`).
        pid_file: Option<String>,
        /// The name of its processes (for `status`).
        process: Option<String>,
    },
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
    /// How it is started under its filter.
    pub start: Start,
    /// Run after the service restarted; a non-zero exit (or a timeout) marks the host failed
    /// and rolls it back.
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
    /// The directory install paths must lie under (a service may leave it with
    /// `allow_any_path = true`).
    pub install_root: String,
    /// The directory of node programs (`ARCH/scpc-node`), when the inventory names one.
    pub node_programs: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    artifacts: Option<Spanned<String>>,
    ansible_inventory: Option<Spanned<String>>,
    install_root: Option<Spanned<String>>,
    node_programs: Option<String>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    rollout: RawRollout,
    #[serde(default)]
    jump: Vec<Spanned<RawJump>>,
    #[serde(default)]
    group: BTreeMap<String, Spanned<RawGroup>>,
    #[serde(default)]
    host: Vec<Spanned<RawHost>>,
    #[serde(default)]
    service: Vec<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJump {
    name: Spanned<String>,
    address: Spanned<String>,
    port: Option<Spanned<i64>>,
    user: Option<String>,
    identity: Option<String>,
    agent: Option<bool>,
    known_hosts: Option<String>,
    proxy_jump: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    proxy_jump: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    port: Option<Spanned<i64>>,
    user: Option<String>,
    identity: Option<String>,
    agent: Option<bool>,
    known_hosts: Option<String>,
    node_program: Option<Spanned<String>>,
    proxy_jump: Option<Spanned<String>>,
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
    node_program: Option<Spanned<String>>,
    proxy_jump: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    policy: Spanned<String>,
    path: Spanned<String>,
    hosts: Option<Spanned<Vec<Spanned<String>>>>,
    kind: Option<Spanned<String>>,
    unit: Option<Spanned<String>>,
    reload: Option<Spanned<String>>,
    health: Option<String>,
    pid_file: Option<Spanned<String>>,
    process: Option<Spanned<String>>,
    #[serde(default)]
    allow_any_path: bool,
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
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        let base = base.as_path();
        let mut inv = Inventory::parse_in(&name, &text, base)?;
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rebase(&mut inv.artifacts);
        if let Some(p) = &mut inv.node_programs {
            rebase(p);
        }
        for h in &mut inv.hosts {
            rebase(&mut h.known_hosts);
            if let Auth::KeyFile(k) = &mut h.auth {
                rebase(k);
            }
            for j in &mut h.jumps {
                rebase(&mut j.known_hosts);
                if let Auth::KeyFile(k) = &mut j.auth {
                    rebase(k);
                }
            }
        }
        Ok(inv)
    }

    /// Parses and validates an inventory held in memory (paths left as written).
    pub fn parse(name: &str, text: &str) -> Result<Inventory, Box<InventoryError>> {
        Inventory::parse_in(name, text, Path::new("."))
    }

    /// [`Inventory::parse`] for a file in `base`, where an `ansible_inventory` it names is read.
    pub fn parse_in(name: &str, text: &str, base: &Path) -> Result<Inventory, Box<InventoryError>> {
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
        let hosts = match &raw.ansible_inventory {
            None => toml_hosts(&cx, &raw, default_port as u16)?,
            Some(a) if !raw.host.is_empty() => {
                return Err(Box::new(cx.err(
                    Problem::TwoHostLists,
                    Some(a.span()),
                    "hosts come from here",
                    "the inventory names an Ansible inventory and also lists [[host]]s".into(),
                    Some("keep one list of hosts: the Ansible inventory, or the [[host]] entries"),
                )))
            }
            Some(a) => {
                let defaults = crate::ansible::Defaults {
                    port: default_port as u16,
                    user: raw.defaults.user.clone(),
                    identity: raw.defaults.identity.as_ref().map(|k| base.join(k)),
                    agent: raw.defaults.agent.unwrap_or(false),
                    known_hosts: raw.defaults.known_hosts.as_ref().map(|k| base.join(k)),
                    node_program: default_node_program(&cx, &raw.defaults)?,
                };
                let hosts = crate::ansible::load(&base.join(a.get_ref()), &defaults)?;
                if hosts.is_empty() {
                    return Err(Box::new(cx.err(
                        Problem::NoHost,
                        Some(a.span()),
                        "this inventory",
                        format!("the Ansible inventory `{}` has no host: nothing to deploy to", a.get_ref()),
                        None,
                    )));
                }
                shared_addresses(&cx, &hosts, a.span())?;
                hosts
            }
        };
        let install_root = match &raw.install_root {
            None => DEFAULT_INSTALL_ROOT.to_string(),
            Some(r) if valid_remote_path(r.get_ref().trim_end_matches('/')) => format!("{}/", r.get_ref().trim_end_matches('/')),
            Some(r) => {
                return Err(Box::new(cx.err(
                    Problem::InstallPath,
                    Some(r.span()),
                    "not an absolute, plain directory",
                    format!("install_root `{}` must be an absolute directory without `..`, spaces or shell characters", r.get_ref()),
                    Some(&format!("the default is `{DEFAULT_INSTALL_ROOT}`")),
                )))
            }
        };
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
            if !s.allow_any_path && !path.starts_with(&install_root) {
                return Err(Box::new(cx.err(
                    Problem::OutsideRoot,
                    Some(s.path.span()),
                    "outside the install root",
                    format!("install path `{path}` is not under `{install_root}`"),
                    Some("put it under the install root (set `install_root = \"/DIR/\"` at the top of the inventory to change it), or set `allow_any_path = true` on this service"),
                )));
            }
            let start = service_start(&cx, s)?;
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
                Some(sel) if sel.get_ref().is_empty() => {
                    return Err(Box::new(cx.err(
                        Problem::EmptyHosts,
                        Some(sel.span()),
                        "no host",
                        format!("service `{sname}` lists no host: it would be deployed nowhere"),
                        Some("name hosts or groups, or leave `hosts` out to mean every host"),
                    )))
                }
                Some(sel) => {
                    let mut names = BTreeSet::new();
                    for x in sel.get_ref() {
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
                start,
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
        let node_programs = raw.node_programs.as_ref().map(PathBuf::from);
        Ok(Inventory { artifacts, hosts, services, rollout, install_root, node_programs })
    }

    /// The host of that name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

/// The hosts of the `[[host]]` entries.
fn toml_hosts(cx: &Ctx, raw: &RawFile, default_port: u16) -> Result<Vec<Host>, Box<InventoryError>> {
    let text = cx.text;
    if raw.host.is_empty() {
        return Err(Box::new(cx.err(
            Problem::NoHost,
            Some(0..0),
            "add a [[host]]",
            "the inventory has no [[host]]: nothing to deploy to".into(),
            Some("add [[host]] name = \"...\" address = \"...\""),
        )));
    }
    let mut hosts: Vec<Host> = Vec::new();
    let mut seen: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let mut addresses: BTreeMap<(String, u16), (String, Range<usize>)> = BTreeMap::new();
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
            None => usize::from(default_port),
        } as u16;
        let address = h.address.get_ref().trim().to_ascii_lowercase();
        if let Some((other, first)) = addresses.insert((address.clone(), port), (hname.clone(), h.address.span())) {
            let (l, _) = line_col(text, first.start);
            return Err(Box::new(cx.err(
                Problem::SharedAddress,
                Some(h.address.span()),
                "the same host again",
                format!("hosts `{other}` and `{hname}` are both {address} port {port}: one machine under two names would be deployed to twice at once"),
                Some(&format!("keep one of them (the first is on line {l}); put the other's groups on it")),
            )));
        }
        let node_program = match h.node_program.as_ref().or(raw.defaults.node_program.as_ref()) {
            None => DEFAULT_NODE_PROGRAM.to_string(),
            Some(p) if valid_remote_path(p.get_ref()) => p.get_ref().clone(),
            Some(p) => {
                return Err(Box::new(cx.err(
                    Problem::NodeProgram,
                    Some(p.span()),
                    "not an absolute, plain path",
                    format!("node program path `{}` must be absolute and hold no `..`, spaces or shell characters", p.get_ref()),
                    Some(&format!("for example `{DEFAULT_NODE_PROGRAM}`")),
                )))
            }
        };
        let (auth, known_hosts) =
            login(cx, &raw.defaults, &format!("host `{hname}`"), h.name.span(), &h.identity, h.agent, &h.known_hosts)?;
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
            known_hosts,
            jumps: host_jumps(cx, raw, h, &groups)?,
            groups,
            canary: h.canary,
            node_program,
        });
    }
    if let Some((g, table)) = raw.group.iter().find(|(g, _)| !hosts.iter().any(|h| h.groups.contains(g))) {
        return Err(Box::new(cx.err(
            Problem::UnknownGroup,
            Some(table.span()),
            "no host is in this group",
            format!("[group.{g}] is for a group no host is in"),
            Some("add the group to hosts' `groups`, or remove the table"),
        )));
    }
    Ok(hosts)
}

/// `[defaults] node_program`, checked.
fn default_node_program(cx: &Ctx, d: &RawDefaults) -> Result<String, Box<InventoryError>> {
    match &d.node_program {
        None => Ok(DEFAULT_NODE_PROGRAM.to_string()),
        Some(p) if valid_remote_path(p.get_ref()) => Ok(p.get_ref().clone()),
        Some(p) => Err(Box::new(cx.err(
            Problem::NodeProgram,
            Some(p.span()),
            "not an absolute, plain path",
            format!("node program path `{}` must be absolute and hold no `..`, spaces or shell characters", p.get_ref()),
            Some(&format!("for example `{DEFAULT_NODE_PROGRAM}`")),
        ))),
    }
}

/// Two hosts of one address and port (from an Ansible inventory, whose places are not at
/// hand here: the label points at `ansible_inventory`).
fn shared_addresses(cx: &Ctx, hosts: &[Host], at: Range<usize>) -> Result<(), Box<InventoryError>> {
    let mut seen: BTreeMap<(String, u16), &str> = BTreeMap::new();
    for h in hosts {
        if let Some(other) = seen.insert((h.address.to_ascii_lowercase(), h.port), &h.name) {
            return Err(Box::new(cx.err(
                Problem::SharedAddress,
                Some(at),
                "in this inventory",
                format!(
                    "hosts `{other}` and `{}` are both {} port {}: one machine under two names would be deployed to twice at once",
                    h.name, h.address, h.port
                ),
                Some("keep one of them"),
            )));
        }
    }
    Ok(())
}

/// How a host or jump host logs in and which known_hosts file checks its key, its own
/// settings first, then `[defaults]`.
fn login(
    cx: &Ctx,
    defaults: &RawDefaults,
    what: &str,
    at: Range<usize>,
    identity: &Option<String>,
    agent: Option<bool>,
    known_hosts: &Option<String>,
) -> Result<(Auth, PathBuf), Box<InventoryError>> {
    let identity = identity.clone().or_else(|| defaults.identity.clone());
    let agent = agent.or(defaults.agent).unwrap_or(false);
    let auth = match (identity, agent) {
        (Some(_), true) => {
            return Err(Box::new(cx.err(
                Problem::TwoLogins,
                Some(at),
                "this host",
                format!("{what} has both an identity file and `agent = true`"),
                Some("choose one: `identity = \"path/to/key\"` or `agent = true`"),
            )))
        }
        (Some(k), false) => Auth::KeyFile(PathBuf::from(k)),
        (None, true) => Auth::Agent,
        (None, false) => {
            return Err(Box::new(cx.err(
                Problem::NoLogin,
                Some(at),
                "this host",
                format!("{what} has no way to log in"),
                Some("set `identity = \"path/to/key\"` or `agent = true` on the host or in [defaults]"),
            )))
        }
    };
    let Some(known_hosts) = known_hosts.clone().or_else(|| defaults.known_hosts.clone()) else {
        return Err(Box::new(cx.err(
            Problem::NoKnownHosts,
            Some(at),
            "this host",
            format!("{what} has no known_hosts file"),
            Some("host keys are always verified: set `known_hosts = \"path\"` on the host or in [defaults]"),
        )));
    };
    Ok((auth, PathBuf::from(known_hosts)))
}

/// The jump hosts on the way to host `h`: its own `proxy_jump`, else its groups' (which must
/// agree), else `[defaults]`'s; each jump host's own `proxy_jump` puts another before it.
fn host_jumps(cx: &Ctx, raw: &RawFile, h: &RawHost, groups: &[String]) -> Result<Vec<Hop>, Box<InventoryError>> {
    let mut from_groups: Option<(&String, &Spanned<String>)> = None;
    for g in groups {
        let Some(j) = raw.group.get(g).and_then(|t| t.get_ref().proxy_jump.as_ref()) else { continue };
        match from_groups {
            Some((other, first)) if first.get_ref() != j.get_ref() => {
                return Err(Box::new(cx.err(
                    Problem::JumpConflict,
                    Some(j.span()),
                    "another jump host",
                    format!(
                        "host `{}` is in groups `{other}` (through `{}`) and `{g}` (through `{}`)",
                        h.name.get_ref(),
                        first.get_ref(),
                        j.get_ref()
                    ),
                    Some("set `proxy_jump` on the host itself to choose"),
                )))
            }
            Some(_) => {}
            None => from_groups = Some((g, j)),
        }
    }
    let chosen = h.proxy_jump.as_ref().or(from_groups.map(|(_, j)| j)).or(raw.defaults.proxy_jump.as_ref());
    let Some(first) = chosen else { return Ok(Vec::new()) };
    if first.get_ref().is_empty() {
        return Ok(Vec::new()); // `proxy_jump = ""` on a host: reached directly whatever its groups say
    }
    let mut chain: Vec<Hop> = Vec::new();
    let mut next = Some(first);
    while let Some(name) = next {
        let Some(j) = raw.jump.iter().map(Spanned::get_ref).find(|j| j.name.get_ref() == name.get_ref()) else {
            return Err(Box::new(cx.err(
                Problem::UnknownJump,
                Some(name.span()),
                "no such jump host",
                format!("`proxy_jump` names `{}`, which no [[jump]] defines", name.get_ref()),
                Some("add [[jump]] name = \"...\" address = \"...\" (with its own identity and known_hosts, or those of [defaults])"),
            )));
        };
        if chain.iter().any(|c| &c.name == j.name.get_ref()) || chain.len() == MAX_JUMPS {
            return Err(Box::new(cx.err(
                Problem::JumpCycle,
                Some(name.span()),
                "leads back here",
                format!("the jump hosts before `{}` lead back to it (or number more than {MAX_JUMPS})", j.name.get_ref()),
                Some("each [[jump]]'s `proxy_jump` names the hop before it; the first one has none"),
            )));
        }
        let jname = j.name.get_ref();
        if j.address.get_ref().trim().is_empty() {
            return Err(Box::new(cx.err(Problem::NoAddress, Some(j.address.span()), "empty", "a jump host needs an address".into(), None)));
        }
        let port = cx.count(&j.port, "port", 1, 65535, 22)? as u16;
        let (auth, known_hosts) =
            login(cx, &raw.defaults, &format!("jump host `{jname}`"), j.name.span(), &j.identity, j.agent, &j.known_hosts)?;
        chain.push(Hop {
            name: jname.clone(),
            address: j.address.get_ref().trim().to_string(),
            port,
            user: j.user.clone().or_else(|| raw.defaults.user.clone()).unwrap_or_else(|| "root".into()),
            auth,
            known_hosts,
        });
        next = j.proxy_jump.as_ref().filter(|p| !p.get_ref().is_empty());
    }
    chain.reverse();
    Ok(chain)
}

/// How a service is started, from its `kind` and the keys that go with it.
fn service_start(cx: &Ctx, s: &RawService) -> Result<Start, Box<InventoryError>> {
    let kind = s.kind.as_ref().map_or("command", |k| k.get_ref().as_str());
    let wrong = |span: Option<Range<usize>>, label: &str, message: String, help: &str| {
        Box::new(cx.err(Problem::ServiceKind, span, label, message, Some(help)))
    };
    let sname = s.name.get_ref();
    match kind {
        "systemd" => {
            if let Some(r) = &s.reload {
                return Err(wrong(
                    Some(r.span()),
                    "not for a systemd service",
                    format!("service `{sname}` is of kind systemd: the node restarts its unit, it takes no `reload`"),
                    "remove `reload`; `health` still runs after the restart",
                ));
            }
            if let Some(p) = s.pid_file.as_ref().or(s.process.as_ref()) {
                return Err(wrong(
                    Some(p.span()),
                    "not for a systemd service",
                    format!("service `{sname}` is of kind systemd: its processes are its unit's"),
                    "remove `pid_file` and `process`",
                ));
            }
            let Some(unit) = &s.unit else {
                return Err(wrong(
                    Some(s.name.span()),
                    "this service",
                    format!("service `{sname}` is of kind systemd and names no `unit`"),
                    "add `unit = \"NAME.service\"`",
                ));
            };
            if !scpc_node::systemd::unit_name(unit.get_ref()) {
                return Err(wrong(
                    Some(unit.span()),
                    "not a service unit",
                    format!("`{}` is not a systemd service unit name", unit.get_ref()),
                    "a unit name is letters, digits and `-_.@:`, ending in `.service`",
                ));
            }
            Ok(Start::Systemd { unit: unit.get_ref().clone() })
        }
        "command" => {
            if let Some(u) = &s.unit {
                return Err(wrong(
                    Some(u.span()),
                    "only for kind = \"systemd\"",
                    format!("service `{sname}` is of kind command and names a unit"),
                    "set `kind = \"systemd\"`, or remove `unit`",
                ));
            }
            if let Some(p) = &s.pid_file {
                if !valid_remote_path(p.get_ref()) {
                    return Err(wrong(
                        Some(p.span()),
                        "not an absolute, plain path",
                        format!("pid_file `{}` is not an absolute path", p.get_ref()),
                        "for example `/run/nginx.pid`",
                    ));
                }
            }
            if let Some(p) = &s.process {
                if !scpc_node::protocol::plain_name(p.get_ref(), 15) {
                    return Err(wrong(
                        Some(p.span()),
                        "not a process name",
                        format!("process `{}` is not a process name", p.get_ref()),
                        "the name in /proc/PID/comm: at most 15 letters, digits and `-_.@:`",
                    ));
                }
            }
            Ok(Start::Command {
                reload: s.reload.as_ref().map(|r| r.get_ref().clone()),
                pid_file: s.pid_file.as_ref().map(|p| p.get_ref().clone()),
                process: s.process.as_ref().map(|p| p.get_ref().clone()),
            })
        }
        other => Err(wrong(
            s.kind.as_ref().map(Spanned::span),
            "unknown kind",
            format!("service `{sname}` has kind `{other}`"),
            "`kind` is \"systemd\" (with `unit`) or \"command\" (the default, with `reload`)",
        )),
    }
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) && !s.starts_with('-')
}

/// A path safe to paste into a remote POSIX shell command unquoted and to build temporary
/// names from.
pub(crate) fn valid_remote_path(p: &str) -> bool {
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
    const HOST_B: &str = "[[host]]\nname = \"b\"\naddress = \"10.0.0.1\"\nidentity = \"k\"\nknown_hosts = \"kh\"\n";

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
            (SERVICE, Problem::NoHost),
            (&format!("{HOST}{}", SERVICE.replace("path", "hosts = []\npath")), Problem::EmptyHosts),
            (&format!("{HOST}{HOST_B}{SERVICE}"), Problem::SharedAddress),
            (&format!("{HOST}{}", SERVICE.replace("/etc/scpc/p.bpf", "/etc/passwd")), Problem::OutsideRoot),
            (&format!("{HOST}{SERVICE}kind = \"systemd\"\n"), Problem::ServiceKind),
            (&format!("{HOST}{SERVICE}kind = \"systemd\"\nunit = \"x.service\"\nreload = \"r\"\n"), Problem::ServiceKind),
            (&format!("{HOST}{SERVICE}unit = \"x.service\"\n"), Problem::ServiceKind),
            (&format!("{HOST}{SERVICE}kind = \"sysv\"\n"), Problem::ServiceKind),
            (&format!("[defaults]\nnode_program = \"bin/scpc-node\"\n{HOST}{SERVICE}"), Problem::NodeProgram),
        ];
        let mut codes = BTreeSet::new();
        for (text, want) in cases {
            let e = Inventory::parse("inv.toml", text).expect_err(text);
            assert_eq!(e.problem, want, "{text}: {e}");
            let code = e.code().map(|c| c.to_string()).unwrap_or_default();
            assert_eq!(code, want.code());
            codes.insert(code);
        }
        assert_eq!(codes.len(), 13, "one code per kind of mistake");
    }

    #[test]
    fn install_paths_outside_the_root_need_allow_any_path() {
        let text = format!("install_root = \"/srv/edge\"\n{HOST}{}", SERVICE.replace("/etc/scpc/p.bpf", "/srv/edge/p.bpf"));
        let inv = Inventory::parse("inv.toml", &text).expect("under the root");
        assert_eq!(inv.install_root, "/srv/edge/");
        assert_eq!(inv.hosts[0].node_program, DEFAULT_NODE_PROGRAM);
        let text = format!("{HOST}{}allow_any_path = true\n", SERVICE.replace("/etc/scpc/p.bpf", "/opt/p.bpf"));
        assert!(Inventory::parse("inv.toml", &text).is_ok());
        // a root that is a prefix of a longer name does not hold it
        let text = format!("install_root = \"/srv/edge\"\n{HOST}{}", SERVICE.replace("/etc/scpc/p.bpf", "/srv/edge2/p.bpf"));
        assert_eq!(Inventory::parse("inv.toml", &text).expect_err("outside").problem, Problem::OutsideRoot);
        let text = format!("{HOST}{SERVICE}kind = \"systemd\"\nunit = \"nginx.service\"\n");
        let inv = Inventory::parse("inv.toml", &text).expect("systemd");
        assert_eq!(inv.services[0].start, Start::Systemd { unit: "nginx.service".into() });
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

    #[test]
    fn jump_hosts_chain_per_host_group_and_default_and_their_mistakes_are_located() {
        let jumps = "[[jump]]\nname = \"dmz\"\naddress = \"203.0.113.1\"\nuser = \"jump\"\nidentity = \"j\"\n\n\
                     [[jump]]\nname = \"inner\"\naddress = \"10.9.0.1\"\nport = 2200\nproxy_jump = \"dmz\"\n\n";
        let hosts = "[defaults]\nidentity = \"k\"\nknown_hosts = \"kh\"\nproxy_jump = \"dmz\"\n\n[group.plant]\nproxy_jump = \"inner\"\n\n\
                     [[host]]\nname = \"a\"\naddress = \"10.0.0.1\"\ngroups = [\"plant\"]\n\n\
                     [[host]]\nname = \"b\"\naddress = \"10.0.0.2\"\n\n\
                     [[host]]\nname = \"c\"\naddress = \"10.0.0.3\"\ngroups = [\"plant\"]\nproxy_jump = \"\"\n\n";
        let inv = Inventory::parse("inv.toml", &format!("{jumps}{hosts}{SERVICE}")).expect("valid");
        let chain =
            |h: &str| inv.host(h).expect("host").jumps.iter().map(|j| format!("{}@{}:{}", j.user, j.address, j.port)).collect::<Vec<_>>();
        assert_eq!(chain("a"), ["jump@203.0.113.1:22", "root@10.9.0.1:2200"], "group, then the jump's own proxy_jump before it");
        assert_eq!(chain("b"), ["jump@203.0.113.1:22"], "[defaults]");
        assert!(chain("c").is_empty(), "`proxy_jump = \"\"` on the host: direct");
        assert_eq!(inv.host("a").expect("a").jumps[0].auth, Auth::KeyFile("j".into()));
        assert_eq!(inv.host("a").expect("a").jumps[1].auth, Auth::KeyFile("k".into()));
        let cases = [
            (
                format!("{}{hosts}{SERVICE}", jumps.replace("proxy_jump = \"dmz\"", "proxy_jump = \"nowhere\"")),
                Problem::UnknownJump,
                "\"nowhere\"",
            ),
            (format!("{}{hosts}{SERVICE}", jumps.replace("user = \"jump\"", "proxy_jump = \"inner\"")), Problem::JumpCycle, "\"inner\""),
            (
                format!(
                    "{jumps}[group.other]\nproxy_jump = \"dmz\"\n{}{SERVICE}",
                    hosts.replace(
                        "groups = [\"plant\"]\n\n[[host]]\nname = \"b\"",
                        "groups = [\"plant\", \"other\"]\n\n[[host]]\nname = \"b\""
                    )
                ),
                Problem::JumpConflict,
                "\"dmz\"",
            ),
            (format!("{jumps}[group.nobody]\nproxy_jump = \"dmz\"\n{hosts}{SERVICE}"), Problem::UnknownGroup, "[group.nobody]"),
            (format!("{}{hosts}{SERVICE}", jumps.replace("address = \"10.9.0.1\"", "address = \" \"")), Problem::NoAddress, "\" \""),
            (format!("ansible_inventory = \"hosts\"\n{jumps}{hosts}{SERVICE}"), Problem::TwoHostLists, "\"hosts\""),
        ];
        for (text, want, at) in cases {
            let e = Inventory::parse("inv.toml", &text).expect_err(&text);
            assert_eq!(e.problem, want, "{text}: {e}");
            let span = e.span().expect("located");
            assert!(text[span.clone()].starts_with(at), "{want:?} points at `{}`", &text[span]);
        }
    }
}
