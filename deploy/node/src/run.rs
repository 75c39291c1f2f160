//! Running a command under a filter (`scpc-node run`, `scpc exec`): the filter file is read
//! and refused unless the kernel would take it ([`crate::bpf::check`]), it has code for this
//! machine's architecture ([`crate::bpf::compares_arch`]) and, when a digest is given, its
//! bytes have that sha256; then no_new_privs is set, the filter installed, and the command
//! exec'd in this same process ([`exec`]).

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bpf::{self, FilterError, Insn};
use crate::loader::{self, Flags};
use crate::sha256::Sha256;

/// This machine's architecture as seccomp sees its native calls.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HostArch {
    /// scpc's name for it (`x86_64`, `aarch64`, `arm`, `i386`, `riscv64`).
    pub name: &'static str,
    /// `AUDIT_ARCH_*` (linux/audit.h), `seccomp_data.arch` of its native calls.
    pub audit_arch: u32,
}

/// `AUDIT_ARCH_*` of an architecture by scpc's name for it.
pub fn audit_arch(name: &str) -> Option<u32> {
    Some(match name {
        "x86_64" => 0xc000_003e,
        "i386" => 0x4000_0003,
        "aarch64" => 0xc000_00b7,
        "arm" => 0x4000_0028,
        "riscv64" => 0xc000_00f3,
        _ => return None,
    })
}

/// The architecture this program was built for, if seccomp filters built by scpc can serve it.
pub fn host_arch() -> Option<HostArch> {
    let name = match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "x86" => "i386",
        "aarch64" => "aarch64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        _ => return None,
    };
    Some(HostArch { name, audit_arch: audit_arch(name)? })
}

/// A filter file the kernel would take, with code for this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    insns: Vec<Insn>,
    sha256: Sha256,
}

impl Filter {
    /// The instructions.
    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    /// The sha256 of the file.
    pub fn sha256(&self) -> Sha256 {
        self.sha256
    }
}

/// Why a command was not run under a filter.
#[derive(Debug)]
pub enum RunError {
    /// The filter file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The kernel would refuse it.
    Filter {
        /// The file.
        path: PathBuf,
        /// Why.
        error: FilterError,
    },
    /// Its bytes are not the ones expected.
    Digest {
        /// The file.
        path: PathBuf,
        /// The digest asked for.
        expected: Sha256,
        /// The file's.
        found: Sha256,
    },
    /// This machine's architecture is not one scpc builds for.
    UnknownHost {
        /// `std::env::consts::ARCH`.
        machine: &'static str,
    },
    /// The filter has no code for this machine's architecture.
    OtherArch {
        /// The file.
        path: PathBuf,
        /// This machine's.
        arch: &'static str,
    },
    /// The build manifest cannot be read or is not one.
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// Why.
        error: String,
    },
    /// The manifest does not list the filter file.
    NotListed {
        /// The filter.
        path: PathBuf,
        /// The manifest.
        manifest: PathBuf,
    },
    /// The file given as the filter is a policy source (`.scp` text), not a built filter.
    Source {
        /// The file.
        path: PathBuf,
    },
    /// The command is not found (exit status 127, as `env` and `timeout` say it).
    NotFound {
        /// The program.
        program: OsString,
    },
    /// The command is found but cannot be run: not executable, a directory (exit status
    /// 126).
    NotRunnable {
        /// The program.
        program: OsString,
        /// Why.
        reason: &'static str,
    },
    /// The command could not be run (or the kernel refused the filter as it was installed).
    Exec {
        /// The program.
        program: OsString,
        /// Why.
        error: io::Error,
    },
}

