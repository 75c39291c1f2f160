//! An SSH session that cannot skip the host-key check.
//!
//! The safety rules learned on the test bed (`testbed-notes.md`) are built in:
//! - every blocking operation has a timeout, and a session is dropped only after its socket is
//!   shut down (otherwise each of File, Sftp and Session waits for the timeout again);
//! - the host-key algorithm is pinned to the types recorded in known_hosts, so a host offering
//!   another type first is not mistaken for a changed key;
//! - SFTP writes that return 0 (a small window, as dropbear's) are retried, not failed;
//! - files are written over SFTP, never SCP (whose exit status lies);
//! - one SFTP channel serves the whole session and closes with it: dropbear 2022.83 to 2024.85
//!   (Debian 12, Yocto) aborts the session when a new channel opens while the SIGCHLD of a
//!   just-closed channel's process is pending (its issue #321, fixed in 2024.86), and
//!   `sftp-server` exits just after its channel closes, as the next command's channel opens;
//! - a host without an SFTP server (OpenWrt's dropbear, busybox images) still works: files then
//!   travel on a command's standard input (`cat > FILE`) and back as hex (`od`).
//!
//! A host behind jump hosts (OpenSSH's `ProxyJump`) is reached hop by hop: a session to the
//! first jump host over TCP, its key checked and logged into; a `direct-tcpip` channel from it
//! to the next hop; the next session running over that channel (libssh2 needs a socket, so a
//! thread carries the bytes between the channel and one end of a socket pair); and so on to
//! the host. Every hop's key is checked against its own known_hosts as a host's is.

use crate::inventory::{Auth, Hop, Host};
use crate::known_hosts::{fingerprint, host_name, KnownHosts, Verdict};
use ssh2::{HostKeyType, MethodType, Session};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a host could not be reached or worked with.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TCP or SSH handshake failure, timeout, lost link.
    #[error("{0}")]
    Network(String),
    /// The host key is not the one recorded.
    #[error("host key for {host} has CHANGED: it now offers {key_type} {fingerprint}, but {known_hosts} records another key (lines {lines}); nothing was written. If the change is expected, remove those lines")]
    KeyChanged {
        /// `[addr]:port`.
        host: String,
        /// Offered key type.
        key_type: String,
        /// Its fingerprint.
        fingerprint: String,
        /// The file.
        known_hosts: String,
        /// The recorded lines.
        lines: String,
    },
    /// The host is not in known_hosts and new keys are not accepted this run.
    #[error("host {host} is unknown: it offers {key_type} {fingerprint}, which {known_hosts} does not record; check the fingerprint on the node's console, then run again with --accept-new")]
    KeyUnknown {
        /// `[addr]:port`.
        host: String,
        /// Offered key type.
        key_type: String,
        /// Its fingerprint.
        fingerprint: String,
        /// The file.
        known_hosts: String,
    },
    /// The key is marked revoked.
    #[error("host key of {host} ({fingerprint}) is marked @revoked in {known_hosts}")]
    KeyRevoked {
        /// `[addr]:port`.
        host: String,
        /// Its fingerprint.
        fingerprint: String,
        /// The file.
        known_hosts: String,
    },
    /// Login refused.
    #[error("{0}")]
    Auth(String),
    /// A remote command failed.
    #[error("{0}")]
    Remote(String),
    /// The node program refused or failed the job.
    #[error("{host}: {message} [{code}]")]
    Node {
        /// The host.
        host: String,
        /// The node's error code (`scpc::node::...`).
        code: String,
        /// Its message.
        message: String,
    },
}

impl TransportError {
    /// The error's stable code.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::Network(_) => "scpc::transport::network",
            TransportError::KeyChanged { .. } => "scpc::transport::key_changed",
            TransportError::KeyUnknown { .. } => "scpc::transport::key_unknown",
            TransportError::KeyRevoked { .. } => "scpc::transport::key_revoked",
            TransportError::Auth(_) => "scpc::transport::auth",
            TransportError::Remote(_) => "scpc::transport::remote",
            TransportError::Node { .. } => "scpc::transport::node",
        }
    }
}

