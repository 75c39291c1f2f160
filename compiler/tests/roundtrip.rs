//! The operator's loop on real programs and this machine's kernel: trace a workload with
//! strace, `scpc generate` a draft, `scpc build` it, run the same workload under `scpc exec`
//! (it works), run it with one call outside the trace (denied with the policy's action), then
//! the same in `--audit` mode (nothing denied; the would-be denial shows in `scpc explain`).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;
use support::SCPC;

/// The traced workload: real coreutils in a real shell.
const WORKLOAD: &str = "cat /etc/os-release | wc -l";

/// `scpc ARGS` in `dir`, which must succeed.
fn scpc(dir: &Path, args: &[&str]) {
    let (code, out, err) = support::scpc_in(dir, args);
    assert_eq!(code, 0, "scpc {args:?}:\n{out}{err}");
}

fn under(dir: &Path, filter: &str, script: &str) -> Output {
    Command::new(SCPC).current_dir(dir).args(["exec", filter, "--", "/bin/sh", "-c", script]).output().expect("runs")
}

fn kernel_log() -> String {
    Command::new("dmesg").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scpc-roundtrip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn trace_generate_build_exec() {
    support::need(&[support::Need::Program("strace"), support::Need::Program("dmesg")]);
    let dir = workdir("enforce");
    let expected = Command::new("/bin/sh").args(["-c", WORKLOAD]).output().expect("sh").stdout;
    let st = Command::new("strace").current_dir(&dir).args(["-f", "-o", "trace.txt", "/bin/sh", "-c", WORKLOAD]).status().expect("strace");
    assert!(st.success());
    scpc(&dir, &["generate", "trace.txt", "--name", "traced", "-o", "traced.scp"]);
    let draft = std::fs::read_to_string(dir.join("traced.scp")).expect("draft");
    assert!(draft.contains("allow execve") && draft.contains("default kill_process"), "{draft}");
    assert!(!draft.contains("allow uname"), "uname is not part of the workload:\n{draft}");
    scpc(&dir, &["check", "--deny-warnings", "traced.scp"]);
    scpc(&dir, &["build", "traced.scp", "--policy", "traced", "-o", "out", "--profile", "trace.txt"]);

    // the traced workload runs unharmed, with the same output
    let out = under(&dir, "out/traced.x86_64.bpf", WORKLOAD);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, expected);

    // one call outside the trace: uname(2), from the real uname program, is killed with
    // SIGSYS (the policy's default kill_process), after the traced part has run
    let out = under(&dir, "out/traced.x86_64.bpf", &format!("{WORKLOAD}; uname -s"));
    assert_eq!(out.stdout, expected, "{out:?}");
    // (dash execs the last command of `-c` itself, so the process killed may be the shell's)
    let killed = out.status.signal() == Some(libc::SIGSYS) || out.status.code() == Some(128 + libc::SIGSYS);
    assert!(killed, "expected uname killed by SIGSYS: {out:?}");

    // audit-only: nothing is denied, and the kernel logs what enforcement would kill
    scpc(&dir, &["build", "traced.scp", "--policy", "traced", "-o", "audit", "--audit"]);
    // the kernel log is a ring: what came after the last line seen now (all of it, once
    // that line has rotated out), not a count of lines, which stops growing when it is full
    let last_before = kernel_log().lines().last().unwrap_or_default().to_string();
    let out = under(&dir, "audit/traced.x86_64.bpf", &format!("{WORKLOAD}; uname -s"));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("Linux\n"), "{out:?}");
    let mut found = String::new();
    for _ in 0..50 {
        let now = kernel_log();
        let lines: Vec<&str> = now.lines().collect();
        let start = lines.iter().rposition(|l| *l == last_before).map_or(0, |i| i + 1);
        let log: Vec<String> = lines[start..].iter().map(|l| l.to_string()).collect();
        std::fs::write(dir.join("kernel.log"), log.join("\n")).expect("write log");
        let explained = Command::new(SCPC)
            .current_dir(&dir)
            .args(["explain", "--policy", "traced.scp", "--name", "traced", "kernel.log"])
            .output()
            .expect("explain");
        found = String::from_utf8_lossy(&explained.stdout).into_owned();
        if found.contains("x86_64 uname (63): log") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(found.contains("x86_64 uname (63): log (allowed and logged)"), "{found}");
    assert!(
        found.contains("decided by the default action of policy traced (`default kill_process`) (enforcing, it would be kill_process)"),
        "{found}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
