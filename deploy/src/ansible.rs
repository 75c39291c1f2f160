//! Ansible inventories (INI and YAML) as the host list of an scpc inventory: the TOML
//! inventory says `ansible_inventory = "hosts.yml"` instead of listing `[[host]]`s, and keeps
//! its services, rollout settings and `[defaults]`.
//!
//! Read: groups, `children`, host variables (inline, and `host_vars/NAME.yml` beside the file)
//! and group variables (`[G:vars]`, `vars:`, `group_vars/NAME.yml`), merged as Ansible merges
//! them (`all`, then groups from the shallowest to the deepest, by name within a depth, then
//! the host's own). Of those: `ansible_host`, `ansible_port`, `ansible_user` (and their
//! `ansible_ssh_*` spellings), `ansible_ssh_private_key_file`, a `ProxyJump` in
//! `ansible_ssh_common_args` / `ansible_ssh_extra_args` (`-o ProxyJump=...` or `-J ...`), and
//! scpc's own `scpc_known_hosts`, `scpc_node_program` and `scpc_canary`. Every mistake is
//! reported at its place in the Ansible file.

use crate::inventory::{Auth, Hop, Host, InventoryError, Problem, MAX_JUMPS};
use miette::{NamedSource, SourceSpan};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What `[defaults]` of the TOML inventory gives a host that does not say.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    /// SSH port.
    pub port: u16,
    /// Remote user.
    pub user: Option<String>,
    /// Identity file (already absolute or relative to the TOML file).
    pub identity: Option<PathBuf>,
    /// Log in with the agent's keys.
    pub agent: bool,
    /// known_hosts file.
    pub known_hosts: Option<PathBuf>,
    /// Where the node program lives.
    pub node_program: String,
}

/// One variable: its value (`None` when it is a list or a mapping) and where it is.
#[derive(Clone, Debug)]
struct Var {
    value: Option<String>,
    file: usize,
    at: Range<usize>,
}

#[derive(Default, Debug)]
struct Group {
    hosts: BTreeSet<String>,
    children: Vec<(String, usize, Range<usize>)>,
    vars: Vec<(String, Var)>,
}

/// Every declaration of the inventory (and of its `group_vars`/`host_vars` files).
#[derive(Default)]
struct Decls {
    /// (name, text) of each file read; variables point into them.
    files: Vec<(String, String)>,
    groups: BTreeMap<String, Group>,
    /// Hosts in the order first seen, where.
    hosts: Vec<(String, usize, Range<usize>)>,
    host_vars: BTreeMap<String, Vec<(String, Var)>>,
}

impl Decls {
    fn err(
        &self,
        problem: Problem,
        file: usize,
        at: Range<usize>,
        label: &str,
        message: String,
        help: Option<&str>,
    ) -> Box<InventoryError> {
        let (name, text) = &self.files[file];
        Box::new(InventoryError {
            problem,
            src: NamedSource::new(name, text.clone()),
            at: Some(SourceSpan::from(at.start.min(text.len())..at.end.min(text.len()))),
            label: label.into(),
            message: format!("{name}: {message}"),
            help: help.map(str::to_string),
        })
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    fn add_host(&mut self, group: &str, name: &str, file: usize, at: Range<usize>) {
        if !self.hosts.iter().any(|(h, _, _)| h == name) {
            self.hosts.push((name.to_string(), file, at));
        }
        self.host_vars.entry(name.to_string()).or_default();
        self.group(group).hosts.insert(name.to_string());
    }
}

/// Reads the Ansible inventory at `path` (YAML when it ends in `.yml`/`.yaml` or starts with
/// a mapping key, else INI) and its `group_vars`/`host_vars` directories; returns its hosts
/// in the order first seen.
pub fn load(path: &Path, defaults: &Defaults) -> Result<Vec<Host>, Box<InventoryError>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Box::new(InventoryError {
            problem: Problem::Unreadable,
            src: NamedSource::new(&name, String::new()),
            at: None,
            label: String::new(),
            message: format!("cannot read the Ansible inventory `{name}`: {e}"),
            help: None,
        })
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut d = Decls::default();
    parse(&mut d, &name, &text)?;
    read_var_dirs(&mut d, base)?;
    resolve(&d, base, defaults)
}

/// Parses one inventory held in memory (no `group_vars`/`host_vars`; relative key paths are
/// taken from `base`).
pub fn parse_str(name: &str, text: &str, base: &Path, defaults: &Defaults) -> Result<Vec<Host>, Box<InventoryError>> {
    let mut d = Decls::default();
    parse(&mut d, name, text)?;
    resolve(&d, base, defaults)
}

