//! The code generator against the two judges: every policy of the examples and of a set of
//! focused sources compiles, and its filter decides as the reference interpreter does
//! (translation validation), with always-allowed syscalls reaching `allow` without reading
//! arguments. A fault injected into the generated code is caught.

use scpc::bpf::{disasm::disasm, Insn, BPF_JMP, BPF_K, BPF_RET};
use scpc::codegen::emit;
use scpc::profile::Profile;
use scpc::verify::{validate, VerifyError};

fn compile_all(text: &str) -> Vec<(String, scpc::bpf::Program, usize)> {
    let (checked, diags, _) = scpc::check_source("t.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    checked
        .policies
        .values()
        .map(|p| {
            let prog = emit(p, &Profile::uniform()).expect("compiles");
            let v = validate(p, &prog).unwrap_or_else(|e| panic!("{e}\n{}", disasm(&prog)));
            (p.name.clone(), prog, v.cases)
        })
        .collect()
}

#[test]
fn the_example_compiles_and_validates_on_every_target() {
    let text = include_str!("../../stdlib-policies/examples/web.scp");
    for (name, prog, cases) in compile_all(text) {
        assert!(cases > 1000, "{name}: {cases} cases");
        assert!(prog.insns.len() < 400, "{name}: {} instructions", prog.insns.len());
    }
}

#[test]
fn conditions_of_every_shape_validate() {
    let common = "kernel >= 5.0\n default errno(EPERM)\n badarch trap(3)\n\
        allow read if fd == 0 || fd > 2 && fd <= 0x7fffffff\n\
        allow write if !(fd in {1, 2}) && count < 4096\n\
        allow openat if dfd == AT_FDCWD && flags & O_ACCMODE == O_RDONLY\n\
        errno(EACCES) openat if flags & O_CREAT != 0\n\
        log socket if family not in {AF_PACKET, AF_NETLINK}\n\
        notify mprotect if len > 0xffffffffffff0000\n\
        allow getpid, gettid, exit_group\n\
        kill_thread kill if sig == 9\n";
    let wide =
        "allow mmap if prot & PROT_EXEC == 0 && flags & 0xffffffff00000000 == 0\n allow lseek if offset >= 0x100000000 || offset < 10\n";
    let text = format!(
        "policy p64 {{\n target x86_64, x32, aarch64, riscv64\n {common} {wide}}}\npolicy p32 {{\n target i386, arm\n {common}}}\n"
    );
    let results = compile_all(&text);
    assert_eq!(results.len(), 2);
}

#[test]
fn layered_policies_with_newer_validate() {
    let text = "include \"std/groups.scp\"\npolicy base {\n target x86_64, aarch64\n kernel >= 4.14\n default kill_process\n newer errno(ENOSYS)\n allow @basic-io, @signal\n final kill_process kexec_load\n}\n\
        policy svc extends base {\n allow @network-io\n errno(EPERM) socket if family == AF_PACKET\n errno(ENOSYS) clone3\n}\n";
    compile_all(text);
}

#[test]
fn large_policies_need_far_jumps_and_still_validate() {
    // enough distinct argument values (no two syscalls share a decision, no values run
    // together) that shared returns at the end are more than 255 away
    let mut text = String::from("policy big {\n target x86_64\n default errno(EPERM)\n");
    for (s, name) in [
        "read",
        "write",
        "close",
        "lseek",
        "pread64",
        "pwrite64",
        "fcntl",
        "ioctl",
        "fchdir",
        "fsync",
        "ftruncate",
        "fchmod",
        "fchown",
        "fstat",
        "flock",
        "fdatasync",
    ]
    .into_iter()
    .enumerate()
    {
        for i in 0..6 {
            let v = 1000 * s + 10 * i;
            text.push_str(&format!(" errno({}) {name} if fd == {v} || fd in {{{}, {}}}\n", i + 2, v + 3, v + 6));
        }
    }
    text.push_str("}\n");
    for (_, prog, _) in compile_all(&text) {
        assert!(prog.insns.len() > 300, "{}", prog.insns.len());
        // some compare is more than 255 instructions from its `ret`: it reaches an island (a
        // copy of the `ret`, or a `ja` to its target)
        let rets: Vec<u32> = prog.insns.iter().filter(|i| i.code == BPF_RET | BPF_K).map(|i| i.k).collect();
        let mut distinct = rets.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            rets.len() > distinct.len() || prog.insns.iter().any(|i| i.code == BPF_JMP),
            "no island in {} instructions",
            prog.insns.len()
        );
    }
}

