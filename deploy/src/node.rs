//! Driving a host's node program (`scpc-node serve`, [`scpc_node::protocol`]): one fixed
//! command, the request on its standard input, the response on its standard output.
//!
//! The first command of a session ([`probe`]) is plain POSIX `sh` holding nothing read from
//! the host: `uname -m` and `-r`, the ELF header of `/bin/sh` (which node program runs
//! there), whether an SFTP server is installed, the sha256 of the node program at its path;
//! and when that is one of the programs this deployer brings, it is run at once with a `read`
//! request. A host without it, or with another version, gets it ([`install_program`]):
//! uploaded beside its path, its sha256 checked on the host, renamed into place, and run.

use std::time::Duration;

use scpc_node::protocol::{JobResult, Request, Response, PROTOCOL};
use scpc_node::Sha256;

use crate::artifacts::{arch_of_elf, arch_of_uname, NodePrograms};
use crate::transport::{Conn, TransportError};

/// A host's architecture and kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `uname -m`.
    pub machine: String,
    /// scpc's name for it (which artifact it gets), when it has one.
    pub arch: Option<&'static str>,
    /// `uname -r`.
    pub kernel: String,
    /// The architecture of its programs (`/bin/sh`): which node program runs there.
    pub program_arch: Option<&'static str>,
}

/// What the first command of a session found.
#[derive(Debug)]
pub struct Probe {
    /// The host.
    pub facts: Facts,
    /// The answer of the node program to the read request, when it is the one for this host.
    pub answer: Option<Response>,
    /// The sha256 of the node program at its path, when there is one.
    pub installed: Option<Sha256>,
}

/// Between the parts of the probe's output.
const NEXT: &str = "--scpc-next--";
/// In the probe's output: an SFTP server program is installed.
const SFTP: &str = "--scpc-sftp--";

/// Where SFTP server programs live (dropbear runs the one it was built with, usually the first).
const SFTP_SERVERS: &str = "/usr/lib/sftp-server /usr/libexec/sftp-server /usr/lib/openssh/sftp-server \
                            /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server";

/// Flushes the named files and directories (`sync FILE...`, coreutils and busybox); a `sync`
/// of everything only where that is missing.
const SYNC: &str = "scpc_sync() { sync \"$@\" 2>/dev/null || sync; }";

/// How long the deployer waits for a sign of life from the node program (it prints a blank
/// line every second while it works).
fn patience(command_timeout: Duration) -> Duration {
    command_timeout + Duration::from_secs(5)
}

/// The probe: facts, SFTP, and the node program run on `read` when it is one of `programs`.
pub fn probe(conn: &Conn, node: &str, programs: &NodePrograms, read: &Request, timeout: Duration) -> Result<Probe, TransportError> {
    let ours: Vec<String> = programs.digests().iter().map(Sha256::to_string).collect();
    let script = format!(
        "uname -m; uname -r\necho {NEXT}\nod -An -tx1 -N20 /bin/sh\necho {NEXT}\n\
         for f in {SFTP_SERVERS}; do if [ -x $f ]; then echo {SFTP}; break; fi; done\necho {NEXT}\n\
         if [ -f {node} ]; then s=$(sha256sum {node}); s=${{s%% *}}; echo \"$s\"; \
         case \"$s\" in {ours}) echo {NEXT}; exec {node} serve;; esac; fi\n",
        ours = ours.join("|"),
    );
    let out = conn.exec_with_input_waiting(&script, &read.to_json(), patience(timeout))?;
    let mut parts = out.stdout.splitn(5, NEXT);
    let mut uname = parts.next().unwrap_or("").lines();
    let machine = uname.next().unwrap_or("").trim().to_string();
    let kernel = uname.next().unwrap_or("").trim().to_string();
    let header: Vec<u8> = parts.next().unwrap_or("").split_whitespace().filter_map(|h| u8::from_str_radix(h, 16).ok()).collect();
    let facts = Facts { arch: arch_of_uname(&machine), machine, kernel, program_arch: arch_of_elf(&header) };
    if !parts.next().unwrap_or("").contains(SFTP) && conn.is_dropbear() {
        conn.without_sftp();
    }
    let installed = parts.next().unwrap_or("").trim().parse::<Sha256>().ok();
    let answer = parts.next().and_then(|a| serde_json::from_str::<Response>(a.trim()).ok());
    Ok(Probe { facts, answer, installed })
}

