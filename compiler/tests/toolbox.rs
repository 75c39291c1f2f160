//! The toolbox users of libseccomp, systemd, seccomp-tools and minijail have, as `scpc`
//! commands: `syscalls`, `groups`, `dump` (on real processes: one under `scpc exec`, one
//! that loaded a filter with libseccomp), readable `disasm` and `sim --trace`, completions,
//! manual pages, `--version`, `--color`, `--emit systemd`, and the small things of `exec`,
//! `fmt`, `explain` and the JSON diagnostics.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{need, scpc, scpc_in, Need, SCPC};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scpc-toolbox-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn syscalls_resolves_names_and_numbers_per_architecture() {
    let (code, out, err) = scpc(&["syscalls", "--arch", "aarch64", "openat", "63"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(" 56 ") && lines[0].contains("openat(int dfd"), "{out}");
    assert!(lines[1].contains("read(unsigned int fd") && lines[1].contains("@basic-io"), "{out}");
    let (code, out, _) = scpc(&["syscalls", "--arch", "x86_64", "--json", "257"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["name"], "openat");
    assert!(v[0]["groups"].as_array().is_some_and(|g| g.iter().any(|x| x == "@file-system")), "{out}");
    let (code, out, _) = scpc(&["syscalls", "--arch", "riscv64"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() > 300, "the whole table");
    let (code, _, err) = scpc(&["syscalls", "--arch", "x86_64", "opnat"]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean `openat`"), "{err}");
    let (code, _, err) = scpc(&["syscalls", "--arch", "x86_64", "99999"]);
    assert_eq!(code, 1);
    assert!(err.contains("no syscall of x86_64 has the number 99999"), "{err}");
}

#[test]
fn groups_lists_members_per_architecture() {
    let (code, out, err) = scpc(&["groups", "@basic-io", "--arch", "x86_64", "--arch", "arm"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("@basic-io (x86_64,") && out.contains("@basic-io (arm,"), "{out}");
    let arm = out.split("@basic-io (arm").nth(1).unwrap_or("");
    assert!(arm.contains("_llseek") && !out.split("@basic-io (arm").next().unwrap_or("").contains("_llseek"), "{out}");
    let (code, out, _) = scpc(&["groups", "--arch", "x86_64", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v.as_array().is_some_and(|g| g.len() >= 20), "every group");
    let (code, _, err) = scpc(&["groups", "@basic-oi"]);
    assert_eq!(code, 1);
    assert!(err.contains("@basic-io"), "{err}");
}

fn build(dir: &Path, text: &str, policy: &str) -> PathBuf {
    let src = dir.join(format!("{policy}.scp"));
    std::fs::write(&src, text).expect("write");
    let (code, _, err) = scpc(&["build", &s(&src), "--policy", policy, "--target", "x86_64", "-o", &s(dir)]);
    assert_eq!(code, 0, "{err}");
    dir.join(format!("{policy}.x86_64.bpf"))
}

/// Waits until `pid` runs `comm` under a seccomp filter.
fn wait_filtered(pid: u32, comm: &str) {
    let start = Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let now = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if status.contains("Seccomp:\t2") && now.trim() == comm {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "process {pid} never ran {comm} under a filter:\n{status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dump_reads_the_filter_of_a_process_under_scpc_exec_and_diff_proves_it_is_the_policy() {
    need(&[Need::Root, Need::Program("sleep")]);
    let dir = temp("dump-exec");
    let text = "policy sleeper {\n    target x86_64\n    default allow\n    errno(EPERM) ptrace, kexec_load\n}\n";
    let bpf = build(&dir, text, "sleeper");
    let child = Command::new(SCPC).args(["exec", &s(&bpf), "--", "sleep", "60"]).spawn().expect("scpc exec");
    let child = Killed(child);
    let pid = child.0.id();
    wait_filtered(pid, "sleep");
    let out = dir.join("dumped");
    let (code, _, err) = scpc(&["dump", "--pid", &pid.to_string(), "-o", &s(&out)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("its only filter"), "{err}");
    let dumped = out.join(format!("{pid}.0.bpf"));
    assert_eq!(std::fs::read(&dumped).expect("dumped"), std::fs::read(&bpf).expect("built"), "the bytes loaded are the bytes built");
    let (code, out_text, err) = scpc(&["diff", &s(&dir.join("sleeper.scp")), &s(&dumped)]);
    assert_eq!(code, 0, "{out_text}{err}");
    assert!(out_text.contains("no differences"), "{out_text}");
    // a policy that is not the one loaded
    let other = dir.join("other.scp");
    std::fs::write(&other, "policy other {\n    target x86_64\n    default allow\n    errno(EPERM) kexec_load\n}\n").expect("write");
    let (code, out_text, _) = scpc(&["diff", &s(&other), &s(&dumped)]);
    assert_eq!(code, 1, "{out_text}");
    assert!(out_text.contains("ptrace"), "{out_text}");
    // the process ran on
    assert!(std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default().contains("State:\tS"), "still sleeping");
    drop(child);
    let (code, _, err) = scpc(&["dump", "--pid", &std::process::id().to_string()]);
    assert_eq!(code, 1, "this test runs under no filter: {err}");
    assert!(err.contains("no seccomp filter"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A program that loads a filter with libseccomp (Debian's libseccomp-dev), says so, and waits.
const LIBSECCOMP_PROGRAM: &str = r#"
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>
int main(void) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return 2;
    if (seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) return 3;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ptrace), 0)) return 4;
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, 17))) return 5;
    if (seccomp_load(ctx)) return 6;
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
"#;

#[test]
fn dump_reads_a_filter_libseccomp_loaded_and_diff_compares_it_with_a_policy() {
    need(&[Need::Root, Need::Program("cc"), Need::File("/usr/include/seccomp.h")]);
    let dir = temp("dump-libseccomp");
    std::fs::write(dir.join("loader.c"), LIBSECCOMP_PROGRAM).expect("write");
    let exe = dir.join("loader");
    let cc = Command::new("cc").arg(dir.join("loader.c")).arg("-o").arg(&exe).arg("-lseccomp").output().expect("cc");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let child = Command::new(&exe).stdout(Stdio::piped()).spawn().expect("loader");
    let mut child = Killed(child);
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("stdout")).read_line(&mut line).expect("ready");
    assert_eq!(line.trim(), "ready");
    let pid = child.0.id();
    let out = dir.join("dumped");
    let (code, _, err) = scpc(&["dump", "--pid", &pid.to_string(), "-o", &s(&out)]);
    assert_eq!(code, 0, "{err}");
    let dumped = out.join(format!("{pid}.0.bpf"));
    let (code, listing, _) = scpc(&["disasm", &s(&dumped)]);
    assert_eq!(code, 0);
    assert!(listing.contains("jeq ptrace") && listing.contains("no build manifest"), "libseccomp's filter, named:\n{listing}");
    let policy = dir.join("same.scp");
    std::fs::write(
        &policy,
        "policy same {\n    target x86_64\n    default allow\n    errno(EPERM) ptrace\n    errno(EACCES) socket if family == 17\n}\n",
    )
    .expect("write");
    let (code, text, err) = scpc(&["diff", "--json", &s(&policy), &s(&dumped)]);
    assert_eq!(code, 1, "libseccomp's filter is not quite the policy: {err}");
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    // The differences are libseccomp's choices, each known: it compares all 64 bits of
    // socket's `int family` (the policy the 32 the kernel reads), kills x86_64 numbers with the
    // top bit set (the policy's default allows them), and lets nr -1 through on x32's half (a
    // tracer's "skip this call"), which the policy, not targeting x32, kills.
    let diffs = report["differences"].as_array().expect("differences");
    assert!(!diffs.is_empty());
    for d in diffs {
        let (arch, lo, hi) = (d["arch"].as_str().unwrap_or(""), d["nr_lo"].as_u64().unwrap_or(0), d["nr_hi"].as_u64().unwrap_or(0));
        let known = (arch == "x86_64" && d["syscall"] == "socket" && d["whatever_the_arguments"] == false)
            || (arch == "x86_64" && lo == 0x8000_0000 && hi == 0xbfff_ffff && d["example"]["new"] == "kill_process")
            || (arch == "x32" && lo == 0xffff_ffff && hi == 0xffff_ffff && d["example"]["new"] == "allow");
        assert!(known, "an unexpected difference: {d}");
    }
    let socket = diffs.iter().find(|d| d["syscall"] == "socket").expect("socket differs");
    for r in socket["regions"].as_array().into_iter().flatten() {
        let conds = r["conditions"].to_string();
        assert!(conds.contains("0x") && r["old"] == "errno(13)" && r["new"] == "allow", "only where the upper half is set: {r}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn disasm_names_what_it_sees_and_sim_traces_what_runs() {
    let dir = temp("disasm");
    let text = "policy p {\n    target x86_64\n    default errno(EPERM)\n    allow read, write, pread64, pwrite64\n    allow socket if family == AF_UNIX\n}\n";
    let bpf = build(&dir, text, "p");
    let (code, out, err) = scpc(&["disasm", &s(&bpf)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("# policy: p") && out.contains("# sha256: ") && out.contains("# targets: x86_64"), "header:\n{out}");
    assert!(out.contains("socket's family (int) on x86_64"), "the argument named:\n{out}");
    assert!(out.contains("AF_UNIX"), "the constant named:\n{out}");
    assert!(out.lines().any(|l| l.contains("socket") && l.trim_start().starts_with(|c: char| c.is_ascii_digit())), "{out}");
    // a listing of every instruction seccomp accepts, none as .insn
    let all = [
        (0x00u16, 0u8, 0u8, 7u32), // ld #7
        (0x02, 0, 0, 3),           // st M[3]
        (0x60, 0, 0, 3),           // ld M[3]
        (0x01, 0, 0, 2),           // ldx #2
        (0x03, 0, 0, 1),           // stx M[1]
        (0x61, 0, 0, 1),           // ldx M[1]
        (0x0c, 0, 0, 0),           // add x
        (0x84, 0, 0, 0),           // neg
        (0x07, 0, 0, 0),           // tax
        (0x87, 0, 0, 0),           // txa
        (0x80, 0, 0, 0),           // ld len
        (0x1d, 0, 0, 0),           // jeq x
        (0x16, 0, 0, 0),           // ret a
    ];
    let bytes: Vec<u8> =
        all.iter().flat_map(|(c, t, f, k)| [c.to_le_bytes().to_vec(), vec![*t, *f], k.to_le_bytes().to_vec()].concat()).collect();
    let raw = dir.join("raw.bpf");
    std::fs::write(&raw, bytes).expect("write");
    let (code, out, err) = scpc(&["disasm", &s(&raw)]);
    assert_eq!(code, 0, "{err}");
    for m in ["ld #0x7", "st M[3]", "ld M[3]", "ldx #0x2", "stx M[1]", "ldx M[1]", "add x", "neg", "tax", "txa", "ld len", "jeq x", "ret a"]
    {
        assert!(out.contains(m), "`{m}` in\n{out}");
    }
    assert!(!out.contains(".insn"), "{out}");
    let (code, out, err) = scpc(&["sim", &s(&bpf), "--arch", "x86_64", "--trace", "socket", "1"]);
    assert_eq!(code, 0, "{err}");
    let steps: Vec<&str> = out.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).collect();
    assert!(steps.first().is_some_and(|l| l.contains("ld arch")), "{out}");
    assert!(steps.iter().any(|l| l.contains("ld args[0].lo")), "the argument is read:\n{out}");
    assert!(steps.last().is_some_and(|l| l.contains("ret allow")), "{out}");
    assert!(out.lines().last().is_some_and(|l| l.starts_with("allow (")), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_man_version_and_color() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = scpc(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("syscalls") && out.contains("dump"), "{shell}: the subcommands are completed");
    }
    let (code, out, _) = scpc(&["man"]);
    assert_eq!(code, 0);
    assert!(out.starts_with(".ie") || out.contains(".TH scpc"), "{}", &out[..out.len().min(200)]);
    let dir = temp("man");
    let (code, _, err) = scpc(&["man", "-o", &s(&dir)]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("scpc.1").exists() && dir.join("scpc-build.1").exists() && dir.join("scpc-import.1").exists());
    let page = std::fs::read_to_string(dir.join("scpc-build.1")).expect("page");
    assert!(page.contains("scpc\\-build") || page.contains("scpc-build"), "{page}");
    let (code, out, _) = scpc(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains("ABI tables: Linux 6.") && out.contains("x86_64, x32, i386, aarch64, arm, riscv64"), "{out}");
    // colors: on a pipe, none unless forced
    let bad = dir.join("bad.scp");
    std::fs::write(&bad, "policy p {\n target x86_64\n default allow\n allow opnat\n}\n").expect("write");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = Command::new(SCPC);
        c.args(args).env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE");
        for (k, v) in env {
            c.env(k, v);
        }
        String::from_utf8_lossy(&c.output().expect("runs").stderr).into_owned()
    };
    let esc = '\u{1b}';
    assert!(!run(&["check", &s(&bad)], &[]).contains(esc), "a pipe gets no colors");
    assert!(run(&["check", &s(&bad)], &[("CLICOLOR_FORCE", "1")]).contains(esc), "CLICOLOR_FORCE");
    assert!(run(&["--color", "always", "check", &s(&bad)], &[("NO_COLOR", "1")]).contains(esc), "--color always wins");
    assert!(!run(&["--color", "never", "check", &s(&bad)], &[("CLICOLOR_FORCE", "1")]).contains(esc), "--color never wins");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exec_exits_as_env_does_and_refuses_a_policy_source() {
    need(&[Need::Root]);
    let dir = temp("exec");
    let bpf = build(&dir, "policy e {\n    target x86_64\n    default allow\n}\n", "e");
    let (code, _, err) = scpc(&["exec", &s(&bpf), "--", "/nonexistent/program"]);
    assert_eq!(code, 127, "{err}");
    let (code, _, err) = scpc(&["exec", &s(&bpf), "--", "no-such-program-on-path"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("command not found"), "{err}");
    let plain = dir.join("plain.txt");
    std::fs::write(&plain, "not a program\n").expect("write");
    let (code, _, err) = scpc(&["exec", &s(&bpf), "--", &s(&plain)]);
    assert_eq!(code, 126, "not executable: {err}");
    let (code, _, err) = scpc(&["exec", &s(&bpf), "--", &s(&dir)]);
    assert_eq!(code, 126, "a directory: {err}");
    let (code, _, err) = scpc(&["exec", &s(&dir.join("e.scp")), "--", "true"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("policy source") && err.contains("scpc build"), "{err}");
    let (code, _, err) = scpc(&["disasm", &s(&dir.join("e.scp"))]);
    assert_eq!(code, 1);
    assert!(err.contains("policy source"), "{err}");
    let (code, _, _) = scpc(&["exec", &s(&bpf), "--", "true"]);
    assert_eq!(code, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fmt_reads_standard_input_and_check_prints_a_diff() {
    let messy = "policy p {\ntarget x86_64\n  default   allow\n}\n";
    let mut child = Command::new(SCPC).args(["fmt", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("fmt -");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), messy.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("runs");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "policy p {\n    target x86_64\n    default allow\n}\n");
    let dir = temp("fmt");
    std::fs::write(dir.join("m.scp"), messy).expect("write");
    let (code, out, err) = scpc_in(&dir, &["fmt", "--check", "m.scp"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("--- a/m.scp")
            && out.contains("+++ b/m.scp")
            && out.contains("-  default   allow")
            && out.contains("+    default allow"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("m.scp")).expect("read"), messy, "--check changes nothing");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_diagnostics_carry_label_ends_and_a_sole_label_is_primary() {
    let dir = temp("json");
    std::fs::write(dir.join("j.scp"), "policy p {\n    target x86_64\n    default allow\n    allow opnat\n}\n").expect("write");
    let (code, out, _) = scpc_in(&dir, &["check", "--message-format", "json", "j.scp"]);
    assert_eq!(code, 1);
    let d: serde_json::Value = serde_json::from_str(out.lines().next().expect("a diagnostic")).expect("json");
    let labels = d["labels"].as_array().expect("labels");
    assert_eq!(labels.len(), 1, "{d}");
    assert_eq!(labels[0]["primary"], true, "{d}");
    assert_eq!((labels[0]["line"].as_u64(), labels[0]["column"].as_u64()), (Some(4), Some(11)), "{d}");
    assert_eq!((labels[0]["end_line"].as_u64(), labels[0]["end_column"].as_u64()), (Some(4), Some(16)), "{d}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explain_keeps_the_records_of_the_process_asked_for() {
    let dir = temp("explain");
    let log = dir.join("audit.log");
    std::fs::write(
        &log,
        "type=SECCOMP msg=audit(1700000000.100:1): auid=0 uid=0 gid=0 ses=1 pid=100 comm=\"web\" exe=\"/usr/bin/web\" sig=0 arch=c000003e syscall=101 compat=0 ip=0x1 code=0x50000\n\
         type=SECCOMP msg=audit(1700000100.100:2): auid=0 uid=0 gid=0 ses=1 pid=200 comm=\"other\" exe=\"/usr/bin/other\" sig=0 arch=c000003e syscall=101 compat=0 ip=0x1 code=0x50000\n\
         type=SECCOMP msg=audit(1700000200.100:3): auid=0 uid=0 gid=0 ses=1 pid=100 comm=\"web\" exe=\"/usr/bin/web\" sig=0 arch=c000003e syscall=0 compat=0 ip=0x1 code=0x50000\n",
    )
    .expect("write");
    let count = |args: &[&str]| {
        let mut a = vec!["explain", "--json"];
        a.extend_from_slice(args);
        let l = s(&log);
        a.push(&l);
        let (code, out, err) = scpc(&a);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v["records"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&["--pid", "100"]), 2);
    assert_eq!(count(&["--comm", "other"]), 1);
    assert_eq!(count(&["--comm", "web", "--since", "1700000150"]), 1);
    assert_eq!(count(&["--since", "2023-11-14T22:15:00"]), 2, "1700000100 is 22:15:00");
    assert_eq!(count(&["--since", "2023-11-14T22:15:01"]), 1);
    let (code, _, err) = scpc(&["explain", "--since", "yesterday", &s(&log)]);
    assert_eq!(code, 2, "a usage error: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_texts_say_what_users_asked() {
    let (_, out, _) = scpc(&["status", "--help"]);
    assert!(!out.contains("--operator"), "{out}");
    let (_, out, _) = scpc(&["deploy", "--help"]);
    assert!(out.contains("--operator"), "{out}");
    let (_, out, _) = scpc(&["build", "--help"]);
    assert!(out.contains("builtin (") && out.contains("oci") && out.contains("systemd"), "{out}");
}

#[test]
fn emit_systemd_writes_a_drop_in_or_lists_what_systemd_cannot_say() {
    let dir = temp("systemd");
    let src = dir.join("s.scp");
    std::fs::write(
        &src,
        "policy allowlist {\n    target x86_64, aarch64\n    default errno(EPERM)\n    allow read, write, close, execve, exit, exit_group, getrlimit, rt_sigreturn, clock_gettime, gettimeofday, time, nanosleep, clock_nanosleep\n}\n\
         policy denylist {\n    target x86_64\n    default allow\n    kill_process ptrace, kexec_load\n}\n\
         policy rich {\n    target x86_64\n    default kill_thread\n    allow socket if family == AF_UNIX\n    errno(EACCES) openat\n    allow read on x86_64\n    trap write\n}\n",
    )
    .expect("write");
    let (code, _, err) = scpc(&["build", &s(&src), "--policy", "allowlist", "--emit", "systemd", "-o", &s(&dir)]);
    assert_eq!(code, 0, "{err}");
    let conf = std::fs::read_to_string(dir.join("allowlist.systemd.conf")).expect("drop-in");
    assert!(conf.contains("SystemCallArchitectures=x86-64 arm64"), "{conf}");
    assert!(conf.contains("SystemCallFilter=") && conf.contains(" read ") || conf.contains("read"), "{conf}");
    assert!(conf.contains("SystemCallErrorNumber=EPERM"), "{conf}");
    assert!(!conf.contains("~"), "{conf}");
    let (code, _, err) = scpc(&["build", &s(&src), "--policy", "denylist", "--emit", "systemd", "-o", &s(&dir)]);
    assert_eq!(code, 0, "{err}");
    let conf = std::fs::read_to_string(dir.join("denylist.systemd.conf")).expect("drop-in");
    assert!(conf.contains("SystemCallFilter=~kexec_load ptrace"), "{conf}");
    assert!(!conf.contains("SystemCallErrorNumber"), "kill: no errno:\n{conf}");
    let (code, _, err) = scpc(&["build", &s(&src), "--policy", "rich", "--emit", "systemd", "-o", &s(&dir.join("rich"))]);
    assert_eq!(code, 1, "{err}");
    for reason in ["argument condition", "second deny action", "kill_thread", "trap"] {
        assert!(err.contains(reason), "`{reason}` in {err}");
    }
    assert!(!dir.join("rich").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&dir);
}