fn parse(d: &mut Decls, name: &str, text: &str) -> Result<(), Box<InventoryError>> {
    d.files.push((name.to_string(), text.to_string()));
    let file = d.files.len() - 1;
    d.group("all");
    d.group("ungrouped");
    let yaml = name.ends_with(".yml") || name.ends_with(".yaml") || {
        let first = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'));
        first.is_some_and(|l| l == "---" || (l.ends_with(':') && !l.starts_with('[')))
    };
    if yaml {
        let root = yaml::parse(text).map_err(|(at, m)| d.err(Problem::AnsibleSyntax, file, at, "here", m, None))?;
        yaml_inventory(d, file, &root)
    } else {
        ini_inventory(d, file, text)
    }
}

/// A host name as Ansible writes it: no ranges (`web[01:20]`), which scpc does not expand.
fn host_name_ok(d: &Decls, file: usize, name: &str, at: &Range<usize>) -> Result<(), Box<InventoryError>> {
    if name.contains('[') {
        return Err(d.err(
            Problem::AnsibleUnsupported,
            file,
            at.clone(),
            "a host range",
            format!("host pattern `{name}`: scpc does not expand host ranges"),
            Some("list the hosts one by one"),
        ));
    }
    if !crate::inventory::valid_name(name) {
        return Err(d.err(
            Problem::HostName,
            file,
            at.clone(),
            "not a host name",
            format!("host name `{name}` is not a name"),
            Some("use letters, digits, `-`, `_` and `.`"),
        ));
    }
    Ok(())
}

fn group_name_ok(d: &Decls, file: usize, name: &str, at: &Range<usize>) -> Result<(), Box<InventoryError>> {
    if crate::inventory::valid_name(name) {
        return Ok(());
    }
    Err(d.err(Problem::GroupName, file, at.clone(), "not a group name", format!("group name `{name}` is not a name"), None))
}

fn ini_inventory(d: &mut Decls, file: usize, text: &str) -> Result<(), Box<InventoryError>> {
    #[derive(PartialEq)]
    enum Section {
        Hosts,
        Vars,
        Children,
    }
    let mut group = "ungrouped".to_string();
    let mut section = Section::Hosts;
    let mut offset = 0;
    for raw_line in text.split_inclusive('\n') {
        let start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let lead = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        let at = start + lead..start + lead + trimmed.len();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[') {
            let Some(header) = header.strip_suffix(']') else {
                return Err(d.err(Problem::AnsibleSyntax, file, at, "unclosed", "a section header without `]`".into(), None));
            };
            let (g, kind) = header.split_once(':').map_or((header, ""), |(g, k)| (g, k));
            section = match kind {
                "" => Section::Hosts,
                "vars" => Section::Vars,
                "children" => Section::Children,
                other => {
                    return Err(d.err(
                        Problem::AnsibleSyntax,
                        file,
                        at,
                        "unknown section kind",
                        format!("section `[{header}]`: `{other}` is not `vars` or `children`"),
                        Some("sections are [GROUP], [GROUP:vars] and [GROUP:children]"),
                    ))
                }
            };
            group_name_ok(d, file, g, &at)?;
            group = g.to_string();
            d.group(&group);
            continue;
        }
        match section {
            Section::Children => {
                group_name_ok(d, file, trimmed, &at)?;
                d.group(trimmed);
                d.group(&group).children.push((trimmed.to_string(), file, at));
            }
            Section::Vars => {
                let Some((k, v)) = trimmed.split_once('=') else {
                    return Err(d.err(Problem::AnsibleSyntax, file, at, "no `=`", format!("`{trimmed}` is not `key=value`"), None));
                };
                let value = unquote(v.trim());
                let var = Var { value: Some(value), file, at };
                d.group(&group).vars.push((k.trim().to_string(), var));
            }
            Section::Hosts => {
                let Some(words) = shlex::split(trimmed) else {
                    return Err(d.err(
                        Problem::AnsibleSyntax,
                        file,
                        at,
                        "unbalanced quotes",
                        "a host line with an unclosed quote".into(),
                        None,
                    ));
                };
                let Some((host, vars)) = words.split_first() else { continue };
                let host_at = at.start..at.start + trimmed.find(char::is_whitespace).unwrap_or(trimmed.len());
                // `name:port` is Ansible's short form of ansible_port
                let (host, port) = match host.rsplit_once(':') {
                    Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
                    _ => (host.as_str(), None),
                };
                host_name_ok(d, file, host, &host_at)?;
                d.add_host(&group, host, file, host_at.clone());
                let mut mine = Vec::new();
                if let Some(p) = port {
                    mine.push(("ansible_port".to_string(), Var { value: Some(p.to_string()), file, at: host_at.clone() }));
                }
                for w in vars {
                    let Some((k, v)) = w.split_once('=') else {
                        return Err(d.err(
                            Problem::AnsibleSyntax,
                            file,
                            at,
                            "not key=value",
                            format!("`{w}` after host `{host}` is not `key=value`"),
                            Some("a host line is `NAME key=value key=value ...`"),
                        ));
                    };
                    let pos = trimmed.find(&format!("{k}=")).map_or(at.clone(), |p| at.start + p..at.start + p + k.len() + 1 + v.len());
                    mine.push((k.to_string(), Var { value: Some(v.to_string()), file, at: pos }));
                }
                d.host_vars.entry(host.to_string()).or_default().extend(mine);
            }
        }
    }
    Ok(())
}

