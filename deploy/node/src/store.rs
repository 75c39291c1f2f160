//! The file operations of the node program, each relative to a directory descriptor and none
//! following a symbolic link: a directory walked component by component (`openat` with
//! `O_NOFOLLOW | O_DIRECTORY`), files opened with `O_NOFOLLOW | O_NONBLOCK` and checked to be
//! regular before they are read, new files created with `O_EXCL` under a fresh name, written,
//! `fsync`ed and renamed into place, then the directory `fsync`ed. A lock is `flock` on a
//! directory descriptor; free space is asked of the file system (`fstatvfs`) before anything
//! is written.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};

/// Why a file operation was refused or failed.
#[derive(Debug)]
pub enum StoreError {
    /// A path that is not absolute, names no file, or holds `.`, `..`, empty or odd components.
    BadPath {
        /// The path.
        path: String,
    },
    /// A component of a directory path is a symbolic link or not a directory.
    NotADirectory {
        /// The component's path.
        path: String,
    },
    /// A file the node reads or replaces is a symbolic link.
    Symlink {
        /// The file.
        path: String,
    },
    /// A file the node reads or replaces is a directory, a device, a FIFO or a socket.
    NotRegular {
        /// The file.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A directory of the node's own that another user owns or may write to.
    ForeignOwner {
        /// The directory.
        path: String,
        /// Its owner.
        uid: u32,
        /// Its mode.
        mode: u32,
    },
    /// A file larger than the node takes.
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// Not enough free space for what is about to be written.
    NoSpace {
        /// The directory.
        path: String,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        free: u64,
    },
    /// The lock stayed held by another run for the whole wait.
    LockTimeout {
        /// The locked directory.
        path: String,
        /// How long it waited.
        seconds: u64,
    },
    /// A system call failed.
    Io {
        /// What was being done.
        what: String,
        /// Why.
        error: io::Error,
    },
}

impl StoreError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::BadPath { .. } => "scpc::node::store::bad_path",
            StoreError::NotADirectory { .. } => "scpc::node::store::not_a_directory",
            StoreError::Symlink { .. } => "scpc::node::store::symlink",
            StoreError::NotRegular { .. } => "scpc::node::store::not_regular",
            StoreError::ForeignOwner { .. } => "scpc::node::store::foreign_owner",
            StoreError::TooLarge { .. } => "scpc::node::store::too_large",
            StoreError::NoSpace { .. } => "scpc::node::store::no_space",
            StoreError::LockTimeout { .. } => "scpc::node::store::lock_timeout",
            StoreError::Io { .. } => "scpc::node::store::io",
        }
    }

    /// Whether the error says the disk is full (ENOSPC, EDQUOT or the free-space check).
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } => true,
            StoreError::Io { error, .. } => matches!(error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)),
            _ => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::BadPath { path } => {
                write!(f, "`{path}` is not an absolute path to a file (no `.`, `..` or empty components, at most 1024 bytes)")
            }
            StoreError::NotADirectory { path } => {
                write!(f, "`{path}` is a symbolic link or not a directory: the node follows no link on the way to an install path")
            }
            StoreError::Symlink { path } => write!(f, "`{path}` is a symbolic link: refusing to follow it"),
            StoreError::NotRegular { path, kind } => write!(f, "`{path}` is a {kind}, not a regular file: refusing to touch it"),
            StoreError::ForeignOwner { path, uid, mode } => write!(
                f,
                "`{path}` belongs to uid {uid} (mode {mode:o}): the node keeps its files only in directories that it owns and that no one else may write; remove it to let the node make its own"
            ),
            StoreError::TooLarge { path, bytes, limit } => write!(f, "`{path}` holds {bytes} bytes, more than the {limit} the node reads"),
            StoreError::NoSpace { path, needed, free } => write!(
                f,
                "not enough free space in `{path}`: {needed} bytes needed, {free} free; nothing was changed"
            ),
            StoreError::LockTimeout { path, seconds } => {
                write!(f, "`{path}` stayed locked by another run for {seconds} s; nothing was changed")
            }
            StoreError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The result of a file operation.
