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

use crate::inventory::{Auth, Host};
use crate::known_hosts::{fingerprint, host_name, KnownHosts, Verdict};
use ssh2::{HostKeyType, MethodType, Session};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
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

/// A logged-in session to one host.
pub struct Conn {
    sess: Session,
    socket: TcpStream,
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
    /// Connects, verifies the host key against the host's known_hosts (recording it when
    /// `accept_new` and the host is unknown — never when it changed), and logs in.
    pub fn open(host: &Host, accept_new: bool, t: Timeouts) -> Result<Conn, TransportError> {
        let name = host_name(&host.address, host.port);
        let addrs: Vec<_> = (host.address.as_str(), host.port).to_socket_addrs().map_err(|e| net(&name, "cannot resolve", e))?.collect();
        let addr = addrs.first().ok_or_else(|| net(&name, "cannot resolve", "no address"))?;
        let socket = TcpStream::connect_timeout(addr, t.connect).map_err(|e| net(&name, "cannot connect", e))?;
        let _ = socket.set_nodelay(true);
        let stream = socket.try_clone().map_err(|e| net(&name, "socket", e))?;
        let mut sess = Session::new().map_err(|e| net(&name, "ssh", e))?;
        let conn_timeout = t.connect.as_millis().min(u128::from(u32::MAX)) as u32;
        sess.set_timeout(conn_timeout);
        sess.set_tcp_stream(stream);
        let mut kh = KnownHosts::load(&host.known_hosts)
            .map_err(|e| TransportError::Auth(format!("cannot read {}: {e}", host.known_hosts.display())))?;
        let recorded = kh.key_types(&host.address, host.port);
        let pinned: Vec<&str> = recorded.iter().map(|k| methods_for(k)).filter(|m| !m.is_empty()).collect();
        if !pinned.is_empty() {
            sess.method_pref(MethodType::HostKey, &pinned.join(",")).map_err(|e| net(&name, "host key algorithms", e))?;
        }
        let mut conn = Conn { sess, socket, sftp: Default::default(), name: name.clone(), command_timeout: t.command };
        conn.sess.handshake().map_err(|e| net(&name, "SSH handshake failed", e))?;
        let (key, ktype) = conn.sess.host_key().ok_or_else(|| net(&name, "handshake", "no host key"))?;
        let (key, ktype) = (key.to_vec(), type_name(ktype));
        let known = host.known_hosts.display().to_string();
        match kh.check(&host.address, host.port, ktype, &key) {
            Verdict::Match => {}
            Verdict::Changed { lines } => {
                let lines = lines.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
                return Err(TransportError::KeyChanged {
                    host: name,
                    key_type: ktype.into(),
                    fingerprint: fingerprint(&key),
                    known_hosts: known,
                    lines,
                });
            }
            Verdict::Revoked { .. } => {
                return Err(TransportError::KeyRevoked { host: name, fingerprint: fingerprint(&key), known_hosts: known })
            }
            Verdict::Unknown if accept_new => {
                kh.append(&host.address, host.port, ktype, &key)
                    .map_err(|e| TransportError::Auth(format!("cannot record the key in {known}: {e}")))?;
            }
            Verdict::Unknown => {
                return Err(TransportError::KeyUnknown {
                    host: name,
                    key_type: ktype.into(),
                    fingerprint: fingerprint(&key),
                    known_hosts: known,
                })
            }
        }
        let user = host.user.as_str();
        let auth = match &host.auth {
            Auth::KeyFile(k) => conn.sess.userauth_pubkey_file(user, None, k, None),
            Auth::Agent => conn.sess.userauth_agent(user),
        };
        auth.map_err(|e| TransportError::Auth(format!("{name}: login as {user} refused: {e}")))?;
        if !conn.sess.authenticated() {
            return Err(TransportError::Auth(format!("{name}: login as {user} refused")));
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
        let _ = self.socket.shutdown(Shutdown::Both);
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
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}
