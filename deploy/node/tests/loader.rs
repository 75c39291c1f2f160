//! The loader on this machine's kernel, and `scpc-node run` as a node runs it. Filters are
//! installed only in child processes (this test program run again with
//! `SCPC_NODE_LOADER_CHILD=SCENARIO`), never in the test process itself.
#![allow(unsafe_code)]

use std::process::Command;
use std::sync::mpsc;

use libtest_mimic::{Arguments, Failed, Trial};
use scpc_node::bpf::{encode, Insn, BPF_JEQ};
use scpc_node::loader::{install, thread_id, Flags, LoadError};

const ALLOW: u32 = 0x7fff_0000;
const ERRNO_EPERM: u32 = 0x0005_0001;

/// getppid fails with EPERM; everything else is allowed.
fn deny_getppid() -> Vec<Insn> {
    vec![Insn::ld(0), Insn::jmp(BPF_JEQ, libc::SYS_getppid as u32, 0, 1), Insn::ret(ERRNO_EPERM), Insn::ret(ALLOW)]
}

/// The `Seccomp:` line of a task's status (0 none, 2 filter).
fn seccomp_mode(task: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{task}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Seccomp:")).map(|v| v.trim().to_string()).unwrap_or_default()
}

/// A thread that first runs `setup`, then waits until told to go and runs `after`.
fn helper_thread<T: Send + 'static>(
    setup: impl FnOnce() + Send + 'static,
    after: impl FnOnce() -> T + Send + 'static,
) -> (i64, mpsc::Sender<()>, std::thread::JoinHandle<T>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        setup();
        let _ = ready_tx.send(thread_id());
        let _ = go_rx.recv();
        after()
    });
    let tid = ready_rx.recv().expect("the helper thread starts");
    (tid, go_tx, handle)
}

/// In a child: a thread with a filter of its own cannot be synchronized, so TSYNC must fail
/// naming it, and install nothing on this thread either.
fn child_tsync_blocked() -> Result<(), String> {
    let own = vec![Insn::ret(ALLOW)];
    let (tid, go, handle) = helper_thread(
        move || {
            if let Err(e) = install(&own, Flags::default()) {
                eprintln!("the helper thread could not install its own filter: {e}");
            }
        },
        || (),
    );
    let result = install(&deny_getppid(), Flags { tsync: true, ..Flags::default() });
    let _ = go.send(());
    let _ = handle.join();
    match result {
        Err(LoadError::ThreadNotSynchronized { tid: t }) if t == tid => {}
        other => return Err(format!("TSYNC with thread {tid} holding its own filter: expected ThreadNotSynchronized, got {other:?}")),
    }
    // nothing was installed on the calling thread (no_new_privs alone was set)
    let mode = seccomp_mode("thread-self");
    if mode != "0" {
        return Err(format!("after the failed TSYNC this thread has Seccomp: {mode}"));
    }
    // SAFETY: getppid has no arguments and cannot fail.
    if unsafe { libc::getppid() } <= 0 {
        return Err("getppid failed: a filter is in force after all".into());
    }
    Ok(())
}

/// In a child: TSYNC puts the filter on a thread that has none, and the filter acts there.
fn child_tsync_applies() -> Result<(), String> {
    let (tid, go, handle) = helper_thread(
        || (),
        || {
            // SAFETY: a raw getppid call.
            let rc = unsafe { libc::syscall(libc::SYS_getppid) };
            (rc, std::io::Error::last_os_error().raw_os_error())
        },
    );
    install(&deny_getppid(), Flags { tsync: true, ..Flags::default() }).map_err(|e| format!("TSYNC failed: {e}"))?;
    let mode = seccomp_mode(&format!("self/task/{tid}"));
    let _ = go.send(());
    let (rc, errno) = handle.join().map_err(|_| "the helper thread panicked".to_string())?;
    if mode != "2" {
        return Err(format!("the other thread has Seccomp: {mode} after TSYNC"));
    }
    if (rc, errno) != (-1, Some(libc::EPERM)) {
        return Err(format!("getppid on the other thread returned {rc} (errno {errno:?}), not EPERM"));
    }
    Ok(())
}