fn unquote(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

fn yaml_inventory(d: &mut Decls, file: usize, root: &yaml::Node) -> Result<(), Box<InventoryError>> {
    let yaml::Value::Map(top) = &root.value else {
        if matches!(root.value, yaml::Value::Null) {
            return Ok(()); // an empty inventory: no host, said later
        }
        return Err(d.err(
            Problem::AnsibleSyntax,
            file,
            root.at.clone(),
            "not a mapping",
            "an inventory is a mapping of groups".into(),
            None,
        ));
    };
    for (k, v) in top {
        yaml_group(d, file, &k.text, &k.at, v, 0)?;
    }
    Ok(())
}

fn yaml_group(
    d: &mut Decls,
    file: usize,
    name: &str,
    at: &Range<usize>,
    node: &yaml::Node,
    depth: usize,
) -> Result<(), Box<InventoryError>> {
    group_name_ok(d, file, name, at)?;
    d.group(name);
    if depth > 64 {
        return Err(d.err(Problem::AnsibleUnsupported, file, at.clone(), "too deep", "groups nested more than 64 deep".into(), None));
    }
    let entries = match &node.value {
        yaml::Value::Null => return Ok(()),
        yaml::Value::Map(m) => m,
        _ => {
            return Err(d.err(
                Problem::AnsibleSyntax,
                file,
                node.at.clone(),
                "not a mapping",
                format!("group `{name}` must be a mapping of `hosts`, `vars` and `children`"),
                None,
            ))
        }
    };
    for (k, v) in entries {
        match k.text.as_str() {
            "hosts" => {
                for (h, hv) in yaml_map(d, file, v, "hosts")? {
                    let (host, port) = match h.text.rsplit_once(':') {
                        Some((x, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (x, Some(p)),
                        _ => (h.text.as_str(), None),
                    };
                    host_name_ok(d, file, host, &h.at)?;
                    d.add_host(name, host, file, h.at.clone());
                    let mut mine = Vec::new();
                    if let Some(p) = port {
                        mine.push(("ansible_port".to_string(), Var { value: Some(p.to_string()), file, at: h.at.clone() }));
                    }
                    mine.extend(yaml_vars(d, file, hv)?);
                    d.host_vars.entry(host.to_string()).or_default().extend(mine);
                }
            }
            "vars" => {
                let vars = yaml_vars(d, file, v)?;
                d.group(name).vars.extend(vars);
            }
            "children" => {
                for (c, cv) in yaml_map(d, file, v, "children")? {
                    d.group(name).children.push((c.text.clone(), file, c.at.clone()));
                    yaml_group(d, file, &c.text, &c.at, cv, depth + 1)?;
                }
            }
            other => {
                return Err(d.err(
                    Problem::AnsibleSyntax,
                    file,
                    k.at.clone(),
                    "unknown key",
                    format!("group `{name}` has `{other}`: a group holds `hosts`, `vars` and `children`"),
                    Some("a group's variables go under `vars:`"),
                ))
            }
        }
    }
    Ok(())
}

fn yaml_map<'a>(
    d: &Decls,
    file: usize,
    node: &'a yaml::Node,
    what: &str,
) -> Result<Vec<(&'a yaml::Key, &'a yaml::Node)>, Box<InventoryError>> {
    match &node.value {
        yaml::Value::Null => Ok(Vec::new()),
        yaml::Value::Map(m) => Ok(m.iter().map(|(k, v)| (k, v)).collect()),
        _ => Err(d.err(Problem::AnsibleSyntax, file, node.at.clone(), "not a mapping", format!("`{what}` must be a mapping"), None)),
    }
}

fn yaml_vars(d: &Decls, file: usize, node: &yaml::Node) -> Result<Vec<(String, Var)>, Box<InventoryError>> {
    Ok(yaml_map(d, file, node, "vars")?
        .into_iter()
        .map(|(k, v)| {
            let value = match &v.value {
                yaml::Value::Scalar(s) => Some(s.clone()),
                yaml::Value::Null => Some(String::new()),
                _ => None,
            };
            (k.text.clone(), Var { value, file, at: v.at.clone() })
        })
        .collect())
}

/// `group_vars/NAME(.yml|.yaml)` and `host_vars/NAME(.yml|.yaml)` beside the inventory.
fn read_var_dirs(d: &mut Decls, base: &Path) -> Result<(), Box<InventoryError>> {
    let groups: Vec<String> = d.groups.keys().cloned().collect();
    let hosts: Vec<String> = d.hosts.iter().map(|(h, _, _)| h.clone()).collect();
    for (dir, names, is_group) in [("group_vars", groups, true), ("host_vars", hosts, false)] {
        for n in names {
            for ext in ["", ".yml", ".yaml"] {
                let path = base.join(dir).join(format!("{n}{ext}"));
                if !path.is_file() {
                    continue;
                }
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    Box::new(InventoryError {
                        problem: Problem::Unreadable,
                        src: NamedSource::new(path.display().to_string(), String::new()),
                        at: None,
                        label: String::new(),
                        message: format!("cannot read `{}`: {e}", path.display()),
                        help: None,
                    })
                })?;
                d.files.push((path.display().to_string(), text.clone()));
                let file = d.files.len() - 1;
                let root = yaml::parse(&text).map_err(|(at, m)| d.err(Problem::AnsibleSyntax, file, at, "here", m, None))?;
                let vars = yaml_vars(d, file, &root)?;
                if is_group {
                    d.group(&n).vars.extend(vars);
                } else {
                    // after the inline ones: a host_vars file overrides the inventory's line
                    d.host_vars.entry(n.clone()).or_default().extend(vars);
                }
            }
        }
    }
    Ok(())
}

