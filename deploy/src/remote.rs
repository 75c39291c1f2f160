//! What scpc does on a host, in POSIX `sh` that busybox runs too.
//!
//! Layout for a service installed at `DIR/FILE`:
//! - `DIR/FILE`: the filter. Only ever replaced by `rename(2)`, so it always holds a whole
//!   filter: the old one or the new one.
//! - `DIR/.FILE.scpc-tmp.NONCE`: an upload in progress; one a dead transfer left is removed
//!   by the next install that changes the file (`status`, `rollback` and an unchanged deploy
//!   leave it).
//! - `DIR/.scpc/FILE/SHA256.bpf`: the versions kept for rollback (`rollout.keep` of them
//!   besides the current one).
//! - `DIR/.scpc/FILE/state.json`: what was deployed, newest first (sha256, policy, manifest,
//!   compiler, time, operator).

use crate::artifacts::{Artifact, Build};
use crate::transport::{Conn, TransportError};
use scpc_node::Sha256;
use serde::{Deserialize, Serialize};

/// A host's architecture and kernel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `uname -m`.
    pub machine: String,
    /// scpc's name for it, when it has one.
    pub arch: Option<&'static str>,
    /// `uname -r`.
    pub kernel: String,
}

/// One deployment recorded on a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// sha256 of the filter (64 hex digits: a state file with anything else is refused).
    pub sha256: Sha256,
    /// Policy name (`(found on host)` for a file that was there before scpc).
    pub policy: String,
    /// Architecture of the artifact.
    pub arch: String,
    /// sha256 of the manifest it came from.
    pub manifest_sha256: String,
    /// Compiler version.
    pub compiler: String,
    /// When (RFC 3339, UTC).
    pub time: String,
    /// Who.
    pub operator: String,
}

/// The state file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Install path.
    pub path: String,
    /// Newest first: `history[0]` is what scpc last installed.
    pub history: Vec<Deployed>,
}

/// What a host holds for a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// The state file (empty if none).
    pub state: State,
    /// sha256 of the file at the install path, if there is one.
    pub actual: Option<Sha256>,
    /// Whether the install path's directory exists.
    pub dir_exists: bool,
}

