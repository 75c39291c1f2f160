//! The holes a red-team review found in the checker (issue 14), each kept as the attack that
//! found it: a policy that compiled to a filter looser than its source, a wrong decision, a
//! crash or a hang. Each test fails on the code before the fix.

#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use scpc::abi::Arch;
use scpc::policy::Action;

fn scpc(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scpc")).current_dir(dir).args(args).env("NO_COLOR", "1").output().expect("run scpc");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scpc-red-team-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// The codes of the errors (not warnings) `check_source` reports.
fn error_codes(text: &str) -> Vec<String> {
    let (_, diags, _) = scpc::check_source("t.scp", text);
    diags.iter().filter(|d| scpc_lang::diag::is_error(d.as_ref())).filter_map(|d| d.code().map(|c| c.to_string())).collect()
}

fn codes(text: &str) -> Vec<String> {
    let (_, diags, _) = scpc::check_source("t.scp", text);
    diags.iter().filter_map(|d| d.code().map(|c| c.to_string())).collect()
}

/// `scpc build` on `text`'s policy `leaf`: exit status, stderr, and whether it wrote anything.
fn build_leaf(tag: &str, text: &str) -> (i32, String, bool) {
    let dir = scratch(tag);
    std::fs::write(dir.join("p.scp"), text).expect("write");
    let (code, _, err) = scpc(&dir, &["build", "p.scp", "--policy", "leaf", "-o", "out"]);
    let wrote = dir.join("out").exists();
    (code, err, wrote)
}

// ---- 1. every layer of the chain is checked by every command that compiles ----

const FINAL_LOOSENED_IN_THE_MIDDLE: &str = "policy base {
    target x86_64
    default errno(EPERM)
    final kill_process ptrace
}
policy mid extends base {
    allow ptrace  # scpc: allow(attack_surface)
}
policy leaf extends mid {
    allow getpid
}
";

#[test]
fn build_refuses_a_final_rule_loosened_by_a_middle_layer() {
    let (code, err, wrote) = build_leaf("final-mid", FINAL_LOOSENED_IN_THE_MIDDLE);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("scpc::resolve::final_override"), "{err}");
    assert!(!wrote, "nothing may be written");
    // the library's resolve (what build, diff and explain use) reports it too
    let mut map = scpc_lang::source::SourceMap::new();
    let mut diags = scpc_lang::diag::Diagnostics::new();
    let loader = scpc_lang::include::MemLoader { files: [("p.scp".to_string(), FINAL_LOOSENED_IN_THE_MIDDLE.to_string())].into() };
    let unit = scpc::load("p.scp", &loader, &mut map, &mut diags).expect("loads");
    scpc::sema::resolve(&unit, "leaf", &scpc::sema::Options::default(), &mut diags);
    assert!(diags.iter().any(|d| d.code().is_some_and(|c| c.to_string() == "scpc::resolve::final_override")), "{diags:?}");
}

#[test]
fn build_refuses_a_parent_rule_on_an_unknown_architecture() {
    let text = "policy base {
    target x86_64, i386
    default errno(EPERM)
    kill_process ptrace on X86_64, i686
}
policy leaf extends base {
    allow getpid
}
";
    let (code, err, wrote) = build_leaf("arch-parent", text);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("scpc::resolve::unknown_arch") && err.contains("i686"), "{err}");
    assert!(!wrote);
}

#[test]
fn build_refuses_a_parent_action_the_leaf_kernel_lacks() {
    let text = "policy base {
    target x86_64
    default errno(EPERM)
    log ptrace  # scpc: allow(attack_surface)
}
policy leaf extends base {
    kernel >= 3.5
    allow getpid
}
";
    let (code, err, wrote) = build_leaf("log-parent", text);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("scpc::typeck::action_too_new"), "{err}");
    assert!(!wrote);
}

// ---- 3. a const may not redefine a uapi constant, errno or signal ----

#[test]
fn a_const_cannot_shadow_a_uapi_constant() {
    let text = "const PROT_EXEC = 0
policy p {
    target x86_64
    default allow
    kill_process mprotect if prot & PROT_EXEC != 0
}
";
    assert_eq!(error_codes(text), ["scpc::resolve::shadows_uapi"]);
    for name in ["EPERM", "SIGKILL", "O_TMPFILE"] {
        let text = format!("const {name} = 1\npolicy p {{\n target x86_64\n default allow\n}}\n");
        assert_eq!(error_codes(&text), ["scpc::resolve::shadows_uapi"], "{name}");
    }
}

