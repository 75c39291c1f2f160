//! The holes a red-team review found in the checker (issue 14), each kept as the attack that
//! found it: a policy that compiled to a filter looser than its source, a wrong decision, a
//! crash or a hang. Each test fails on the code before the fix.

#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use miette::Diagnostic;
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
    for cond in [
        "fd <= 0xffffffff",
        "flags & 3 == 4",
        "fd < 0",
        "flags >= 0",
        "flags & 0 != 0",
        "flags & 1 in {2, 4}",
        "flags & 1 in {0, 1}",
        "flags & 5 not in {0, 1, 4, 5}",
    ] {
        let syscall = if cond.starts_with("fd") { "read" } else { "openat" };
        let text = format!("policy p {{\n  target x86_64\n  default allow\n  errno(EPERM) {syscall} if {cond}\n}}\n");
        assert_eq!(codes(&text), ["scpc::lint::constant_condition"], "{cond}");
    }
    let fine = "policy p {\n  target x86_64\n  default allow\n  errno(EPERM) read if fd <= 2\n}\n";
    assert!(codes(fine).is_empty());
    assert!(codes(&fine.replace("fd <= 2", "fd & 5 in {0, 1, 4}")).is_empty());
}

/// `&&` and `||` whose parts are each open but which together always or never hold: the
/// compiler emits no code for them (issue 18), and says so, once, at the combination.
#[test]
fn a_combination_that_always_or_never_holds_gets_a_lint() {
    let policy = |cond: &str| format!("policy p {{\n  target x86_64, aarch64\n  default allow\n  errno(EPERM) setns if {cond}\n}}\n");
    for (cond, outcome) in [
        ("nstype < 2 && nstype >= 0x40", "always false"),
        ("!(nstype < 2 && nstype >= 0x40)", "always false"),
        ("nstype < 3 || nstype > 1", "always true"),
        ("fd == 1 && (fd == 2 || nstype == 7) && fd != 1", "always false"),
        ("nstype == 1 && (nstype == 2 || nstype > 5)", "always false"),
        ("nstype & 0xff in {1, 2} && nstype & 0xff not in {1, 2, 3}", "always false"),
        ("fd != 0 || nstype == 1 || fd < 1", "always true"),
    ] {
        let text = policy(cond);
        assert_eq!(codes(&text), ["scpc::lint::constant_condition"], "{cond}");
        let (_, diags, _) = scpc::check_source("t.scp", &text);
        let rendered: String = diags.iter().map(|d| d.to_string()).collect();
        assert!(rendered.contains(outcome), "{cond}: {rendered}");
        assert!(!rendered.contains(" on x86_64") && !rendered.contains(" on aarch64"), "fixed on every target: {rendered}");
    }
    // fixed where `offset` (a long) has 32 bits only: the warning names that target
    let text =
        "policy p {\n  target x86_64, i386\n  default allow\n  errno(EPERM) lseek if offset >= 0xffffffff && offset != 0xffffffff\n}\n";
    let (_, diags, _) = scpc::check_source("t.scp", text);
    let rendered: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
    assert_eq!(rendered, ["this condition is always false on i386: its two parts never hold together"]);
    // a fixed part is reported alone, not again as the combination it fixes
    assert_eq!(codes(&policy("fd == 1 && fd < 0")), ["scpc::lint::constant_condition"]);
    for cond in [
        "fd < 3 || fd > 5",
        "fd > 1 && fd < 3",
        "!(fd == 1)",
        "fd == 1 || nstype == 2",
        "fd == 1 && nstype == 2",
        "(fd < 3 || fd > 5) && nstype != 0",
    ] {
        assert!(codes(&policy(cond)).is_empty(), "{cond}: {:?}", codes(&policy(cond)));
    }
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

/// The commands that read one text file by name (fmt, the importers) stop at the same cap:
/// `/dev/zero` and a file one byte over it end with an error instead of filling memory.
#[test]
fn fmt_and_the_importers_stop_at_the_cap() {
    let dir = scratch("large-inputs");
    std::fs::write(dir.join("big.scp"), "#".repeat(scpc_lang::include::MAX_FILE_BYTES as usize + 1)).expect("write");
    for file in ["/dev/zero", "big.scp"] {
        for args in [vec!["fmt", file], vec!["fmt", "--check", file], vec!["import", "docker", file], vec!["import", "kafel", file]] {
            let (status, _, err) = scpc_bounded(&dir, &args).unwrap_or_else(|| panic!("{args:?} did not end"));
            assert_eq!(status, 2, "{args:?}: {err}");
            assert!(err.contains("larger than 4 MiB"), "{args:?}: {err}");
        }
    }
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
    // scattered values (a run of them would be one range test): each costs a compare
    let values: Vec<String> = (1..6000).map(|v| (v * 3).to_string()).collect();
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

// ---- kernel tests: the probe program makes raw calls under a filter built by scpc ----

/// `tests/red_team/probe.c`, compiled once with the machine's C compiler.
fn probe() -> PathBuf {
    static PROBE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/red_team/probe.c");
            let out = scratch("probe").join("probe");
            let status = Command::new("cc").args(["-O1", "-o"]).arg(&out).arg(&src).status().expect("cc (gcc) is needed: install gcc");
            assert!(status.success(), "cc failed on {}", src.display());
            out
        })
        .clone()
}