/// Each group's depth below `all` (its longest path, as Ansible sorts), or the place of a
/// cycle of `children`.
fn depths(d: &Decls) -> Result<BTreeMap<&str, usize>, Box<InventoryError>> {
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (g, group) in &d.groups {
        for (c, _, _) in &group.children {
            parents.entry(c.as_str()).or_default().push(g.as_str());
        }
    }
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    // longest path from `all`: relax as many times as there are groups; still changing after
    // that means a cycle
    for g in d.groups.keys() {
        depth.insert(g.as_str(), if g == "all" { 0 } else { 1 });
    }
    for round in 0..=d.groups.len() {
        let mut changed = false;
        for (child, ps) in &parents {
            let want = ps.iter().map(|p| depth.get(p).copied().unwrap_or(0) + 1).max().unwrap_or(1);
            if *child != "all" && depth.get(child).copied().unwrap_or(0) < want {
                depth.insert(child, want);
                changed = true;
            }
        }
        if !changed {
            return Ok(depth);
        }
        if round == d.groups.len() || depth.values().any(|&x| x > d.groups.len()) {
            break;
        }
    }
    let (g, group) = d
        .groups
        .iter()
        .find(|(g, _)| depth.get(g.as_str()).copied().unwrap_or(0) > d.groups.len())
        .or_else(|| d.groups.iter().next())
        .expect("groups");
    let (file, at) = group.children.first().map_or((0, 0..0), |(_, f, a)| (*f, a.clone()));
    Err(d.err(
        Problem::ChildrenCycle,
        file,
        at,
        "part of a cycle",
        format!("the `children` of group `{g}` lead back to it"),
        Some("a group cannot be its own descendant"),
    ))
}

fn resolve(d: &Decls, base: &Path, defaults: &Defaults) -> Result<Vec<Host>, Box<InventoryError>> {
    let depth = depths(d)?;
    // every group a host is in: its own and their ancestors
    let mut member: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (g, group) in &d.groups {
        for h in &group.hosts {
            member.entry(h.as_str()).or_default().insert(g.as_str());
        }
    }
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (g, group) in &d.groups {
        for (c, _, _) in &group.children {
            parents.entry(c.as_str()).or_default().push(g.as_str());
        }
    }
    let mut hosts = Vec::new();
    for (name, file, at) in &d.hosts {
        let mut groups: BTreeSet<&str> = member.get(name.as_str()).cloned().unwrap_or_default();
        let mut todo: Vec<&str> = groups.iter().copied().collect();
        while let Some(g) = todo.pop() {
            for p in parents.get(g).into_iter().flatten() {
                if groups.insert(p) {
                    todo.push(p);
                }
            }
        }
        groups.insert("all");
        let mut order: Vec<&str> = groups.iter().copied().collect();
        order.sort_by_key(|g| (depth.get(g).copied().unwrap_or(0), *g));
        let mut vars: BTreeMap<&str, &Var> = BTreeMap::new();
        for g in &order {
            for (k, v) in &d.groups[*g].vars {
                vars.insert(k, v);
            }
        }
        for (k, v) in d.host_vars.get(name).into_iter().flatten() {
            vars.insert(k, v);
        }
        let listed: Vec<String> = order.iter().filter(|g| !matches!(**g, "all" | "ungrouped")).map(|g| g.to_string()).collect();
        hosts.push(host(d, name, *file, at, &vars, listed, base, defaults)?);
    }
    Ok(hosts)
}

/// The value of a variable that must be a plain string.
fn text<'a>(d: &Decls, vars: &BTreeMap<&str, &'a Var>, keys: &[&str]) -> Result<Option<(&'a str, &'a Var)>, Box<InventoryError>> {
    let Some((k, v)) = keys.iter().find_map(|k| vars.get(k).map(|v| (k, *v))) else { return Ok(None) };
    match &v.value {
        None => Err(d.err(Problem::AnsibleSyntax, v.file, v.at.clone(), "not a string", format!("`{k}` must be a string"), None)),
        Some(s) if s.contains("{{") || s.contains("{%") => Err(d.err(
            Problem::AnsibleUnsupported,
            v.file,
            v.at.clone(),
            "a template",
            format!("`{k}` is a Jinja template, which only Ansible can render"),
            Some("give scpc the value itself (for example in host_vars)"),
        )),
        Some(s) => Ok(Some((s.as_str(), v))),
    }
}