#[test]
fn a_const_in_an_included_file_cannot_shadow_either() {
    let dir = scratch("shadow-include");
    std::fs::write(dir.join("consts.scp"), "const PROT_EXEC = 0\n").expect("write");
    std::fs::write(
        dir.join("p.scp"),
        "include \"consts.scp\"\npolicy p {\n  target x86_64\n  default allow\n  kill_process mprotect if prot & PROT_EXEC != 0\n}\n",
    )
    .expect("write");
    let (code, out, _) = scpc(&dir, &["check", "--message-format", "json", "p.scp"]);
    assert_eq!(code, 1);
    assert!(out.contains("scpc::resolve::shadows_uapi") && out.contains("consts.scp"), "{out}");
}

// ---- 8. action data is evaluated on every architecture the rule applies to ----

#[test]
fn action_data_that_differs_by_architecture_is_an_error() {
    let text = "policy p {
    target x86_64, arm
    default allow
    errno(O_DIRECT >> 8) ptrace
}
";
    assert_eq!(error_codes(text), ["scpc::typeck::action_differs_by_arch"]);
    // `on` narrows where it is evaluated: one value per rule, each right for its architecture
    let split = "policy p {
    target x86_64, arm
    default allow
    errno(O_DIRECT >> 8) ptrace on arm
    errno(O_DIRECT >> 8) ptrace on x86_64
}
";
    let (checked, diags, _) = scpc::check_source("t.scp", split);
    assert!(!diags.has_errors(), "{diags:?}");
    let p = &checked.policies["p"];
    for (arch, errno) in [(Arch::Arm, 256u16), (Arch::X86_64, 64)] {
        let table = arch.table();
        let d = scpc::eval::decide(p, table.audit_arch, table.syscall("ptrace").expect("ptrace").nr, &[0; 6]);
        assert_eq!(d.action, Action::Errno(errno), "{arch}");
    }
    // and `--target arm` cannot pick one of the values: the same error
    let dir = scratch("action-arch");
    std::fs::write(dir.join("p.scp"), text).expect("write");
    let (code, _, err) = scpc(&dir, &["build", "p.scp", "--policy", "p", "--target", "arm", "-o", "out"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("action_differs_by_arch"), "{err}");
}

// ---- 9. the implicit badarch follows the kernel ----

#[test]
fn the_implicit_badarch_is_kill_thread_before_4_14() {
    let old = "policy p {\n  target x86_64\n  kernel >= 3.17\n  default allow\n}\n";
    let (checked, diags, _) = scpc::check_source("t.scp", old);
    assert!(!diags.has_errors(), "{diags:?}");
    let p = &checked.policies["p"];
    assert_eq!(p.badarch, Action::KillThread);
    let filters = scpc::artifact::compile(p, &scpc::profile::Profile::uniform()).expect("compiles");
    let data = scpc::bpf::sim::SeccompData { nr: 0, arch: Arch::Aarch64.table().audit_arch, instruction_pointer: 0, args: [0; 6] };
    let ret = scpc::bpf::sim::run(&filters[0].program, &data).expect("runs").ret;
    assert_eq!(ret, 0, "SECCOMP_RET_KILL_THREAD, which a 3.17 kernel knows");
    let new = "policy p {\n  target x86_64\n  kernel >= 4.14\n  default allow\n}\n";
    let (checked, _, _) = scpc::check_source("t.scp", new);
    assert_eq!(checked.policies["p"].badarch, Action::KillProcess);
}

// ---- 10. masks wider than the argument; conditions fixed by the width ----

#[test]
fn a_mask_wider_than_the_argument_is_an_error() {
    let text = "policy p {\n  target x86_64\n  default allow\n  kill_process openat if flags & 0x100000000 != 0\n}\n";
    assert_eq!(error_codes(text), ["scpc::typeck::mask_too_wide"]);
    // a complement of a small mask is a negative number, taken at the width: fine
    let ok = "policy p {\n  target x86_64\n  default allow\n  errno(EPERM) openat if flags & ~O_CLOEXEC == O_RDONLY\n}\n";
    assert!(codes(ok).is_empty(), "{:?}", codes(ok));
}