/// Why the node program could not be used.
fn remote(conn: &Conn, what: String) -> TransportError {
    TransportError::Remote(format!("{}: {what}", conn.name))
}

/// Brings the node program for `arch` to `node` (uploaded beside it, its sha256 checked on
/// the host, made executable, flushed, renamed into place) and runs it on `read`.
pub fn install_program(
    conn: &Conn,
    node: &str,
    arch: &str,
    programs: &NodePrograms,
    read: &Request,
    timeout: Duration,
) -> Result<Response, TransportError> {
    let (bytes, sha) = programs.for_arch(arch).ok_or_else(|| {
        remote(conn, format!("no node program for {arch} in {} (deploy/node/build.sh builds them)", programs.dir.display()))
    })?;
    let (dir, _) = node.rsplit_once('/').unwrap_or(("", node));
    let dir = if dir.is_empty() { "/" } else { dir };
    // the directory of a program that runs as root must be this user's alone
    conn.run(&format!(
        "mkdir -p -m 755 {dir} && [ \"$(stat -c %u {dir})\" = \"$(id -u)\" ] && case \"$(stat -c %A {dir})\" in ?????w????|????????w?) false;; esac \
         || {{ echo '{dir} is not owned by this user or others may write to it: the node program is not put there' >&2; exit 3; }}"
    ))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let temp = format!("{}/.scpc-node.tmp.{}.{nanos}", dir.trim_end_matches('/'), std::process::id());
    conn.upload(&temp, bytes)?;
    let script = format!(
        "set -e\n{SYNC}\nt={temp}\ngot=$(sha256sum $t); got=${{got%% *}}\n\
         if [ \"$got\" != {sha} ]; then rm -f $t; echo \"the uploaded node program has sha256 $got, not {sha}\" >&2; exit 3; fi\n\
         chmod 755 $t\nscpc_sync $t\nmv -f $t {node}\nscpc_sync {dir}\nexec {node} serve\n"
    );
    let out = conn.exec_with_input_waiting(&script, &read.to_json(), patience(timeout))?;
    parse(conn, &out.stdout, &out.stderr)
}

/// Runs the node program on `request`; its response.
pub fn call(conn: &Conn, node: &str, request: &Request, timeout: Duration) -> Result<Response, TransportError> {
    let out = conn.exec_with_input_waiting(&format!("exec {node} serve"), &request.to_json(), patience(timeout))?;
    parse(conn, &out.stdout, &out.stderr)
}

/// A response, checked: its protocol, and an error when it is not `ok`.
fn parse(conn: &Conn, stdout: &str, stderr: &str) -> Result<Response, TransportError> {
    let response: Response = serde_json::from_str(stdout.trim()).map_err(|e| {
        let said = stderr.trim().lines().last().unwrap_or("").chars().take(300).collect::<String>();
        remote(conn, format!("the node program gave no answer ({e}){}", if said.is_empty() { String::new() } else { format!(": {said}") }))
    })?;
    if response.protocol != PROTOCOL {
        return Err(remote(conn, format!("the node program speaks protocol {}, not {PROTOCOL}", response.protocol)));
    }
    if !response.ok {
        let e = response
            .error
            .clone()
            .unwrap_or_else(|| scpc_node::protocol::ErrorReport { code: "?".into(), message: "no reason given".into() });
        return Err(TransportError::Node { host: conn.name.clone(), code: e.code, message: e.message });
    }
    Ok(response)
}

/// The result of a response that is `ok`.
pub fn result(conn: &Conn, response: Response) -> Result<JobResult, TransportError> {
    response.result.ok_or_else(|| remote(conn, "the node program answered without a result".into()))
}