pub type Result<T> = std::result::Result<T, StoreError>;

fn io_err(what: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> StoreError {
    let what = what.into();
    move |e| StoreError::Io { what, error: e.into() }
}

/// The longest install path the node takes.
pub const MAX_PATH: usize = 1024;

/// The components of an absolute path to a file: each a plain name (no `/`, NUL, `.` or
/// `..`); the last is the file.
pub fn components(path: &str) -> Result<Vec<&str>> {
    let bad = || StoreError::BadPath { path: path.to_string() };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    if path.len() > MAX_PATH || rest.is_empty() || path.ends_with('/') || path.contains('\0') {
        return Err(bad());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == ".." || p.len() > 255) {
        return Err(bad());
    }
    Ok(parts)
}

/// The kind of a file type, for messages.
fn kind_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "file of unknown type",
    }
}

/// An open directory and the path it was reached by.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: String,
}

/// What is at a name in a directory, not following a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Nothing.
    Missing,
    /// A regular file of this size.
    Regular(u64),
    /// Something else.
    Other(&'static str),
}

impl Dir {
    /// Opens the directory at the absolute path `components` names, one component at a time,
    /// never following a symbolic link; with `create`, missing components are made (mode
    /// 0755). `Ok(None)` when a component is missing and `create` is off.
    pub fn open(components: &[&str], create: bool) -> Result<Option<Dir>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let root = rustix::fs::open("/", flags, Mode::empty()).map_err(io_err("opening /"))?;
        let mut dir = Dir { fd: root, path: String::new() };
        for name in components {
            match dir.subdir(name, create, Mode::from_raw_mode(0o755))? {
                Some(d) => dir = d,
                None => return Ok(None),
            }
        }
        if dir.path.is_empty() {
            dir.path.push('/');
        }
        Ok(Some(dir))
    }

    /// The path it was reached by.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of `name` in it.
    pub fn join(&self, name: &str) -> String {
        format!("{}/{name}", self.path.trim_end_matches('/'))
    }

    /// Opens the subdirectory `name`, never following a link; with `create`, makes it with
    /// `mode` when it is missing. `Ok(None)` when it is missing and `create` is off.
    pub fn subdir(&self, name: &str, create: bool, mode: Mode) -> Result<Option<Dir>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let path = self.join(name);
        let open = |p: &str| rustix::fs::openat(&self.fd, name, flags, Mode::empty()).map_err(|e| (e, p.to_string()));
        match open(&path) {
            Ok(fd) => Ok(Some(Dir { fd, path })),
            Err((rustix::io::Errno::NOENT, _)) if create => {
                match rustix::fs::mkdirat(&self.fd, name, mode) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(io_err(format!("making `{path}`"))(e)),
                }
                let fd = open(&path).map_err(|(e, p)| self.dir_error(e, p))?;
                // the new directory's entry is durable once its parent is
                self.sync()?;
                Ok(Some(Dir { fd, path }))
            }
            Err((rustix::io::Errno::NOENT, _)) => Ok(None),
            Err((e, p)) => Err(self.dir_error(e, p)),
        }
    }

    fn dir_error(&self, e: rustix::io::Errno, path: String) -> StoreError {
        match e {
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => StoreError::NotADirectory { path },
            e => StoreError::Io { what: format!("opening `{path}`"), error: e.into() },
        }
    }

    /// Refuses the directory unless this process's user owns it and no one else may write
    /// to it: the node's own directories (kept copies, state) must be its alone.
    pub fn check_own(&self) -> Result<()> {
        let st = rustix::fs::fstat(&self.fd).map_err(io_err(format!("reading `{}`", self.path)))?;
        let me = rustix::process::geteuid().as_raw();
        let mode = st.st_mode & 0o7777;
        if st.st_uid != me || mode & 0o022 != 0 {
            return Err(StoreError::ForeignOwner { path: self.path.clone(), uid: st.st_uid, mode });
        }
        Ok(())
    }

    /// What is at `name`, not following a link.
    pub fn entry(&self, name: &str) -> Result<Entry> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let t = FileType::from_raw_mode(st.st_mode);
                Ok(if t == FileType::RegularFile { Entry::Regular(st.st_size as u64) } else { Entry::Other(kind_name(t)) })
            }
            Err(rustix::io::Errno::NOENT) => Ok(Entry::Missing),
            Err(e) => Err(io_err(format!("reading `{}`", self.join(name)))(e)),
        }
    }

    /// Reads the regular file `name` whole (at most `limit` bytes); `Ok(None)` when it does
    /// not exist. A symbolic link, a directory, a FIFO... is refused, never followed or
    /// waited on.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let path = self.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => return Err(StoreError::Symlink { path }),
            Err(e) => return Err(io_err(format!("opening `{path}`"))(e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(io_err(format!("reading `{path}`")))?;
        let t = FileType::from_raw_mode(st.st_mode);
        if t != FileType::RegularFile {
            return Err(StoreError::NotRegular { path, kind: kind_name(t) });
        }
        if st.st_size as u64 > limit {
            return Err(StoreError::TooLarge { path, bytes: st.st_size as u64, limit });
        }
        let mut bytes = Vec::with_capacity(st.st_size as usize);
        std::fs::File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| StoreError::Io { what: format!("reading `{path}`"), error })?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::TooLarge { path, bytes: bytes.len() as u64, limit });
        }
        Ok(Some(bytes))
    }

    /// Writes `bytes` to a new file `temp` (created exclusively: an existing file or link of
    /// that name is an error, never followed), with `mode`, and `fsync`s it. The caller
    /// renames it into place ([`Dir::rename`]) or removes it.
    pub fn write_new(&self, temp: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let path = self.join(temp);
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, temp, flags, Mode::from_raw_mode(mode)).map_err(io_err(format!("creating `{path}`")))?;
        let written = (|| -> io::Result<()> {
            // the mode is not left to the umask
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
            let mut file = std::fs::File::from(fd);
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(error) = written {
            let _ = rustix::fs::unlinkat(&self.fd, temp, AtFlags::empty());
            return Err(StoreError::Io { what: format!("writing `{path}`"), error });
        }
        Ok(())
    }

    /// Renames `from` to `to` in this directory (replacing what is at `to`: a rename never
    /// follows a link) and `fsync`s the directory, so the rename survives a crash.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.rename_unflushed(from, to)?;
        self.sync()
    }

    /// Renames `from` to `to` in this directory without flushing it: an error means nothing
    /// was renamed (the caller flushes the directory with [`Dir::sync`]).
    pub fn rename_unflushed(&self, from: &str, to: &str) -> Result<()> {
        rustix::fs::renameat(&self.fd, from, &self.fd, to).map_err(io_err(format!("renaming `{}` to `{}`", self.join(from), self.join(to))))
    }

    /// Writes `bytes` to `name` atomically: a temporary file beside it, `fsync`, rename,
    /// `fsync` of the directory. Whatever happens, `name` holds its old bytes or the new ones.
    pub fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        let temp = temp_name(name);
        self.write_new(&temp, bytes, mode)?;
        if let Err(e) = self.rename(&temp, name) {
            let _ = self.remove(&temp);
            return Err(e);
        }
        Ok(())
    }

    /// Removes the file (or link: never followed) `name`; a missing one is no error.
    pub fn remove(&self, name: &str) -> Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(io_err(format!("removing `{}`", self.join(name)))(e)),
        }
    }

    /// Removes the empty subdirectory `name`; a missing or non-empty one is left.
    pub fn remove_dir(&self, name: &str) {
        let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR);
    }

    /// `fsync` of the directory: the renames and removals in it are durable.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(io_err(format!("flushing `{}`", self.path)))
    }

    /// The names in the directory (not `.` and `..`).
    pub fn names(&self) -> Result<Vec<String>> {
        let fd = rustix::fs::openat(&self.fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(io_err(format!("listing `{}`", self.path)))?;
        let mut dir = rustix::fs::Dir::read_from(&fd).map_err(io_err(format!("listing `{}`", self.path)))?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(io_err(format!("listing `{}`", self.path)))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Bytes free to an unprivileged writer in this directory's file system.
    pub fn free_bytes(&self) -> Result<u64> {
        let st = rustix::fs::fstatvfs(&self.fd).map_err(io_err(format!("asking `{}` for its free space", self.path)))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// The file system's block size (what a small file costs at least).
    pub fn block_size(&self) -> u64 {
        rustix::fs::fstatvfs(&self.fd).map(|s| s.f_frsize.max(512)).unwrap_or(4096)
    }

    /// Refuses unless `needed` bytes (each file rounded up to whole blocks by the caller)
    /// are free.
    pub fn ensure_space(&self, needed: u64) -> Result<()> {
        let free = self.free_bytes()?;
        if free < needed {
            return Err(StoreError::NoSpace { path: self.path.clone(), needed, free });
        }
        Ok(())
    }

    /// Takes the directory's lock (`flock`, exclusive or shared), waiting at most `wait`;
    /// `beat` is called while waiting. The lock holds until the returned guard is dropped.
    pub fn lock(&self, exclusive: bool, wait: Duration, beat: &dyn Fn()) -> Result<Lock> {
        let fd =
            self.fd.as_fd().try_clone_to_owned().map_err(|error| StoreError::Io { what: format!("locking `{}`", self.path), error })?;
        let op = if exclusive { FlockOperation::NonBlockingLockExclusive } else { FlockOperation::NonBlockingLockShared };
        let started = Instant::now();
        loop {
            match rustix::fs::flock(&fd, op) {
                Ok(()) => return Ok(Lock { _fd: fd }),
                Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                    if started.elapsed() >= wait {
                        return Err(StoreError::LockTimeout { path: self.path.clone(), seconds: wait.as_secs() });
                    }
                    beat();
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(io_err(format!("locking `{}`", self.path))(e)),
            }
        }
    }
}

/// A held `flock`; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct Lock {
    _fd: OwnedFd,
}

/// A fresh temporary name for `name`: `.NAME.scpc-tmp.PID.NANOS` (hidden, unique to this
/// process and moment, recognisable as a leftover by [`is_temp_of`]).
pub fn temp_name(name: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".{name}.scpc-tmp.{}.{nanos}.{n}", std::process::id())
}

