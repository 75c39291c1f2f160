//! Reading the seccomp filters a running process is under (`scpc dump --pid`, and what
//! `scpc status` asks a host): the process is stopped with ptrace for the time it takes to
//! copy its filters out with PTRACE_SECCOMP_GET_FILTER, as `seccomp-tools dump` does, then
//! let go. The caller needs CAP_SYS_ADMIN and must not itself run under a filter (the
//! kernel's conditions for the request).
//!
//! A process may have several filters: each installation adds one, and the kernel runs them
//! all and takes the decision of highest precedence. [`read_filters`] returns them as the
//! kernel numbers them: index 0 is the one installed last.

use std::fmt;
use std::io;

use crate::bpf::Insn;
use crate::loader;

/// Why a process's filters could not be read.
#[derive(Debug)]
pub enum DumpError {
    /// No such process.
    NoProcess {
        /// The process.
        pid: i32,
    },
    /// The kernel refused: not allowed to trace it, or no CAP_SYS_ADMIN, or the caller is
    /// itself under a filter.
    NotPermitted {
        /// The process.
        pid: i32,
        /// The kernel's errno.
        error: io::Error,
    },
    /// The process runs under no filter.
    NoFilter {
        /// The process.
        pid: i32,
    },
    /// Any other failure.
    Other {
        /// The process.
        pid: i32,
        /// What failed.
        error: io::Error,
    },
}

impl DumpError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            DumpError::NoProcess { .. } => "scpc::node::dump::no_process",
            DumpError::NotPermitted { .. } => "scpc::node::dump::not_permitted",
            DumpError::NoFilter { .. } => "scpc::node::dump::no_filter",
            DumpError::Other { .. } => "scpc::node::dump::other",
        }
    }

    /// 1 when the process has no filter (the question has an answer: none), 2 when the
    /// filters could not be read.
    pub fn exit_status(&self) -> u8 {
        match self {
            DumpError::NoFilter { .. } => 1,
            _ => 2,
        }
    }

    fn from_errno(pid: i32, error: io::Error) -> DumpError {
        match error.raw_os_error() {
            Some(libc::ESRCH) => DumpError::NoProcess { pid },
            Some(libc::EPERM | libc::EACCES) => DumpError::NotPermitted { pid, error },
            _ => DumpError::Other { pid, error },
        }
    }
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::NoProcess { pid } => write!(f, "no process {pid}"),
            DumpError::NotPermitted { pid, error } => write!(
                f,
                "cannot read the filters of process {pid}: {error}\n  help: reading a process's filters needs CAP_SYS_ADMIN (run as root), permission to ptrace it, and no seccomp filter on scpc itself"
            ),
            DumpError::NoFilter { pid } => write!(f, "process {pid} runs under no seccomp filter"),
            DumpError::Other { pid, error } => write!(f, "cannot read the filters of process {pid}: {error}"),
        }
    }
}

impl std::error::Error for DumpError {}

/// The filters process `pid` runs under, index 0 the one installed last
/// ([`loader::loaded_filters`]). The process is stopped while they are read and runs on
/// afterwards, whatever happens.
pub fn read_filters(pid: i32) -> Result<Vec<Vec<Insn>>, DumpError> {
    match loader::loaded_filters(pid) {
        Ok(filters) if filters.is_empty() => Err(DumpError::NoFilter { pid }),
        Ok(filters) => Ok(filters),
        // not in filter mode
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(DumpError::NoFilter { pid }),
        Err(e) => Err(DumpError::from_errno(pid, e)),
    }
}
