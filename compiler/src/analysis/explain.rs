//! `scpc explain`: seccomp audit records ([`crate::import::audit`]) counted, and each traced
//! back to the rule of a policy that decided it ([`explain`]); [`report`] makes the whole
//! typed report, which prints as text (`Display`) or JSON (`Serialize`).

use std::collections::BTreeMap;
use std::fmt;

use scpc_lang::source::SourceMap;
use serde::Serialize;

use crate::import::audit::{parse, Record};
use crate::ir::eval::target_of;
use crate::ir::{Action, Policy, RuleId};

/// Who in a policy could have made a logged decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Culprit {
    /// This rule.
    Rule(RuleId),
    /// The policy's default action.
    Default,
    /// The `newer` action.
    Newer,
    /// The badarch action (the call's architecture is not a target).
    Badarch,
}

/// What the policy says about a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Every way the policy can decide this call that agrees with the logged action, in the
    /// order they are tried. Audit records carry no arguments, so when argument conditions
    /// come first there can be several.
    pub matches: Vec<(Culprit, Action)>,
    /// Every way the policy can decide this call at all.
    pub possible: Vec<(Culprit, Action)>,
}

/// Names the rules of `policy` that can have decided `record`. A logged `log` also matches any
/// enforcing action, since an audit-only build (`scpc build --audit`) logs what the policy
/// would deny.
pub fn explain(policy: &Policy, record: &Record) -> Explanation {
    let mut possible = Vec::new();
    match target_of(policy, record.audit_arch, record.nr) {
        None => possible.push((Culprit::Badarch, policy.badarch)),
        Some(target) => {
            let entries = target.syscalls.get(&record.nr).map_or(&[][..], |v| v.as_slice());
            let mut unconditional = false;
            for e in entries {
                possible.push((Culprit::Rule(e.rule), policy.rules[e.rule].action));
                if e.cond.is_none() {
                    unconditional = true;
                    break;
                }
            }
            if !unconditional {
                let is_newer = target.arch.table().by_nr(record.nr).is_some_and(|s| !s.since.present_in(policy.kernel));
                match policy.newer {
                    Some(newer) if entries.is_empty() && is_newer => possible.push((Culprit::Newer, newer)),
                    _ => possible.push((Culprit::Default, policy.default)),
                }
            }
        }
    }
    let matches = possible
        .iter()
        .filter(|(_, a)| Some(*a) == record.action || (record.action == Some(Action::Log) && *a != Action::Allow))
        .cloned()
        .collect();
    Explanation { matches, possible }
}

/// One record of the report. Field names and order are the `--json` format.
#[derive(Clone, Debug, Serialize)]
pub struct RecordReport {
    /// The action the record logged (`None` for a value no kernel defines).
    pub action: Option<String>,
    /// The architecture, when scpc knows it.
    pub arch: Option<String>,
    /// `seccomp_data.arch`, hex.
    pub audit_arch: String,
    /// The filter's return value, hex.
    pub code: String,
    /// The thread's name.
    pub comm: Option<String>,
    /// How the policy decides it (only with a policy): one entry per rule or setting that
    /// agrees with the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Vec<String>>,
    /// The executable.
    pub exe: Option<String>,
    /// 1-based line in the log.
    pub line: usize,
    /// `seccomp_data.nr`.
    pub nr: u32,
    /// The calling thread.
    pub pid: Option<u32>,
    /// `TIME:SERIAL`.
    pub stamp: Option<String>,
    /// The syscall's name.
    pub syscall: Option<&'static str>,
    /// Every way the policy can decide the call (only with a policy; text output).
    #[serde(skip)]
    pub possible: Vec<String>,
    /// The record as decoded (text output).
    #[serde(skip)]
    pub record: Record,
}

/// A line that claims to be a seccomp record but cannot be decoded.
#[derive(Clone, Debug, Serialize)]
pub struct Unreadable {
    /// Why.
    pub error: String,
    /// 1-based line.
    pub line: usize,
}

/// Records counted by (action, architecture, syscall, program).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    /// The action.
    pub action: String,
    /// The architecture.
    pub arch: String,
    /// How many records.
    pub count: usize,
    /// The program (`exe`, else `comm`).
    pub program: String,
    /// The syscall.
    pub syscall: String,
}