/// Whether `candidate` is a temporary name [`temp_name`] made for `name`.
pub fn is_temp_of(candidate: &str, name: &str) -> bool {
    candidate.strip_prefix('.').and_then(|c| c.strip_prefix(name)).is_some_and(|rest| rest.starts_with(".scpc-tmp."))
}

/// `bytes` rounded up to whole blocks of `block`, plus one block (the directory entry may
/// need one).
pub fn blocks(bytes: u64, block: u64) -> u64 {
    bytes.div_ceil(block) * block + block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_paths_are_plain_absolute_file_paths() {
        assert_eq!(components("/etc/scpc/web.bpf").expect("plain"), ["etc", "scpc", "web.bpf"]);
        for bad in ["etc/x", "/", "/etc/", "/etc/../x", "/etc/./x", "//x", "/a//b", "/a\0b"] {
            assert_eq!(components(bad).expect_err(bad).code(), "scpc::node::store::bad_path", "{bad:?}");
        }
        assert!(components(&format!("/{}", "a".repeat(1100))).is_err());
    }

    #[test]
    fn temporary_names_are_recognised() {
        let t = temp_name("web.bpf");
        assert!(is_temp_of(&t, "web.bpf"), "{t}");
        assert!(!is_temp_of(&t, "web"), "{t}");
        assert!(!is_temp_of("web.bpf", "web.bpf"));
        assert_ne!(temp_name("a"), temp_name("a"));
        assert_eq!(blocks(3000, 4096), 8192);
        assert_eq!(blocks(0, 4096), 4096);
    }
}
