//! Reading the kernel's seccomp audit records, and naming the rule that decided each one.
//!
//! The kernel writes one record per logged decision: `type=1326` in the kernel log (`dmesg`,
//! the journal: `audit: type=1326 audit(TIME:SERIAL): ... pid=.. comm=".." exe=".." sig=..
//! arch=c000003e syscall=101 compat=0 ip=0x.. code=0x80000000`) and `type=SECCOMP
//! msg=audit(TIME:SERIAL): ...` in auditd's audit.log. `ausearch -i` spells the architecture
//! and syscall as names; both spellings are read.
//!
//! Which decisions are logged: kill_process and kill_thread always, `log` always, errno, trap
//! and trace only for filters installed with SECCOMP_FILTER_FLAG_LOG (`scpc exec --log`),
//! allow never (the sysctl `kernel.seccomp.actions_logged` can narrow this).

use crate::abi::{Arch, X32_SYSCALL_BIT};
use crate::eval::target_of;
use crate::policy::{Action, Policy, RuleId};

/// One decoded seccomp audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line in the input.
    pub line: usize,
    /// `TIME:SERIAL` from `audit(...)`, as written.
    pub stamp: Option<String>,
    /// The calling thread.
    pub pid: Option<u32>,
    /// The thread's name (hex-encoded names decoded).
    pub comm: Option<String>,
    /// The executable.
    pub exe: Option<String>,
    /// `seccomp_data.arch`.
    pub audit_arch: u32,
    /// The architecture: x86_64 and x32 share an audit arch and are told apart by the x32 bit.
    pub arch: Option<Arch>,
    /// `seccomp_data.nr`.
    pub nr: u32,
    /// The syscall's name in `arch`'s table.
    pub syscall: Option<&'static str>,
    /// The filter's return value (`code=`).
    pub code: u32,
    /// The action that value means (`None` for a value no kernel defines).
    pub action: Option<Action>,
}

impl Record {
    /// `exe`, else `comm`, else `?`: the program, for summaries.
    pub fn program(&self) -> &str {
        self.exe.as_deref().or(self.comm.as_deref()).unwrap_or("?")
    }

    /// The syscall's name, or its number when the table does not know it.
    pub fn syscall_name(&self) -> String {
        self.syscall.map_or_else(|| format!("syscall {}", self.nr), str::to_string)
    }
}

/// What a log held.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Decoded seccomp records, in input order.
    pub records: Vec<Record>,
    /// Seccomp records that could not be decoded: (line, why).
    pub unreadable: Vec<(usize, String)>,
    /// Non-blank lines that are not seccomp records (other kernel or audit messages).
    pub other_lines: usize,
}

/// Decodes a filter's return value.
pub fn action_of(code: u32) -> Option<Action> {
    let data = (code & 0xffff) as u16;
    Some(match code & 0xffff_0000 {
        0x8000_0000 => Action::KillProcess,
        0x0000_0000 => Action::KillThread,
        0x0003_0000 => Action::Trap(data),
        0x0005_0000 => Action::Errno(data),
        0x7fc0_0000 => Action::Notify,
        0x7ff0_0000 => Action::Trace(data),
        0x7ffc_0000 => Action::Log,
        0x7fff_0000 => Action::Allow,
        _ => return None,
    })
}

/// Whether a line claims to be a seccomp record.
pub fn is_seccomp_line(line: &str) -> bool {
    line.contains("type=1326") || line.contains("type=SECCOMP")
}

/// Reads every line of `text`.
pub fn parse(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if !is_seccomp_line(line) {
            out.other_lines += 1;
            continue;
        }
        match parse_record(i + 1, line) {
            Ok(r) => out.records.push(r),
            Err(why) => out.unreadable.push((i + 1, why)),
        }
    }
    out
}

/// `key=value` fields of a record; quoted values lose their quotes.
fn fields(line: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        // (whitespace may be wider than a byte: U+2000 and friends)
        let key_start = rest[..eq].char_indices().rfind(|(_, c)| c.is_whitespace()).map_or(0, |(i, c)| i + c.len_utf8());
        let key = &rest[key_start..eq];
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((key, value));
        rest = next;
    }
    out
}