impl RunError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::Read { .. } => "scpc::node::run::read",
            RunError::Filter { .. } => "scpc::node::run::filter",
            RunError::Digest { .. } => "scpc::node::run::digest",
            RunError::UnknownHost { .. } => "scpc::node::run::unknown_host",
            RunError::OtherArch { .. } => "scpc::node::run::other_arch",
            RunError::Manifest { .. } => "scpc::node::run::manifest",
            RunError::NotListed { .. } => "scpc::node::run::not_listed",
            RunError::Exec { .. } => "scpc::node::run::exec",
            RunError::Source { .. } => "scpc::node::run::source",
            RunError::NotFound { .. } => "scpc::node::run::not_found",
            RunError::NotRunnable { .. } => "scpc::node::run::not_runnable",
        }
    }

    /// The exit status of a command-line tool that gives up with this error: 1 when the
    /// input is wrong (a damaged filter, one of another architecture), 2 when the job could
    /// not be done, and as `env` says it, 127 when the command is not found and 126 when it
    /// cannot be run.
    pub fn exit_status(&self) -> u8 {
        match self {
            RunError::NotFound { .. } => 127,
            RunError::NotRunnable { .. } => 126,
            RunError::Exec { error, .. } => match error.raw_os_error() {
                Some(libc::ENOENT) => 127,
                Some(libc::ENOEXEC | libc::ETXTBSY | libc::EISDIR | libc::ELOOP | libc::ENOTDIR) => 126,
                _ => 2,
            },
            RunError::Source { .. } => 1,
            RunError::Filter { .. }
            | RunError::Digest { .. }
            | RunError::OtherArch { .. }
            | RunError::Manifest { .. }
            | RunError::NotListed { .. } => 1,
            RunError::Read { .. } | RunError::UnknownHost { .. } => 2,
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Read { path, error } => write!(f, "cannot read `{}`: {error}", path.display()),
            RunError::Filter { path, error } => write!(f, "{}: {error}\n  help: {}", path.display(), error.help()),
            RunError::Digest { path, expected, found } => {
                write!(
                    f,
                    "`{}` has sha256 {found}, not {expected}: the file is damaged or not the one built; refusing to load it\n  help: rebuild it with `scpc build`, or name the right manifest with --manifest",
                    path.display()
                )
            }
            RunError::UnknownHost { machine } => write!(f, "scpc does not know this machine's architecture ({machine})"),
            RunError::OtherArch { path, arch } => {
                write!(f, "`{}` has no code for {arch}, the architecture of this machine: build it with `--target {arch}`", path.display())
            }
            RunError::Manifest { path, error } => write!(f, "{}: not a build manifest: {error}", path.display()),
            RunError::NotListed { path, manifest } => write!(
                f,
                "{} does not list `{}`: refusing to load a filter its build did not write\n  help: name the right manifest with --manifest",
                manifest.display(),
                path.display()
            ),
            RunError::Source { path } => write!(
                f,
                "`{}` is a policy source, not a filter: build it first\n  help: `scpc build {} --policy NAME -o DIR` writes DIR/NAME.ARCH.bpf; run that",
                path.display(),
                path.display()
            ),
            RunError::NotFound { program } => write!(f, "`{}`: command not found", program.to_string_lossy()),
            RunError::NotRunnable { program, reason } => write!(f, "`{}` cannot be run: {reason}", program.to_string_lossy()),
            RunError::Exec { program, error } => match error.raw_os_error() {
                Some(libc::EINVAL) => f.write_str(
                    "the kernel refused the filter or a flag (EINVAL): check that this kernel supports the actions and flags used",
                ),
                Some(libc::EFAULT) => f.write_str("the kernel could not read the filter (EFAULT)"),
                Some(libc::EACCES) => f.write_str("not allowed to install a filter (EACCES): no_new_privs could not be set"),
                _ => write!(f, "cannot run `{}`: {error}", program.to_string_lossy()),
            },
        }
    }
}

impl std::error::Error for RunError {}

