//! Services of `kind = "systemd"`: a drop-in, `/etc/systemd/system/UNIT.d/zz-scpc.conf`, that
//! runs the unit's own `ExecStart=` command under `scpc-node run FILTER --` (its prefixes kept,
//! its text kept verbatim so that systemd expands it as before), `systemctl daemon-reload`
//! when the drop-in changed, and `systemctl restart`. The drop-in's name sorts after other
//! drop-ins, so that it decides `ExecStart=`.
//!
//! The unit's command is read from its unit file and drop-ins (`systemctl show` names them);
//! systemctl runs with checked arguments only, each call under the job's time limit.

use std::time::Duration;

use crate::hooks;
use crate::protocol::{StepFailure, StepStatus};
use crate::store::{self, Dir, Entry};

/// The drop-in's file name.
pub const DROP_IN: &str = "zz-scpc.conf";

/// Where units' drop-ins live.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// The first line of the drop-in, by which the node knows it for its own.
const MARK: &str = "# scpc-node: runs this unit under its seccomp filter; `scpc rollback` or leaving the inventory removes it";

/// A service unit's name: `NAME.service` (instances `NAME@I.service` too), letters, digits
/// and `-_.@:`, at most 256 bytes.
pub fn unit_name(unit: &str) -> bool {
    unit.strip_suffix(".service").is_some_and(|stem| crate::protocol::plain_name(stem, 248) && !stem.starts_with('.'))
}

fn systemctl(step: &str, args: &[&str], limit: Duration, beat: &dyn Fn()) -> Result<Vec<u8>, StepFailure> {
    hooks::capture(step, "systemctl", args, limit, beat)
}

/// A property of a unit (`systemctl show --property=NAME --value UNIT`).
fn property(unit: &str, name: &str, limit: Duration) -> Result<String, StepFailure> {
    let out = systemctl("systemctl show", &["show", &format!("--property={name}"), "--value", "--", unit], limit, &|| {})?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// The processes of a unit: its control group's `cgroup.procs` (cgroup v2, or v1's systemd
/// hierarchy).
pub fn unit_processes(unit: &str, limit: Duration) -> Result<Vec<u32>, String> {
    let cgroup = property(unit, "ControlGroup", limit).map_err(|e| format!("asking systemd for the unit's control group: {e}"))?;
    if cgroup.is_empty() {
        return Ok(Vec::new());
    }
    if cgroup.contains("..") || !cgroup.starts_with('/') {
        return Err(format!("systemd named an odd control group `{cgroup}`"));
    }
    for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"] {
        if let Ok(text) = std::fs::read_to_string(format!("{base}{cgroup}/cgroup.procs")) {
            return Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect());
        }
    }
    Ok(Vec::new())
}

/// The unit's `ExecStart=` values, from its fragment and drop-ins in order (an empty
/// assignment clears the list), leaving out the node's own drop-in.
fn exec_start(unit: &str, limit: Duration) -> Result<Vec<String>, StepFailure> {
    let fail = |why: String| StepFailure { step: "drop-in".into(), status: StepStatus::Failed, stderr: why };
    let fragment = property(unit, "FragmentPath", limit)?;
    if fragment.is_empty() {
        return Err(fail(format!("systemd knows no unit file for `{unit}`")));
    }
    let drop_ins = property(unit, "DropInPaths", limit)?;
    let mut files = vec![fragment];
    files.extend(drop_ins.split_whitespace().filter(|p| !p.ends_with(&format!("/{DROP_IN}"))).map(str::to_string));
    let mut values: Vec<String> = Vec::new();
    for file in files {
        let text = std::fs::read(&file).map_err(|e| fail(format!("cannot read `{file}`: {e}")))?;
        if text.len() > 1 << 20 {
            return Err(fail(format!("`{file}` is larger than 1 MiB")));
        }
        let text = String::from_utf8_lossy(&text);
        let mut section = String::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let mut line = line.trim().to_string();
            while line.ends_with('\\') {
                line.pop();
                line.push(' ');
                line.push_str(lines.next().unwrap_or("").trim());
            }
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if line.starts_with('[') {
                section = line;
                continue;
            }
            if section != "[Service]" {
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                if key.trim() == "ExecStart" {
                    let value = value.trim();
                    if value.is_empty() {
                        values.clear();
                    } else {
                        values.push(value.to_string());
                    }
                }
            }
        }
    }
    Ok(values)
}

/// The drop-in for `unit`: its one `ExecStart=` run by `node run filter --`.
fn drop_in_text(unit: &str, service: &str, node: &str, filter: &str, limit: Duration) -> Result<String, StepFailure> {
    let fail = |why: String| StepFailure { step: "drop-in".into(), status: StepStatus::Failed, stderr: why };
    if !unit_file_path(node) || !unit_file_path(filter) {
        return Err(fail(
            "the node program's path and the install path must hold only letters, digits and `/._+-@%:` to go into a unit file".into(),
        ));
    }
    let values = exec_start(unit, limit)?;
    let [command] = values.as_slice() else {
        return Err(fail(format!("`{unit}` has {} ExecStart= commands; the node wraps units with exactly one", values.len())));
    };
    let body = command.trim_start_matches(['-', ':', '+', '!', '@']);
    let prefix = &command[..command.len() - body.len()];
    if prefix.contains('@') {
        return Err(fail(format!("`{unit}`'s ExecStart= sets its own argv[0] (`@`), which the node cannot keep")));
    }
    Ok(format!(
        "{MARK}\n# service {service}, filter {filter}\n[Service]\nExecStart=\nExecStart={prefix}{} run {} -- {body}\n",
        specifiers_escaped(node),
        specifiers_escaped(filter)
    ))
}