/// What a log says, and (given a policy) which rules decided.
#[derive(Clone, Debug, Serialize)]
pub struct ExplainReport {
    /// Records left out by `--pid`, `--comm` or `--since`.
    #[serde(skip_serializing_if = "is_zero")]
    pub filtered_out: usize,
    /// Non-blank lines that are not seccomp records.
    pub other_lines: usize,
    /// The decoded records, in log order.
    pub records: Vec<RecordReport>,
    /// The log's name (`<stdin>` for standard input).
    pub source: String,
    /// The records counted, by (action, arch, syscall, program).
    pub summary: Vec<SummaryRow>,
    /// Lines that could not be decoded.
    pub unreadable: Vec<Unreadable>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn action_text(r: &Record) -> String {
    r.action.map_or_else(|| format!("unknown action {:#x}", r.code), |a| a.to_string())
}

fn arch_text(r: &Record) -> String {
    r.arch.map_or_else(|| format!("arch {:#x}", r.audit_arch), |a| a.to_string())
}

/// Where a culprit is written, for people.
fn describe(policy: &Policy, map: &SourceMap, c: &Culprit) -> String {
    match c {
        Culprit::Rule(rule) => {
            let data = &policy.rules[*rule];
            let at = map.locate(data.span.lo).map_or_else(String::new, |(f, lc)| format!("{f}:{}:{}", lc.line, lc.column));
            let text = map.text(data.span).lines().next().unwrap_or("").trim();
            format!("{at}: `{text}` (policy {})", data.layer)
        }
        Culprit::Default => format!("the default action of policy {} (`default {}`)", policy.name, policy.default),
        Culprit::Newer => format!("the `newer` action of policy {}", policy.name),
        Culprit::Badarch => "the badarch action: the call's architecture is not a target".to_string(),
    }
}

/// Which records of a log to explain (`scpc explain --pid --comm --since`): on a busy host
/// the log holds other programs' records too, which no rule of your policy decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordFilter {
    /// Only records of this process (the calling thread's id, as logged).
    pub pid: Option<u32>,
    /// Only records whose thread name (`comm`) or executable's file name is this.
    pub comm: Option<String>,
    /// Only records stamped at or after this time (seconds since the epoch, as the audit
    /// stamp `audit(TIME:SERIAL)` writes it); records without a stamp are left out then.
    pub since: Option<f64>,
}

impl RecordFilter {
    /// Whether the filter keeps `r`.
    pub fn keeps(&self, r: &Record) -> bool {
        let pid = self.pid.is_none_or(|p| r.pid == Some(p));
        let comm = self
            .comm
            .as_deref()
            .is_none_or(|c| r.comm.as_deref() == Some(c) || r.exe.as_deref().is_some_and(|e| e == c || e.rsplit('/').next() == Some(c)));
        let since = self.since.is_none_or(|t| stamp_time(r.stamp.as_deref()).is_some_and(|s| s >= t));
        pid && comm && since
    }
}

/// The time of an audit stamp `TIME:SERIAL`.
fn stamp_time(stamp: Option<&str>) -> Option<f64> {
    stamp?.split(':').next()?.parse().ok()
}

/// A `--since` value: seconds since the epoch (`1700000000`, `1700000000.5`) or a UTC date
/// and time `YYYY-MM-DD[THH:MM[:SS]]` (a space may stand for the `T`).
pub fn parse_since(s: &str) -> Result<f64, String> {
    if let Ok(t) = s.parse::<f64>() {
        return if t.is_finite() && t >= 0.0 { Ok(t) } else { Err(format!("`{s}` is not a time")) };
    }
    let bad = || format!("`{s}` is not a time: write seconds since the epoch or YYYY-MM-DD[THH:MM[:SS]] (UTC)");
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let numbers = |text: &str, sep: char, min: usize| -> Result<Vec<i64>, String> {
        let v: Vec<i64> = text.split(sep).map(|p| p.parse::<i64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
        if v.len() < min || v.len() > 3 {
            return Err(bad());
        }
        Ok(v)
    };
    let d = numbers(date, '-', 3)?;
    let mut t = numbers(time, ':', 2)?;
    t.resize(3, 0);
    let (y, m, day, hh, mm, ss) = (d[0], d[1], d[2], t[0], t[1], t[2]);
    let in_range = (1970..=9999).contains(&y)
        && (1..=12).contains(&m)
        && (1..=31).contains(&day)
        && (0..=23).contains(&hh)
        && (0..=59).contains(&mm)
        && (0..=60).contains(&ss);
    if !in_range {
        return Err(bad());
    }
    // days from the civil date (Howard Hinnant's algorithm)
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64)
}

/// Reads the log `text` (named `source`) and, with a policy and the source map it was
/// resolved from, names what decided each record.
pub fn report(source: &str, text: &str, policy: Option<(&Policy, &SourceMap)>) -> ExplainReport {
    report_filtered(source, text, policy, &RecordFilter::default())
}

