//! The operator's loop on real programs and this machine's kernel: trace a workload with
//! strace, `scpc generate` a draft, `scpc build` it, run the same workload under `scpc exec`
//! (it works), run it with one call outside the trace (denied with the policy's action), then
//! the same in `--audit` mode (nothing denied; the would-be denial shows in `scpc explain`).

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod kaudit;
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

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scpc-roundtrip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn trace_generate_build_exec() {
    support::need(&[support::Need::Program("strace")]);
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

    // audit-only: nothing is denied, and the kernel logs what enforcement would kill. The
    // extra call comes from a copy of uname in this test's own directory, so that its records
    // (matched by `exe`) are told apart from anything else the machine is logging.
    scpc(&dir, &["build", "traced.scp", "--policy", "traced", "-o", "audit", "--audit"]);
    let marker = dir.join("uname");
    std::fs::copy("/usr/bin/uname", &marker).expect("copy uname");
    let exe = format!("exe=\"{}\"", marker.display());
    let audit = kaudit::Listener::open().unwrap_or_else(|e| panic!("{e}"));
    let out = under(&dir, "audit/traced.x86_64.bpf", &format!("{WORKLOAD}; {} -s", marker.display()));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("Linux\n"), "{out:?}");
    let record = audit
        .wait_for(std::time::Duration::from_secs(10), |r| r.0.contains(&exe) && r.field("syscall") == Some("63"))
        .unwrap_or_else(|seen| panic!("no audit record of {exe} uname; saw {} others", seen.len()));
    std::fs::write(dir.join("audit.log"), record.audit_log_line() + "\n").expect("write log");
    let explained = Command::new(SCPC)
        .current_dir(&dir)
        .args(["explain", "--policy", "traced.scp", "--name", "traced", "audit.log"])
        .output()
        .expect("explain");
    let found = String::from_utf8_lossy(&explained.stdout).into_owned();
    assert!(found.contains("x86_64 uname (63): log (allowed and logged)"), "{found}");
    assert!(
        found.contains("decided by the default action of policy traced (`default kill_process`) (enforcing, it would be kill_process)"),
        "{found}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `strace -c` lists no `exit_group` (it does not return), yet every program makes it: a draft
/// from the summary alone still lets each of these real programs run to its end, exit 0 (the
/// draft always allows what every program needs to end).
#[test]
fn strace_c_drafts_let_true_ls_and_python_run_to_the_end() {
    support::need(&[support::Need::Program("strace"), support::Need::File("/usr/bin/python3")]);
    let dir = workdir("summary");
    let programs: [(&str, &[&str]); 3] =
        [("true", &["/bin/true"]), ("ls", &["/bin/ls", "/"]), ("python", &["/usr/bin/python3", "-c", "pass"])];
    for (name, argv) in programs {
        let summary = format!("{name}.strace-c.txt");
        let st = Command::new("strace").current_dir(&dir).args(["-c", "-o", &summary]).args(argv).output().expect("strace");
        assert!(st.status.success(), "{st:?}");
        let text = std::fs::read_to_string(dir.join(&summary)).expect("summary");
        assert!(!text.contains("exit_group"), "strace -c lists no exit_group:\n{text}");
        let scp = format!("{name}.scp");
        scpc(&dir, &["generate", &summary, "--name", name, "-o", &scp]);
        let draft = std::fs::read_to_string(dir.join(&scp)).expect("draft");
        let exit_group = draft.lines().find(|l| l.trim_start().starts_with("allow exit_group ")).unwrap_or_default();
        assert!(exit_group.ends_with("# every program needs it to end"), "{draft}");
        scpc(&dir, &["check", "--deny-warnings", &scp]);
        scpc(&dir, &["build", &scp, "-o", name]);
        let filter = format!("{name}/{name}.x86_64.bpf");
        let out = Command::new(SCPC).current_dir(&dir).args(["exec", &filter, "--"]).args(argv).output().expect("runs");
        assert_eq!(out.status.code(), Some(0), "{name} under its draft: {out:?}\n{draft}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