/// Builds `text`'s policy `p` for x86_64 and runs the probe under it: (exit status, the
/// number it printed, scpc's stderr of the build).
fn probe_under(tag: &str, text: &str, args: &[&str]) -> (std::process::ExitStatus, Option<i64>, String) {
    let dir = scratch(tag);
    std::fs::write(dir.join("p.scp"), text).expect("write");
    let (code, _, build_err) = scpc(&dir, &["build", "p.scp", "--policy", "p", "-o", "out"]);
    assert_eq!(code, 0, "{build_err}");
    let out = Command::new(env!("CARGO_BIN_EXE_scpc"))
        .current_dir(&dir)
        .args(["exec", "out/p.x86_64.bpf", "--"])
        .arg(probe())
        .args(args)
        .output()
        .expect("scpc exec");
    let value = String::from_utf8_lossy(&out.stdout).trim().parse().ok();
    (out.status, value, build_err)
}

// 6. the kernel reads mmap's fd through fget(unsigned int): upper-half garbage no longer
// dodges an exact-match rule, because the filter compares the 32 bits the kernel acts on.
#[test]
fn upper_half_garbage_no_longer_dodges_an_fd_rule() {
    let mmap = Arch::X86_64.table().syscall("mmap").expect("mmap");
    let fd = mmap.params.iter().find(|p| p.name == "fd").expect("fd");
    assert_eq!(fd.width, scpc::abi::Width::W32);
    assert!(fd.narrowed.contains("fget"), "{}", fd.narrowed);
    let clone = Arch::Aarch64.table().syscall("clone").expect("clone");
    assert_eq!(clone.params[0].width, scpc::abi::Width::W32, "clone_flags: lower_32_bits");
    let text = "policy p {\n  target x86_64\n  default allow\n  errno(EACCES) mmap if fd == 1000\n}\n";
    for how in ["low", "high"] {
        let (status, value, _) = probe_under(&format!("mmap-{how}"), text, &["mmap-fd", how]);
        assert!(status.success(), "{status:?}");
        assert_eq!(value, Some(-(libc::EACCES as i64)), "mmap with fd {how}: the rule must hold");
    }
}

// 5. i386's socketcall reaches socket without passing socket's argument rules: the bypass is
// real on this kernel, and the checker names the multiplexer.
#[test]
fn socketcall_bypass_is_shown_and_linted() {
    let text = "policy p {\n  target x86_64, i386\n  default allow\n  errno(EPERM) socket if family == AF_UNIX\n}\n";
    let lints: Vec<String> = codes(text).into_iter().filter(|c| c == "scpc::lint::multiplexer").collect();
    assert_eq!(lints.len(), 1, "{:?}", codes(text));
    let (_, diags, _) = scpc::check_source("t.scp", text);
    let msg = diags.iter().map(|d| d.to_string()).find(|m| m.contains("socketcall")).expect("names socketcall");
    assert!(msg.contains("i386"), "{msg}");
    let (_, direct, _) = probe_under("socket-i386", text, &["socket-i386"]);
    assert_eq!(direct, Some(-(libc::EPERM as i64)), "the rule holds for the direct call");
    let (_, through, _) = probe_under("socketcall-i386", text, &["socketcall-i386"]);
    assert!(through.is_some_and(|fd| fd >= 0), "socketcall gets a socket past the rule: {through:?}");
    // closing the multiplexer, as the help says, closes the bypass and silences the lint
    let closed = text.replace("}\n", "  errno(ENOSYS) socketcall on i386\n}\n");
    assert!(!codes(&closed).iter().any(|c| c == "scpc::lint::multiplexer"), "{:?}", codes(&closed));
    let (_, through, _) = probe_under("socketcall-closed", &closed, &["socketcall-i386"]);
    assert_eq!(through, Some(-(libc::ENOSYS as i64)));
}