/// Runs this program again as a child in `scenario`; its exit status and stderr.
fn child(scenario: &str) -> Result<(), Failed> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test program: {e}"))?;
    let out = Command::new(exe).env("SCPC_NODE_LOADER_CHILD", scenario).output().map_err(|e| format!("cannot run the child: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{scenario}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr)).into())
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("scpc-node-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn node(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scpc-node")).args(args).output().expect("scpc-node runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A filter for this machine: its architecture's calls allowed, getppid denied, others killed.
fn native_filter() -> Vec<Insn> {
    let host = scpc_node::run::host_arch().expect("the tests run on an architecture scpc knows");
    vec![
        Insn::ld(4),
        Insn::jmp(BPF_JEQ, host.audit_arch, 0, 4),
        Insn::ld(0),
        Insn::jmp(BPF_JEQ, libc::SYS_getppid as u32, 0, 1),
        Insn::ret(ERRNO_EPERM),
        Insn::ret(ALLOW),
        Insn::ret(0x8000_0000),
    ]
}

fn run_enforces_the_filter() -> Result<(), Failed> {
    let dir = scratch("run");
    let path = dir.join("f.bpf");
    std::fs::write(&path, encode(&native_filter())).map_err(|e| e.to_string())?;
    let (code, out, err) = node(&["run", path.to_str().unwrap_or_default(), "--", "cat", "/proc/self/status"]);
    if code != 0 {
        return Err(format!("exit {code}: {err}").into());
    }
    let field = |name: &str| out.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or("").to_string();
    if field("Seccomp:") != "2" || field("NoNewPrivs:") != "1" {
        return Err(format!("the command does not run under the filter:\n{out}").into());
    }
    let sha = scpc_node::Sha256::of(&encode(&native_filter())).to_string();
    let (code, _, err) = node(&["run", "--sha256", &sha, path.to_str().unwrap_or_default(), "--", "true"]);
    if code != 0 {
        return Err(format!("with the right --sha256: exit {code}: {err}").into());
    }
    Ok(())
}

fn run_refuses_bad_filters() -> Result<(), Failed> {
    let dir = scratch("refuse");
    let mut other = native_filter();
    other[1].k ^= 0x1; // the audit arch of no machine
    let mut too_far = native_filter();
    too_far[1].jf = 200;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("seven.bpf", vec![0; 7], "not a multiple of 8"),
        ("empty.bpf", Vec::new(), "the file is empty"),
        ("other-arch.bpf", encode(&other), "has no code for"),
        ("jump.bpf", encode(&too_far), "lands past the end"),
    ];
    for (name, bytes, says) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        let (code, out, err) = node(&["run", path.to_str().unwrap_or_default(), "--", "echo", "ran"]);
        if code != 1 || out.contains("ran") || !err.contains(says) {
            return Err(format!("{name}: exit {code}, stdout {out:?}, stderr {err:?}").into());
        }
    }
    let good = dir.join("good.bpf");
    std::fs::write(&good, encode(&native_filter())).map_err(|e| e.to_string())?;
    let wrong = scpc_node::Sha256::of(b"another file").to_string();
    let (code, out, err) = node(&["run", "--sha256", &wrong, good.to_str().unwrap_or_default(), "--", "echo", "ran"]);
    if code != 1 || out.contains("ran") || !err.contains("is damaged or not the one built") {
        return Err(format!("digest mismatch: exit {code}, {out:?}, {err:?}").into());
    }
    let (code, _, err) = node(&["run", "/nonexistent/f.bpf", "--", "true"]);
    if code != 2 || !err.contains("cannot read `/nonexistent/f.bpf`") {
        return Err(format!("missing file: exit {code}, {err:?}").into());
    }
    let (code, _, err) = node(&["run", good.to_str().unwrap_or_default()]);
    if code != 1 || !err.contains("no command given") {
        return Err(format!("no command: exit {code}, {err:?}").into());
    }
    Ok(())
}