/// The sha256 the build manifest gives the filter at `filter`: from `manifest` when given,
/// else from `NAME.manifest.json` beside `NAME.ARCH.bpf` when there is one (`None` when there
/// is none: a filter may be used without its build).
pub fn manifest_digest(filter: &Path, manifest: Option<&Path>) -> Result<Option<Sha256>, RunError> {
    let file = filter.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let path = match manifest {
        Some(m) => m.to_path_buf(),
        None => {
            let policy = file.strip_suffix(".bpf").and_then(|s| s.rsplit_once('.')).map(|(name, _arch)| name);
            match policy.map(|name| filter.with_file_name(crate::manifest::manifest_file(name))) {
                Some(beside) if beside.exists() => beside,
                _ => return Ok(None),
            }
        }
    };
    let bytes = std::fs::read(&path).map_err(|error| RunError::Manifest { path: path.clone(), error: error.to_string() })?;
    let parsed =
        crate::manifest::Manifest::from_json(&bytes).map_err(|e| RunError::Manifest { path: path.clone(), error: e.to_string() })?;
    match parsed.targets.iter().find(|t| t.file == file) {
        Some(t) => Ok(Some(t.sha256)),
        None => Err(RunError::NotListed { path: filter.into(), manifest: path }),
    }
}

/// Reads a filter file and checks it: the kernel would take it, it has code for this
/// machine's architecture, and (when `expected` is given) its sha256 is that.
pub fn read_filter(path: &Path, expected: Option<Sha256>) -> Result<Filter, RunError> {
    let bytes = std::fs::read(path).map_err(|error| RunError::Read { path: path.into(), error })?;
    if is_policy_source(path, &bytes) {
        return Err(RunError::Source { path: path.into() });
    }
    let sha256 = Sha256::of(&bytes);
    if let Some(expected) = expected.filter(|e| *e != sha256) {
        return Err(RunError::Digest { path: path.into(), expected, found: sha256 });
    }
    let filter_error = |error| RunError::Filter { path: path.into(), error };
    let insns = bpf::decode(&bytes).ok_or(filter_error(FilterError::Size { bytes: bytes.len() }))?;
    bpf::check(&insns).map_err(filter_error)?;
    let host = host_arch().ok_or(RunError::UnknownHost { machine: std::env::consts::ARCH })?;
    if !bpf::compares_arch(&insns, host.audit_arch) {
        return Err(RunError::OtherArch { path: path.into(), arch: host.name });
    }
    Ok(Filter { insns, sha256 })
}

/// Whether a file given as a filter is a policy source: named `.scp`, or text that holds a
/// `policy` (a built filter is binary: its first record's jump offsets and high bytes are
/// not printable text).
pub fn is_policy_source(path: &Path, bytes: &[u8]) -> bool {
    let text = std::str::from_utf8(bytes).ok().filter(|t| t.chars().all(|c| !c.is_control() || c.is_ascii_whitespace()));
    path.extension().is_some_and(|e| e == "scp") || text.is_some_and(|t| t.contains("policy ") || t.contains("include "))
}

/// The file `program` names: itself when it holds a `/`, else the first executable file of
/// that name in `PATH`.
fn resolve(program: &OsString) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.as_encoded_bytes().contains(&b'/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| runnable(p))
}

/// Sets no_new_privs, installs `filter` and becomes `command` (a program and its arguments,
/// looked up in `PATH` before the filter is installed, so that a missing program is reported
/// while reporting still works). Returns only when that failed.
pub fn exec(filter: &Filter, flags: Flags, command: &[OsString]) -> RunError {
    let Some((program, args)) = command.split_first() else {
        return RunError::Exec { program: OsString::new(), error: io::Error::from(io::ErrorKind::InvalidInput) };
    };
    let Some(path) = resolve(program) else {
        return RunError::NotFound { program: program.clone() };
    };
    match path.metadata() {
        Err(_) => return RunError::NotFound { program: program.clone() },
        Ok(m) if m.is_dir() => return RunError::NotRunnable { program: program.clone(), reason: "it is a directory" },
        Ok(m) if !m.is_file() => return RunError::NotRunnable { program: program.clone(), reason: "it is not a regular file" },
        Ok(m)
            if {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o111 == 0
            } =>
        {
            return RunError::NotRunnable { program: program.clone(), reason: "it is not executable (no x permission)" }
        }
        Ok(_) => {}
    }
    let mut cmd = Command::new(path);
    cmd.arg0(program).args(args);
    loader::with_filter(&mut cmd, filter.insns.clone(), flags);
    RunError::Exec { program: program.clone(), error: cmd.exec() }
}
