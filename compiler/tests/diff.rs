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

fn compare(old: &Side, new: &Side) -> scpc::diff::Report {
    diff(old, new).expect("compares")
}

#[test]
fn one_changed_argument_condition_and_nothing_else() {
    let (old, new) = (policy("old.scp", "net"), policy("new.scp", "net"));
    let report = compare(&Side::Policy(old.clone()), &Side::Policy(new.clone()));
    let changed: Vec<(Option<Arch>, Option<&str>, bool)> =
        report.differences.iter().map(|c| (c.arch, c.syscall, c.whatever_the_arguments)).collect();
    assert_eq!(changed, vec![(Some(Arch::X86_64), Some("socket"), false), (Some(Arch::Aarch64), Some("socket"), false)]);
    for c in &report.differences {
        // socket(AF_INET6), allowed before, EPERM now: exactly that region
        assert_eq!((c.example.args, c.example.old_ret, c.example.new_ret), ([10, 0, 0, 0, 0, 0], 0x7fff_0000, 0x0005_0001), "{c:?}");
        let texts: Vec<Vec<&str>> = c.regions.iter().map(|r| r.conditions.iter().map(|c| c.text.as_str()).collect()).collect();
        assert_eq!(texts, vec![vec!["family == 0xa"]]);
    }

    // the same between the compiled filters, and between a policy and a filter
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let (fo, fn_) = (filter(&old, arch), filter(&new, arch));
        let r = compare(&Side::Filter(fo.clone()), &Side::Filter(fn_));
        let changed: Vec<_> = r.differences.iter().map(|c| (c.arch, c.syscall, c.whatever_the_arguments)).collect();
        assert_eq!(changed, vec![(Some(arch), Some("socket"), false)], "filters of {arch}");
        assert!(compare(&Side::Policy(for_host(&old, arch)), &Side::Filter(fo)).equal, "a policy equals its own filter on {arch}");
    }
}

#[test]
fn equivalent_policies_written_differently_are_equal() {
    // flat, with a set, versus layered, with a group, `||`, a `final` rule and errno(1) for EPERM
    let report = compare(&Side::Policy(policy("old.scp", "net")), &Side::Policy(policy("layered.scp", "net")));
    assert!(report.equal, "{:?}", report.differences);
    // and a difference in the default is found on every syscall it reaches
    let r = compare(&Side::Policy(policy("layered.scp", "base")), &Side::Policy(policy("layered.scp", "net")));
    let names: Vec<_> =
        r.differences.iter().filter(|c| c.arch == Some(Arch::X86_64)).map(|c| (c.syscall, c.whatever_the_arguments)).collect();
    assert_eq!(names, vec![(Some("close"), true), (Some("socket"), false)]);
}

const SOCKET_BASE: &str = "policy p {\n  target x86_64\n  default errno(EPERM)\n  allow read, write, close\n  allow socket if family in {AF_UNIX, AF_INET, AF_INET6}\n";

/// The example: one added 3-argument conjunction, which none of the sampler's
/// argument vectors reaches, is reported with its region and a call inside it, policy vs
/// policy, filter vs filter and policy vs filter.
#[test]
fn an_added_three_argument_conjunction_is_reported() {
    let old_text = format!("{SOCKET_BASE}}}\n");
    let new_text = format!("{SOCKET_BASE}  allow socket if family == AF_PACKET && type == SOCK_RAW && protocol == 0x300\n}}\n");
    let (old, new) = (policy_text(&old_text), policy_text(&new_text));
    let (fo, fnew) = (filter(&old, Arch::X86_64), filter(&new, Arch::X86_64));
    for (what, a, b) in [
        ("policies", Side::Policy(old.clone()), Side::Policy(new.clone())),
        ("filters", Side::Filter(fo.clone()), Side::Filter(fnew.clone())),
        ("policy and filter", Side::Policy(old.clone()), Side::Filter(fnew.clone())),
    ] {
        let r = compare(&a, &b);
        let socket: Vec<_> = r.differences.iter().filter(|d| d.arch == Some(Arch::X86_64)).collect();
        assert_eq!(socket.len(), 1, "{what}: {:?}", r.differences);
        let d = socket[0];
        assert_eq!(d.syscall, Some("socket"), "{what}");
        let texts: Vec<Vec<&str>> = d.regions.iter().map(|r| r.conditions.iter().map(|c| c.text.as_str()).collect()).collect();
        assert_eq!(texts, vec![vec!["family == 0x11", "type == 3", "protocol == 0x300"]], "{what}");
        assert_eq!((d.example.args, d.example.new.as_str()), ([17, 3, 0x300, 0, 0, 0], "allow"), "{what}");
        let t = Arch::X86_64.table();
        assert_eq!(b.decide(Arch::X86_64, t.syscall("socket").expect("socket").nr, &d.example.args), 0x7fff_0000, "{what}");
    }
}

/// 60 random added conjunctions over three arguments, each reported (a seeded generator:
/// the same 60 on every run).
#[test]
fn sixty_random_added_conjunctions_are_all_reported() {
    let mut seed: u64 = 0x5eed_1234_abcd_0016;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let old = policy_text(&format!("{SOCKET_BASE}}}\n"));
    let t = Arch::X86_64.table();
    let nr = t.syscall("socket").expect("socket").nr;
    let mut reported = 0;
    for _ in 0..60 {
        // a family the old policy denies, and two more arguments
        let (f, ty, proto) = (3 + next() % 7, next() % 11, next() % 0x10000);
        let text = format!("{SOCKET_BASE}  allow socket if family == {f} && type == {ty} && protocol == {proto:#x}\n}}\n");
        let new = policy_text(&text);
        let r = compare(&Side::Policy(old.clone()), &Side::Policy(new.clone()));
        let d = r.differences.iter().find(|d| d.arch == Some(Arch::X86_64) && d.syscall == Some("socket")).expect("reported");
        assert_eq!(d.example.args[..3], [f, ty, proto], "{text}");
        assert_eq!(Side::Policy(new).decide(Arch::X86_64, nr, &d.example.args), 0x7fff_0000);
        reported += 1;
    }
    assert_eq!(reported, 60);
}

fn policy_text(text: &str) -> scpc::policy::Policy {
    let (checked, diags, _) = scpc::check_source("p.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    checked.policies["p"].clone()
}

fn for_host(p: &scpc::policy::Policy, arch: Arch) -> scpc::policy::Policy {
    scpc::artifact::for_host(p, arch)
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
    assert!(out.contains("x86_64: socket, depending on the arguments") && out.contains("when family == 0xa: allow → errno(1)"), "{out}");
    assert!(out.contains("for example socket(family=0xa): allow → errno(1)") && out.contains("2 difference(s)"), "{out}");
    let (code, out) = scpc(&["diff", "old.scp", "new.scp", "--json"]);
    assert_eq!(code, Some(1), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["differences"][0]["regions"][0]["conditions"][0]["text"], "family == 0xa");
    assert_eq!(json["differences"][0]["example"]["args"][0], 10);
    let (code, out) = scpc(&["diff", "old.scp", "layered.scp", "--new-policy", "net"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("no differences"), "{out}");
    let (code, out) = scpc(&["diff", "old.scp", "layered.scp"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("defines 2 policies") && out.contains("--policy NAME"), "{out}");
    let (code, out) = scpc(&["diff", "old.scp", "missing.bpf"]);
    assert_eq!(code, Some(2), "{out}");
}