/// Timeouts of one session.
#[derive(Copy, Clone, Debug)]
pub struct Timeouts {
    /// TCP connect and handshake.
    pub connect: Duration,
    /// Each blocking operation after login.
    pub command: Duration,
}

/// What a command printed and how it ended.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Exit status (-1 when the remote sent none).
    pub status: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// What a session runs over: a TCP connection, or (behind a jump host) one end of a socket
/// pair whose other end a thread joins to a `direct-tcpip` channel of the hop before.
enum Link {
    Tcp(TcpStream),
    Jumped(UnixStream),
}

impl Link {
    fn shutdown(&self) {
        let _ = match self {
            Link::Tcp(s) => s.shutdown(Shutdown::Both),
            Link::Jumped(s) => s.shutdown(Shutdown::Both),
        };
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Link::Tcp(s) => s.as_fd(),
            Link::Jumped(s) => s.as_fd(),
        }
    }
}

/// One SSH server on the way: a jump host or the host itself.
struct Endpoint<'a> {
    address: &'a str,
    port: u16,
    user: &'a str,
    auth: &'a Auth,
    known_hosts: &'a Path,
    /// What errors call it: `jump host [addr]:port` for a hop.
    role: &'static str,
}

impl<'a> Endpoint<'a> {
    fn host(h: &'a Host) -> Endpoint<'a> {
        Endpoint { address: &h.address, port: h.port, user: &h.user, auth: &h.auth, known_hosts: &h.known_hosts, role: "" }
    }

    fn hop(h: &'a Hop) -> Endpoint<'a> {
        Endpoint { address: &h.address, port: h.port, user: &h.user, auth: &h.auth, known_hosts: &h.known_hosts, role: "jump host " }
    }
}

/// A logged-in session to one host.
pub struct Conn {
    sess: Session,
    socket: Link,
    /// Opened at the first transfer, closed with the session.
    sftp: std::cell::RefCell<Sftp>,
    /// The host name as recorded in known_hosts (`[addr]:port`).
    pub name: String,
    /// Each blocking operation's timeout (and the keepalive interval).
    command_timeout: Duration,
}

/// The session's SFTP channel.
#[derive(Default)]
enum Sftp {
    #[default]
    Untried,
    Open(ssh2::Sftp),
    /// The host has no SFTP server.
    Missing,
}

fn net(host: &str, what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Network(format!("{host}: {what}: {e}"))
}

/// libssh2's names for a key type recorded in known_hosts.
fn methods_for(key_type: &str) -> &'static str {
    match key_type {
        "ssh-ed25519" => "ssh-ed25519",
        "ecdsa-sha2-nistp256" => "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384" => "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521" => "ecdsa-sha2-nistp521",
        "ssh-rsa" | "rsa-sha2-256" | "rsa-sha2-512" => "rsa-sha2-512,rsa-sha2-256,ssh-rsa",
        "ssh-dss" => "ssh-dss",
        _ => "",
    }
}

fn type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

impl Conn {
    /// Connects (through the host's jump hosts, if any), verifies each server's key against
    /// its known_hosts (recording it when `accept_new` and the server is unknown — never when
    /// it changed), and logs in.
    pub fn open(host: &Host, accept_new: bool, t: Timeouts) -> Result<Conn, TransportError> {
        let mut chain: Vec<Endpoint> = host.jumps.iter().map(Endpoint::hop).collect();
        chain.push(Endpoint::host(host));
        let first = &chain[0];
        let name = host_name(first.address, first.port);
        let addrs: Vec<_> =
            (first.address, first.port).to_socket_addrs().map_err(|e| net(&name, &format!("{}cannot resolve", first.role), e))?.collect();
        let addr = addrs.first().ok_or_else(|| net(&name, "cannot resolve", "no address"))?;
        let socket = TcpStream::connect_timeout(addr, t.connect).map_err(|e| net(&name, &format!("{}cannot connect", first.role), e))?;
        let _ = socket.set_nodelay(true);
        let stream = socket.try_clone().map_err(|e| net(&name, "socket", e))?;
        let mut conn = Conn::login(&chain[0], Link::Tcp(socket), Box::new(stream), accept_new, t)?;
        for next in &chain[1..] {
            let (link, stream) = conn.forward(next, t)?;
            conn = Conn::login(next, link, Box::new(stream), accept_new, t)?;
        }
        Ok(conn)
    }

