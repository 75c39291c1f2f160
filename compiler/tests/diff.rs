//! `scpc diff`: exactly the changed decisions, on policies, on filters, and across the two.

use scpc::abi::Arch;
use scpc::artifact::compile;
use scpc::diff::{diff, Side};

fn policy(file: &str, name: &str) -> scpc::policy::Policy {
    let text = std::fs::read_to_string(format!("tests/diff/{file}")).expect("fixture");
    let (checked, diags, _) = scpc::check_source(file, &text);
    assert!(!diags.has_errors(), "{diags:?}");
    checked.policies[name].clone()
}

fn filter(p: &scpc::policy::Policy, arch: Arch) -> scpc::bpf::Program {
    compile(p, &scpc::import::trace::builtin_profile()).expect("compiles").into_iter().find(|f| f.arch == arch).expect("target").program
}

#[test]
fn one_changed_argument_condition_and_nothing_else() {
    let (old, new) = (policy("old.scp", "net"), policy("new.scp", "net"));
    let report = diff(&Side::Policy(old.clone()), &Side::Policy(new.clone()));
    let changed: Vec<(Arch, Option<&str>, bool)> = report.changes.iter().map(|c| (c.arch, c.name, c.whatever_the_arguments)).collect();
    assert_eq!(changed, vec![(Arch::X86_64, Some("socket"), false), (Arch::Aarch64, Some("socket"), false)]);
    for c in &report.changes {
        // the first example is the plainest: socket(AF_INET6), allowed before, EPERM now
        assert_eq!(c.examples[0], ([10, 0, 0, 0, 0, 0], 0x7fff_0000, 0x0005_0001), "{c:?}");
    }
    assert!(report.calls > 1000);

    // the same between the compiled filters, and between a policy and a filter
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let (fo, fn_) = (filter(&old, arch), filter(&new, arch));
        let r = diff(&Side::Filter(fo.clone()), &Side::Filter(fn_));
        let changed: Vec<_> = r.changes.iter().map(|c| (c.arch, c.name, c.whatever_the_arguments)).collect();
        assert_eq!(changed, vec![(arch, Some("socket"), false)], "filters of {arch}");
        assert!(diff(&Side::Policy(old.clone()), &Side::Filter(fo)).changes.is_empty(), "a policy equals its own filter on {arch}");
    }
}

#[test]
fn equivalent_policies_written_differently_are_equal() {
    // flat, with a set, versus layered, with a group, `||`, a `final` rule and errno(1) for EPERM
    let report = diff(&Side::Policy(policy("old.scp", "net")), &Side::Policy(policy("layered.scp", "net")));
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    // and a difference in the default is found on every syscall it reaches
    let r = diff(&Side::Policy(policy("layered.scp", "base")), &Side::Policy(policy("layered.scp", "net")));
    let names: Vec<_> = r.changes.iter().filter(|c| c.arch == Arch::X86_64).map(|c| (c.name, c.whatever_the_arguments)).collect();
    assert_eq!(names, vec![(Some("close"), true), (Some("socket"), false)]);
}

mod support;

/// `scpc ARGS` in `tests/diff`: (exit status, stdout and stderr).
fn scpc(args: &[&str]) -> (Option<i32>, String) {
    let (code, out, err) = support::scpc_in(&support::tests_dir().join("diff"), args);
    (Some(code).filter(|c| *c >= 0), out + &err)
}

#[test]
fn exit_status_gates_ci() {
    let (code, out) = scpc(&["diff", "old.scp", "new.scp"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("x86_64: socket, depending on the arguments") && out.contains("socket(family=0xa): allow → errno(1)"), "{out}");
    assert!(out.contains("2 syscall number(s) decided differently"), "{out}");
    let (code, out) = scpc(&["diff", "old.scp", "layered.scp", "--new-policy", "net"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no differences"), "{out}");
    let (code, out) = scpc(&["diff", "old.scp", "layered.scp"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("defines 2 policies") && out.contains("--policy NAME"), "{out}");
    let (code, out) = scpc(&["diff", "old.scp", "missing.bpf"]);
    assert_eq!(code, Some(2), "{out}");
}