/// A path the drop-in can hold as one `ExecStart=` word: absolute, of letters, digits and
/// `/._+-@%:` (what an inventory's install path may hold), none of which splits a word,
/// starts a quote or an escape, or expands a variable in a unit file.
fn unit_file_path(p: &str) -> bool {
    p.starts_with('/') && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._+-@%:".contains(&b))
}

/// `p` with systemd's specifier character escaped (`%` as `%%`), so that the unit's command
/// gets the path as written: `%h` in a path would otherwise become the home directory.
fn specifiers_escaped(p: &str) -> String {
    p.replace('%', "%%")
}

/// The directory of `unit`'s drop-ins, made when `create`.
fn unit_dir(unit: &str, create: bool) -> Result<Option<Dir>, store::StoreError> {
    let mut parts = store::components(UNIT_DIR)?;
    let name = format!("{unit}.d");
    parts.push(&name);
    let Some(dir) = Dir::open(&parts, create)? else { return Ok(None) };
    dir.check_own()?;
    Ok(Some(dir))
}

/// Writes (or rewrites) the drop-in that runs `unit` under `filter`; returns whether it
/// changed.
pub fn write_drop_in(unit: &str, service: &str, filter: &str, limit: Duration) -> Result<bool, StepFailure> {
    let fail = |why: String| StepFailure { step: "drop-in".into(), status: StepStatus::Failed, stderr: why };
    let node = std::env::current_exe().map_err(|e| fail(format!("cannot tell the node program's path: {e}")))?;
    let node = node.to_string_lossy().into_owned();
    let text = drop_in_text(unit, service, &node, filter, limit)?;
    let dir = unit_dir(unit, true).map_err(|e| fail(e.to_string()))?.ok_or_else(|| fail("no drop-in directory".into()))?;
    if dir.read(DROP_IN, 1 << 16).map_err(|e| fail(e.to_string()))?.as_deref() == Some(text.as_bytes()) {
        return Ok(false);
    }
    dir.replace(DROP_IN, text.as_bytes(), 0o644).map_err(|e| fail(e.to_string()))?;
    Ok(true)
}

/// Removes `unit`'s drop-in (and its directory when that is left empty); returns whether there
/// was one.
pub fn remove_drop_in(unit: &str) -> Result<bool, StepFailure> {
    let fail = |why: String| StepFailure { step: "drop-in".into(), status: StepStatus::Failed, stderr: why };
    let Some(dir) = unit_dir(unit, false).map_err(|e| fail(e.to_string()))? else { return Ok(false) };
    if dir.entry(DROP_IN).map_err(|e| fail(e.to_string()))? == Entry::Missing {
        return Ok(false);
    }
    dir.remove(DROP_IN).map_err(|e| fail(e.to_string()))?;
    dir.sync().map_err(|e| fail(e.to_string()))?;
    if let Ok(Some(parent)) = Dir::open(&store::components(UNIT_DIR).map_err(|e| fail(e.to_string()))?, false) {
        parent.remove_dir(&format!("{unit}.d"));
    }
    Ok(true)
}

/// The units that carry the node's drop-in.
pub fn wrapped_units() -> Vec<String> {
    let Ok(Some(dir)) = store::components(UNIT_DIR).and_then(|c| Dir::open(&c, false)) else { return Vec::new() };
    let mut units = Vec::new();
    for name in dir.names().unwrap_or_default() {
        let Some(unit) = name.strip_suffix(".d") else { continue };
        if !unit_name(unit) {
            continue;
        }
        let Ok(Some(sub)) = dir.subdir(&name, false, rustix::fs::Mode::empty()) else { continue };
        if let Ok(Some(text)) = sub.read(DROP_IN, 1 << 16) {
            if text.starts_with(MARK.as_bytes()) {
                units.push(unit.to_string());
            }
        }
    }
    units
}

/// `systemctl daemon-reload`.
pub fn daemon_reload(limit: Duration, beat: &dyn Fn()) -> Result<(), StepFailure> {
    systemctl("daemon-reload", &["daemon-reload"], limit, beat).map(drop)
}

/// `systemctl restart UNIT` (with `only_if_running`, `try-restart`).
pub fn restart(unit: &str, only_if_running: bool, limit: Duration, beat: &dyn Fn()) -> Result<(), StepFailure> {
    let verb = if only_if_running { "try-restart" } else { "restart" };
    systemctl("restart", &[verb, "--", unit], limit, beat).map(drop)
}

/// The unit's main process, once it runs (0: none).
pub fn main_pid(unit: &str, limit: Duration) -> Result<u32, StepFailure> {
    Ok(property(unit, "MainPID", limit)?.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        for good in ["nginx.service", "getty@tty1.service", "a-b_c.d.service"] {
            assert!(unit_name(good), "{good}");
        }
        for bad in ["nginx", "nginx.socket", ".service", "-x.service", "../x.service", "a b.service", "a/b.service", "a\\x2d.service"] {
            assert!(!unit_name(bad), "{bad}");
        }
    }

    #[test]
    fn paths_with_specifier_characters_are_escaped_for_the_unit_file() {
        assert_eq!(specifiers_escaped("/srv/edge/p%h@v:1.bpf"), "/srv/edge/p%%h@v:1.bpf");
        assert_eq!(specifiers_escaped("/etc/scpc/%%.bpf"), "/etc/scpc/%%%%.bpf");
        for good in ["/etc/scpc/a.bpf", "/srv/edge/p%h@v:1.bpf", "/var/lib/scpc/scpc-node"] {
            assert!(unit_file_path(good), "{good}");
        }
        for bad in ["relative.bpf", "/a b.bpf", "/a$HOME.bpf", "/a\\b.bpf", "/a\"b.bpf", "/a'b.bpf", "/a;b.bpf"] {
            assert!(!unit_file_path(bad), "{bad}");
        }
    }
}
