//! Traces of what a program did, read into syscall call counts: TSV (`name<TAB>count`, `#`
//! comments), `strace -c` summary tables, `strace -f` logs (one call per line) and seccomp
//! audit logs (one call per record). These make frequency profiles ([`profile`], for `scpc
//! build --profile`), `scpc profile`'s table, and `scpc generate`'s drafts.

use std::collections::BTreeMap;
use std::fmt;

use super::audit::{is_seccomp_line, parse_record, RecordError};
use crate::profile::Profile;

/// Why a trace cannot be read: the first line that is not of its format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceError {
    /// The trace file cannot be read.
    Unreadable {
        /// The file.
        source: String,
        /// Why.
        reason: String,
    },
    /// A row of a `strace -c` table without a call count.
    StraceRow {
        /// The trace.
        source: String,
        /// 1-based line.
        line: usize,
    },
    /// A TSV row whose count is not a number.
    Count {
        /// The trace.
        source: String,
        /// 1-based line.
        line: usize,
    },
    /// A line of no known format.
    Unknown {
        /// The trace.
        source: String,
        /// 1-based line.
        line: usize,
    },
    /// A seccomp record of an audit log that cannot be decoded.
    Record {
        /// The trace.
        source: String,
        /// 1-based line.
        line: usize,
        /// Why.
        error: RecordError,
    },
}

impl TraceError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            TraceError::Unreadable { .. } => "scpc::import::trace::unreadable",
            TraceError::StraceRow { .. } => "scpc::import::trace::strace_row",
            TraceError::Count { .. } => "scpc::import::trace::count",
            TraceError::Unknown { .. } => "scpc::import::trace::unknown",
            TraceError::Record { .. } => "scpc::import::trace::record",
        }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Unreadable { source, reason } => write!(f, "cannot read profile `{source}`: {reason}"),
            TraceError::StraceRow { source, line } => write!(f, "{source}:{line}: not a strace -c row"),
            TraceError::Count { source, line } => write!(f, "{source}:{line}: count is not a number"),
            TraceError::Unknown { source, line } => {
                write!(f, "{source}:{line}: neither `name<TAB>count`, a strace -c row, nor a strace call")
            }
            TraceError::Record { source, line, error } => write!(f, "{source}:{line}: {error}"),
        }
    }
}

impl std::error::Error for TraceError {}

/// The raw call counts of a trace in any supported format, by syscall name.
pub fn counts(source: &str, text: &str) -> Result<BTreeMap<String, f64>, TraceError> {
    let mut counts = Vec::new();
    let is_strace_c = text.lines().any(|l| l.contains("% time") && l.contains("syscall"));
    let is_audit = text.lines().any(is_seccomp_line);
    let at = |n: usize| (source.to_string(), n + 1);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("---") || line.starts_with('%') {
            continue;
        }
        if is_audit {
            // audit logs: one call per seccomp record, other messages skipped
            if is_seccomp_line(line) {
                let r = parse_record(n + 1, line).map_err(|error| TraceError::Record { source: source.into(), line: n + 1, error })?;
                counts.push((r.syscall_name(), 1.0));
            }
        } else if is_strace_c {
            // % time  seconds  usecs/call  calls  [errors]  syscall
            let cols: Vec<&str> = line.split_whitespace().collect();
            let Some(name) = cols.last() else { continue };
            if *name == "total" {
                continue;
            }
            let (source, line) = at(n);
            let calls = cols.get(3).and_then(|c| c.parse::<f64>().ok()).ok_or(TraceError::StraceRow { source, line })?;
            counts.push((name.to_string(), calls));
        } else if let Some((name, count)) = line.split_once('\t') {
            let count = count.trim().parse::<f64>().map_err(|_| {
                let (source, line) = at(n);
                TraceError::Count { source, line }
            })?;
            counts.push((name.trim().to_string(), count));
        } else if let Some((name, _)) = strace_line(line) {
            counts.push((name.to_string(), 1.0));
        } else if !line.contains("+++") && !line.contains("---") && !line.contains("<... ") {
            let (source, line) = at(n);
            return Err(TraceError::Unknown { source, line });
        }
    }
    let mut map: BTreeMap<String, f64> = BTreeMap::new();
    for (name, c) in counts {
        *map.entry(name).or_default() += c;
    }
    Ok(map)
}

/// A frequency profile from a trace in any supported format.
pub fn profile(source: &str, text: &str) -> Result<Profile, TraceError> {
    Ok(Profile::from_counts(source, counts(source, text)?))
}