/// [`report`] of the records `filter` keeps; the others are counted in `filtered_out`.
pub fn report_filtered(source: &str, text: &str, policy: Option<(&Policy, &SourceMap)>, filter: &RecordFilter) -> ExplainReport {
    let parsed = parse(text);
    let mut counts: BTreeMap<(String, String, String, String), usize> = BTreeMap::new();
    let mut records = Vec::new();
    let mut filtered_out = 0;
    for r in parsed.records {
        if !filter.keeps(&r) {
            filtered_out += 1;
            continue;
        }
        *counts.entry((action_text(&r), arch_text(&r), r.syscall_name(), r.program().to_string())).or_default() += 1;
        let (decided_by, possible) = match policy {
            Some((policy, map)) => {
                let e = explain(policy, &r);
                let said = e
                    .matches
                    .iter()
                    .map(|(c, act)| {
                        let would = if Some(*act) == r.action { String::new() } else { format!(" (enforcing, it would be {act})") };
                        format!("{}{would}", describe(policy, map, c))
                    })
                    .collect();
                let possible = e.possible.iter().map(|(c, a)| format!("{a} by {}", describe(policy, map, c))).collect();
                (Some(said), possible)
            }
            None => (None, Vec::new()),
        };
        records.push(RecordReport {
            action: r.action.map(|a| a.to_string()),
            arch: r.arch.map(|a| a.to_string()),
            audit_arch: format!("{:#x}", r.audit_arch),
            code: format!("{:#x}", r.code),
            comm: r.comm.clone(),
            decided_by,
            exe: r.exe.clone(),
            line: r.line,
            nr: r.nr,
            pid: r.pid,
            stamp: r.stamp.clone(),
            syscall: r.syscall,
            possible,
            record: r,
        });
    }
    let summary =
        counts.into_iter().map(|((action, arch, syscall, program), count)| SummaryRow { action, arch, count, program, syscall }).collect();
    let unreadable = parsed.unreadable.iter().map(|(line, e)| Unreadable { error: e.to_string(), line: *line }).collect();
    ExplainReport { filtered_out, other_lines: parsed.other_lines, records, source: source.to_string(), summary, unreadable }
}

impl ExplainReport {
    /// Records whose logged action the policy cannot have taken.
    pub fn mismatches(&self) -> usize {
        self.records.iter().filter(|r| r.decided_by.as_ref().is_some_and(Vec::is_empty)).count()
    }
}

impl fmt::Display for RecordReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        let who = match (&r.comm, &r.exe) {
            (Some(c), Some(e)) => format!("{c} ({e})"),
            (Some(c), None) => c.clone(),
            (None, Some(e)) => e.clone(),
            (None, None) => "?".to_string(),
        };
        let pid = r.pid.map_or_else(String::new, |p| format!(" pid {p}"));
        let audit_only = if r.action == Some(Action::Log) { " (allowed and logged)" } else { "" };
        writeln!(f, "{who}{pid}: {} {} ({}): {}{audit_only}", arch_text(r), r.syscall_name(), r.nr, action_text(r))?;
        match self.decided_by.as_deref() {
            None => {}
            Some([]) => {
                writeln!(f, "    the policy does not decide this call this way; it decides: {}", self.possible.join("; or "))?;
                writeln!(f, "    help: the filter that logged this was not built from this policy (or from an older version of it)")?;
            }
            Some([one]) => writeln!(f, "    decided by {one}")?,
            Some(many) => {
                writeln!(f, "    decided by one of these, depending on the arguments (audit records carry none):")?;
                for m in many {
                    writeln!(f, "      {m}")?;
                }
            }
        }
        Ok(())
    }
}

impl ExplainReport {
    /// The text form of the records: for each, `LOG:LINE: program pid: arch syscall (nr):
    /// action` and what decided it.
    pub fn records_text(&self) -> String {
        self.records.iter().map(|r| format!("{}:{}: {r}", self.source, r.line)).collect()
    }

    /// The text form of the counts: totals, a table by (action, arch, syscall, program), most
    /// frequent first, and how many records disagree with the policy.
    pub fn summary_text(&self) -> String {
        let mut out = format!(
            "\n{} seccomp record(s), {} unreadable, {} other line(s) skipped\n",
            self.records.len(),
            self.unreadable.len(),
            self.other_lines
        );
        if self.filtered_out > 0 {
            out.push_str(&format!("{} record(s) of other processes or times left out (--pid, --comm, --since)\n", self.filtered_out));
        }
        if !self.summary.is_empty() {
            let mut rows: Vec<&SummaryRow> = self.summary.iter().collect();
            rows.sort_by(|x, y| {
                y.count
                    .cmp(&x.count)
                    .then_with(|| (&x.action, &x.arch, &x.syscall, &x.program).cmp(&(&y.action, &y.arch, &y.syscall, &y.program)))
            });
            out.push_str(&format!("{:>7}  {:<14} {:<8} {:<20} program\n", "count", "action", "arch", "syscall"));
            for row in rows {
                out.push_str(&format!("{:>7}  {:<14} {:<8} {:<20} {}\n", row.count, row.action, row.arch, row.syscall, row.program));
            }
        }
        let mismatches = self.mismatches();
        if mismatches > 0 {
            out.push_str(&format!("{mismatches} record(s) disagree with the policy\n"));
        }
        out
    }
}

/// The text form: the records, then the counts.
impl fmt::Display for ExplainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.records_text(), self.summary_text())
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn since_reads_epoch_seconds_and_utc_dates() {
        assert_eq!(parse_since("1700000000.5"), Ok(1_700_000_000.5));
        assert_eq!(parse_since("1970-01-01"), Ok(0.0));
        assert_eq!(parse_since("2023-11-14T22:13:20"), Ok(1_700_000_000.0));
        assert_eq!(parse_since("2023-11-14 22:13"), Ok(1_699_999_980.0));
        assert!(parse_since("yesterday").is_err() && parse_since("2023-13-01").is_err() && parse_since("-5").is_err());
    }
}
