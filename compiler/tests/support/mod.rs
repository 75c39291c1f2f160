//! What the integration tests share: running the `scpc` binary, digests, and probes for what a
//! test needs from the machine. A test that cannot run here fails naming what is missing
//! ([`need`]); it never passes without having run.

#![allow(dead_code)] // each test program uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `scpc` binary under test.
pub const SCPC: &str = env!("CARGO_BIN_EXE_scpc");

/// `compiler/tests`.
pub fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// Runs `scpc ARGS` in `dir` (no colors); returns (exit status, stdout, stderr). A run ended
/// by a signal has status -1.
pub fn scpc_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(SCPC).current_dir(dir).args(args).env("NO_COLOR", "1").output().expect("scpc runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs `scpc ARGS` in the test's working directory; returns (exit status, stdout, stderr).
pub fn scpc(args: &[&str]) -> (i32, String, String) {
    scpc_in(Path::new("."), args)
}

/// The sha256 of `bytes` as manifests and state files write it.
pub fn sha256(bytes: &[u8]) -> String {
    scpc_node::Sha256::of(bytes).to_string()
}

/// Something a test needs from the machine.
#[derive(Copy, Clone, Debug)]
pub enum Need {
    /// To run as root (namespaces, sshd, loading filters for other users).
    Root,
    /// A file (a daemon such as `/usr/sbin/sshd`).
    File(&'static str),
    /// A program on `PATH`.
    Program(&'static str),
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// What of `needs` this machine lacks, named.
pub fn missing(needs: &[Need]) -> Vec<String> {
    needs
        .iter()
        .filter_map(|n| match *n {
            Need::Root if !is_root() => Some("root".to_string()),
            Need::File(f) if !Path::new(f).exists() => Some(f.to_string()),
            Need::Program(p) if !on_path(p) => Some(format!("`{p}` on PATH")),
            _ => None,
        })
        .collect()
}

/// Fails the test, naming what is missing, unless the machine has all of `needs`.
pub fn need(needs: &[Need]) {
    let lacking = missing(needs);
    assert!(lacking.is_empty(), "this test cannot run here: it needs {} (.ci/run installs what it can)", lacking.join(", "));
}

/// What the deploy test bed needs: root, OpenSSH's server and ssh-keygen.
pub const TEST_BED: [Need; 3] = [Need::Root, Need::File("/usr/sbin/sshd"), Need::File("/usr/bin/ssh-keygen")];