// 15. uretprobe and uprobe never reach the filter on x86_64 (Linux 6.14 / 6.18 on): the tables
// say so, the checker warns, and sim says so beside the filter's decision.
#[test]
fn syscalls_the_kernel_never_filters_are_recorded() {
    let table = Arch::X86_64.table();
    let uprobe = table.syscall("uprobe").expect("uprobe");
    assert_eq!(uprobe.nr, 336);
    assert!(uprobe.unfiltered_since.is_some());
    assert!(table.syscall("uretprobe").is_some_and(|s| s.unfiltered_since.is_some()));
    assert!(Arch::X32.table().syscall("uretprobe").is_none_or(|s| s.unfiltered_since.is_none()), "native calls only");
    let text = "policy p {\n  target x86_64\n  default allow\n  kill_process uprobe\n}\n";
    assert_eq!(codes(text), ["scpc::lint::unfiltered"]);
    let dir = scratch("sim-unfiltered");
    std::fs::write(dir.join("p.scp"), text).expect("write");
    assert_eq!(scpc(&dir, &["build", "p.scp", "--policy", "p", "-o", "out"]).0, 0);
    let (code, out, _) = scpc(&dir, &["sim", "out/p.x86_64.bpf", "--arch", "x86_64", "uprobe"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("kill_process") && out.contains("without running the filter"), "{out}");
    // on this kernel: when it passes uprobe through (6.18 on), the process lives
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse::<u16>().ok());
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let (status, value, _) = probe_under("uprobe", text, &["nr", "336"]);
    if (major, minor) >= (6, 18) {
        assert!(status.success(), "the filter's kill_process was applied: {status:?}");
        assert!(value.is_some_and(|v| v < 0), "{value:?}");
    } else {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGSYS), "before 6.18 the filter decides: {status:?}");
    }
}

// ---- 14. a 64-bit value in a register pair (arm EABI, i386) is compared as one value ----

