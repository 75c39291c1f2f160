//! A crash or a full disk at any point of an install: `scpc-node serve` installing a new filter
//! over an old one is killed (SIGKILL, from strace's fault injection) at each of its file
//! system calls in turn, and separately has each of its writes and fsyncs fail (ENOSPC, EIO).
//! After every run the path holds the old filter or the new one, whole, the state file settles
//! to what the path holds, and the kept copy of what the path holds is there and whole; the
//! next install then succeeds. Needs strace (.ci/run installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use scpc_node::bpf::{encode, Insn, BPF_JEQ};
use scpc_node::protocol::{Job, Kind, Record, Request, Service, Upload, PROTOCOL};
use scpc_node::state::State;
use scpc_node::Sha256;

/// A filter for this machine: `nr` fails with EPERM, everything else is allowed.
fn filter(nr: u32) -> Vec<u8> {
    let host = scpc_node::run::host_arch().expect("a known architecture");
    encode(&[
        Insn::ld(4),
        Insn::jmp(BPF_JEQ, host.audit_arch, 1, 0),
        Insn::ret(0x8000_0000),
        Insn::ld(0),
        Insn::jmp(BPF_JEQ, nr, 0, 1),
        Insn::ret(0x0005_0001),
        Insn::ret(0x7fff_0000),
    ])
}

fn request(path: &str, bytes: &[u8]) -> Vec<u8> {
    let host = scpc_node::run::host_arch().expect("a known architecture");
    Request {
        protocol: PROTOCOL,
        job: Job::Install {
            service: Service {
                name: "svc".into(),
                path: path.into(),
                kind: Kind::Command,
                unit: None,
                reload: None,
                health: None,
                pid_file: None,
                process: None,
            },
            filter: Upload {
                arch: host.name.into(),
                sha256: Sha256::of(bytes),
                bytes: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
            record: Record { policy: "svc".into(), manifest_sha256: Sha256::of(b"m"), compiler: "test".into(), operator: "test".into() },
            keep: 3,
            force: false,
            timeout: 10,
        },
    }
    .to_json()
}

/// Runs `scpc-node serve` on `input`, under `strace` with `inject` when given; its exit status
/// (-1 when killed) and what strace logged.
fn serve(input: &[u8], inject: Option<&str>, log: &Path) -> i32 {
    let node = env!("CARGO_BIN_EXE_scpc-node");
    let mut cmd = match inject {
        Some(spec) => {
            let mut c = Command::new("strace");
            c.args(["-f", "-qq", "-o"]).arg(log).args(["-e", "trace=%file,%desc,fsync,rename,renameat,renameat2"]);
            if !spec.is_empty() {
                c.args(["-e", spec]);
            }
            c.args([node, "serve"]);
            c
        }
        None => {
            let mut c = Command::new(node);
            c.arg("serve");
            c
        }
    };
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("scpc-node runs");
    use std::io::Write;
    let _ = child.stdin.take().expect("stdin").write_all(input);
    child.wait().expect("waits").code().unwrap_or(-1)
}

/// A fresh install directory holding `old`, installed by the node.
fn with_old(root: &Path, n: usize, old: &[u8]) -> (PathBuf, String) {
    let dir = root.join(format!("case{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("svc.bpf").to_string_lossy().into_owned();
    assert_eq!(serve(&request(&path, old), None, &root.join("none")), 0, "the old filter installs");
    (dir, path)
}

/// The invariants after any run: the path holds `old` or `new`, whole; the state settles to
/// it; its kept copy is whole.
fn check(dir: &Path, path: &str, old: &[u8], new: &[u8], what: &str) {
    let held = std::fs::read(path).unwrap_or_else(|e| panic!("{what}: the path holds no file: {e}"));
    assert!(held == old || held == new, "{what}: the path holds neither filter whole ({} bytes)", held.len());
    let sha = Sha256::of(&held);
    let text = std::fs::read(dir.join(".scpc/svc.bpf/state.json")).unwrap_or_else(|e| panic!("{what}: no state file: {e}"));
    let mut state = State::parse(&text, path).unwrap_or_else(|e| panic!("{what}: {e}"));
    state.resolve(Some(sha));
    assert_eq!(state.current(), Some(sha), "{what}: the state does not say what the path holds");
    let kept = std::fs::read(dir.join(format!(".scpc/svc.bpf/{sha}.bpf"))).unwrap_or_else(|e| panic!("{what}: no kept copy: {e}"));
    assert_eq!(kept, held, "{what}: the kept copy is damaged");
}

#[test]
fn a_crash_or_a_full_disk_at_any_point_leaves_a_whole_filter_and_a_true_state() {
    assert!(
        Command::new("strace").arg("-V").stdout(Stdio::null()).status().is_ok_and(|s| s.success()),
        "this test cannot run here: it needs strace (.ci/run installs it)"
    );
    let root = std::env::temp_dir().join(format!("scpc-node-crash-{}", std::process::id()));
    std::fs::create_dir_all(&root).expect("root");
    let (old, new) = (filter(libc::SYS_getppid as u32), filter(libc::SYS_getpid as u32));
    // the calls of a clean install of `new` over `old`
    let (dir, path) = with_old(&root, 0, &old);
    let log = root.join("strace.log");
    assert_eq!(serve(&request(&path, &new), Some(""), &log), 0);
    check(&dir, &path, &old, &new, "a clean run");
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for line in std::fs::read_to_string(&log).expect("log").lines() {
        let name = line.split_once(' ').map_or(line, |(_, rest)| rest).split('(').next().unwrap_or("").trim().to_string();
        if ["openat", "write", "fsync", "rename", "renameat", "renameat2", "unlinkat", "mkdirat", "close", "flock", "fchmod"]
            .contains(&name.as_str())
        {
            *counts.entry(name).or_default() += 1;
        }
    }
    assert!(counts.get("fsync").copied().unwrap_or(0) >= 6, "{counts:?}");
    let mut runs = 0;
    for (call, count) in &counts {
        for n in 1..=*count {
            runs += 1;
            let (dir, path) = with_old(&root, runs, &old);
            let what = format!("killed at {call} #{n}");
            serve(&request(&path, &new), Some(&format!("inject={call}:signal=KILL:when={n}")), &log);
            check(&dir, &path, &old, &new, &what);
            assert_eq!(serve(&request(&path, &new), None, &log), 0, "{what}: the next install");
            check(&dir, &path, &new, &new, &format!("{what}, then installed"));
            if matches!(call.as_str(), "write" | "fsync") {
                let (dir, path) = with_old(&root, runs, &old);
                let what = format!("{call} #{n} failing");
                let errno = if call == "write" { "ENOSPC" } else { "EIO" };
                serve(&request(&path, &new), Some(&format!("inject={call}:error={errno}:when={n}")), &log);
                check(&dir, &path, &old, &new, &what);
            }
        }
    }
    println!("{runs} fault points: {counts:?}");
    let _ = std::fs::remove_dir_all(&root);
}