    /// Opens a `direct-tcpip` channel from this session to `next` and hands this session to a
    /// thread that carries the channel's bytes to and from a socket pair; returns the pair's
    /// other end (twice: one for the link, one for libssh2).
    fn forward(self, next: &Endpoint, t: Timeouts) -> Result<(Link, UnixStream), TransportError> {
        let to = host_name(next.address, next.port);
        self.sess.set_timeout(t.connect.as_millis().clamp(1, u128::from(u32::MAX)) as u32);
        let channel = self
            .sess
            .channel_direct_tcpip(next.address, next.port, None)
            .map_err(|e| self.fail(&format!("jump host cannot reach {to}"), e))?;
        let (mine, theirs) = UnixStream::pair().map_err(|e| net(&to, "socket pair", e))?;
        let stream = mine.try_clone().map_err(|e| net(&to, "socket pair", e))?;
        theirs.set_nonblocking(true).map_err(|e| net(&to, "socket pair", e))?;
        self.sess.set_blocking(false);
        std::thread::Builder::new()
            .name(format!("scpc-jump-{to}"))
            .spawn(move || carry(self, channel, theirs))
            .map_err(|e| net(&to, "cannot start the jump thread", e))?;
        Ok((Link::Jumped(mine), stream))
    }

    /// The SSH handshake, the host-key check and the login over `socket` (whose twin
    /// `stream` libssh2 owns).
    fn login(host: &Endpoint, socket: Link, stream: Box<dyn AsRawFdSend>, accept_new: bool, t: Timeouts) -> Result<Conn, TransportError> {
        let name = host_name(host.address, host.port);
        let mut sess = Session::new().map_err(|e| net(&name, "ssh", e))?;
        let conn_timeout = t.connect.as_millis().min(u128::from(u32::MAX)) as u32;
        sess.set_timeout(conn_timeout);
        sess.set_tcp_stream(stream);
        let mut kh = KnownHosts::load(host.known_hosts)
            .map_err(|e| TransportError::Auth(format!("cannot read {}: {e}", host.known_hosts.display())))?;
        let recorded = kh.key_types(host.address, host.port);
        let pinned: Vec<&str> = recorded.iter().map(|k| methods_for(k)).filter(|m| !m.is_empty()).collect();
        if !pinned.is_empty() {
            sess.method_pref(MethodType::HostKey, &pinned.join(",")).map_err(|e| net(&name, "host key algorithms", e))?;
        }
        let role = host.role;
        let mut conn = Conn { sess, socket, sftp: Default::default(), name: name.clone(), command_timeout: t.command };
        conn.sess.handshake().map_err(|e| net(&name, &format!("{role}SSH handshake failed"), e))?;
        let (key, ktype) = conn.sess.host_key().ok_or_else(|| net(&name, "handshake", "no host key"))?;
        let (key, ktype) = (key.to_vec(), type_name(ktype));
        let known = host.known_hosts.display().to_string();
        let shown = format!("{role}{name}");
        match kh.check(host.address, host.port, ktype, &key) {
            Verdict::Match => {}
            Verdict::Changed { lines } => {
                let lines = lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
                return Err(TransportError::KeyChanged {
                    host: shown,
                    key_type: ktype.into(),
                    fingerprint: fingerprint(&key),
                    known_hosts: known,
                    lines,
                });
            }
            Verdict::Revoked { .. } => {
                return Err(TransportError::KeyRevoked { host: shown, fingerprint: fingerprint(&key), known_hosts: known })
            }
            Verdict::Unknown if accept_new => {
                kh.append(host.address, host.port, ktype, &key)
                    .map_err(|e| TransportError::Auth(format!("cannot record the key in {known}: {e}")))?;
            }
            Verdict::Unknown => {
                return Err(TransportError::KeyUnknown {
                    host: shown,
                    key_type: ktype.into(),
                    fingerprint: fingerprint(&key),
                    known_hosts: known,
                })
            }
        }
        let user = host.user;
        let auth = match host.auth {
            Auth::KeyFile(k) => conn.sess.userauth_pubkey_file(user, None, k, None),
            Auth::Agent => conn.sess.userauth_agent(user),
        };
        auth.map_err(|e| TransportError::Auth(format!("{role}{name}: login as {user} refused: {e}")))?;
        if !conn.sess.authenticated() {
            return Err(TransportError::Auth(format!("{role}{name}: login as {user} refused")));
        }
        // libssh2 waits on the socket no longer than the keepalive interval and then reports
        // "Timed out waiting on socket" whatever the session timeout says (seen on the test
        // bed: 5 s keepalives failed uploads after 2-5 s of a 3 s link outage). So keepalives
        // go out at the command timeout, which they then cannot cut short.
        let secs = t.command.as_secs().clamp(1, u64::from(u32::MAX / 1000)) as u32;
        conn.sess.set_keepalive(true, secs);
        conn.sess.set_timeout(secs * 1000);
        Ok(conn)
    }