/// The profile for `scpc build --profile FILE`, or the built-in one.
pub fn read_profile(path: Option<&str>) -> Result<Profile, TraceError> {
    let Some(path) = path else { return Ok(builtin_profile()) };
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::Unreadable { source: path.to_string(), reason: e.to_string() })?;
    profile(path, &text)
}

/// The call counts of several traces summed, most frequent first (ties by name): `scpc
/// profile`'s table.
pub fn merged_counts<'a>(traces: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Vec<(String, f64)>, TraceError> {
    let mut total: BTreeMap<String, f64> = BTreeMap::new();
    for (source, text) in traces {
        for (name, c) in counts(source, text)? {
            *total.entry(name).or_default() += c;
        }
    }
    let mut rows: Vec<(String, f64)> = total.into_iter().collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(rows)
}

/// The built-in profile: the mean of three workloads recorded with `strace -f -c` on this
/// project's machine (`compiler/profiles/record.sh`): nginx serving 2,000 GETs, redis under
/// redis-benchmark (SET, GET, INCR, LPUSH), and git (clone, log, status, diff) with a python
/// loop. Each workload weighs the same, whatever its call count.
pub fn builtin_profile() -> Profile {
    const WORKLOADS: [(&str, &str); 3] = [
        ("nginx", include_str!("../../profiles/nginx.strace-c.txt")),
        ("redis", include_str!("../../profiles/redis.strace-c.txt")),
        ("git-python", include_str!("../../profiles/git-python.strace-c.txt")),
    ];
    let mut all = Vec::new();
    for (name, text) in WORKLOADS {
        // each workload's counts normalised to 1 (an unreadable one, impossible for these
        // files, would count as no calls)
        let p = profile(name, text).unwrap_or_else(|_| Profile::uniform());
        all.extend(p.weights());
    }
    Profile::from_counts("builtin (nginx, redis, git+python)", all)
}

/// An `strace -f` line's syscall name and what follows its `(`; strace pads the pid column.
pub(crate) fn strace_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix("[pid").map_or(line, |r| r.split_once(']').map_or(r, |(_, r)| r)).trim_start();
    let rest = rest.split_once(' ').filter(|(pid, _)| pid.chars().all(|c| c.is_ascii_digit())).map_or(rest, |(_, r)| r.trim_start());
    let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let (name, after) = rest.split_at(len);
    (!name.is_empty()).then_some(())?;
    after.strip_prefix('(').map(|args| (name, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tsv_strace_c_and_strace_f() {
        let tsv = profile("p.tsv", "# name\tcount\nread\t30\nwrite\t10\n").expect("tsv");
        assert!((tsv.weight("read") - 0.75).abs() < 1e-9);
        let c = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 40.00    0.000004           1         4           read\n 60.00    0.000006           2         3         1 openat\n------ ----------- ----------- --------- --------- ----------------\n100.00    0.000010           1         7         1 total\n";
        let c = profile("c.txt", c).expect("strace -c");
        assert!((c.weight("read") - 4.0 / 7.0).abs() < 1e-9);
        let f = profile(
            "f.txt",
            "123 read(3, \"\", 4) = 0\n[pid 7] write(1, \"x\", 1) = 1\n12  write(1, \"y\", 1) = 1\n+++ exited with 0 +++\n",
        )
        .expect("strace -f");
        // strace pads short pids: `12  write(...)`
        assert!((f.weight("write") - 2.0 / 3.0).abs() < 1e-9);
        let bad = profile("bad", "what is this").expect_err("unknown format");
        assert_eq!(
            (bad.code(), bad.to_string().as_str()),
            ("scpc::import::trace::unknown", "bad:1: neither `name<TAB>count`, a strace -c row, nor a strace call")
        );
        let audit = "kernel: hello\naudit: type=1326 audit(1:2): pid=3 arch=c000003e syscall=0 compat=0 code=0x7ffc0000\n";
        let a = profile("audit.log", audit).expect("audit log");
        assert!((a.weight("read") - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_builtin_profile_has_the_recorded_hot_calls() {
        let p = builtin_profile();
        for hot in ["read", "write", "epoll_wait", "openat", "close"] {
            assert!(p.weight(hot) > 0.01, "{hot}: {}", p.weight(hot));
        }
        let total: f64 = p.weights().map(|(_, w)| w).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
