//! Loading a filter into the kernel, and reading back the filters a process runs under: the
//! only `unsafe` code of the workspace (besides tests). Sets no_new_privs, then installs the
//! filter with seccomp(SECCOMP_SET_MODE_FILTER), falling back to prctl(PR_SET_SECCOMP) where
//! seccomp(2) is missing (kernels before 3.17). [`loaded_filters`] asks the kernel for the
//! programs another process runs under (PTRACE_SECCOMP_GET_FILTER).
//!
//! With SECCOMP_FILTER_FLAG_TSYNC the kernel puts the filter on every thread of the process,
//! or on none: when a thread cannot take it (it has a filter of its own that is not an
//! ancestor of the caller's, or it is in seccomp strict mode), seccomp(2) returns that
//! thread's id, a positive number, and installs nothing. That is an error here
//! ([`LoadError::ThreadNotSynchronized`]), never a success.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::bpf::Insn;

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const Insn,
}

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_ulong = 4;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 8;
/// `SECCOMP_MODE_FILTER` for prctl(PR_SET_SECCOMP).
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;

/// Flags of seccomp(SECCOMP_SET_MODE_FILTER).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// SECCOMP_FILTER_FLAG_TSYNC: every thread of the process, or none.
    pub tsync: bool,
    /// SECCOMP_FILTER_FLAG_LOG: log every action but allow.
    pub log: bool,
    /// SECCOMP_FILTER_FLAG_SPEC_ALLOW: keep speculative store bypass mitigation off.
    pub spec_allow: bool,
}

impl Flags {
    fn bits(self) -> libc::c_ulong {
        let mut bits = 0;
        if self.tsync {
            bits |= SECCOMP_FILTER_FLAG_TSYNC;
        }
        if self.log {
            bits |= SECCOMP_FILTER_FLAG_LOG;
        }
        if self.spec_allow {
            bits |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
        }
        bits
    }
}

/// Why a filter was not installed. Holds no allocation, so it can be made between fork and
/// exec.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// More instructions than `struct sock_fprog` can count.
    TooLong {
        /// How many.
        count: usize,
    },
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    NoNewPrivs {
        /// Its errno.
        errno: i32,
    },
    /// The kernel refused the filter or a flag.
    Refused {
        /// seccomp(2)'s errno.
        errno: i32,
    },
    /// TSYNC: this thread could not take the filter, so no thread got it.
    ThreadNotSynchronized {
        /// The thread's id.
        tid: i64,
    },
}