    /// A failed operation leaves the session unusable: shut the socket down now, so that
    /// dropping the SFTP handles and the session does not wait for the timeout once more each.
    fn fail(&self, what: &str, e: impl std::fmt::Display) -> TransportError {
        self.socket.shutdown();
        net(&self.name, what, e)
    }

    /// Runs a command; its output is read to the end.
    pub fn exec(&self, command: &str) -> Result<Output, TransportError> {
        self.exec_with_input(command, &[])
    }

    /// Runs a command with `input` on its standard input (then end of file); its output is
    /// read to the end. The input goes out right behind the command, in the same flight.
    pub fn exec_with_input(&self, command: &str, input: &[u8]) -> Result<Output, TransportError> {
        let mut ch = self.sess.channel_session().map_err(|e| self.fail("open channel", e))?;
        ch.exec(command).map_err(|e| self.fail("exec", e))?;
        self.write_all_retrying(&mut ch, input, "sending command input")?;
        ch.send_eof().map_err(|e| self.fail("sending command input", e))?;
        let mut out = Output::default();
        ch.read_to_string(&mut out.stdout).map_err(|e| self.fail("reading command output", e))?;
        ch.stderr().read_to_string(&mut out.stderr).map_err(|e| self.fail("reading command errors", e))?;
        ch.wait_close().map_err(|e| self.fail("closing channel", e))?;
        out.status = ch.exit_status().unwrap_or(-1);
        Ok(out)
    }