#[test]
fn a_condition_the_width_decides_gets_a_lint() {
    for cond in ["fd <= 0xffffffff", "flags & 3 == 4", "fd < 0", "flags >= 0", "flags & 0 != 0", "flags & 1 in {2, 4}"] {
        let syscall = if cond.starts_with("fd") { "read" } else { "openat" };
        let text = format!("policy p {{\n  target x86_64\n  default allow\n  errno(EPERM) {syscall} if {cond}\n}}\n");
        assert_eq!(codes(&text), ["scpc::lint::constant_condition"], "{cond}");
    }
    let fine = "policy p {\n  target x86_64\n  default allow\n  errno(EPERM) read if fd <= 2\n}\n";
    assert!(codes(fine).is_empty());
}

// ---- 11. crashes and hangs: every recursive pass bounded or iterative ----

/// Runs `scpc check` on `text`; it must end with exit 0 or 1 (never a crash), and the
/// diagnostics it prints are returned.
fn check_survives(tag: &str, text: &str) -> (i32, String) {
    let dir = scratch(tag);
    std::fs::write(dir.join("p.scp"), text).expect("write");
    let (code, out, err) = scpc(&dir, &["check", "--message-format", "json", "p.scp"]);
    assert!(code == 0 || code == 1, "{tag}: exit {code} (a crash?)\n{}", &err[..err.len().min(2000)]);
    assert!(!err.contains("panicked") && !err.contains("overflow"), "{tag}: {err}");
    (code, out)
}