fn path_of(base: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    base.join(p)
}

#[allow(clippy::too_many_arguments)]
fn host(
    d: &Decls,
    name: &str,
    file: usize,
    at: &Range<usize>,
    vars: &BTreeMap<&str, &Var>,
    groups: Vec<String>,
    base: &Path,
    defaults: &Defaults,
) -> Result<Host, Box<InventoryError>> {
    let address = text(d, vars, &["ansible_host", "ansible_ssh_host"])?.map_or(name, |(a, _)| a).trim().to_string();
    if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        let (f, a) = vars.get("ansible_host").map_or((file, at.clone()), |v| (v.file, v.at.clone()));
        return Err(d.err(Problem::NoAddress, f, a, "not an address", format!("host `{name}` has no usable address"), None));
    }
    let port = match text(d, vars, &["ansible_port", "ansible_ssh_port"])? {
        None => defaults.port,
        Some((p, v)) => match p.trim().parse::<u16>() {
            Ok(p) if p > 0 => p,
            _ => {
                return Err(d.err(
                    Problem::OutOfRange,
                    v.file,
                    v.at.clone(),
                    "not a port",
                    format!("host `{name}`: port `{p}` is not between 1 and 65535"),
                    None,
                ))
            }
        },
    };
    let user = text(d, vars, &["ansible_user", "ansible_ssh_user"])?.map(|(u, _)| u.to_string()).or_else(|| defaults.user.clone());
    let user = user.unwrap_or_else(|| "root".into());
    let key = text(d, vars, &["ansible_ssh_private_key_file", "ansible_private_key_file"])?;
    let auth = match (key, &defaults.identity, defaults.agent) {
        (Some((k, _)), _, _) => Auth::KeyFile(path_of(base, k)),
        (None, Some(k), _) => Auth::KeyFile(k.clone()),
        (None, None, true) => Auth::Agent,
        (None, None, false) => {
            return Err(d.err(
                Problem::NoLogin,
                file,
                at.clone(),
                "this host",
                format!("host `{name}` has no way to log in"),
                Some("set `ansible_ssh_private_key_file`, or `identity`/`agent` in the TOML inventory's [defaults]"),
            ))
        }
    };
    let known_hosts =
        match text(d, vars, &["scpc_known_hosts"])? {
            Some((k, _)) => path_of(base, k),
            None => match &defaults.known_hosts {
                Some(k) => k.clone(),
                None => return Err(d.err(
                    Problem::NoKnownHosts,
                    file,
                    at.clone(),
                    "this host",
                    format!("host `{name}` has no known_hosts file"),
                    Some(
                        "host keys are always verified: set `known_hosts` in [defaults] of the TOML inventory, or `scpc_known_hosts` here",
                    ),
                )),
            },
        };
    let node_program = match text(d, vars, &["scpc_node_program"])? {
        None => defaults.node_program.clone(),
        Some((p, _)) if crate::inventory::valid_remote_path(p) => p.to_string(),
        Some((p, v)) => {
            return Err(d.err(
                Problem::NodeProgram,
                v.file,
                v.at.clone(),
                "not an absolute, plain path",
                format!("node program path `{p}` must be absolute and hold no `..`, spaces or shell characters"),
                None,
            ))
        }
    };
    let canary = match text(d, vars, &["scpc_canary"])? {
        None => false,
        Some((c, v)) => match c.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" | "" => false,
            _ => {
                return Err(d.err(
                    Problem::AnsibleSyntax,
                    v.file,
                    v.at.clone(),
                    "not a boolean",
                    format!("scpc_canary `{c}` is not true or false"),
                    None,
                ))
            }
        },
    };
    let mut jumps = Vec::new();
    for key in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
        if let Some((args, v)) = text(d, vars, &[key])? {
            if let Some(spec) = proxy_jump(d, v, args)? {
                jumps = hops(d, v, &spec, &user, &auth, &known_hosts)?;
            }
        }
    }
    Ok(Host { name: name.to_string(), address, port, user, auth, known_hosts, groups, canary, node_program, jumps })
}

