//! Authoring as people write policies (issue 17), one test per item: `argN` is register N
//! everywhere, the manual pages' parameter names, policy names with `-`, builds that run the
//! test blocks, `check --target`, `--policy` left out or wrong, the summary last, one
//! unreachable-rule warning per rule, syscall families, and the Docker importer's output.
//! (`scpc generate`'s part is in `roundtrip.rs` and `cross_arch_draft.rs`.)

use std::path::{Path, PathBuf};

use scpc::abi::Arch;
use scpc::diff::{diff, Side};
use scpc::policy::Action;

mod support;
use support::scpc_in;

/// A directory of its own for a test, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("scpc-authoring-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("scratch dir");
        Scratch(d)
    }
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).expect("write");
    }
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        scpc_in(&self.0, args)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn codes(diags: &scpc_lang::diag::Diagnostics) -> Vec<String> {
    diags.iter().filter_map(|d| d.code().map(|c| c.to_string())).collect()
}

fn decide(p: &scpc::policy::Policy, arch: Arch, name: &str, args: [u64; 6]) -> Action {
    let t = arch.table();
    scpc::eval::decide(p, t.audit_arch, t.syscall(name).expect("syscall").nr, &args).action
}

/// JSON diagnostics of a run, one object per line.
fn json(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

// ---- 1. `argN` is register N, for prctl and keyctl as for every other syscall ----

#[test]
fn arg_n_is_register_n_and_a_kernel_arg_name_elsewhere_is_flagged() {
    let text =
        "policy p {\n  target x86_64, aarch64, arm\n  default errno(EPERM)\n  allow prctl if arg2 == 5\n  allow keyctl if arg1 == 7\n}\n";
    let (checked, diags, _) = scpc::check_source("p.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    let p = &checked.policies["p"];
    for arch in [Arch::X86_64, Arch::Aarch64, Arch::Arm] {
        // register 2 (the kernel's `arg3`), not register 1 (the kernel's `arg2`)
        assert_eq!(decide(p, arch, "prctl", [0, 0, 5, 0, 0, 0]), Action::Allow, "{arch}");
        assert_eq!(decide(p, arch, "prctl", [0, 5, 0, 0, 0, 0]), Action::Errno(1), "{arch}");
        // `arg1` is register 1, the kernel's `arg2`: no warning, the same register either way
        assert_eq!(decide(p, arch, "keyctl", [0, 7, 0, 0, 0, 0]), Action::Allow, "{arch}");
    }
    let warned: Vec<String> = diags
        .iter()
        .filter(|d| d.code().is_some_and(|c| c.to_string() == "scpc::lint::register_name"))
        .map(|d| format!("{d} {}", d.help().map(|h| h.to_string()).unwrap_or_default()))
        .collect();
    assert_eq!(warned.len(), 1, "one warning, for prctl's arg2 only: {diags:?}");
    assert!(warned[0].contains("reads register 2") && warned[0].contains("`arg3`") && warned[0].contains("arg1"), "{}", warned[0]);
    // acknowledged, it is gone; the kernel's names of other parameters still work
    let acked = "policy p {\n  target x86_64\n  default errno(EPERM)\n  allow prctl if arg2 == 5  # scpc: allow(register_name)\n  allow prctl if option == PR_SET_NAME\n}\n";
    let (_, diags, _) = scpc::check_source("p.scp", acked);
    assert!(diags.iter().next().is_none(), "{diags:?}");
}

// ---- 2. the manual pages' parameter names ----

#[test]
fn man_page_parameter_names_mean_the_kernel_parameters() {
    let pairs = [
        ("socket if domain == AF_INET", "socket if family == AF_INET"),
        ("mmap if length > 4096", "mmap if len > 4096"),
        ("openat if dirfd == AT_FDCWD", "openat if dfd == AT_FDCWD"),
        ("clone if flags & CLONE_NEWUSER == 0", "clone if clone_flags & CLONE_NEWUSER == 0"),
        ("ioctl if request == TCGETS", "ioctl if cmd == TCGETS"),
    ];
    for (man, kernel) in pairs {
        for targets in ["x86_64, aarch64, riscv64", "x86_64, arm, i386"] {
            let policy = |rule: &str| format!("policy p {{\n  target {targets}\n  default errno(EPERM)\n  allow {rule}\n}}\n");
            let (a, da, _) = scpc::check_source("man.scp", &policy(man));
            let (b, db, _) = scpc::check_source("kernel.scp", &policy(kernel));
            if man.starts_with("mmap") && targets.contains("arm") {
                continue; // (arm has mmap2, not mmap)
            }
            assert!(!da.has_errors() && !db.has_errors(), "{man} on {targets}: {da:?} {db:?}");
            let report = diff(&Side::Policy(a.policies["p"].clone()), &Side::Policy(b.policies["p"].clone())).expect("compares");
            assert!(report.equal, "`{man}` differs from `{kernel}` on {targets}");
        }
    }
    // riscv64 calls mmap's last parameter `offset` itself, x86_64 `off`: the page's name works on both
    let (_, d, _) =
        scpc::check_source("o.scp", "policy p {\n  target x86_64, riscv64\n  default allow\n  errno(EPERM) mmap if offset != 0\n}\n");
    assert!(!d.has_errors(), "{d:?}");
    // every alias names a parameter of its syscall on some architecture, from a page
    for a in scpc::abi::param_aliases() {
        let found = Arch::ALL
            .iter()
            .filter_map(|arch| arch.table().syscall(a.syscall))
            .any(|s| s.param(a.alias).is_some_and(|p| p.name == a.kernel));
        assert!(found, "{a:?}");
        assert!(a.source.contains("(2)"), "{a:?}");
    }
    // a name of neither still lists the real ones
    let (_, d, _) = scpc::check_source("u.scp", "policy p {\n  target x86_64\n  default allow\n  errno(EPERM) socket if domian == 2\n}\n");
    assert_eq!(codes(&d), ["scpc::typeck::unknown_arg"]);
}

// ---- 3. policy names with `-` everywhere names appear ----

#[test]
fn hyphenated_policy_names_build_deploy_and_import() {
    let s = Scratch::new("hyphen");
    s.write(
        "gw.scp",
        "policy edge-base {\n    target x86_64, aarch64\n    default kill_process\n    allow read, write, exit_group\n}\n\n\
         policy modbus-gateway extends edge-base {\n    errno(EPERM) socket\n}\n\ntest modbus-gateway {\n    socket -> errno(EPERM)\n    read -> allow\n}\n",
    );
    let (code, _, err) = s.run(&["check", "--deny-warnings", "gw.scp"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 policies (edge-base, modbus-gateway)"), "{err}");
    let (code, _, err) = s.run(&["build", "gw.scp", "--policy", "modbus-gateway", "-o", "out"]);
    assert_eq!(code, 0, "{err}");
    let manifest = std::fs::read(s.path("out/modbus-gateway.manifest.json")).expect("manifest");
    let m = scpc_node::manifest::Manifest::from_json(&manifest).expect("the node and the deployer read it");
    assert_eq!(m.policy, "modbus-gateway");
    assert!(s.path("out/modbus-gateway.aarch64.bpf").exists() && s.path("out/modbus-gateway.x86_64.bpf").exists());
    let (code, _, err) = s.run(&["fmt", "--check", "gw.scp"]);
    assert_eq!(code, 0, "canonical as written: {err}");
    // the importer takes such a name, and keeps the `-` of a file's stem
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker-default.json");
    std::fs::copy(&docker, s.path("docker-default.json")).expect("copy");
    let (code, out, err) = s.run(&["import", "docker", "docker-default.json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\npolicy docker-default {"), "{out}");
    let (code, out, err) = s.run(&["import", "docker", "docker-default.json", "--name", "my-docker"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\npolicy my-docker {"), "{out}");
    let (code, _, err) = s.run(&["import", "docker", "docker-default.json", "--name=-bad"]);
    assert_eq!(code, 1, "{err}");
}

/// The grammar's policy names are exactly what `scpc_node::manifest::is_policy_name` accepts:
/// one rule for the language, the artifacts' file names, manifests and inventories.
#[test]
fn the_grammar_and_the_node_share_one_name_rule() {
    let alphabet: Vec<char> = "aZ_9-./ é{".chars().collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 6) as usize;
        let name: String = (0..len).map(|i| alphabet[((seed >> (8 + 5 * i)) as usize) % alphabet.len()]).collect();
        let text = format!("policy {name} {{\n}}\n");
        let mut map = scpc_lang::source::SourceMap::new();
        let id = map.add("n.scp", text.as_str());
        let mut d = scpc_lang::diag::Diagnostics::new();
        let parsed = scpc_lang::syntax::parse_file(&map, id, &mut d);
        let one_policy_named =
            parsed.is_some_and(|f| matches!(f.items.as_slice(), [scpc_lang::ast::Item::Policy(p)] if p.name.name == name));
        assert_eq!(one_policy_named, scpc_node::manifest::is_policy_name(&name), "{name:?}");
    }
}

// ---- 4. build runs the test blocks on the compiled filters ----

#[test]
fn build_runs_the_test_blocks_and_writes_nothing_when_one_fails() {
    let s = Scratch::new("tests");
    let text = "policy svc {\n    target x86_64, aarch64\n    default errno(EPERM)\n    allow read, write\n    errno(EACCES) openat\n}\n\n\
                test svc {\n    read -> allow\n    openat -> allow\n}\n";
    s.write("svc.scp", text);
    let (code, out, err) = s.run(&["build", "svc.scp", "-o", "out", "--message-format", "json"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!s.path("out").exists(), "nothing written");
    let d = json(&out);
    let failed: Vec<&serde_json::Value> = d.iter().filter(|d| d["code"] == "scpc::test::failed").collect();
    assert_eq!(failed.len(), 2, "one per target: {out}");
    // the rule that decided, located
    let labels = failed[0]["labels"].as_array().expect("labels");
    assert!(
        labels.iter().any(|l| l["message"] == "decided by this rule" && l["line"] == 5),
        "the failure names the rule of line 5: {}",
        failed[0]
    );
    assert!(d.iter().any(|d| d["code"] == "scpc::build::tests_failed"), "{out}");
    // skipped on request, named as such
    let (code, _, err) = s.run(&["build", "svc.scp", "-o", "out", "--skip-tests"]);
    assert_eq!(code, 0, "{err}");
    assert!(s.path("out/svc.x86_64.bpf").exists());
    // passing lines are counted; an audit-only build expects `log` where the lines deny
    s.write("svc.scp", &text.replace("openat -> allow", "openat -> errno(EACCES)\n    socket -> errno(EPERM)"));
    let (code, _, err) = s.run(&["build", "svc.scp", "-o", "out2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("svc: 6 test case(s) passed on the compiled filters"), "{err}");
    let (code, _, err) = s.run(&["build", "svc.scp", "-o", "out3", "--audit"]);
    assert_eq!(code, 0, "{err}");
}

// ---- 5. check --target names no target of a policy: the same error as build ----

#[test]
fn check_and_build_refuse_a_target_the_policy_does_not_have() {
    let s = Scratch::new("target");
    s.write("x.scp", "policy x86only {\n    target x86_64\n    default allow\n}\n\ntest x86only {\n    on x86_64 { read -> allow }\n}\n");
    for cmd in [&["check", "x.scp"][..], &["build", "x.scp", "-o", "out"][..]] {
        let (code, out, err) = s.run(&[cmd, &["--target", "aarch64", "--message-format", "json"]].concat());
        assert_eq!(code, 1, "{cmd:?}: {out}{err}");
        let d = json(&out);
        assert!(d.iter().any(|d| d["code"] == "scpc::resolve::not_a_target" && d["line"] == 1 && d["column"] == 8), "{cmd:?}: {out}");
    }
    // a target of the policy: its test lines for other targets are left out, not refused
    s.write("y.scp", "policy two {\n    target x86_64, aarch64\n    default allow\n}\n\ntest two {\n    on aarch64 { open -> unknown }\n    read -> allow\n}\n");
    let (code, _, err) = s.run(&["check", "--target", "x86_64", "--deny-warnings", "y.scp"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = s.run(&["build", "--target", "x86_64", "y.scp", "-o", "out"]);
    assert_eq!(code, 0, "{err}");
}

// ---- 6 and 7. --policy may be left out; a wrong one is located; check's summary ----

#[test]
fn policy_flag_is_optional_and_a_wrong_one_is_located() {
    let s = Scratch::new("policy");
    s.write("one.scp", "policy only {\n    target x86_64\n    default allow\n}\n");
    let (code, _, err) = s.run(&["build", "one.scp", "-o", "out"]);
    assert_eq!(code, 0, "{err}");
    assert!(s.path("out/only.x86_64.bpf").exists());
    s.write(
        "two.scp",
        "# two policies\npolicy base {\n    target x86_64\n    default allow\n}\n\npolicy web extends base {\n    errno(EPERM) ptrace\n}\n",
    );
    let (code, out, _) = s.run(&["build", "two.scp", "-o", "out2", "--message-format", "json"]);
    assert_eq!(code, 1);
    let d = json(&out);
    assert_eq!(d.len(), 1, "{out}");
    assert_eq!(d[0]["code"], "scpc::build::which_policy");
    assert_eq!((d[0]["line"].as_u64(), d[0]["column"].as_u64()), (Some(2), Some(8)), "at the first policy: {out}");
    assert!(d[0]["help"].as_str().is_some_and(|h| h.contains("`base`") && h.contains("`web`")), "{out}");
    assert!(!s.path("out2").exists());
    // a wrong name: at the closest policy, every one listed
    let (code, out, _) = s.run(&["build", "two.scp", "--policy", "webb", "--message-format", "json"]);
    assert_eq!(code, 1);
    let d = json(&out);
    assert_eq!(d[0]["code"], "scpc::resolve::no_such_policy", "{out}");
    assert_eq!((d[0]["line"].as_u64(), d[0]["column"].as_u64()), (Some(7), Some(8)), "at `web`: {out}");
    assert!(d[0]["help"].as_str().is_some_and(|h| h.contains("did you mean `web`?") && h.contains("`base`")), "{out}");
    let (_, out, _) = s.run(&["build", "two.scp", "--policy", "nope", "--message-format", "json"]);
    assert_eq!(json(&out)[0]["line"], 2, "no close name: at the first policy: {out}");
    // check names the policies, and says so last, after the diagnostics
    s.write("warn.scp", "policy w {\n    target x86_64, aarch64\n    default allow\n    errno(EPERM) open\n}\n");
    let (code, _, err) = s.run(&["check", "two.scp", "warn.scp"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.iter().any(|l| l.starts_with("two.scp: ok: 2 policies (base, web),")), "{err}");
    assert!(
        lines.last().is_some_and(|l| l.starts_with("warn.scp: ok: 1 policy (w),") && l.contains("1 warning(s)")),
        "summary last: {err}"
    );
    let warning_at = err.find("missing_on_target").expect("the warning");
    assert!(warning_at < err.find("warn.scp: ok").expect("summary"), "{err}");
}

// ---- 8. one unreachable-rule warning per rule, with advice that fits ----

#[test]
fn an_allow_after_an_allow_is_one_warning_with_fitting_advice() {
    let text = "include \"std/groups.scp\"\npolicy p {\n  target x86_64, aarch64\n  default kill_process\n  allow @default\n  allow mmap, brk, munmap, mprotect, read, getpid, exit_group, futex, rseq, gettid, write\n  errno(EPERM) read\n}\n";
    let (_, diags, _) = scpc::check_source("p.scp", text);
    let shadowed: Vec<_> = diags.iter().filter(|d| d.code().is_some_and(|c| c.to_string() == "scpc::lint::unreachable_rule")).collect();
    assert_eq!(shadowed.len(), 2, "one per rule: {diags:?}");
    let first = shadowed.iter().find(|d| d.to_string().contains("`mmap`")).expect("the allow rule");
    let help = first.help().map(|h| h.to_string()).unwrap_or_default();
    assert!(first.to_string().contains("and 1 more"), "{first}");
    assert!(help.contains("already decides them `allow`") && !help.contains("move this rule above"), "{help}");
    assert!(!first.to_string().contains("`read`") && !first.to_string().contains("`write`"), "read and write are not in @default: {first}");
    let second = shadowed.iter().find(|d| d.to_string().contains("`read`")).expect("the errno rule");
    let help = second.help().map(|h| h.to_string()).unwrap_or_default();
    assert!(help.contains("move this rule above it"), "a different action: {help}");
}

// ---- 9. syscall families: suggestions and the stdlib's groups ----

#[test]
fn families_suggest_equivalents_and_their_groups_mean_the_operation_everywhere() {
    assert_eq!(scpc::abi::equivalents("mmap", Arch::Arm), ["mmap2"]);
    assert_eq!(scpc::abi::equivalents("open", Arch::Aarch64), ["openat", "openat2"]);
    assert_eq!(scpc::abi::equivalents("poll", Arch::Aarch64), ["ppoll"]);
    assert_eq!(scpc::abi::equivalents("dup2", Arch::Riscv64), ["dup3"]);
    assert!(scpc::abi::equivalents("stat", Arch::Aarch64).starts_with(&["newfstatat", "statx"]));
    assert!(scpc::abi::equivalents("stat", Arch::Arm).contains(&"fstatat64"));
    assert_eq!(scpc::abi::newer_forms("getuid", Arch::Arm), ["getuid32"]);
    assert!(scpc::abi::equivalents("arch_prctl", Arch::Aarch64).is_empty());
    for f in scpc::abi::families() {
        for m in f.members {
            assert!(Arch::ALL.iter().any(|a| a.table().syscall(m).is_some()), "{m} of {}", f.name);
        }
    }
    // the warning suggests them
    let (_, diags, _) = scpc::check_source("m.scp", "policy p {\n  target x86_64, arm\n  default allow\n  errno(EPERM) mmap\n}\n");
    let help: Vec<String> = diags.iter().filter_map(|d| d.help().map(|h| h.to_string())).collect();
    assert!(help.iter().any(|h| h.contains("`mmap2`") && h.contains("`@mmap`")), "{help:?}");
    // one rule, the same operation on each architecture
    let text = "include \"std/families.scp\"\npolicy p {\n  target x86_64, aarch64, arm\n  default kill_process\n  allow @file-open, @mmap, @file-stat\n}\n";
    let (checked, diags, _) = scpc::check_source("f.scp", text);
    assert!(diags.iter().next().is_none(), "{diags:?}");
    let p = &checked.policies["p"];
    assert_eq!(decide(p, Arch::X86_64, "open", [0; 6]), Action::Allow);
    assert_eq!(decide(p, Arch::Aarch64, "openat", [0; 6]), Action::Allow);
    assert_eq!(decide(p, Arch::Arm, "mmap2", [0; 6]), Action::Allow);
    assert_eq!(decide(p, Arch::Aarch64, "newfstatat", [0; 6]), Action::Allow);
    assert_eq!(decide(p, Arch::Arm, "statx", [0; 6]), Action::Allow);
    assert_eq!(decide(p, Arch::X86_64, "read", [0; 6]), Action::KillProcess);
}

// ---- 11. Docker import: names, one line per entry left out, Docker's choices acknowledged ----

#[test]
fn a_fresh_import_of_dockers_default_passes_deny_warnings() {
    let s = Scratch::new("docker");
    let docker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker-default.json");
    std::fs::copy(&docker, s.path("docker-default.json")).expect("copy");
    let (code, _, err) = s.run(&["import", "docker", "docker-default.json", "-o", "d.scp"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = s.run(&["check", "--deny-warnings", "d.scp"]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(s.path("d.scp")).expect("read");
    for named in [
        "family < AF_ALG",
        "family == AF_NFC",
        "family > AF_VSOCK",
        "personality == PER_LINUX32 | UNAME26",
        "personality == UNAME26",
        "CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET",
        "default errno(EPERM)",
        "errno(ENOSYS) clone3",
    ] {
        assert!(text.contains(named), "{named}:\n{text}");
    }
    // (a value without one name stays a number)
    assert!(text.contains("personality == 0xffffffff"), "{text}");
    let left_out: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("#   syscalls[")).collect();
    let unique: std::collections::BTreeSet<&&str> = left_out.iter().collect();
    assert_eq!(unique.len(), left_out.len(), "no line twice: {left_out:#?}");
    assert!(
        left_out.iter().any(|l| l.contains("syscalls[11] for arm64 (sync_file_range2): not a syscall of aarch64, arm")),
        "{left_out:#?}"
    );
    // each acknowledgement is the importer's, with why
    let acks = text.lines().filter(|l| l.contains("scpc: allow(")).count();
    assert_eq!(acks, 5, "ptrace's rule, the three socket rules, riscv_flush_icache:\n{text}");
    // and the same decisions as before (the shipped std/docker-default.scp is one)
    let (checked, diags, _) = scpc::check_source("d.scp", &text);
    assert!(!diags.has_errors());
    let p = &checked.policies["docker-default"];
    let t = Arch::X86_64;
    assert_eq!(decide(p, t, "socket", [38, 1, 0, 0, 0, 0]), Action::Errno(1));
    assert_eq!(decide(p, t, "socket", [39, 1, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(p, t, "clone", [0x1000_0000, 0, 0, 0, 0, 0]), Action::Errno(1));
    assert_eq!(decide(p, t, "personality", [0x20008, 0, 0, 0, 0, 0]), Action::Allow);
}

/// Adversarial: every value the importer writes by name means the same number. For the
/// arguments it names (socket's family, personality's persona, clone's and unshare's flags),
/// each constant of the argument's kinds, OR-combinations of them and random values, compared
/// with `==` and a mask, import to rules that decide each probe exactly as the profile's number
/// does, on each architecture of the import (or the import is refused, never misread).
#[test]
fn constants_written_by_name_mean_the_profiles_numbers() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let persona = ["PER_", "UNAME26", "ADDR_", "READ_IMPLIES_EXEC", "MMAP_PAGE_ZERO", "STICKY_TIMEOUTS", "SHORT_INODE", "WHOLE_SECONDS"];
    let archmap = r#""archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},{"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]}]"#;
    let mut named_rules = 0;
    let stress = std::env::var_os("SCPC_STRESS").is_some();
    for (syscall, prefixes) in
        [("socket", &["AF_"][..]), ("personality", &persona[..]), ("clone", &["CLONE_"][..]), ("unshare", &["CLONE_"][..])]
    {
        let named: Vec<u64> = scpc::abi::all_constant_names()
            .iter()
            .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
            .filter_map(|n| Arch::X86_64.table().constant(n))
            .filter(|v| *v <= u64::from(u32::MAX))
            .collect();
        // every constant, 24 combinations and 12 random values under SCPC_STRESS=1 (about 600
        // imports); else 4 constants and 2 combinations per syscall (48 imports)
        let mut values: Vec<u64> = if stress { named.clone() } else { named.iter().step_by(named.len().div_ceil(4)).copied().collect() };
        for _ in 0..if stress { 12 } else { 1 } {
            let (a, b) = (named[next() as usize % named.len()], named[next() as usize % named.len()]);
            values.extend([a | b, a | (next() & 0xff)]);
            if stress {
                values.push(next() & 0xffff_ffff);
            }
        }
        values.sort_unstable();
        values.dedup();
        for (i, &v) in values.iter().enumerate() {
            let two = values[(i * 7 + 3) % values.len()] & v;
            for op in ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"] {
                let profile = format!(
                    r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,{archmap},"syscalls":[{{"names":["{syscall}"],"action":"SCMP_ACT_ALLOW","args":[{{"index":0,"value":{v},"valueTwo":{two},"op":"{op}"}}]}}]}}"#
                );
                let opts = scpc::docker::ImportOptions { name: Some("p".into()), ..Default::default() };
                let Ok(text) = scpc::docker::import("p.json", &profile, &opts) else { continue };
                let (checked, diags, _) = scpc::check_source("p.scp", &text);
                assert!(!diags.has_errors(), "{diags:?}\n{text}");
                let rule = text.lines().find(|l| l.trim_start().starts_with("allow ")).expect("the rule");
                named_rules +=
                    usize::from(rule.contains("AF_") || rule.contains("PER_") || rule.contains("CLONE_") || rule.contains("UNAME26"));
                let p = &checked.policies["p"];
                for t in &p.targets {
                    for probe in [v, v ^ 1, v ^ 0x100, 0, two, v | 0x8000_0000] {
                        let probe = probe & 0xffff_ffff;
                        let want = if op == "SCMP_CMP_EQ" { probe == v } else { probe & v == two };
                        let mut args = [0u64; 6];
                        args[0] = probe;
                        let got = decide(p, t.arch, syscall, args) == Action::Allow;
                        assert_eq!(got, want, "{syscall} {op} {v:#x} (valueTwo {two:#x}) on {}: probe {probe:#x}\n{rule}", t.arch);
                    }
                }
            }
        }
    }
    assert!(named_rules > if stress { 60 } else { 8 }, "the importer named values in {named_rules} rules only");
}

/// Adversarial: a manual page's name resolves on every architecture that has its syscall (a
/// policy for the whole fleet is not refused on one of them), to the parameter the kernel's
/// name stands for there (raw clone's `child_tid` is register 3 on x86_64, 4 elsewhere, as the
/// kernel's `child_tidptr` is), or where that architecture's kernel calls it otherwise, to the
/// parameter at the same position; an alias is never an `argN`.
#[test]
fn an_alias_reads_one_register_on_every_architecture() {
    for a in scpc::abi::param_aliases() {
        for arch in Arch::ALL {
            // (a number the architecture reserves and never implemented has no parameters)
            let Some(s) = arch.table().syscall(a.syscall).filter(|s| !s.params.is_empty()) else { continue };
            // where the kernel's name is, on an architecture with the same signature (i386's
            // mmap takes one pointer to its six arguments: neither name has a parameter there)
            let Some(at) = Arch::ALL
                .iter()
                .filter_map(|o| o.table().syscall(a.syscall))
                .filter(|o| o.params.len() == s.params.len())
                .find_map(|o| o.params.iter().position(|p| p.name == a.kernel))
            else {
                assert!(s.params.iter().all(|p| p.name != a.kernel), "{a:?} on {arch}");
                continue;
            };
            let by_alias = s.param(a.alias).unwrap_or_else(|| panic!("{a:?} does not resolve on {arch}"));
            let got = s.params.iter().position(|p| std::ptr::eq(p, by_alias));
            match s.params.iter().position(|p| p.name == a.kernel) {
                Some(kernel) => assert_eq!(got, Some(kernel), "{a:?} on {arch}"),
                None => assert_eq!(got, Some(at), "{a:?} on {arch}"),
            }
            assert!(!scpc::abi::is_register_name(a.alias), "{a:?}: `argN` always names register N");
        }
    }
}
