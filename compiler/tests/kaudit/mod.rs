//! The kernel's seccomp audit records (type 1326), read as they are made, for tests that must
//! see the record of *their own* call on a busy machine.
//!
//! The kernel log (`dmesg`) is the wrong place: without an audit daemon the kernel prints audit
//! records through a rate-limited printk (`kauditd_printk_skb: 11316 callbacks suppressed` when
//! another program floods seccomp kills), and the ring buffer wraps. The audit netlink socket's
//! read-only multicast group (`AUDIT_NLGRP_READLOG`, Linux 3.16+, needs CAP_AUDIT_READ) gets
//! every record before that rate limit, without taking the place of an audit daemon. A listener
//! is opened before the call, and a record is matched by the caller's pid and what it names
//! (syscall, action code), never by position.
#![allow(unsafe_code, dead_code)]

use std::time::{Duration, Instant};

const NETLINK_AUDIT: libc::c_int = 9;
const AUDIT_NLGRP_READLOG: u32 = 1;
const AUDIT_SECCOMP: u16 = 1326;

/// A subscription to the kernel's audit records.
pub struct Listener {
    fd: libc::c_int,
}

/// One seccomp record: its text (`audit(TIME:SERIAL): auid=... pid=... syscall=... code=...`).
#[derive(Clone, Debug)]
pub struct Record(pub String);

impl Record {
    /// The value of `key=` in the record.
    pub fn field(&self, key: &str) -> Option<&str> {
        let needle = format!(" {key}=");
        let start = self.0.find(&needle)? + needle.len();
        self.0[start..].split_whitespace().next()
    }

    /// The record as an auditd `audit.log` line (what `scpc explain` reads).
    pub fn audit_log_line(&self) -> String {
        format!("type=SECCOMP msg={}", self.0)
    }
}

impl Listener {
    /// Subscribes; fails naming what is missing (root's CAP_AUDIT_READ, a kernel with audit).
    pub fn open() -> Result<Listener, String> {
        // SAFETY: plain socket calls on a descriptor this function owns; `addr` is a zeroed
        // sockaddr_nl with the fields set that bind reads.
        unsafe {
            let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_AUDIT);
            if fd < 0 {
                return Err(format!("socket(NETLINK_AUDIT): {}", std::io::Error::last_os_error()));
            }
            let size: libc::c_int = 8 << 20;
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, (&size as *const libc::c_int).cast(), 4);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            addr.nl_groups = 1 << (AUDIT_NLGRP_READLOG - 1);
            let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
            if libc::bind(fd, (&addr as *const libc::sockaddr_nl).cast(), len) != 0 {
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(format!(
                    "cannot read the kernel's audit records (bind to NETLINK_AUDIT's read-log group: {err}); \
                     the test needs root (CAP_AUDIT_READ) and a kernel with CONFIG_AUDIT"
                ));
            }
            Ok(Listener { fd })
        }
    }

    /// The next seccomp record, or `None` when none comes within `wait`.
    fn next(&self, wait: Duration) -> Option<Record> {
        let deadline = Instant::now() + wait;
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd; `buf` is a live buffer of the length passed.
            let n = unsafe {
                if libc::poll(&mut pfd, 1, left.as_millis().clamp(1, i32::MAX as u128) as i32) <= 0 {
                    continue;
                }
                libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0)
            };
            if n < 16 {
                continue; // ENOBUFS after an overflow, or a short read: keep listening
            }
            let n = n as usize;
            let kind = u16::from_ne_bytes([buf[4], buf[5]]);
            if kind != AUDIT_SECCOMP {
                continue;
            }
            let len = (u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize).clamp(16, n);
            let text = String::from_utf8_lossy(&buf[16..len]).trim_end_matches('\0').trim().to_string();
            return Some(Record(text));
        }
    }

    /// Waits up to `wait` for a record that `wanted` accepts; every record seen is kept in
    /// `seen` (for messages).
    pub fn wait_for(&self, wait: Duration, wanted: impl Fn(&Record) -> bool) -> Result<Record, Vec<Record>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(r) = self.next(deadline.saturating_duration_since(Instant::now())) {
            if wanted(&r) {
                return Ok(r);
            }
            seen.push(r);
        }
        Err(seen)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}