    /// [`Conn::exec_with_input`] for a command that may run longer than one operation's
    /// timeout but shows it is alive at least every `wait` (the node program prints a blank
    /// line every second): the session's timeout and keepalive are `wait` for this command.
    pub fn exec_with_input_waiting(&self, command: &str, input: &[u8], wait: Duration) -> Result<Output, TransportError> {
        let set = |d: Duration| {
            let secs = d.as_secs().clamp(1, u64::from(u32::MAX / 1000)) as u32;
            self.sess.set_keepalive(true, secs);
            self.sess.set_timeout(secs * 1000);
        };
        set(wait.max(self.command_timeout));
        let out = self.exec_with_input(command, input);
        set(self.command_timeout);
        out
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn run(&self, command: &str) -> Result<String, TransportError> {
        self.run_with_input(command, &[])
    }

    /// [`Conn::run`] with `input` on the command's standard input.
    pub fn run_with_input(&self, command: &str, input: &[u8]) -> Result<String, TransportError> {
        let out = self.exec_with_input(command, input)?;
        if out.status != 0 {
            return Err(TransportError::Remote(format!(
                "{}: `{}` exited {}: {}",
                self.name,
                first_line(command),
                out.status,
                out.stderr.trim()
            )));
        }
        Ok(out.stdout)
    }

    /// Whether the server is dropbear (by its banner).
    pub fn is_dropbear(&self) -> bool {
        self.sess.banner().is_some_and(|b| b.contains("dropbear"))
    }

    /// Transfers files through commands from now on, without trying SFTP: for a dropbear
    /// without an SFTP server, where a failed SFTP start can abort the session (2022.83).
    pub fn without_sftp(&self) {
        let mut slot = self.sftp.borrow_mut();
        if let Sftp::Untried = *slot {
            *slot = Sftp::Missing;
        }
    }

    /// The session's SFTP channel; `None` when the host has none (a refused subsystem, or a
    /// server that cannot start one), seen by the session still running commands.
    fn sftp(&self) -> Result<Option<std::cell::RefMut<'_, ssh2::Sftp>>, TransportError> {
        let mut slot = self.sftp.borrow_mut();
        if let Sftp::Untried = *slot {
            *slot = match self.sess.sftp() {
                Ok(s) => Sftp::Open(s),
                Err(e) => match self.exec("true") {
                    Ok(out) if out.status == 0 => Sftp::Missing,
                    Ok(out) => return Err(self.fail("sftp", format!("{e}; and `true` exited {}", out.status))),
                    Err(e2) => return Err(self.fail("sftp", format!("{e}; and then {e2}"))),
                },
            };
        }
        Ok(std::cell::RefMut::filter_map(slot, |s| match s {
            Sftp::Open(s) => Some(s),
            _ => None,
        })
        .ok())
    }

    /// Writes a file over SFTP (mode 0644) and closes it; the caller flushes it on the host.
    /// Retries writes the server answers with 0 bytes (small channel windows). Without SFTP on
    /// the host, the bytes go to `cat` on a command's standard input.
    pub fn upload(&self, path: &str, bytes: &[u8]) -> Result<(), TransportError> {
        let Some(sftp) = self.sftp()? else {
            self.run_with_input(&format!("umask 022; cat > {path}"), bytes)?;
            return Ok(());
        };
        let mut f = sftp
            .open_mode(
                Path::new(path),
                ssh2::OpenFlags::WRITE | ssh2::OpenFlags::CREATE | ssh2::OpenFlags::TRUNCATE,
                0o644,
                ssh2::OpenType::File,
            )
            .map_err(|e| self.fail(&format!("cannot create {path}"), e))?;
        self.write_all_retrying(&mut f, bytes, &format!("writing {path}"))?;
        // no fsync@openssh.com here: the installer flushes the file with `sync` on the host
        // (which every server has) before it checks and renames it, and a round trip is saved
        f.close().map_err(|e| self.fail(&format!("closing {path}"), e))?;
        Ok(())
    }

