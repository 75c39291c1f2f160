//! Traces of what a program did, read into syscall call counts: TSV (`name<TAB>count`, `#`
//! comments), `strace -c` summary tables, `strace -f` logs (one call per line) and seccomp
//! audit logs (one call per record). These make frequency profiles ([`profile`], for `scpc
//! build --profile`), `scpc profile`'s table, and `scpc generate`'s drafts.
//!
//! Profiles also carry argument frequencies: a TSV line `name arg=value<TAB>count` (or
//! `name arg=value count`, spaces only) counts calls of `name` whose argument `arg` (a
//! parameter name such as `cmd`, or `argN` for register N) was `value` (a number, a constant
//! such as `TCGETS`, or constants joined by `|`); an `strace -f` log counts the values of
//! every parameter strace prints as a number or constants.

use std::collections::BTreeMap;
use std::fmt;

use super::audit::{is_seccomp_line, parse_record, RecordError};
use crate::profile::{ArgKey, ArgValue, Profile};

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
    /// An argument count line whose `arg=value` cannot be read.
    Argument {
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
            TraceError::Argument { .. } => "scpc::import::trace::argument",
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
            TraceError::Argument { source, line } => {
                write!(
                    f,
                    "{source}:{line}: an argument is not `name=value` (a parameter name or argN, and a number or constants joined by `|`)"
                )
            }
            TraceError::Record { source, line, error } => write!(f, "{source}:{line}: {error}"),
        }
    }
}

impl std::error::Error for TraceError {}

/// What a trace records: calls per syscall name, and calls per syscall, argument and value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Calls per syscall name.
    pub calls: BTreeMap<String, f64>,
    /// Calls per (syscall, argument, value).
    pub args: BTreeMap<(String, ArgKey, ArgValue), f64>,
}

/// The raw call counts of a trace in any supported format, by syscall name.
pub fn counts(source: &str, text: &str) -> Result<BTreeMap<String, f64>, TraceError> {
    Ok(read(source, text)?.calls)
}

/// The calls and argument values of a trace in any supported format.
pub fn read(source: &str, text: &str) -> Result<Counts, TraceError> {
    let mut out = Counts::default();
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
                *out.calls.entry(r.syscall_name()).or_default() += 1.0;
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
            *out.calls.entry(name.to_string()).or_default() += calls;
        } else if let Some((what, count)) = line.split_once('\t').or_else(|| argument_line(line)) {
            let count = count.trim().parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 0.0).ok_or_else(|| {
                let (source, line) = at(n);
                TraceError::Count { source, line }
            })?;
            let mut words = what.split_whitespace();
            let name = words.next().unwrap_or_default().to_string();
            let mut args = Vec::new();
            for w in words {
                let arg = w.split_once('=').and_then(|(k, v)| Some((ArgKey::parse(k)?, ArgValue::parse(v)?)));
                let (key, value) = arg.ok_or_else(|| {
                    let (source, line) = at(n);
                    TraceError::Argument { source, line }
                })?;
                args.push((key, value));
            }
            if args.is_empty() {
                *out.calls.entry(name.clone()).or_default() += count;
            }
            for (key, value) in args {
                *out.args.entry((name.clone(), key, value)).or_default() += count;
            }
        } else if let Some((name, rest)) = strace_line(line) {
            *out.calls.entry(name.to_string()).or_default() += 1.0;
            for (i, a) in strace_args(rest).iter().enumerate().take(6) {
                if let Some(value) = ArgValue::parse(a) {
                    *out.args.entry((name.to_string(), ArgKey::Position(i as u8), value)).or_default() += 1.0;
                }
            }
        } else if !line.contains("+++") && !line.contains("---") && !line.contains("<... ") {
            let (source, line) = at(n);
            return Err(TraceError::Unknown { source, line });
        }
    }
    Ok(out)
}

/// `name arg=value... count` without a tab: the words before the count, and the count.
fn argument_line(line: &str) -> Option<(&str, &str)> {
    let (what, count) = line.rsplit_once(char::is_whitespace)?;
    let mut words = what.split_whitespace();
    let name = words.next()?;
    let ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !line.contains('(');
    let mut any = false;
    for w in words {
        if !w.contains('=') {
            return None;
        }
        any = true;
    }
    (ok && any).then_some((what, count))
}

/// A frequency profile from a trace in any supported format.
pub fn profile(source: &str, text: &str) -> Result<Profile, TraceError> {
    let c = read(source, text)?;
    Ok(Profile::from_trace(source, c.calls, c.args))
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

/// Splits strace's argument list at top-level commas.
pub(crate) fn strace_args(rest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut cur) = (0i32, false, false, String::new());
    for c in rest.chars() {
        if in_str {
            cur.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                cur.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                cur.push(c);
            }
            ')' | ']' | '}' if depth == 0 => {
                out.push(cur.trim().to_string());
                return out;
            }
            ')' | ']' | '}' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_argument_counts() {
        let c = read("a.tsv", "ioctl\t100\nioctl cmd=0x5401\t30\nioctl cmd=TCGETS 10\nfcntl arg1=F_GETFL|3 5\n").expect("reads");
        assert_eq!(c.calls.get("ioctl"), Some(&100.0));
        assert_eq!(c.args.get(&("ioctl".into(), ArgKey::Param("cmd".into()), ArgValue::number(0x5401))), Some(&30.0));
        let tcgets = ArgValue { names: vec!["TCGETS".into()], number: 0 };
        assert_eq!(c.args.get(&("ioctl".into(), ArgKey::Param("cmd".into()), tcgets)), Some(&10.0));
        let getfl = ArgValue { names: vec!["F_GETFL".into()], number: 3 };
        assert_eq!(c.args.get(&("fcntl".into(), ArgKey::Register(1), getfl)), Some(&5.0));
        // an strace -f log counts the arguments it prints as numbers or constants
        let f = read("f.txt", "12 ioctl(1, TCGETS, {c_iflag=ICRNL}) = 0\n12 ioctl(1, TCGETS, 0x7ffd) = 0\n").expect("reads");
        assert_eq!(f.calls.get("ioctl"), Some(&2.0));
        let tcgets = ArgValue { names: vec!["TCGETS".into()], number: 0 };
        assert_eq!(f.args.get(&("ioctl".into(), ArgKey::Position(1), tcgets)), Some(&2.0));
        assert_eq!(f.args.get(&("ioctl".into(), ArgKey::Position(0), ArgValue::number(1))), Some(&2.0));
        // a value that is neither a number nor constants is refused at its line
        assert_eq!(read("b.tsv", "read\t1\nioctl cmd=\"x\"\t3\n"), Err(TraceError::Argument { source: "b.tsv".into(), line: 2 }));
        assert_eq!(read("b.tsv", "ioctl arg9=1\t3\n"), Err(TraceError::Argument { source: "b.tsv".into(), line: 1 }));
        assert!(matches!(read("b.tsv", "ioctl cmd=1\t-3\n"), Err(TraceError::Count { .. })));
    }

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