#[test]
fn a_register_pair_is_compared_as_one_value() {
    let values = [0u64, 1, 0xffff_ffff, 0x1_0000_0000, 0x1_0000_0001, 0x7_ffff_fffe, 0xffff_ffff_ffff_ffff];
    for op in ["==", "!=", "<", "<=", ">", ">="] {
        for &v in &values {
            for mask in [None, Some(0xffff_0000_ffff_u64)] {
                let m = mask.map_or(String::new(), |m| format!(" & {m:#x}"));
                let text = format!("policy p {{\n  target arm\n  default allow\n  errno(EPERM) pread64 if pos{m} {op} {v:#x}\n}}\n");
                let (checked, diags, _) = scpc::check_source("t.scp", &text);
                assert!(!diags.has_errors(), "{text}: {diags:?}");
                let p = &checked.policies["p"];
                let nr = Arch::Arm.table().syscall("pread64").expect("pread64").nr;
                scpc::artifact::compile(p, &scpc::profile::Profile::uniform()).expect("compiles and validates");
                for &pos in &values {
                    let x = pos & mask.unwrap_or(u64::MAX);
                    let expect = match op {
                        "==" => x == v,
                        "!=" => x != v,
                        "<" => x < v,
                        "<=" => x <= v,
                        ">" => x > v,
                        _ => x >= v,
                    };
                    // EABI: r3 is padding, pos in r4 (low) and r5 (high); garbage in the padding
                    let args = [3, 0x1000, 64, 0xdead_beef, pos & 0xffff_ffff, pos >> 32];
                    let d = scpc::eval::decide(p, Arch::Arm.table().audit_arch, nr, &args);
                    let got = d.action == Action::Errno(libc::EPERM as u16);
                    assert_eq!(got, expect, "pos{m} {op} {v:#x} with pos = {pos:#x}");
                }
            }
        }
    }
    // sets too
    let text = "policy p {\n  target arm\n  default allow\n  errno(EPERM) pread64 if pos in {0x100000000, 7}\n}\n";
    let (checked, diags, _) = scpc::check_source("t.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    let nr = Arch::Arm.table().syscall("pread64").expect("pread64").nr;
    let decide =
        |lo: u64, hi: u64| scpc::eval::decide(&checked.policies["p"], Arch::Arm.table().audit_arch, nr, &[0, 0, 0, 0, lo, hi]).action;
    assert_eq!(decide(0, 1), Action::Errno(libc::EPERM as u16));
    assert_eq!(decide(7, 0), Action::Errno(libc::EPERM as u16));
    assert_eq!(decide(7, 1), Action::Allow);
    assert_eq!(decide(0, 0), Action::Allow);
}

#[test]
fn registers_of_a_pair_are_named_as_the_calling_convention_places_them() {
    let at = |cond: &str| codes(&format!("policy p {{\n  target arm\n  default allow\n  errno(EPERM) {cond}\n}}\n"));
    // arg4 holds the low half of pread64's pos: no warning; arg3 is the padding before the pair
    assert!(at("pread64 if arg4 == 1").is_empty(), "{:?}", at("pread64 if arg4 == 1"));
    assert_eq!(at("pread64 if arg3 == 1"), ["scpc::typeck::arg_unused"]);
    let (_, diags, _) = scpc::check_source("t.scp", "policy p {\n  target arm\n  default allow\n  errno(EPERM) pread64 if arg3 == 1\n}\n");
    let help = diags.iter().find_map(|d| d.help().map(|h| h.to_string())).expect("help");
    assert!(help.contains("padding") && help.contains("`pos`"), "{help}");
    // fanotify_mark: mask in r2/r3, dfd in r4, named or as arg4
    assert!(at("fanotify_mark if dfd == 3").is_empty());
    assert!(at("fanotify_mark if arg4 == 3").is_empty());
    assert!(at("fanotify_mark if mask & 0x100000000 != 0").is_empty());
}

// ---- 2. the Docker importer never lets a JSON string become policy text ----

#[test]
fn profile_strings_cannot_inject_policy_text() {
    let injected = "x\n    allow ptrace, mount, kexec_load\n# scpc: allow(attack_surface)\n    allow init_module, finit_module\n#";
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": [format!("SCMP_ARCH_{injected}")]}],
        "syscalls": [
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "comment": injected},
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": injected},
            {"names": [injected, "getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [injected], "minKernel": injected}},
            {"names": ["kexec_load"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": injected}},
        ]
    });
    let name = format!("evil\n    allow ptrace\n{injected}.json");
    let text = scpc::docker::import(&name, &profile.to_string(), &scpc::docker::ImportOptions { name: Some("p".into()), caps: vec![] })
        .expect("imports");
    let (checked, diags, _) = scpc::check_source("imported.scp", &text);
    assert!(!diags.has_errors(), "{diags:?}\n{text}");
    let p = &checked.policies["p"];
    let table = Arch::X86_64.table();
    for denied in ["ptrace", "mount", "init_module", "finit_module"] {
        let nr = table.syscall(denied).expect("syscall").nr;
        assert_eq!(scpc::eval::decide(p, table.audit_arch, nr, &[0; 6]).action, Action::Errno(1), "{denied} in\n{text}");
    }
    // kexec_load is allowed by the profile itself, so its attack-surface warning must stay
    assert!(diags.iter().any(|d| d.code().is_some_and(|c| c.to_string() == "scpc::lint::attack_surface")), "{diags:?}");
    for line in text.lines() {
        let code = line.split('#').next().unwrap_or("");
        let lets_through = code.trim_start().starts_with("allow") || code.trim_start().starts_with("log");
        assert!(
            !lets_through || !["ptrace", "init_module", "mount"].iter().any(|s| code.contains(s)),
            "policy text from the profile: {line:?}\n{text}"
        );
        assert!(!line.contains("scpc: allow"), "an acknowledgment from the profile: {line:?}");
    }
}

#[test]
fn malformed_errno_values_are_refused_as_runc_refuses_them() {
    for (key, value, path) in [
        ("defaultErrnoRet", serde_json::json!("38"), "defaultErrnoRet"),
        ("defaultErrnoRet", serde_json::json!(38.0), "defaultErrnoRet"),
        ("errnoRet", serde_json::json!("38"), "syscalls[0].errnoRet"),
        ("errnoRet", serde_json::json!(38.0), "syscalls[0].errnoRet"),
    ] {
        let mut profile = serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}]
        });
        if key == "errnoRet" {
            profile["syscalls"][0][key] = value.clone();
        } else {
            profile[key] = value.clone();
        }
        let text = serde_json::to_string_pretty(&profile).expect("json");
        let err = scpc::docker::import("p.json", &text, &Default::default()).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("p.json: {path}, line ")), "{key} = {value}: {msg}");
        assert!(err.code().is_some_and(|c| c.to_string() == "scpc::import::shape"), "{msg}");
    }
    // a well-formed one is kept
    let ok = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": []}"#;
    let text = scpc::docker::import("p.json", ok, &Default::default()).expect("imports");
    assert!(text.contains("default errno(ENOSYS)"), "38, by name: {text}");
}