impl Installed {
    /// The file at the path is not what scpc last installed there (changed by hand).
    pub fn drifted(&self) -> bool {
        match (self.state.history.first(), &self.actual) {
            (Some(d), Some(a)) => d.sha256 != *a,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Where things are for an install path.
struct Paths {
    target: String,
    dir: String,
    base: String,
    versions: String,
}

impl Paths {
    fn of(path: &str) -> Paths {
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = if dir.is_empty() { "/".to_string() } else { dir.to_string() };
        let versions = format!("{}/.scpc/{base}", dir.trim_end_matches('/'));
        Paths { target: path.into(), dir, base: base.into(), versions }
    }

    /// Shell lines that rename a flushed `tmp` over the target and make the rename durable.
    fn swap_in(&self, tmp: &str) -> String {
        format!("mv -f {tmp} {t}\n{SYNC} {t} {dir}\n", t = self.target, dir = self.dir)
    }

    fn temp(&self, nonce: &str) -> String {
        format!("{}/.{}.scpc-tmp.{nonce}", self.dir.trim_end_matches('/'), self.base)
    }
}

/// Reads `uname -m` and `uname -r`.
pub fn facts(conn: &Conn) -> Result<Facts, TransportError> {
    Ok(parse_facts(&conn.run("uname -m; uname -r")?))
}

fn parse_facts(out: &str) -> Facts {
    let mut lines = out.lines();
    let machine = lines.next().unwrap_or("").trim().to_string();
    let kernel = lines.next().unwrap_or("").trim().to_string();
    Facts { arch: crate::artifacts::arch_of_uname(&machine), machine, kernel }
}

/// Between the parts of [`survey`]'s output.
const NEXT: &str = "--scpc-next--";
/// In [`survey`]'s output: an SFTP server program is installed.
const SFTP: &str = "--scpc-sftp--";

/// Where SFTP server programs live (dropbear runs the one it was built with, usually the first).
const SFTP_SERVERS: &str = "/usr/lib/sftp-server /usr/libexec/sftp-server /usr/lib/openssh/sftp-server \
                            /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server";

/// What a deploy needs to know before it changes anything, in one command (one round of
/// messages, which is what a slow link charges for): the host's facts and what each of
/// `paths` holds. Writes nothing. A dropbear host without an SFTP server program gets its
/// files through commands (trying SFTP there can cost the session).
pub fn survey(conn: &Conn, paths: &[&str]) -> Result<(Facts, Vec<Installed>), TransportError> {
    let paths: Vec<Paths> = paths.iter().map(|p| Paths::of(p)).collect();
    let mut script =
        format!("uname -m; uname -r\necho {NEXT}\nfor f in {SFTP_SERVERS}; do if [ -x $f ]; then echo {SFTP}; break; fi; done\n");
    for p in &paths {
        script.push_str(&format!("echo {NEXT}\n{}\n", read_script(p)));
    }
    let out = conn.run(&script)?;
    let mut parts = out.split(NEXT);
    let facts = parse_facts(parts.next().unwrap_or(""));
    if !parts.next().unwrap_or("").contains(SFTP) && conn.is_dropbear() {
        conn.without_sftp();
    }
    let installed = paths.iter().map(|p| parse_read(conn, p, parts.next().unwrap_or(""))).collect::<Result<_, _>>()?;
    Ok((facts, installed))
}

const SEP: &str = "--scpc-sha256--";
/// In [`read_script`]'s output: the install path's directory exists.
const DIR: &str = "--scpc-dir--";

/// Flushes the named files and directories (a rename is durable once its directory is):
/// `sync FILE...` (coreutils, busybox) fsyncs just those; a `sync` without arguments, which
/// flushes every filesystem and can take seconds on a busy host, only where that is missing.
const SYNC: &str = "scpc_sync() { sync \"$@\" 2>/dev/null || sync; }; scpc_sync";

/// Reads the state file and hashes the file at the install path.
pub fn read(conn: &Conn, path: &str) -> Result<Installed, TransportError> {
    let p = Paths::of(path);
    parse_read(conn, &p, &conn.run(&read_script(&p))?)
}

/// The shell that prints the state file, a separator, the sha256 of the installed file and
/// whether the directory exists.
fn read_script(p: &Paths) -> String {
    format!(
        "cat {v}/state.json 2>/dev/null; echo {SEP}; if [ -f {t} ]; then sha256sum {t}; fi; [ ! -d {d} ] || echo {DIR}",
        v = p.versions,
        t = p.target,
        d = p.dir
    )
}

fn parse_read(conn: &Conn, p: &Paths, out: &str) -> Result<Installed, TransportError> {
    let (state, rest) = out.split_once(SEP).unwrap_or(("", ""));
    let (sum, dir_exists) = match rest.split_once(DIR) {
        Some((sum, _)) => (sum, true),
        None => (rest, false),
    };
    let state = if state.trim().is_empty() {
        State { path: p.target.clone(), history: Vec::new() }
    } else {
        serde_json::from_str(state)
            .map_err(|e| TransportError::Remote(format!("{}: {}/state.json is damaged: {e}", conn.name, p.versions)))?
    };
    let actual = sum
        .split_whitespace()
        .next()
        .map(str::parse::<Sha256>)
        .transpose()
        .map_err(|e| TransportError::Remote(format!("{}: sha256sum {}: {e}", conn.name, p.target)))?;
    Ok(Installed { state, actual, dir_exists })
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn nonce() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{}", std::process::id(), t % 1_000_000_000_000)
}

/// Runs `script` (which must end in [`state_lines`]) with the new state file on its standard
/// input: the script and the state travel in one round of messages.
fn run_with_state(conn: &Conn, script: &str, state: &State) -> Result<(), TransportError> {
    let json = serde_json::to_string_pretty(state).map_err(|e| TransportError::Remote(e.to_string()))? + "\n";
    conn.run_with_input(script, json.as_bytes())?;
    Ok(())
}

/// Shell lines that write the state file from standard input (beside it, then renamed), keep
/// the versions the history names (the current one and `keep` before it), delete older copies
/// and flush.
fn state_lines(p: &Paths, state: &State, keep: usize) -> String {
    let tmp = format!("{}/.state.json.{}", p.versions, nonce());
    let kept: Vec<String> = state.history.iter().take(keep + 1).map(|d| d.sha256.to_string()).collect();
    let pattern = if kept.is_empty() { "scpc-none".to_string() } else { kept.join("|") };
    format!(
        "cat > {tmp}\n\
         mv -f {tmp} {v}/state.json\n\
         for f in {v}/*.bpf; do [ -e \"$f\" ] || continue; case \"$(basename \"$f\" .bpf)\" in {pattern}) ;; *) rm -f \"$f\";; esac; done\n\
         {SYNC} {v}/state.json {v}\n",
        v = p.versions
    )
}

/// Installs an artifact atomically: upload beside the target, flush, verify the sha256 on the
/// host, keep the old file for rollback, rename into place, record the state. `before` is what
/// [`survey`] found at the path. Returns `before`, or `None` when the host already ran these
/// bytes and the state agreed (then nothing is changed).
pub fn install(
    conn: &Conn,
    path: &str,
    art: &Artifact,
    build: &Build,
    operator: &str,
    keep: usize,
    before: Installed,
) -> Result<Option<Installed>, TransportError> {
    let p = Paths::of(path);
    if before.actual == Some(art.sha256) && before.state.history.first().is_some_and(|d| d.sha256 == art.sha256) {
        return Ok(None);
    }
    if !before.dir_exists {
        conn.run(&format!("mkdir -p {}", p.dir))?;
    }
    let tmp = p.temp(&nonce());
    conn.upload(&tmp, &art.bytes)?;
    let mut state = before.state.clone();
    state.path = path.into();
    if state.history.is_empty() {
        if let Some(old) = &before.actual {
            let found = "(found on host)".to_string();
            state.history.push(Deployed {
                sha256: *old,
                policy: found.clone(),
                arch: art.arch.clone(),
                manifest_sha256: String::new(),
                compiler: String::new(),
                time: now(),
                operator: found,
            });
        }
    }
    state.history.insert(
        0,
        Deployed {
            sha256: art.sha256,
            policy: build.policy.clone(),
            arch: art.arch.clone(),
            manifest_sha256: build.manifest_sha256.to_string(),
            compiler: build.compiler.clone(),
            time: now(),
            operator: operator.into(),
        },
    );
    state.history.truncate(keep + 1);
    // the uploaded file is flushed by the script (`sync`), so no SFTP fsync round trip
    let script = format!(
        "set -e\n\
         got=$(sha256sum {tmp} | cut -d' ' -f1)\n\
         if [ \"$got\" != {sha} ]; then rm -f {tmp}; echo \"the uploaded file has sha256 $got, not {sha}\" >&2; exit 3; fi\n\
         mkdir -p {v}\n\
         if [ -f {t} ]; then o=$(sha256sum {t} | cut -d' ' -f1); [ -f {v}/$o.bpf ] || {{ cp {t} {v}/.$o.tmp && mv -f {v}/.$o.tmp {v}/$o.bpf; }}; fi\n\
         [ -f {v}/{sha}.bpf ] || {{ cp {tmp} {v}/.{sha}.tmp && mv -f {v}/.{sha}.tmp {v}/{sha}.bpf; }}\n\
         {SYNC} {tmp} {v}/{sha}.bpf {v}\n\
         {swap}\
         {state_lines}\
         rm -f {dir}/.{base}.scpc-tmp.*\n",
        swap = p.swap_in(&tmp),
        dir = p.dir.trim_end_matches('/'),
        base = p.base,
        sha = art.sha256,
        t = p.target,
        v = p.versions,
        state_lines = state_lines(&p, &state, keep),
    );
    run_with_state(conn, &script, &state)?;
    Ok(Some(before))
}

/// Returns the host to the version before the current one: the kept copy is verified against
/// its sha256 and renamed into place; the current entry leaves the history. `Ok(None)` when
/// there is no earlier version.
pub fn rollback(conn: &Conn, path: &str, keep: usize) -> Result<Option<(Sha256, Sha256)>, TransportError> {
    let p = Paths::of(path);
    let before = read(conn, path)?;
    let [current, previous, ..] = before.state.history.as_slice() else { return Ok(None) };
    let mut state = before.state.clone();
    state.history.remove(0);
    let tmp = p.temp(&nonce());
    let script = format!(
        "set -e\n\
         got=$(sha256sum {v}/{sha}.bpf | cut -d' ' -f1)\n\
         if [ \"$got\" != {sha} ]; then echo \"the kept copy {v}/{sha}.bpf is damaged (sha256 $got)\" >&2; exit 3; fi\n\
         cp {v}/{sha}.bpf {tmp}\n\
         {SYNC} {tmp}\n\
         {swap}\
         {state_lines}",
        swap = p.swap_in(&tmp),
        sha = previous.sha256,
        v = p.versions,
        state_lines = state_lines(&p, &state, keep),
    );
    run_with_state(conn, &script, &state)?;
    Ok(Some((current.sha256, previous.sha256)))
}

/// Undoes a first install (there was no file before): removes the filter and its history
/// entry, which returns the host to what it ran: no filter from scpc.
pub fn uninstall(conn: &Conn, path: &str, keep: usize) -> Result<(), TransportError> {
    let p = Paths::of(path);
    let mut state = read(conn, path)?.state;
    if !state.history.is_empty() {
        state.history.remove(0);
    }
    let script = format!("set -e\nrm -f {t}\n{SYNC} {dir}\n{}", state_lines(&p, &state, keep), t = p.target, dir = p.dir);
    run_with_state(conn, &script, &state)
}

/// Runs an operator command (reload, health check) with `SCPC_FILTER` set to the install path.
pub fn hook(conn: &Conn, path: &str, command: &str) -> Result<(), TransportError> {
    let out = conn.exec(&format!("SCPC_FILTER={path}; export SCPC_FILTER\n{command}"))?;
    if out.status != 0 {
        let msg = if out.stderr.trim().is_empty() { out.stdout.trim() } else { out.stderr.trim() };
        return Err(TransportError::Remote(format!("`{command}` exited {}: {}", out.status, msg.lines().last().unwrap_or(""))));
    }
    Ok(())
}