#[test]
fn an_injected_fault_is_caught() {
    let text = "policy p {\n target x86_64\n default errno(EPERM)\n allow read if fd == 0\n allow write\n}\n";
    let (checked, _, _) = scpc::check_source("t.scp", text);
    let p = &checked.policies["p"];
    let good = emit(p, &Profile::uniform()).expect("compiles");
    assert!(validate(p, &good).is_ok());
    // change the constant of the compare after `ld args[0].lo`, as a miscompiled constant would
    let mut bad = good.clone();
    let ld = bad.insns.iter().position(|i| *i == Insn::ld(scpc::bpf::off_arg_lo(0))).expect("the fd load");
    let at = ld + 1 + bad.insns[ld + 1..].iter().position(|i| i.code & 0x07 == BPF_JMP && i.code != BPF_JMP).expect("the fd compare");
    bad.insns[at].k += 1;
    assert!(matches!(validate(p, &bad), Err(VerifyError::Mismatch { .. })), "{}", disasm(&bad));
    // and a wrong return value
    let mut bad = good.clone();
    let ret = bad.insns.iter().rposition(|i| i.code == BPF_RET | BPF_K && i.k == 0x7fff_0000).expect("ret allow");
    bad.insns[ret] = Insn::ret(0x7ffc_0000);
    assert!(matches!(validate(p, &bad), Err(VerifyError::Mismatch { .. })));
}

#[test]
fn code_shape_is_pinned_by_a_disasm_snapshot() {
    let text = "policy p {\n target x86_64\n kernel >= 5.4\n default errno(EPERM)\n allow read, write, close\n allow openat if dfd == AT_FDCWD && flags & O_ACCMODE == O_RDONLY\n allow lseek if offset < 10\n}\n";
    for (_, prog, _) in compile_all(text) {
        insta::assert_snapshot!("small_policy_x86_64", disasm(&prog));
    }
}

#[test]
fn more_than_4096_instructions_is_a_clear_error() {
    let table = scpc::abi::Arch::X86_64.table();
    let with_fd: Vec<&str> =
        table.syscalls.iter().filter(|s| s.params.first().is_some_and(|p| p.name == "fd")).map(|s| s.name).take(120).collect();
    // up to 120 syscalls × 80 scattered values, distinct per syscall: far more values than
    // 4,096, each at least one compare even in the densest layout
    let mut text = String::from("policy huge {\n target x86_64\n default errno(EPERM)\n");
    for (s, name) in with_fd.into_iter().enumerate() {
        let set: Vec<String> = (0..80).map(|i| (s * 1000 + i * 3).to_string()).collect();
        text.push_str(&format!(" allow {name} if fd in {{{}}}\n", set.join(", ")));
    }
    text.push_str("}\n");
    let (checked, diags, _) = scpc::check_source("t.scp", &text);
    assert!(!diags.has_errors(), "{diags:?}");
    match emit(&checked.policies["huge"], &Profile::uniform()) {
        Err(e @ scpc::codegen::CodegenError::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(msg.starts_with("policy `huge` compiles to ") && msg.contains("more than the kernel takes (4096)"), "{msg}");
            assert!(msg.contains("the syscalls that cost most: ") && msg.contains(" on x86_64 ("), "{msg}");
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|p| p.insns.len())),
    }
}

#[test]
fn argument_frequencies_shorten_the_frequent_values_path() {
    let values: Vec<String> = (0..40).map(|i| (0x1000 + i * 0x10).to_string()).collect();
    let text = format!("policy p {{\n target x86_64\n default errno(EPERM)\n allow ioctl if cmd in {{{}}}\n}}\n", values.join(", "));
    let (checked, diags, _) = scpc::check_source("t.scp", &text);
    assert!(!diags.has_errors(), "{diags:?}");
    let p = &checked.policies["p"];
    let hot = 0x1000 + 39 * 0x10; // the last value: deepest in a balanced search
    let profile = scpc::import::trace::profile("a.tsv", &format!("ioctl cmd={hot:#x}\t900\nioctl cmd=0x1000\t100\n")).expect("profile");
    let table = scpc::abi::Arch::X86_64.table();
    let data = scpc::bpf::sim::SeccompData {
        nr: table.syscall("ioctl").expect("ioctl").nr,
        arch: table.audit_arch,
        instruction_pointer: 0,
        args: [1, hot, 0, 0, 0, 0],
    };
    let path = |profile: &Profile| {
        let prog = emit(p, profile).expect("compiles");
        validate(p, &prog).unwrap_or_else(|e| panic!("{e}\n{}", disasm(&prog)));
        let o = scpc::bpf::sim::run(&prog, &data).expect("runs");
        assert_eq!(o.ret, 0x7fff_0000);
        o.executed
    };
    let (uniform, weighted) = (path(&Profile::uniform()), path(&profile));
    assert!(weighted < uniform, "{weighted} instructions with the profile, {uniform} without");
}