impl LoadError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            LoadError::TooLong { .. } => "scpc::node::load::too_long",
            LoadError::NoNewPrivs { .. } => "scpc::node::load::no_new_privs",
            LoadError::Refused { .. } => "scpc::node::load::refused",
            LoadError::ThreadNotSynchronized { .. } => "scpc::node::load::thread_not_synchronized",
        }
    }

    /// The errno that stands for it (ESRCH for a thread that could not be synchronized, as
    /// with SECCOMP_FILTER_FLAG_TSYNC_ESRCH).
    pub fn raw_os_error(&self) -> i32 {
        match self {
            LoadError::TooLong { .. } => libc::EINVAL,
            LoadError::NoNewPrivs { errno } | LoadError::Refused { errno } => *errno,
            LoadError::ThreadNotSynchronized { .. } => libc::ESRCH,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::TooLong { count } => write!(f, "{count} instructions do not fit a struct sock_fprog"),
            LoadError::NoNewPrivs { errno } => write!(f, "cannot set no_new_privs: {}", io::Error::from_raw_os_error(*errno)),
            LoadError::Refused { errno } => write!(f, "the kernel refused the filter: {}", io::Error::from_raw_os_error(*errno)),
            LoadError::ThreadNotSynchronized { tid } => write!(
                f,
                "thread {tid} cannot take the filter (it has a filter of its own that is not an ancestor of this one), so no thread got it"
            ),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<LoadError> for io::Error {
    fn from(e: LoadError) -> io::Error {
        io::Error::from_raw_os_error(e.raw_os_error())
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL)
}

/// no_new_privs, then seccomp(SECCOMP_SET_MODE_FILTER, bits): what the call returned (0, or
/// a listener descriptor).
fn load(insns: &[Insn], bits: libc::c_ulong) -> Result<libc::c_long, LoadError> {
    let len = u16::try_from(insns.len()).map_err(|_| LoadError::TooLong { count: insns.len() })?;
    let prog = SockFprog { len, filter: insns.as_ptr() };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(LoadError::NoNewPrivs { errno: errno() });
    }
    // SAFETY: `prog` points at `len` valid `sock_filter` records (Insn is #[repr(C)] with the
    // kernel's layout) that outlive the call; the kernel copies them.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, SECCOMP_SET_MODE_FILTER, bits, &prog as *const SockFprog) };
    if rc > 0 && bits & SECCOMP_FILTER_FLAG_TSYNC != 0 && bits & SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        // the id of a thread that could not be synchronized: nothing was installed
        // c_long is 32 bits wide on 32-bit targets
        #[allow(clippy::useless_conversion)]
        return Err(LoadError::ThreadNotSynchronized { tid: i64::from(rc) });
    }
    if rc >= 0 {
        return Ok(rc);
    }
    let err = errno();
    if err == libc::ENOSYS && bits == 0 {
        // SAFETY: as above, through the older prctl interface.
        if unsafe { libc::prctl(libc::PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog as *const SockFprog, 0, 0) } == 0 {
            return Ok(0);
        }
        return Err(LoadError::Refused { errno: errno() });
    }
    Err(LoadError::Refused { errno: err })
}

/// Installs `insns` on the calling thread (with `tsync`, on every thread of the process or
/// on none). Async-signal-safe and allocation-free: fit for `pre_exec`.
pub fn install(insns: &[Insn], flags: Flags) -> Result<(), LoadError> {
    load(insns, flags.bits()).map(drop)
}

/// Installs `insns` with SECCOMP_FILTER_FLAG_NEW_LISTENER and returns the listener: calls
/// the filter answers with `notify` wait until a supervisor reads them from it ([`receive`])
/// and answers ([`respond`]). The supervisor must not itself make a notified call. (With
/// `tsync` the kernel wants SECCOMP_FILTER_FLAG_TSYNC_ESRCH too and refuses the pair.)
pub fn install_with_listener(insns: &[Insn], flags: Flags) -> Result<OwnedFd, LoadError> {
    let fd = load(insns, flags.bits() | SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    let fd = i32::try_from(fd).map_err(|_| LoadError::Refused { errno: libc::EBADF })?;
    // SAFETY: the kernel just returned this new descriptor to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct seccomp_notif` of `<linux/seccomp.h>`.
#[repr(C)]
#[derive(Default)]
struct RawNotif {
    id: u64,
    pid: u32,
    flags: u32,
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
struct RawResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;

/// A call handed to the supervisor by a `notify` decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    /// The kernel's cookie for the answer.
    pub id: u64,
    /// The calling thread (in the supervisor's pid namespace).
    pub pid: u32,
    /// `seccomp_data.nr`.
    pub nr: u32,
    /// `seccomp_data.arch`.
    pub arch: u32,
    /// `seccomp_data.args`.
    pub args: [u64; 6],
}

/// Waits for the next notified call on `listener` (SECCOMP_IOCTL_NOTIF_RECV).
pub fn receive(listener: &impl std::os::fd::AsRawFd) -> io::Result<Notification> {
    let mut n = RawNotif::default();
    // SAFETY: the ioctl writes one `struct seccomp_notif` (80 bytes, zeroed as the kernel
    // requires) into `n`.
    if unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut n as *mut RawNotif) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Notification { id: n.id, pid: n.pid, nr: n.nr as u32, arch: n.arch, args: n.args })
}