#[test]
fn a_long_or_chain_is_refused_not_a_stack_overflow() {
    let terms: Vec<String> = (0..20_000).map(|i| format!("{}", i % 7)).collect();
    let text = format!("policy p {{\n  target x86_64\n  default allow\n  errno(EPERM) read if fd == {}\n}}\n", terms.join(" | "));
    let (code, out) = check_survives("or-chain", &text);
    assert_eq!(code, 1);
    assert!(out.contains("scpc::syntax::too_long"), "{out}");
    // at the cap it is accepted and checks
    let terms: Vec<String> = (0..scpc_lang::syntax::MAX_DEPTH - 1).map(|i| format!("{}", i % 7)).collect();
    let text = format!("policy p {{\n  target x86_64\n  default allow\n  errno(EPERM) read if fd == {}\n}}\n", terms.join(" | "));
    let (code, out) = check_survives("or-chain-cap", &text);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn comments_do_not_reset_the_nesting_count() {
    let text = format!("policy p {{\n  target x86_64\n  default allow\n  errno(EPERM) read if fd == {}1\n}}\n", "-#\n".repeat(30_000));
    let (code, out) = check_survives("minus-comment", &text);
    assert_eq!(code, 1);
    assert!(out.contains("scpc::syntax::too_deep"), "{out}");
    let text = format!("policy p {{\n  target x86_64\n  default allow\n  errno(EPERM) read if fd == {}1\n}}\n", "-#\n".repeat(300));
    let (_, out) = check_survives("minus-comment-300", &text);
    assert!(out.contains("scpc::syntax::too_deep"), "300 levels are past the cap of 100: {out}");
}

#[test]
fn long_chains_of_consts_and_groups_check() {
    let mut text = String::from("const C0 = 1\n");
    for i in 1..12_000 {
        text.push_str(&format!("const C{i} = C{} | 1\n", i - 1));
    }
    text.push_str("policy p {\n  target x86_64\n  default allow\n  errno(EPERM) read if fd == C11999\n}\n");
    let (code, out) = check_survives("const-chain", &text);
    assert_eq!(code, 0, "{out}");

    let mut text = String::from("group g0 = read\n");
    for i in 1..30_000 {
        text.push_str(&format!("group g{i} = @g{}, write\n", i - 1));
    }
    text.push_str("policy p {\n  target x86_64\n  default errno(EPERM)\n  allow @g29999\n}\n");
    let (code, out) = check_survives("group-chain", &text);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_long_extends_chain_is_refused_once() {
    let mut text = String::from("policy p0 {\n  target x86_64\n  default allow\n}\n");
    for i in 1..3_000 {
        text.push_str(&format!("policy p{i} extends p{} {{\n  errno(EPERM) getpid\n}}\n", i - 1));
    }
    let (code, out) = check_survives("extends-chain", &text);
    assert_eq!(code, 1);
    let deep: Vec<&str> = out.lines().filter(|l| l.contains("scpc::resolve::extends_too_deep")).collect();
    assert_eq!(deep.len(), 1, "reported once, by the first policy past the cap: {deep:?}");
    assert!(deep[0].contains(&format!("p{}", scpc::sema::MAX_EXTENDS_DEPTH)), "{}", deep[0]);
    // building a policy past the cap says why
    let dir = scratch("extends-build");
    std::fs::write(dir.join("p.scp"), &text).expect("write");
    let (code, _, err) = scpc(&dir, &["build", "p.scp", "--policy", "p2999", "-o", "out"]);
    assert_eq!(code, 1);
    assert!(err.contains("p2999") && err.contains("extends_too_deep"), "{}", &err[..err.len().min(3000)]);
}

// ---- 12. includes: regular files only, capped, from the allowed directories ----

/// Runs scpc, killing it if it has not ended within a minute (a FIFO include used to block
/// forever): `None` if it had to be killed.
fn scpc_bounded(dir: &Path, args: &[&str]) -> Option<(i32, String, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scpc"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn scpc");
    for _ in 0..600 {
        if child.try_wait().expect("wait").is_some() {
            let out = child.wait_with_output().expect("output");
            return Some((
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into(),
                String::from_utf8_lossy(&out.stderr).into(),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

const POLICY_TAIL: &str = "policy p {\n  target x86_64\n  default allow\n}\n";

#[test]
fn a_fifo_include_is_refused_without_blocking() {
    let dir = scratch("fifo");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::write(dir.join("p.scp"), format!("include \"fifo\"\n{POLICY_TAIL}")).expect("write");
    let (code, out, _) = scpc_bounded(&dir, &["check", "--message-format", "json", "p.scp"]).expect("scpc blocked on the FIFO");
    assert_eq!(code, 1);
    assert!(out.contains("scpc::include::not_a_file") && out.contains("not a regular file"), "{out}");
}

#[test]
fn devices_and_files_outside_the_tree_are_refused_unread() {
    let dir = scratch("outside");
    for (path, code) in [("/dev/zero", "scpc::include::outside"), ("/etc/passwd", "scpc::include::outside")] {
        std::fs::write(dir.join("p.scp"), format!("include \"{path}\"\n{POLICY_TAIL}")).expect("write");
        let (status, out, err) = scpc_bounded(&dir, &["check", "--message-format", "json", "p.scp"]).expect("ends");
        assert_eq!(status, 1, "{path}");
        assert!(out.contains(code), "{path}: {out}");
        assert!(!out.contains("root:") && !err.contains("root:"), "{path}: the file's lines were shown");
    }
    // -I /dev makes /dev/zero reachable, but it is still not a policy file
    std::fs::write(dir.join("p.scp"), format!("include \"/dev/zero\"\n{POLICY_TAIL}")).expect("write");
    let (status, out, _) = scpc_bounded(&dir, &["check", "-I", "/dev", "--message-format", "json", "p.scp"]).expect("ends");
    assert_eq!(status, 1);
    assert!(out.contains("scpc::include::not_a_file"), "{out}");
    // a symbolic link inside the tree that points out of it is judged by its target
    std::os::unix::fs::symlink("/etc/passwd", dir.join("link.scp")).expect("symlink");
    std::fs::write(dir.join("p.scp"), format!("include \"link.scp\"\n{POLICY_TAIL}")).expect("write");
    let (status, out, _) = scpc_bounded(&dir, &["check", "--message-format", "json", "p.scp"]).expect("ends");
    assert_eq!(status, 1);
    assert!(out.contains("scpc::include::outside"), "{out}");
}

#[test]
fn a_file_larger_than_the_cap_is_refused() {
    let dir = scratch("large");
    let big = format!("{}\n", "#".repeat(scpc_lang::include::MAX_FILE_BYTES as usize + 1));
    std::fs::write(dir.join("big.scp"), big).expect("write");
    std::fs::write(dir.join("p.scp"), format!("include \"big.scp\"\n{POLICY_TAIL}")).expect("write");
    let (status, out, _) = scpc_bounded(&dir, &["check", "--message-format", "json", "p.scp"]).expect("ends");
    assert_eq!(status, 1);
    assert!(out.contains("scpc::include::not_a_file") && out.contains("larger than"), "{out}");
}

#[test]
fn include_dirs_widen_where_includes_come_from() {
    let dir = scratch("include-dirs");
    std::fs::create_dir_all(dir.join("services")).expect("mkdir");
    std::fs::create_dir_all(dir.join("lib")).expect("mkdir");
    std::fs::write(dir.join("base.scp"), "const BASE_UID = 7\n").expect("write");
    std::fs::write(dir.join("lib/common.scp"), "const COMMON = 1\n").expect("write");
    let text = "include \"../base.scp\"\ninclude \"common.scp\"\npolicy p {\n  target x86_64\n  default allow\n  errno(EPERM) setuid if uid == BASE_UID | COMMON\n}\n";
    std::fs::write(dir.join("services/web.scp"), text).expect("write");
    // `../base.scp` leaves the root file's directory, and common.scp is in no searched one
    let (status, out, _) = scpc_bounded(&dir, &["check", "--message-format", "json", "services/web.scp"]).expect("ends");
    assert_eq!(status, 1);
    assert!(out.contains("scpc::include::outside") && out.contains("scpc::include::not_found"), "{out}");
    // with the project's top and lib/ given, both resolve
    let (status, out, err) = scpc_bounded(&dir, &["check", "-I", ".", "-I", "lib", "services/web.scp"]).expect("ends");
    assert_eq!(status, 0, "{out}{err}");
}

// ---- 13. --message-format json holds for back-end errors too ----

#[test]
fn a_filter_too_large_is_reported_in_json() {
    let dir = scratch("too-large");
    let values: Vec<String> = (1..6000).map(|v| v.to_string()).collect();
    let text = format!("policy p {{\n  target x86_64\n  default allow\n  errno(EPERM) read if count in {{{}}}\n}}\n", values.join(", "));
    std::fs::write(dir.join("p.scp"), text).expect("write");
    let (code, out, err) = scpc(&dir, &["build", "p.scp", "--policy", "p", "-o", "out", "--message-format", "json"]);
    assert_eq!(code, 1, "{err}");
    let line = out.lines().find(|l| l.contains("scpc::codegen::too_large")).unwrap_or_else(|| panic!("no JSON: {out} {err}"));
    let d: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(d["file"], "p.scp");
    assert_eq!(d["line"], 1);
    assert!(!err.contains('×'), "human text printed: {err}");
    assert!(!dir.join("out").exists());
}

// ---- 7. exec checks the filter against its build manifest ----

#[test]
fn exec_refuses_a_filter_its_manifest_does_not_list() {
    let dir = scratch("exec-manifest");
    let policy = |errno: &str| format!("policy p {{\n  target x86_64\n  default allow\n  errno({errno}) kexec_load\n}}\n");
    std::fs::write(dir.join("a.scp"), policy("EPERM")).expect("write");
    std::fs::write(dir.join("b.scp"), policy("EACCES")).expect("write");
    for (file, out) in [("a.scp", "a"), ("b.scp", "b")] {
        let (code, _, err) = scpc(&dir, &["build", file, "--policy", "p", "-o", out]);
        assert_eq!(code, 0, "{err}");
    }
    let run = |filter: &str, extra: &[&str]| {
        let mut args = vec!["exec", filter];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "/bin/true"]);
        scpc(&dir, &args)
    };
    // as built: the manifest beside it agrees
    let (code, _, err) = run("a/p.x86_64.bpf", &[]);
    assert_eq!(code, 0, "{err}");
    // another build's filter put in its place: refused
    std::fs::copy(dir.join("b/p.x86_64.bpf"), dir.join("a/p.x86_64.bpf")).expect("copy");
    let (code, _, err) = run("a/p.x86_64.bpf", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("sha256") && err.contains("refusing"), "{err}");
    // the right manifest named explicitly: accepted; a manifest that does not list it: refused
    let (code, _, err) = run("a/p.x86_64.bpf", &["--manifest", "b/p.manifest.json"]);
    assert_eq!(code, 0, "{err}");
    std::fs::copy(dir.join("b/p.x86_64.bpf"), dir.join("b/other.x86_64.bpf")).expect("copy");
    let (code, _, err) = run("b/other.x86_64.bpf", &["--manifest", "b/p.manifest.json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not list"), "{err}");
}
