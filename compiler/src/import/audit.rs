//! Reading the kernel's seccomp audit records ([`analysis::explain`](crate::analysis::explain)
//! names the rule that decided each one).
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

use std::fmt;

use crate::abi::{Arch, X32_SYSCALL_BIT};
use crate::ir::Action;

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
    pub unreadable: Vec<(usize, RecordError)>,
    /// Non-blank lines that are not seccomp records (other kernel or audit messages).
    pub other_lines: usize,
}

/// Why a seccomp record cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// A field every record has is missing.
    NoField {
        /// `arch`, `syscall` or `code`.
        field: &'static str,
    },
    /// `arch=` is neither 8 hex digits nor a name `ausearch -i` writes.
    Arch {
        /// The value.
        value: String,
    },
    /// `syscall=` is a name, but the architecture is not known to scpc.
    NameWithoutArch {
        /// The value.
        value: String,
    },
    /// `syscall=` names no syscall of the architecture.
    Syscall {
        /// The value.
        value: String,
        /// The architecture.
        arch: Arch,
    },
    /// `code=` is not a hexadecimal return value.
    Code {
        /// The value.
        value: String,
    },
    /// `pid=` is not a number.
    Pid {
        /// The value.
        value: String,
    },
}

impl RecordError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RecordError::NoField { .. } => "scpc::import::audit::no_field",
            RecordError::Arch { .. } => "scpc::import::audit::arch",
            RecordError::NameWithoutArch { .. } => "scpc::import::audit::name_without_arch",
            RecordError::Syscall { .. } => "scpc::import::audit::syscall",
            RecordError::Code { .. } => "scpc::import::audit::code",
            RecordError::Pid { .. } => "scpc::import::audit::pid",
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::NoField { field } => write!(f, "no `{field}=` field"),
            RecordError::Arch { value } => write!(f, "`arch={value}` is neither an audit arch in hex nor a known name"),
            RecordError::NameWithoutArch { value } => write!(f, "`syscall={value}` is a name, but the architecture is unknown"),
            RecordError::Syscall { value, arch } => write!(f, "`{value}` is not a syscall of {arch}"),
            RecordError::Code { value } => write!(f, "`code={value}` is not a hexadecimal return value"),
            RecordError::Pid { value } => write!(f, "`pid={value}` is not a number"),
        }
    }
}

impl std::error::Error for RecordError {}

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
pub fn parse_record(line_no: usize, line: &str) -> Result<Record, RecordError> {
    // auditd's enriched format appends the interpreted fields after a GS (0x1d) byte
    let line = &line.replace('\x1d', " ");
    let fields = fields(line);
    let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let quoted = |k: &str| line.contains(&format!("{k}=\""));
    let stamp = line.find("audit(").and_then(|i| {
        let rest = &line[i + 6..];
        rest.find(')').map(|end| rest[..end].to_string())
    });
    let arch_field = get("arch").ok_or(RecordError::NoField { field: "arch" })?;
    let (audit_arch, named_arch) = match hex(arch_field) {
        Some(a) if arch_field.len() == 8 => (a, None),
        _ => {
            let arch = arch_by_name(arch_field).ok_or_else(|| RecordError::Arch { value: arch_field.to_string() })?;
            (arch.table().audit_arch, Some(arch))
        }
    };
    let syscall_field = get("syscall").ok_or(RecordError::NoField { field: "syscall" })?;
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
            let arch = arch.ok_or_else(|| RecordError::NameWithoutArch { value: syscall_field.to_string() })?;
            let s = arch.table().syscall(syscall_field).ok_or_else(|| RecordError::Syscall { value: syscall_field.to_string(), arch })?;
            (s.nr, Some(s.name))
        }
    };
    let code_field = get("code").ok_or(RecordError::NoField { field: "code" })?;
    let code = hex(code_field).ok_or_else(|| RecordError::Code { value: code_field.to_string() })?;
    let pid = match get("pid") {
        Some(p) => Some(p.parse().map_err(|_| RecordError::Pid { value: p.to_string() })?),
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
        action: Action::from_ret_value(code),
    })
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
        assert_eq!(p.unreadable, vec![(1, RecordError::NoField { field: "code" })]);
        assert_eq!(p.unreadable[0].1.to_string(), "no `code=` field");
        assert_eq!(p.other_lines, 1);
    }
}