    /// Writes all of `bytes`, retrying the writes libssh2 answers with 0 (a full channel
    /// window: dropbear's is 24 KiB) instead of failing as `write_all` does.
    fn write_all_retrying(&self, w: &mut impl Write, bytes: &[u8], what: &str) -> Result<(), TransportError> {
        let mut done = 0;
        let mut zeros = 0;
        let started = Instant::now();
        while done < bytes.len() {
            let end = (done + 16 * 1024).min(bytes.len());
            match w.write(&bytes[done..end]) {
                Ok(0) => {
                    zeros += 1;
                    if zeros > 10_000 || started.elapsed() > Duration::from_secs(600) {
                        return Err(self.fail(what, "the server accepts no data"));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(n) => {
                    done += n;
                    zeros = 0;
                }
                Err(e) => return Err(self.fail(what, e)),
            }
        }
        Ok(())
    }

    /// Reads a whole remote file over SFTP (or as hex from `od` without SFTP); `None` if it
    /// does not exist.
    pub fn download(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let Some(sftp) = self.sftp()? else {
            let out = self.run(&format!("if [ -f {path} ]; then od -An -v -tx1 {path}; else echo missing; fi"))?;
            if out.trim() == "missing" {
                return Ok(None);
            }
            let bytes: Result<Vec<u8>, _> = out.split_whitespace().map(|h| u8::from_str_radix(h, 16)).collect();
            return bytes.map(Some).map_err(|e| TransportError::Remote(format!("{}: reading {path} with od: {e}", self.name)));
        };
        let mut f = match sftp.open(Path::new(path)) {
            Ok(f) => f,
            Err(e) if e.code() == ssh2::ErrorCode::SFTP(2) => return Ok(None),
            Err(e) => return Err(self.fail(&format!("cannot open {path}"), e)),
        };
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(|e| self.fail(&format!("reading {path}"), e))?;
        Ok(Some(buf))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // a dead link would make every libssh2 destructor wait for the timeout (pitfall 8)
        self.socket.shutdown();
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

/// What libssh2 may run a session over: a socket that can go to another thread.
trait AsRawFdSend: AsRawFd + Send {}
impl<T: AsRawFd + Send> AsRawFdSend for T {}

impl AsRawFd for Box<dyn AsRawFdSend> {
    fn as_raw_fd(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}

/// The jump thread: carries bytes both ways between `channel` (of the jump host's session
/// `hop`, non-blocking) and `socket` (the next session's link) until either side ends or
/// fails; then drops the channel and the hop's session, which closes the hops before it in
/// turn. Waits in poll(2) on both sockets when neither side has anything to move.
fn carry(hop: Conn, mut channel: ssh2::Channel, mut socket: UnixStream) {
    let mut to_socket: Vec<u8> = Vec::new();
    let mut to_channel: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let (mut channel_done, mut socket_done) = (false, false);
    let would_block = |e: &std::io::Error| e.kind() == std::io::ErrorKind::WouldBlock;
    let mut last_keepalive = Instant::now();
    loop {
        let mut moved = false;
        if to_socket.is_empty() && !channel_done {
            match channel.read(&mut buf) {
                Ok(0) if channel.eof() => {
                    channel_done = true;
                    let _ = socket.shutdown(Shutdown::Write);
                }
                Ok(0) => {}
                Ok(n) => to_socket.extend_from_slice(&buf[..n]),
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
            moved |= !to_socket.is_empty() || channel_done;
        }
        if !to_socket.is_empty() {
            match socket.write(&to_socket) {
                Ok(n) => {
                    to_socket.drain(..n);
                    moved = true;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
        }
        if to_channel.is_empty() && !socket_done {
            match socket.read(&mut buf) {
                Ok(0) => socket_done = true,
                Ok(n) => to_channel.extend_from_slice(&buf[..n]),
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
            moved |= !to_channel.is_empty() || socket_done;
        }
        if !to_channel.is_empty() {
            match channel.write(&to_channel) {
                Ok(n) => {
                    to_channel.drain(..n);
                    moved |= n > 0;
                }
                Err(e) if would_block(&e) => {}
                Err(_) => break,
            }
        }
        // the next session closed its end: nobody is left to read what the channel brings
        if socket_done && to_channel.is_empty() {
            let _ = channel.send_eof();
            break;
        }
        if channel_done && to_socket.is_empty() && socket_done {
            break;
        }
        if !moved {
            if last_keepalive.elapsed() >= hop.command_timeout / 2 {
                let _ = hop.sess.keepalive_send();
                last_keepalive = Instant::now();
            }
            use rustix::event::{PollFd, PollFlags};
            let mut theirs = PollFlags::empty();
            if !to_socket.is_empty() {
                theirs |= PollFlags::OUT;
            }
            if to_channel.is_empty() && !socket_done {
                theirs |= PollFlags::IN;
            }
            let mut fds = [PollFd::from_borrowed_fd(hop.socket.fd(), PollFlags::IN), PollFd::new(&socket, theirs)];
            // an interruption or an error ends the wait early: the sockets are tried again
            let _ = rustix::event::poll(&mut fds, Some(&rustix::time::Timespec { tv_sec: 0, tv_nsec: 50_000_000 }));
        }
    }
    drop(channel);
    drop(hop);
}