/// The `ProxyJump` in an `ssh` argument string: `-o ProxyJump=X`, `-oProxyJump=X`, `-J X`.
/// Any other `-o` option that changes where or how the connection goes (`ProxyCommand`) is
/// refused: scpc would not follow it.
fn proxy_jump(d: &Decls, v: &Var, args: &str) -> Result<Option<String>, Box<InventoryError>> {
    let Some(words) = shlex::split(args) else {
        return Err(d.err(
            Problem::AnsibleSyntax,
            v.file,
            v.at.clone(),
            "unbalanced quotes",
            "ssh arguments with an unclosed quote".into(),
            None,
        ));
    };
    let mut found = None;
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let option = if w == "-o" {
            i += 1;
            words.get(i).cloned()
        } else {
            w.strip_prefix("-o").map(str::to_string)
        };
        if w == "-J" {
            i += 1;
            found = words.get(i).cloned();
        } else if let Some(o) = option {
            let (k, val) = o.split_once(['=', ' ']).unwrap_or((&o, ""));
            if k.eq_ignore_ascii_case("ProxyJump") {
                found = Some(val.trim().to_string());
            } else if k.eq_ignore_ascii_case("ProxyCommand") {
                return Err(d.err(
                    Problem::AnsibleUnsupported,
                    v.file,
                    v.at.clone(),
                    "ProxyCommand",
                    "scpc does not run a ProxyCommand".into(),
                    Some("use `-o ProxyJump=user@bastion:port` (chains: `a,b`)"),
                ));
            }
        }
        i += 1;
    }
    Ok(found.filter(|f| !f.eq_ignore_ascii_case("none")))
}

/// `[user@]host[:port][,...]`, outermost first; each hop logs in with the host's key and is
/// checked against its known_hosts.
fn hops(d: &Decls, v: &Var, spec: &str, user: &str, auth: &Auth, known_hosts: &Path) -> Result<Vec<Hop>, Box<InventoryError>> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let part = part.trim().trim_start_matches("ssh://");
        let (u, rest) = part.rsplit_once('@').map_or((user, part), |(u, r)| (u, r));
        let (h, p) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (rest, None),
        };
        let p = match p {
            None => 22,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                d.err(Problem::ProxyJump, v.file, v.at.clone(), "bad port", format!("jump host `{part}`: `{p}` is not a port"), None)
            })?,
        };
        let bad = |c: char| c.is_whitespace() || c.is_control() || "/\\;$`'\"".contains(c);
        if h.is_empty() || u.is_empty() || h.chars().any(bad) || u.chars().any(bad) {
            return Err(d.err(
                Problem::ProxyJump,
                v.file,
                v.at.clone(),
                "not a jump host",
                format!("`{part}` is not `[user@]host[:port]`"),
                Some("ProxyJump takes `user@host:port`, several separated by commas"),
            ));
        }
        out.push(Hop {
            name: format!("{u}@{h}:{p}"),
            address: h.trim_start_matches('[').trim_end_matches(']').to_string(),
            port: p,
            user: u.to_string(),
            auth: auth.clone(),
            known_hosts: known_hosts.to_path_buf(),
        });
    }
    if out.len() > MAX_JUMPS {
        return Err(d.err(Problem::ProxyJump, v.file, v.at.clone(), "too many", format!("more than {MAX_JUMPS} jump hosts"), None));
    }
    Ok(out)
}

/// A small YAML tree with byte ranges, built from yaml-rust2's events. Aliases are refused
/// (an inventory needs none, and they are how a few bytes of YAML become gigabytes).
mod yaml {
    use std::ops::Range;
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::Marker;

    /// A mapping key.
    #[derive(Debug)]
    pub struct Key {
        pub text: String,
        pub at: Range<usize>,
    }

    #[derive(Debug)]
    pub enum Value {
        Null,
        Scalar(String),
        Seq,
        Map(Vec<(Key, Node)>),
    }

    #[derive(Debug)]
    pub struct Node {
        pub value: Value,
        pub at: Range<usize>,
    }

    enum Frame {
        Seq(usize),
        Map(usize, Vec<(Key, Node)>, Option<Key>),
    }

