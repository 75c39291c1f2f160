//! `scpc explain` on a corpus of audit lines in every format the kernel and auditd write, from
//! six architectures, with unreadable lines among them.

use std::process::Command;

use scpc::abi::Arch;
use scpc::import::audit::parse;
use scpc::policy::Action;

const CORPUS: &str = include_str!("explain/corpus.log");

#[test]
fn the_corpus_decodes_line_by_line() {
    let p = parse(CORPUS);
    // (line, pid, comm, arch, syscall, action)
    let want: &[(usize, u32, &str, Arch, &str, Action)] = &[
        (1, 9759, "nginx", Arch::X86_64, "execve", Action::KillProcess),
        (2, 9760, "nginx", Arch::X86_64, "ptrace", Action::KillProcess),
        (3, 9761, "redis-server", Arch::X86_64, "mount", Action::Errno(1)),
        (4, 9762, "python3", Arch::X86_64, "socket", Action::Log),
        (5, 9763, "my app", Arch::X86_64, "unshare", Action::KillThread),
        (6, 9764, "legacy", Arch::I386, "ptrace", Action::KillProcess),
        (7, 9765, "legacy", Arch::I386, "execve", Action::Log),
        (8, 9766, "x32tool", Arch::X32, "ptrace", Action::KillProcess),
        (9, 412, "mosquitto", Arch::Aarch64, "ptrace", Action::KillProcess),
        (10, 413, "mosquitto", Arch::Aarch64, "mount", Action::Errno(1)),
        (11, 414, "sensor-agent", Arch::Aarch64, "socket", Action::Log),
        (12, 415, "modbusd", Arch::Arm, "socket", Action::Errno(13)),
        (13, 416, "modbusd", Arch::Arm, "ptrace", Action::KillProcess),
        (14, 417, "modbusd", Arch::Arm, "bpf", Action::Trap(7)),
        (16, 2201, "riscv-agent", Arch::Riscv64, "kexec_load", Action::KillProcess),
        (17, 2202, "riscv-agent", Arch::Riscv64, "uname", Action::Log),
        (18, 2203, "nginx", Arch::X86_64, "init_module", Action::KillProcess),
        (19, 2204, "nginx", Arch::X86_64, "bpf", Action::Errno(38)),
        (20, 2205, "supervised", Arch::X86_64, "uname", Action::Notify),
        (21, 2206, "traced", Arch::X86_64, "kexec_load", Action::Trace(5)),
        (22, 2207, "plc-bridge", Arch::Aarch64, "bpf", Action::Errno(1)),
        (24, 2209, "nginx", Arch::X86_64, "ptrace", Action::KillProcess),
        (25, 2210, "modbusd", Arch::Arm, "mount", Action::KillProcess),
    ];
    let got: Vec<_> = p
        .records
        .iter()
        .map(|r| {
            (
                r.line,
                r.pid.unwrap_or(0),
                r.comm.clone().unwrap_or_default(),
                r.arch.expect("arch"),
                r.syscall.unwrap_or("?"),
                r.action.expect("action"),
            )
        })
        .collect();
    let want: Vec<_> = want.iter().map(|(l, p, c, a, s, act)| (*l, *p, c.to_string(), *a, *s, *act)).collect();
    assert_eq!(got, want);
    assert!(got.len() >= 20);
    assert_eq!(p.unreadable.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![26, 27], "{:?}", p.unreadable);
    assert_eq!(p.other_lines, 2, "the systemd line and the SYSCALL record");
    assert_eq!(p.records[4].exe.as_deref(), Some("/opt/my app/bin/app"));
}

#[test]
fn explain_names_the_rule_and_reports_unreadable_lines() {
    let out = Command::new(env!("CARGO_BIN_EXE_scpc"))
        .args(["explain", "--policy", "tests/explain/fleet.scp", "--name", "edge", "tests/explain/corpus.log"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "unreadable lines make it exit 1\n{stdout}\n{stderr}");
    assert!(stderr.contains("corpus.log:26: error: cannot read this seccomp record: no `code=` field"), "{stderr}");
    assert!(stderr.contains("corpus.log:27: error"), "{stderr}");
    let block = |line: usize| -> String {
        let head = format!("corpus.log:{line}: ");
        let mut lines = stdout.lines().skip_while(|l| !l.contains(&head));
        let first = lines.next().unwrap_or_default().to_string();
        let rest: Vec<&str> = lines.take_while(|l| l.starts_with("    ")).collect();
        format!("{first}\n{}", rest.join("\n"))
    };
    // ptrace on x86_64, i386, aarch64 and arm: the final guard rail on line 6
    for line in [2, 6, 9, 13] {
        assert!(block(line).contains("fleet.scp:6:3: `final kill_process ptrace"), "{}", block(line));
    }
    assert!(block(3).contains("fleet.scp:7:3: `errno(EPERM) mount`"), "{}", block(3));
    assert!(block(1).contains("the default action of policy edge"), "{}", block(1));
    assert!(block(8).contains("badarch"), "x32 is not a target: {}", block(8));
    // the socket record carries no arguments: both socket rules can have decided it
    assert!(block(4).contains("one of") && block(4).contains("fleet.scp:8:3") && block(4).contains("fleet.scp:9:3"), "{}", block(4));
    assert!(block(12).contains("fleet.scp:8:3") && !block(12).contains("one of"), "{}", block(12));
    // an audit-only build logs what enforcement would kill
    assert!(block(7).contains("it would be kill_process"), "{}", block(7));
    // a record the policy cannot produce is called out
    assert!(block(5).contains("does not decide this call this way"), "{}", block(5));
    assert!(stdout.contains("23 seccomp record(s), 2 unreadable, 2 other line(s) skipped"), "{stdout}");
}

#[test]
fn explain_json_is_one_document() {
    let out = Command::new(env!("CARGO_BIN_EXE_scpc")).args(["explain", "--json", "tests/explain/corpus.log"]).output().expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["records"].as_array().map(Vec::len), Some(23));
    assert_eq!(v["unreadable"][0]["line"], 26);
    assert_eq!(v["records"][7]["arch"], "x32");
    assert_eq!(v["records"][7]["syscall"], "ptrace");
}

/// Found by fuzzing: a field preceded by wide whitespace (U+2000, three bytes) made the
/// reader slice inside the character.
#[test]
fn wide_whitespace_before_a_field_is_read() {
    let line = "type=1326 audit(1.2:3):\u{2000}arch=c000003e syscall=41 code=0x80000000";
    let parsed = scpc::import::audit::parse(line);
    assert_eq!(parsed.records.len() + parsed.unreadable.len(), 1);
}
