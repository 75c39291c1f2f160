//! Compiled filters on this machine's real kernel: loaded into a child process between fork
//! and exec, then observed from outside.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use scpc::abi::Arch;
use scpc::artifact::compile;
use scpc::profile::Profile;
use scpc_node::loader::{with_filter, Flags};

fn filter(text: &str, policy: &str) -> scpc::bpf::Program {
    let (checked, diags, _) = scpc::check_source("k.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    let filters = compile(&checked.policies[policy], &Profile::uniform()).expect("compiles and validates");
    filters.into_iter().find(|f| f.arch == Arch::X86_64).expect("an x86_64 filter").program
}

#[test]
fn the_example_filters_load_and_enforce() {
    let text = include_str!("../../stdlib-policies/examples/web.scp");
    for policy in ["base", "web"] {
        let program = filter(text, policy);
        let mut cmd = Command::new("/bin/true");
        with_filter(&mut cmd, program.insns, Flags::default());
        // The kernel accepts the filter (spawn succeeds); execve is not in the policy, so the
        // default kill_process ends the child with SIGSYS.
        let status = cmd.status().expect("the kernel accepts the filter");
        assert_eq!(status.signal(), Some(libc::SIGSYS), "{policy}: {status:?}");
    }
}

#[test]
fn an_errno_rule_answers_a_real_call() {
    let program = filter("policy p {\n target x86_64\n default allow\n errno(EPERM) uname\n}\n", "p");
    let mut cmd = Command::new("uname");
    with_filter(&mut cmd, program.insns, Flags::default());
    let out = cmd.output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"), "{out:?}");
    let program = filter("policy p {\n target x86_64\n default allow\n errno(EPERM) getppid\n}\n", "p");
    let mut cmd = Command::new("uname");
    with_filter(&mut cmd, program.insns, Flags::default());
    assert!(cmd.output().expect("runs").status.success(), "uname is allowed when only getppid is denied");
}