/// Answers a notified call: it returns `val`, or fails with `error` when that is not 0
/// (SECCOMP_IOCTL_NOTIF_SEND).
pub fn respond(listener: &impl std::os::fd::AsRawFd, id: u64, val: i64, error: i32) -> io::Result<()> {
    let mut r = RawResp { id, val, error: -error.abs(), flags: 0 };
    // SAFETY: the ioctl reads one `struct seccomp_notif_resp` (24 bytes) from `r`.
    if unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &mut r as *mut RawResp) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `cmd` install `insns` in the child between fork and exec (or, with
/// [`CommandExt::exec`], in this process just before it becomes the command).
pub fn with_filter(cmd: &mut Command, insns: Vec<Insn>, flags: Flags) -> &mut Command {
    // SAFETY: the closure only calls prctl and seccomp, which are async-signal-safe, and
    // allocates nothing (a LoadError converts to an io::Error by its errno).
    unsafe { cmd.pre_exec(move || install(&insns, flags).map_err(io::Error::from)) }
}

/// Forks a child that installs `insns`, makes each raw call `(nr, args)` and reports what
/// it returned: the errno of a failed call, or 0. For testing filters on the real kernel:
/// the calls must be harmless if the filter lets them through.
pub fn probe(insns: &[Insn], calls: &[(u32, [u64; 6])]) -> io::Result<Vec<i32>> {
    use std::io::Read;

    let mut fds = [0i32; 2];
    // SAFETY: pipe fills a two-int buffer.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the two descriptors were just created and are owned by nobody else.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child only calls async-signal-safe functions (prctl, seccomp, raw
    // syscalls, write, _exit) on memory that was allocated before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = match install(insns, Flags::default()) {
            Ok(()) => {
                for (nr, a) in calls {
                    // SAFETY: a raw syscall; the caller vouches the calls are harmless.
                    let rc = unsafe { libc::syscall(*nr as libc::c_long, a[0], a[1], a[2], a[3], a[4], a[5]) };
                    // SAFETY: reading the thread's errno location.
                    let e: i32 = if rc == -1 { unsafe { *libc::__errno_location() } } else { 0 };
                    // SAFETY: writing 4 bytes from a live buffer to our pipe.
                    unsafe { libc::write(std::os::fd::AsRawFd::as_raw_fd(&write_end), e.to_le_bytes().as_ptr().cast(), 4) };
                }
                0
            }
            Err(_) => 3,
        };
        // SAFETY: ending the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    drop(write_end);
    let mut bytes = Vec::new();
    std::fs::File::from(read_end).read_to_end(&mut bytes)?;
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(io::Error::other(format!("the probe child ended with status {status:#x}")));
    }
    Ok(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

const PTRACE_SEIZE: libc::c_uint = 0x4206;
const PTRACE_INTERRUPT: libc::c_uint = 0x4207;
const PTRACE_DETACH: libc::c_uint = 17;
const PTRACE_EVENT_STOP: i32 = 128;

/// The type of ptrace's request in the C library's declaration.
#[cfg(target_env = "musl")]
type PtraceRequest = libc::c_int;
#[cfg(not(target_env = "musl"))]
type PtraceRequest = libc::c_uint;

/// `PTRACE_SECCOMP_GET_FILTER` (linux/ptrace.h).
const PTRACE_SECCOMP_GET_FILTER: PtraceRequest = 0x420c;

/// Most filters read from one process (the kernel's own limit on a process's filters is
/// their total size, MAX_INSNS_PER_PATH: 32768 instructions, so at least 8 per filter).
pub const MAX_FILTERS: usize = 32768 / 8;

/// The classic BPF programs of the seccomp filters process `pid` (its main thread) runs
/// under, as the kernel numbers them: index 0 is the one installed last. Each is exactly the
/// `struct sock_filter` array that was loaded. The one reader of PTRACE_SECCOMP_GET_FILTER,
/// for `scpc status` (through [`crate::enforce`]) and `scpc dump` (through [`crate::dump`]).
///
/// The process is stopped for a moment (PTRACE_SEIZE, PTRACE_INTERRUPT, waiting at most 2 s
/// for the stop) and let go again with any signal that arrived meanwhile, whatever happens.
/// Errors are the kernel's: EINVAL when the process runs under no filter; ESRCH when it is
/// gone; EACCES when the caller lacks CAP_SYS_ADMIN or runs under a filter itself;
/// EMEDIUMTYPE when the kernel kept no copy of the programs (CONFIG_CHECKPOINT_RESTORE off);
/// EPERM when ptrace rules (Yama, another tracer) forbid it; ETIMEDOUT when it did not stop.
pub fn loaded_filters(pid: i32) -> io::Result<Vec<Vec<Insn>>> {
    if pid <= 0 {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: ptrace with integer arguments; no memory is passed.
    if unsafe { libc::ptrace(PTRACE_SEIZE as _, pid, null, null) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        // SAFETY: as above.
        if unsafe { libc::ptrace(PTRACE_INTERRUPT as _, pid, null, null) } != 0 {
            return Err((io::Error::last_os_error(), 0));
        }
        let mut status = 0;
        let started = std::time::Instant::now();
        loop {
            // SAFETY: waitpid writes one int.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL | libc::WNOHANG) };
            if rc == pid {
                break;
            }
            if rc < 0 {
                return Err((io::Error::last_os_error(), 0));
            }
            if started.elapsed() > std::time::Duration::from_secs(2) {
                return Err((io::Error::from_raw_os_error(libc::ETIMEDOUT), 0));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if !libc::WIFSTOPPED(status) {
            return Err((io::Error::from_raw_os_error(libc::ESRCH), -1));
        }
        // a signal that stopped it instead of our interrupt goes back to it on detach
        let resend = if status >> 16 == PTRACE_EVENT_STOP { 0 } else { libc::WSTOPSIG(status) };
        let mut out = Vec::new();
        while out.len() < MAX_FILTERS {
            let index = out.len();
            // SAFETY: with a null buffer the kernel only returns the filter's length.
            let n = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER as _, pid, index as *mut libc::c_void, null) };
            if n < 0 {
                let e = io::Error::last_os_error();
                // past the last filter
                if e.raw_os_error() == Some(libc::ENOENT) {
                    break;
                }
                return Err((e, resend));
            }
            let mut insns = vec![Insn { code: 0, jt: 0, jf: 0, k: 0 }; n as usize];
            // SAFETY: the buffer holds `n` sock_filter records (Insn has the kernel's layout), as
            // many as the kernel said it would write for this index (a filter never changes
            // once installed).
            let m = unsafe {
                libc::ptrace(PTRACE_SECCOMP_GET_FILTER as _, pid, index as *mut libc::c_void, insns.as_mut_ptr().cast::<libc::c_void>())
            };
            if m != n {
                return Err((io::Error::last_os_error(), resend));
            }
            out.push(insns);
        }
        Ok((out, resend))
    })();
    let resend = match &result {
        Ok((_, s)) | Err((_, s)) => *s,
    };
    if resend >= 0 {
        // SAFETY: as above; the data argument is the signal to deliver.
        unsafe { libc::ptrace(PTRACE_DETACH as _, pid, null, resend as libc::c_long as *mut libc::c_void) };
    }
    result.map(|(f, _)| f).map_err(|(e, _)| e)
}

/// The calling thread's id (gettid).
pub fn thread_id() -> i64 {
    // SAFETY: gettid takes no arguments and cannot fail.
    // c_long is 32 bits wide on 32-bit targets
    #[allow(clippy::useless_conversion)]
    i64::from(unsafe { libc::syscall(libc::SYS_gettid) })
}

/// Restores the default SIGPIPE disposition (Rust ignores it), so that `scpc ... | head`
/// ends quietly like other command-line tools instead of failing to print.
pub fn default_sigpipe() {
    // SAFETY: setting a signal disposition to its default; no handler runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
