//! Whether a service's processes run under its deployed filter: each process's `Seccomp:`
//! line in `/proc/PID/status`, and, where the kernel lets this program ask
//! ([`crate::loader::loaded_filters`]), the programs it runs under compared byte for byte with
//! the deployed artifact.
//!
//! A service's processes are those of its systemd unit (its control group), or the one whose
//! id its pid file holds, or those whose name (`/proc/PID/comm`) is its process name.

use std::time::Duration;

use crate::bpf::{self, Insn};
use crate::protocol::{Enforcement, EnforcementState, Kind, ProcessCheck, Service};

/// The processes of a service, or why they cannot be found.
pub fn processes(service: &Service, limit: Duration) -> Result<Vec<u32>, String> {
    if let (Kind::Systemd, Some(unit)) = (service.kind, &service.unit) {
        return crate::systemd::unit_processes(unit, limit);
    }
    if let Some(pid_file) = &service.pid_file {
        let text = std::fs::read(pid_file).map_err(|e| format!("cannot read the pid file `{pid_file}`: {e}"))?;
        let text = String::from_utf8_lossy(&text[..text.len().min(64)]).trim().to_string();
        let pid: u32 = text.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("the pid file `{pid_file}` holds no process id"))?;
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return Err(format!("process {pid} of the pid file `{pid_file}` is not running"));
        }
        return Ok(vec![pid]);
    }
    if let Some(name) = &service.process {
        let me = std::process::id();
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")
            .map_err(|e| format!("cannot list /proc: {e}"))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me && comm(*pid).as_deref() == Some(name.as_str()))
            .collect();
        pids.sort_unstable();
        return Ok(pids);
    }
    Err("the service names no unit, pid file or process name to find its processes by".into())
}

/// `/proc/PID/comm`.
fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end().to_string())
}

/// Whether `pid` still runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|state| !matches!(state, "Z" | "X" | "x"))
}

/// `Seccomp:` and `Seccomp_filters:` of `/proc/PID/status`.
fn seccomp_status(pid: u32) -> Option<(u8, Option<u32>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string());
    let mode = field("Seccomp:")?.parse().ok()?;
    Some((mode, field("Seccomp_filters:").and_then(|v| v.parse().ok())))
}

/// Checks one process against `deployed` (the instructions of the deployed filter).
pub fn check_process(pid: u32, deployed: Option<&[Insn]>) -> Option<ProcessCheck> {
    let (mode, filters) = seccomp_status(pid)?;
    let mut check = ProcessCheck { pid, comm: comm(pid).unwrap_or_default(), seccomp_mode: mode, filters, matches: None, why: None };
    if mode != 2 {
        return Some(check);
    }
    let Some(deployed) = deployed else {
        check.why = Some("no deployed filter to compare with".into());
        return Some(check);
    };
    match crate::loader::loaded_filters(pid as i32) {
        Ok(programs) => check.matches = Some(programs.iter().any(|p| p.as_slice() == deployed)),
        // a short-lived child (a command the service ran) that ended meanwhile is no longer one
        // of its processes
        Err(_) if !alive(pid) => return None,
        Err(e) => {
            check.why = Some(match e.raw_os_error() {
                Some(libc::EACCES) => {
                    "PTRACE_SECCOMP_GET_FILTER refused (EACCES): the node program needs CAP_SYS_ADMIN and must not run under a seccomp filter itself".into()
                }
                Some(libc::EMEDIUMTYPE) => "this kernel keeps no copy of loaded filters (CONFIG_CHECKPOINT_RESTORE is off)".into(),
                Some(libc::EPERM) => "not allowed to trace the process (another tracer, or Yama's ptrace_scope)".into(),
                Some(libc::EIO) | Some(libc::EINVAL) => "this kernel does not answer PTRACE_SECCOMP_GET_FILTER".into(),
                _ => format!("reading its filters: {e}"),
            })
        }
    }
    Some(check)
}

/// The verdict over a service's processes, checked against the deployed filter's bytes.
pub fn verdict(pids: &[u32], deployed: Option<&[u8]>) -> Enforcement {
    let insns = deployed.and_then(bpf::decode);
    let processes: Vec<ProcessCheck> = pids.iter().filter_map(|p| check_process(*p, insns.as_deref())).collect();
    let unknown = |why: String, processes| Enforcement { state: EnforcementState::Unknown, why: Some(why), processes };
    if processes.is_empty() {
        return unknown("no process of the service is running".into(), processes);
    }
    if processes.iter().any(|p| p.seccomp_mode == 0) {
        return Enforcement { state: EnforcementState::NotEnforced, why: None, processes };
    }
    if processes.iter().any(|p| p.seccomp_mode == 1) {
        return Enforcement { state: EnforcementState::EnforcedOther, why: Some("a process is in seccomp strict mode".into()), processes };
    }
    if processes.iter().any(|p| p.matches == Some(false)) {
        return Enforcement { state: EnforcementState::EnforcedOther, why: None, processes };
    }
    if let Some(why) = processes.iter().find_map(|p| p.why.clone()) {
        return unknown(format!("under a seccomp filter, not compared: {why}"), processes);
    }
    Enforcement { state: EnforcementState::Enforced, why: None, processes }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_without_a_filter_is_not_enforced() {
        let me = std::process::id();
        let v = verdict(&[me], None);
        assert_eq!(v.state, EnforcementState::NotEnforced, "{v:?}");
        assert_eq!(v.processes[0].pid, me);
        let none = verdict(&[], None);
        assert_eq!(none.state, EnforcementState::Unknown);
        let s = Service {
            name: "x".into(),
            path: "/etc/scpc/x.bpf".into(),
            kind: Kind::Command,
            unit: None,
            reload: None,
            health: None,
            pid_file: None,
            process: None,
        };
        assert!(processes(&s, Duration::from_secs(1)).is_err());
    }
}