/// An unquoted value the kernel hex-encoded (it does so for names with spaces or quotes).
fn untangle(value: &str, quoted: bool) -> String {
    if quoted || value == "(null)" || !value.len().is_multiple_of(2) || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return value.to_string();
    }
    let bytes: Option<Vec<u8>> = (0..value.len()).step_by(2).map(|i| u8::from_str_radix(&value[i..i + 2], 16).ok()).collect();
    bytes.map_or_else(|| value.to_string(), |b| String::from_utf8_lossy(&b).into_owned())
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// The audit arch of an architecture name as `ausearch -i` and `uname -m` spell them.
fn arch_by_name(name: &str) -> Option<Arch> {
    Some(match name {
        "x86_64" | "x86-64" | "amd64" => Arch::X86_64,
        "i386" | "i686" | "x86" => Arch::I386,
        "aarch64" | "arm64" => Arch::Aarch64,
        "arm" | "armeb" | "armv7l" | "armv6l" => Arch::Arm,
        "riscv64" => Arch::Riscv64,
        "x32" => Arch::X32,
        _ => return None,
    })
}

/// Decodes one seccomp record.
pub fn parse_record(line_no: usize, line: &str) -> Result<Record, String> {
    // auditd's enriched format appends the interpreted fields after a GS (0x1d) byte
    let line = &line.replace('\x1d', " ");
    let fields = fields(line);
    let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let quoted = |k: &str| line.contains(&format!("{k}=\""));
    let stamp = line.find("audit(").and_then(|i| {
        let rest = &line[i + 6..];
        rest.find(')').map(|end| rest[..end].to_string())
    });
    let arch_field = get("arch").ok_or("no `arch=` field")?;
    let (audit_arch, named_arch) = match hex(arch_field) {
        Some(a) if arch_field.len() == 8 => (a, None),
        _ => {
            let arch =
                arch_by_name(arch_field).ok_or_else(|| format!("`arch={arch_field}` is neither an audit arch in hex nor a known name"))?;
            (arch.table().audit_arch, Some(arch))
        }
    };
    let syscall_field = get("syscall").ok_or("no `syscall=` field")?;
    let by_number = syscall_field.parse::<u32>().ok();
    let arch = named_arch.or_else(|| {
        Arch::ALL.into_iter().find(|a| {
            a.table().audit_arch == audit_arch
                && match a {
                    Arch::X32 => by_number.is_some_and(|n| n & X32_SYSCALL_BIT != 0),
                    Arch::X86_64 => by_number.is_none_or(|n| n & X32_SYSCALL_BIT == 0),
                    _ => true,
                }
        })
    });
    let (nr, syscall) = match by_number {
        Some(nr) => (nr, arch.and_then(|a| a.table().by_nr(nr)).map(|s| s.name)),
        None => {
            let arch = arch.ok_or_else(|| format!("`syscall={syscall_field}` is a name, but the architecture is unknown"))?;
            let s = arch.table().syscall(syscall_field).ok_or_else(|| format!("`{syscall_field}` is not a syscall of {arch}"))?;
            (s.nr, Some(s.name))
        }
    };
    let code_field = get("code").ok_or("no `code=` field")?;
    let code = hex(code_field).ok_or_else(|| format!("`code={code_field}` is not a hexadecimal return value"))?;
    let pid = match get("pid") {
        Some(p) => Some(p.parse().map_err(|_| format!("`pid={p}` is not a number"))?),
        None => None,
    };
    Ok(Record {
        line: line_no,
        stamp,
        pid,
        comm: get("comm").map(|v| untangle(v, quoted("comm"))),
        exe: get("exe").map(|v| untangle(v, quoted("exe"))),
        audit_arch,
        arch,
        nr,
        syscall,
        code,
        action: action_of(code),
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_quoted_values_and_decode_hex_names() {
        let line = r#"type=SECCOMP msg=audit(1.5:7): pid=12 comm=6D7920617070 exe="/usr/bin/x y" arch=c000003e syscall=101 compat=0 ip=0x1 code=0x0"#;
        let r = parse_record(1, line).expect("reads");
        assert_eq!(r.comm.as_deref(), Some("my app"));
        assert_eq!(r.exe.as_deref(), Some("/usr/bin/x y"));
        assert_eq!(r.syscall, Some("ptrace"));
        assert_eq!(r.action, Some(Action::KillThread));
        assert_eq!(r.stamp.as_deref(), Some("1.5:7"));
    }

    #[test]
    fn x32_is_told_apart_by_its_bit() {
        let line = "audit: type=1326 audit(1:1): pid=1 arch=c000003e syscall=1073741863 compat=0 code=0x80000000";
        let r = parse_record(1, line).expect("reads");
        assert_eq!(r.arch, Some(Arch::X32));
        assert_eq!(r.syscall, Some("getpid"));
    }

    #[test]
    fn a_line_without_code_is_unreadable_not_skipped() {
        let p = parse("audit: type=1326 audit(1:1): pid=1 arch=c000003e syscall=39\nhello\n\n");
        assert_eq!(p.records.len(), 0);
        assert_eq!(p.unreadable, vec![(1, "no `code=` field".to_string())]);
        assert_eq!(p.other_lines, 1);
    }
}
