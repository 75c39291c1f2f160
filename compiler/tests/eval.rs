//! The reference interpreter against the language's meaning (language.md): layering order,
//! defaults up the chain, final rules, sets, masks, `&&`/`||`/`!`, widths, badarch and x32.

use scpc::abi::{Arch, X32_SYSCALL_BIT};
use scpc::check_source;
use scpc::eval::decide;
use scpc::policy::{Action, Policy};

fn policies(text: &str) -> std::collections::BTreeMap<String, Policy> {
    let (checked, diags, _) = check_source("t.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    checked.policies
}

/// What `policy` decides for `name(args)` on `arch`.
fn on(policy: &Policy, arch: Arch, name: &str, args: &[u64]) -> Action {
    let table = arch.table();
    let nr = table.syscall(name).unwrap_or_else(|| panic!("{name} on {arch}")).nr;
    let mut a = [0u64; 6];
    a[..args.len()].copy_from_slice(args);
    decide(policy, table.audit_arch, nr, &a).action
}

fn x86(policy: &Policy, name: &str, args: &[u64]) -> Action {
    on(policy, Arch::X86_64, name, args)
}

const EPERM: Action = Action::Errno(1);

#[test]
fn own_rules_are_tried_before_the_parents_in_source_order() {
    let p = policies(
        "policy base { target x86_64\n default kill_process\n errno(EPERM) read\n allow write if fd == 1\n errno(5) write }\n\
         policy child extends base { errno(7) write if fd == 1\n allow read if fd == 0\n allow getpid }",
    );
    let (base, child) = (&p["base"], &p["child"]);
    assert_eq!(x86(base, "write", &[1]), Action::Allow);
    assert_eq!(x86(base, "write", &[2]), Action::Errno(5));
    assert_eq!(x86(child, "write", &[1]), Action::Errno(7), "child's rule first");
    assert_eq!(x86(child, "write", &[2]), Action::Errno(5), "then the parent's, in order");
    assert_eq!(x86(child, "read", &[0]), Action::Allow);
    assert_eq!(x86(child, "read", &[3]), EPERM, "falls through to the parent");
    assert_eq!(x86(child, "getpid", &[]), Action::Allow);
    assert_eq!(x86(base, "getpid", &[]), Action::KillProcess);
}

#[test]
fn defaults_come_from_the_nearest_policy_up_the_chain() {
    let p = policies(
        "policy a { target x86_64\n default kill_process }\n policy b extends a { allow read }\n\
         policy c extends b { default errno(EPERM) }\n policy d extends c { allow write }",
    );
    assert_eq!(x86(&p["b"], "getpid", &[]), Action::KillProcess);
    assert_eq!(x86(&p["c"], "getpid", &[]), EPERM);
    assert_eq!(x86(&p["d"], "getpid", &[]), EPERM);
    assert_eq!(x86(&p["d"], "read", &[]), Action::Allow, "rules of every ancestor apply");
}

#[test]
fn final_rules_decide_and_may_be_repeated_identically() {
    let p = policies(
        "policy a { target x86_64\n default allow\n final kill_process kexec_load }\n\
         policy b extends a { kill_process kexec_load\n errno(EPERM) getpid }",
    );
    assert_eq!(x86(&p["b"], "kexec_load", &[]), Action::KillProcess);
    let (_, diags, _) = check_source(
        "t.scp",
        "policy a { target x86_64\n default allow\n final kill_process kexec_load }\npolicy b extends a { allow kexec_load }",
    );
    assert!(diags.iter().any(|d| d.code().is_some_and(|c| c.to_string() == "scpc::resolve::final_override")), "{diags:?}");
}

#[test]
fn sets_masks_and_logic() {
    let p = policies(
        "policy p { target x86_64\n default errno(EPERM)\n\
         allow socket if family in {AF_UNIX, AF_INET} && type & 0xf != SOCK_RAW\n\
         allow mprotect if prot & PROT_EXEC == 0 || !(len > 4096)\n\
         allow openat if flags & O_ACCMODE not in {O_WRONLY, O_RDWR} }",
    );
    let p = &p["p"];
    assert_eq!(x86(p, "socket", &[1, 1]), Action::Allow);
    assert_eq!(x86(p, "socket", &[2, 3]), EPERM, "SOCK_RAW");
    assert_eq!(x86(p, "socket", &[2, 0x80003]), EPERM, "SOCK_RAW|SOCK_CLOEXEC, masked");
    assert_eq!(x86(p, "socket", &[10, 1]), EPERM, "AF_INET6 not in the set");
    assert_eq!(x86(p, "mprotect", &[0, 8192, 1]), Action::Allow);
    assert_eq!(x86(p, "mprotect", &[0, 8192, 4]), EPERM, "PROT_EXEC and long");
    assert_eq!(x86(p, "mprotect", &[0, 4096, 4]), Action::Allow, "PROT_EXEC but short");
    assert_eq!(x86(p, "openat", &[0, 0, 0o100000]), Action::Allow, "O_RDONLY|O_LARGEFILE");
    assert_eq!(x86(p, "openat", &[0, 0, 0o2]), EPERM);
}

#[test]
fn unsigned_comparisons() {
    let p = policies("policy p { target x86_64\n default errno(EPERM)\n allow read if count < 16 && count >= 2\n allow write if count <= 3 || count > 0xfffffffffffffff0 }");
    let p = &p["p"];
    assert_eq!(x86(p, "read", &[0, 0, 2]), Action::Allow);
    assert_eq!(x86(p, "read", &[0, 0, 16]), EPERM);
    assert_eq!(x86(p, "read", &[0, 0, u64::MAX]), EPERM, "unsigned: not below 16");
    assert_eq!(x86(p, "write", &[0, 0, u64::MAX]), Action::Allow);
}

#[test]
fn an_int_argument_is_compared_on_its_low_32_bits() {
    let p = policies(
        "policy p { target x86_64, i386, aarch64\n default errno(EPERM)\n allow openat if dfd == AT_FDCWD\n allow lseek if offset == -1 }",
    );
    let p = &p["p"];
    assert_eq!(x86(p, "openat", &[0x0000_0000_ffff_ff9c]), Action::Allow, "upper half clear");
    assert_eq!(x86(p, "openat", &[0xffff_ffff_ffff_ff9c]), Action::Allow, "sign-extended");
    assert_eq!(x86(p, "openat", &[0x1234_5678_ffff_ff9c]), Action::Allow, "garbage upper half: the kernel reads an int");
    assert_eq!(x86(p, "openat", &[0xffff_ff9c_0000_0000]), EPERM);
    assert_eq!(on(p, Arch::I386, "openat", &[0xffff_ff9c]), Action::Allow);
    // off_t is a long on 64-bit: all 64 bits count
    assert_eq!(x86(p, "lseek", &[0, u64::MAX]), Action::Allow);
    assert_eq!(x86(p, "lseek", &[0, 0xffff_ffff]), EPERM);
    // on i386 it is 32 bits
    assert_eq!(on(p, Arch::I386, "lseek", &[0, 0xffff_ffff]), Action::Allow);
}

#[test]
fn umode_t_is_16_bits() {
    let p = policies("policy p { target x86_64\n default errno(EPERM)\n allow openat if mode & 0o7000 == 0 }");
    assert_eq!(x86(&p["p"], "openat", &[0, 0, 0, 0o644]), Action::Allow);
    assert_eq!(x86(&p["p"], "openat", &[0, 0, 0, 0o4755]), EPERM);
    assert_eq!(x86(&p["p"], "openat", &[0, 0, 0, 0x1_0000 | 0o644]), Action::Allow, "the kernel reads a umode_t");
}

#[test]
fn other_architectures_get_badarch_and_x32_is_not_x86_64() {
    let p = policies("policy p { target x86_64\n default allow\n badarch errno(EPERM) }");
    let p = &p["p"];
    let x32_read = Arch::X32.table().syscall("read").expect("x32 read").nr;
    assert_eq!(x32_read & X32_SYSCALL_BIT, X32_SYSCALL_BIT);
    assert_eq!(decide(p, Arch::X86_64.table().audit_arch, x32_read, &[0; 6]).action, EPERM);
    assert_eq!(decide(p, Arch::I386.table().audit_arch, 3, &[0; 6]).action, EPERM);
    let q = policies("policy q { target x86_64, x32\n default errno(5) }");
    assert_eq!(decide(&q["q"], Arch::X86_64.table().audit_arch, x32_read, &[0; 6]).arch, Some(Arch::X32));
    let k = policies("policy k { target aarch64\n default allow }");
    assert_eq!(
        decide(&k["k"], Arch::X86_64.table().audit_arch, 0, &[0; 6]).action,
        Action::KillProcess,
        "badarch defaults to kill_process"
    );
}

#[test]
fn newer_applies_to_unnamed_syscalls_the_oldest_kernel_lacks() {
    let p = policies(
        "policy p { target x86_64\n kernel >= 4.14\n default kill_process\n newer errno(ENOSYS)\n errno(EPERM) openat2 if usize == 0 }",
    );
    let p = &p["p"];
    assert_eq!(x86(p, "clone3", &[]), Action::Errno(38), "5.3, unnamed");
    assert_eq!(x86(p, "getpid", &[]), Action::KillProcess, "old syscall: default");
    assert_eq!(x86(p, "openat2", &[0, 0, 0, 1]), Action::KillProcess, "named by a rule: the default, not newer");
    assert_eq!(x86(p, "openat2", &[0, 0, 0, 0]), EPERM);
    assert_eq!(decide(p, Arch::X86_64.table().audit_arch, 5000, &[0; 6]).action, Action::KillProcess, "unknown numbers: default");
}

#[test]
fn the_example_rules_name_the_deciding_rule() {
    let text = include_str!("../../stdlib-policies/examples/web.scp");
    let (checked, diags, _) = check_source("web.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    assert_eq!(checked.tests.cases, 13);
    assert_eq!(checked.tests.failed, 0);
    let web = &checked.policies["web"];
    let t = Arch::Aarch64.table();
    let d = decide(web, t.audit_arch, t.syscall("openat").expect("openat").nr, &[0, 0, 0o101, 0, 0, 0]);
    assert_eq!(d.action, Action::Errno(13));
    assert_eq!(web.rules[d.rule.expect("a rule")].layer, "web");
    // arm and aarch64 have their own O_DIRECTORY; the tables carry it
    let d = decide(web, t.audit_arch, t.syscall("openat").expect("openat").nr, &[0, 0, 0o40000, 0, 0, 0]);
    assert_eq!(d.action, Action::Allow);
}

#[test]
fn on_limits_a_rule_to_its_architectures() {
    // Docker's default allows arch_prctl on amd64 and x32 only: i386 has the syscall too
    let text = "policy p {\n    target x86_64, x32, i386\n    default errno(EPERM)\n    allow arch_prctl on x86_64, x32\n    allow modify_ldt\n}\n";
    let (checked, diags, _) = scpc::check_source("on.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    let p = &checked.policies["p"];
    for (arch, want) in [(Arch::X86_64, Action::Allow), (Arch::X32, Action::Allow), (Arch::I386, Action::Errno(1))] {
        let t = arch.table();
        let nr = t.syscall("arch_prctl").expect("every x86 arch has arch_prctl").nr;
        assert_eq!(scpc::eval::decide(p, t.audit_arch, nr, &[0; 6]).action, want, "{arch}");
        let ldt = t.syscall("modify_ldt").expect("modify_ldt").nr;
        assert_eq!(scpc::eval::decide(p, t.audit_arch, ldt, &[0; 6]).action, Action::Allow, "{arch}");
    }
}