    struct Builder<'a> {
        text: &'a str,
        /// byte offset of each char index
        bytes: Vec<usize>,
        stack: Vec<Frame>,
        root: Option<Node>,
        error: Option<(Range<usize>, String)>,
    }

    const MAX_DEPTH: usize = 128;

    impl Builder<'_> {
        fn byte(&self, m: Marker) -> usize {
            self.bytes.get(m.index()).copied().unwrap_or(self.text.len())
        }

        fn put(&mut self, node: Node) {
            match self.stack.last_mut() {
                None => {
                    if self.root.is_none() {
                        self.root = Some(node);
                    }
                }
                Some(Frame::Seq(..)) => {}
                Some(Frame::Map(_, entries, key)) => match key.take() {
                    None => {
                        let text = match node.value {
                            Value::Scalar(s) => s,
                            Value::Null => String::new(),
                            _ => {
                                self.error.get_or_insert((node.at, "a mapping key must be a plain string".into()));
                                return;
                            }
                        };
                        *key = Some(Key { text, at: node.at });
                    }
                    Some(k) => entries.push((k, node)),
                },
            }
        }
    }

    impl MarkedEventReceiver for Builder<'_> {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if self.error.is_some() {
                return;
            }
            let at = self.byte(mark);
            match ev {
                Event::Scalar(s, style, _, _) => {
                    let end = (at + s.len()).min(self.text.len());
                    let plain_null = matches!(style, yaml_rust2::scanner::TScalarStyle::Plain)
                        && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL");
                    let value = if plain_null { Value::Null } else { Value::Scalar(s) };
                    self.put(Node { value, at: at..end });
                }
                Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                    self.error = Some((at..at + 1, format!("nested more than {MAX_DEPTH} deep")));
                }
                Event::SequenceStart(..) => self.stack.push(Frame::Seq(at)),
                Event::MappingStart(..) => self.stack.push(Frame::Map(at, Vec::new(), None)),
                Event::SequenceEnd => {
                    if let Some(Frame::Seq(start)) = self.stack.pop() {
                        self.put(Node { value: Value::Seq, at: start..at.max(start) });
                    }
                }
                Event::MappingEnd => {
                    if let Some(Frame::Map(start, entries, _)) = self.stack.pop() {
                        let mut seen = std::collections::BTreeSet::new();
                        if let Some((k, _)) = entries.iter().find(|(k, _)| !seen.insert(k.text.clone())) {
                            self.error = Some((k.at.clone(), format!("`{}` appears twice in one mapping", k.text)));
                            return;
                        }
                        self.put(Node { value: Value::Map(entries), at: start..at.max(start) });
                    }
                }
                Event::Alias(_) => {
                    self.error = Some((at..at + 1, "YAML aliases are not accepted in an inventory".into()));
                }
                Event::DocumentStart if self.root.is_some() => {
                    self.error = Some((at..at + 1, "an inventory is one YAML document".into()));
                }
                _ => {}
            }
        }
    }

    /// Parses one YAML document; an empty one is `Null`.
    pub fn parse(text: &str) -> Result<Node, (Range<usize>, String)> {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        let mut b = Builder { text, bytes, stack: Vec::new(), root: None, error: None };
        let mut parser = Parser::new_from_str(text);
        if let Err(e) = parser.load(&mut b, true) {
            let at = b.byte(*e.marker());
            return Err((at..at + 1, format!("not YAML: {}", e.info())));
        }
        if let Some(e) = b.error {
            return Err(e);
        }
        Ok(b.root.unwrap_or(Node { value: Value::Null, at: 0..0 }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults {
        Defaults {
            port: 22,
            user: None,
            identity: Some("/keys/default".into()),
            agent: false,
            known_hosts: Some("/etc/scpc/known_hosts".into()),
            node_program: crate::inventory::DEFAULT_NODE_PROGRAM.into(),
        }
    }

    fn read(name: &str, text: &str) -> Result<Vec<Host>, Box<InventoryError>> {
        parse_str(name, text, Path::new("/inv"), &defaults())
    }

    const INI: &str = "\
# the plant
gw ansible_host=10.0.0.1 ansible_user=ops

[edge]
e1 ansible_host=10.1.0.1 ansible_port=2222
e2:2200 ansible_host=10.1.0.2 ansible_ssh_common_args='-o ProxyJump=jump@bastion:2022,inner'

[edge:vars]
ansible_user=root
ansible_ssh_private_key_file=keys/deploy

[plant:children]
edge

[plant:vars]
ansible_user=plant
scpc_canary=false

[all:vars]
ansible_ssh_private_key_file=/keys/all
";

    const YAML: &str = "\
all:
  vars:
    ansible_ssh_private_key_file: /keys/all
  hosts:
    gw:
      ansible_host: 10.0.0.1
      ansible_user: ops
  children:
    plant:
      vars:
        ansible_user: plant
        scpc_canary: false
      children:
        edge:
          vars:
            ansible_user: root
            ansible_ssh_private_key_file: keys/deploy
          hosts:
            e1:
              ansible_host: 10.1.0.1
              ansible_port: 2222
            e2:2200:
              ansible_host: 10.1.0.2
              ansible_ssh_common_args: -o ProxyJump=jump@bastion:2022,inner
";

    #[test]
    fn ini_and_yaml_of_one_plant_give_the_same_hosts() {
        let ini = read("hosts.ini", INI).expect("ini");
        let yaml = read("hosts.yml", YAML).expect("yaml");
        assert_eq!(ini, yaml);
        let [gw, e1, e2] = [&ini[0], &ini[1], &ini[2]];
        assert_eq!((gw.name.as_str(), gw.address.as_str(), gw.user.as_str()), ("gw", "10.0.0.1", "ops"));
        assert_eq!(gw.auth, Auth::KeyFile("/keys/all".into()));
        assert!(gw.jumps.is_empty() && gw.groups.is_empty());
        // the deeper group's variables win over its parent's, the host's over both
        assert_eq!((e1.port, e1.user.as_str()), (2222, "root"));
        assert_eq!(e1.auth, Auth::KeyFile("/inv/keys/deploy".into()));
        assert_eq!(e1.groups, ["plant", "edge"]);
        assert_eq!(e2.port, 2200);
        let jumps: Vec<(&str, u16, &str)> = e2.jumps.iter().map(|j| (j.address.as_str(), j.port, j.user.as_str())).collect();
        assert_eq!(jumps, [("bastion", 2022, "jump"), ("inner", 22, "root")]);
        assert_eq!(e2.jumps[0].known_hosts, PathBuf::from("/etc/scpc/known_hosts"));
    }

    #[test]
    fn hostile_inventories_are_refused_at_their_place() {
        let cases: &[(&str, &str, Problem, &str)] = &[
            ("h.ini", "[edge\nh1\n", Problem::AnsibleSyntax, "[edge"),
            ("h.ini", "[edge:bogus]\nh1\n", Problem::AnsibleSyntax, "[edge:bogus]"),
            ("h.ini", "web[01:20] ansible_user=x\n", Problem::AnsibleUnsupported, "web[01:20]"),
            ("h.ini", "h1 ansible_port=70000\n", Problem::OutOfRange, "ansible_port=70000"),
            ("h.ini", "h1 ansible_host='10.0.0.1\n", Problem::AnsibleSyntax, "h1 ansible_host='10.0.0.1"),
            ("h.ini", "h1 ansible_host={{ lookup('env','X') }}\n", Problem::AnsibleSyntax, "h1"),
            ("h.ini", "h1 ansible_host=\"{{x}}\"\n", Problem::AnsibleUnsupported, "ansible_host=\"{{x}}\""),
            ("h.ini", "h1 justaword\n", Problem::AnsibleSyntax, "h1 justaword"),
            ("h.ini", "h1 ansible_ssh_common_args='-o ProxyCommand=nc %h %p'\n", Problem::AnsibleUnsupported, "ansible_ssh_common_args"),
            ("h.ini", "h1 ansible_ssh_common_args='-J a@b:x'\n", Problem::ProxyJump, "ansible_ssh_common_args"),
            ("h.ini", "h1 ansible_ssh_extra_args='-o ProxyJump=a;rm@b'\n", Problem::ProxyJump, "ansible_ssh_extra_args"),
            ("h.ini", "[a:children]\nb\n[b:children]\na\n[b]\nh1\n", Problem::ChildrenCycle, ""),
            ("h.ini", "h$1\n", Problem::HostName, "h$1"),
            ("h.ini", "[we b]\nh1\n", Problem::GroupName, "[we b]"),
            ("h.yml", "all:\n  hosts: [a, b]\n", Problem::AnsibleSyntax, "[a, b]"),
            ("h.yml", "all:\n  hostz:\n    a:\n", Problem::AnsibleSyntax, "hostz"),
            ("h.yml", "all:\n  hosts:\n    a: &x\n      ansible_port: 1\n    b: *x\n", Problem::AnsibleSyntax, "*"),
            ("h.yml", "all:\n  hosts:\n    a:\n    a:\n", Problem::AnsibleSyntax, "a"),
            ("h.yml", "all:\n  hosts:\n    a:\n      ansible_host: [1, 2]\n", Problem::AnsibleSyntax, "[1, 2]"),
            ("h.yml", "all: {hosts: {a: {ansible_port: 1}\n", Problem::AnsibleSyntax, ""),
            ("h.yml", "all:\n  hosts:\n    a:\n---\nall:\n", Problem::AnsibleSyntax, ""),
            ("h.yml", "all:\n  hosts:\n    a:\n      scpc_node_program: /tmp/x y\n", Problem::NodeProgram, "/tmp/x y"),
            ("h.yml", "all:\n  hosts:\n    a:\n      scpc_canary: maybe\n", Problem::AnsibleSyntax, "maybe"),
        ];
        for (name, text, want, at) in cases {
            let e = read(name, text).expect_err(text);
            assert_eq!(e.problem, *want, "{text}: {e}");
            let span = e.span().expect("located");
            let (src_name, src) = (name, text);
            assert!(span.end <= src.len(), "{src_name}: span inside the file");
            if !at.is_empty() {
                assert!(
                    src[span.clone()].starts_with(at) || at.starts_with(&src[span.clone()]),
                    "{text}: points at `{}`, not `{at}`",
                    &src[span]
                );
            }
        }
    }

    #[test]
    fn deep_nesting_and_alias_bombs_end_in_an_error_not_a_crash() {
        let deep = format!("{}x\n", "[".repeat(100_000));
        assert!(read("h.yml", &deep).is_err());
        let mut groups = String::from("all:\n");
        for i in 0..200 {
            groups.push_str(&format!("{}children:\n{}g{i}:\n", "  ".repeat(2 * i + 1), "  ".repeat(2 * i + 2)));
        }
        assert!(read("h.yml", &groups).is_err(), "groups nested 200 deep");
        let bomb = "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n";
        assert_eq!(read("h.yml", bomb).expect_err("aliases").problem, Problem::AnsibleSyntax);
        // an empty inventory is no host (the caller says there is nothing to deploy to)
        assert!(read("h.yml", "").expect("empty").is_empty());
        assert!(read("h.ini", "# nothing\n").expect("empty").is_empty());
    }
}