fn a_missing_program_is_reported_before_the_filter_is_in_force() -> Result<(), Failed> {
    // a filter that kills on write(2): had it been installed first, the report could not be
    // printed and the program would die of SIGSYS instead
    let host = scpc_node::run::host_arch().expect("the tests run on an architecture scpc knows");
    let kill_write = [
        Insn::ld(4),
        Insn::jmp(BPF_JEQ, host.audit_arch, 0, 3),
        Insn::ld(0),
        Insn::jmp(BPF_JEQ, libc::SYS_write as u32, 0, 1),
        Insn::ret(0x8000_0000),
        Insn::ret(ALLOW),
    ];
    let dir = scratch("missing");
    let path = dir.join("f.bpf");
    std::fs::write(&path, encode(&kill_write)).map_err(|e| e.to_string())?;
    let (code, _, err) = node(&["run", path.to_str().unwrap_or_default(), "--", "no-such-program-scpc"]);
    // (127 for a command not found, as `env` says it)
    if code != 127 || !err.contains("`no-such-program-scpc`: command not found") {
        return Err(format!("exit {code}, stderr {err:?}").into());
    }
    Ok(())
}

/// A process started under a filter by `scpc-node run` shows that filter, byte for byte, to
/// PTRACE_SECCOMP_GET_FILTER (what `status` compares); a process without one shows none.
fn loaded_filters_are_read_back_byte_for_byte() -> Result<(), Failed> {
    let dir = scratch("readback");
    let path = dir.join("f.bpf");
    std::fs::write(&path, encode(&native_filter())).map_err(|e| e.to_string())?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_scpc-node"))
        .args(["run", path.to_str().unwrap_or_default(), "--", "sleep", "30"])
        .spawn()
        .map_err(|e| e.to_string())?;
    let pid = child.id() as i32;
    // the filter is in place once `scpc-node run` became `sleep`
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim() != "sleep" && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let got = scpc_node::loader::loaded_filters(pid);
    let _ = child.kill();
    let _ = child.wait();
    let got = got.map_err(|e| format!("reading the filters back: {e}"))?;
    if got != [native_filter()] {
        return Err(format!("read back {got:?}").into());
    }
    let mut plain = Command::new("sleep").arg("30").spawn().map_err(|e| e.to_string())?;
    let none = scpc_node::loader::loaded_filters(plain.id() as i32);
    let _ = plain.kill();
    let _ = plain.wait();
    match none {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => Err(format!("a process without a filter: {other:?}").into()),
    }
}

fn main() {
    if let Ok(scenario) = std::env::var("SCPC_NODE_LOADER_CHILD") {
        let result = match scenario.as_str() {
            "tsync-blocked" => child_tsync_blocked(),
            "tsync-applies" => child_tsync_applies(),
            other => Err(format!("unknown scenario {other}")),
        };
        if let Err(e) = result {
            eprintln!("{e}");
            std::process::exit(1);
        }
        std::process::exit(0);
    }
    let trials = vec![
        Trial::test("tsync_fails_when_a_thread_has_a_filter_of_its_own", || child("tsync-blocked")),
        Trial::test("tsync_puts_the_filter_on_every_thread", || child("tsync-applies")),
        Trial::test("run_enforces_the_filter", run_enforces_the_filter),
        Trial::test("run_refuses_bad_filters", run_refuses_bad_filters),
        Trial::test("loaded_filters_are_read_back_byte_for_byte", loaded_filters_are_read_back_byte_for_byte),
        Trial::test(
            "a_missing_program_is_reported_before_the_filter_is_in_force",
            a_missing_program_is_reported_before_the_filter_is_in_force,
        ),
    ];
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
