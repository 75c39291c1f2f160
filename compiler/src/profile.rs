//! Syscall frequency profiles: how often each syscall is called, to arrange the search tree
//! so that frequent calls take the fewest instructions.
//!
//! Formats read by [`Profile::parse`]: a TSV (`name<TAB>count`, `#` comments), `strace -c`
//! summary tables, and `strace -f` logs (one call per line).

use std::collections::BTreeMap;

/// Relative call frequencies by syscall name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// What it was read from, for the manifest.
    pub source: String,
    counts: BTreeMap<String, f64>,
}

impl Profile {
    /// The weight of every number, so that calls the profile never saw still get a balanced
    /// tree among themselves.
    pub const EPSILON: f64 = 1e-12;

    /// The built-in profile: the mean of three workloads recorded with `strace -f -c` on this
    /// project's machine (`compiler/profiles/record.sh`): nginx serving 2,000 GETs, redis
    /// under redis-benchmark (SET, GET, INCR, LPUSH), and git (clone, log, status, diff) with
    /// a python loop. Each workload weighs the same, whatever its call count.
    pub fn builtin() -> Profile {
        const WORKLOADS: [(&str, &str); 3] = [
            ("nginx", include_str!("../profiles/nginx.strace-c.txt")),
            ("redis", include_str!("../profiles/redis.strace-c.txt")),
            ("git-python", include_str!("../profiles/git-python.strace-c.txt")),
        ];
        let mut counts = Vec::new();
        for (name, text) in WORKLOADS {
            let p = Profile::parse(name, text).unwrap_or_else(|_| Profile::uniform());
            counts.extend(p.counts);
        }
        Profile::from_counts("builtin (nginx, redis, git+python)", counts)
    }

    /// A profile where every syscall weighs the same.
    pub fn uniform() -> Profile {
        Profile { source: "uniform".into(), counts: BTreeMap::new() }
    }

    /// The fraction of calls that are `name` (0 if unseen).
    pub fn weight(&self, name: &str) -> f64 {
        self.counts.get(name).copied().unwrap_or(0.0)
    }

    /// Builds a profile from counts; weights are normalised to sum to 1.
    pub fn from_counts(source: &str, counts: impl IntoIterator<Item = (String, f64)>) -> Profile {
        let mut map: BTreeMap<String, f64> = BTreeMap::new();
        for (name, c) in counts {
            *map.entry(name).or_default() += c;
        }
        let total: f64 = map.values().sum();
        if total > 0.0 {
            map.values_mut().for_each(|v| *v /= total);
        }
        Profile { source: source.to_string(), counts: map }
    }

    /// Reads any of the supported formats; `Err` names the first line it could not read.
    pub fn parse(source: &str, text: &str) -> Result<Profile, String> {
        Ok(Profile::from_counts(source, Profile::parse_counts(source, text)?))
    }

    /// The raw call counts of a trace in any supported format, by syscall name.
    pub fn parse_counts(source: &str, text: &str) -> Result<BTreeMap<String, f64>, String> {
        let mut counts = Vec::new();
        let is_strace_c = text.lines().any(|l| l.contains("% time") && l.contains("syscall"));
        let is_audit = text.lines().any(crate::auditlog::is_seccomp_line);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("---") || line.starts_with('%') {
                continue;
            }
            if is_audit {
                // audit logs: one call per seccomp record, other messages skipped
                if crate::auditlog::is_seccomp_line(line) {
                    let r = crate::auditlog::parse_record(n + 1, line).map_err(|e| format!("{source}:{}: {e}", n + 1))?;
                    counts.push((r.syscall_name(), 1.0));
                }
            } else if is_strace_c {
                // % time  seconds  usecs/call  calls  [errors]  syscall
                let cols: Vec<&str> = line.split_whitespace().collect();
                let Some(name) = cols.last() else { continue };
                if *name == "total" {
                    continue;
                }
                let calls = cols.get(3).and_then(|c| c.parse::<f64>().ok()).ok_or(format!("{source}:{}: not a strace -c row", n + 1))?;
                counts.push((name.to_string(), calls));
            } else if let Some((name, count)) = line.split_once('\t') {
                let count = count.trim().parse::<f64>().map_err(|_| format!("{source}:{}: count is not a number", n + 1))?;
                counts.push((name.trim().to_string(), count));
            } else if let Some(name) = strace_call(line) {
                counts.push((name, 1.0));
            } else if !line.contains("+++") && !line.contains("---") && !line.contains("<... ") {
                return Err(format!("{source}:{}: neither `name<TAB>count`, a strace -c row, nor a strace call", n + 1));
            }
        }
        let mut map: BTreeMap<String, f64> = BTreeMap::new();
        for (name, c) in counts {
            *map.entry(name).or_default() += c;
        }
        Ok(map)
    }
}

/// The syscall name of an `strace -f` line: `[pid N] name(...` or `N name(...`.
fn strace_call(line: &str) -> Option<String> {
    strace_line(line).map(|(name, _)| name.to_string())
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
        let tsv = Profile::parse("p.tsv", "# name\tcount\nread\t30\nwrite\t10\n").expect("tsv");
        assert!((tsv.weight("read") - 0.75).abs() < 1e-9);
        let c = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 40.00    0.000004           1         4           read\n 60.00    0.000006           2         3         1 openat\n------ ----------- ----------- --------- --------- ----------------\n100.00    0.000010           1         7         1 total\n";
        let c = Profile::parse("c.txt", c).expect("strace -c");
        assert!((c.weight("read") - 4.0 / 7.0).abs() < 1e-9);
        let f = Profile::parse(
            "f.txt",
            "123 read(3, \"\", 4) = 0\n[pid 7] write(1, \"x\", 1) = 1\n12  write(1, \"y\", 1) = 1\n+++ exited with 0 +++\n",
        )
        .expect("strace -f");
        // strace pads short pids: `12  write(...)`
        assert!((f.weight("write") - 2.0 / 3.0).abs() < 1e-9);
        assert!(Profile::parse("bad", "what is this").is_err());
        let audit = "kernel: hello\naudit: type=1326 audit(1:2): pid=3 arch=c000003e syscall=0 compat=0 code=0x7ffc0000\n";
        let a = Profile::parse("audit.log", audit).expect("audit log");
        assert!((a.weight("read") - 1.0).abs() < 1e-9);
    }

    #[test]
    fn the_builtin_profile_has_the_recorded_hot_calls() {
        let p = Profile::builtin();
        for hot in ["read", "write", "epoll_wait", "openat", "close"] {
            assert!(p.weight(hot) > 0.01, "{hot}: {}", p.weight(hot));
        }
        let total: f64 = p.counts.values().sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
