//! Random well-typed policies through the whole back end: every one must compile and pass
//! translation validation (the emulator agreeing with the reference interpreter on every
//! syscall number and every argument boundary), on random sets of targets. Layering, a group,
//! `final` rules, every condition operator. `SCPC_STRESS=1` runs the full-scale count.

use proptest::prelude::*;
use scpc::artifact::compile;
use scpc::profile::Profile;
use std::sync::atomic::{AtomicUsize, Ordering};

const SYSCALLS: &[&str] =
    &["read", "write", "close", "openat", "mmap", "socket", "ioctl", "fcntl", "kill", "getpid", "futex", "clone3", "lseek", "exit_group"];

/// Syscalls only the base's `final` rules name (a child may not override them).
const FINAL: &[&str] = &["prctl", "setuid", "ptrace"];

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("allow".to_string()),
        Just("log".to_string()),
        Just("kill_thread".to_string()),
        Just("kill_process".to_string()),
        Just("notify".to_string()),
        (0u16..4096).prop_map(|n| format!("errno({n})")),
        (0u16..100).prop_map(|n| format!("trap({n})")),
        (0u16..100).prop_map(|n| format!("trace({n})")),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..8).prop_map(|v| v.to_string()),
        any::<u32>().prop_map(|v| format!("{v:#x}")),
        Just("-1".to_string()),
        Just("0xffffffff".to_string()),
        Just("0x80000000".to_string()),
    ]
}

/// Conditions on arg0..arg2, which every syscall above has on every architecture.
fn cond() -> impl Strategy<Value = String> {
    let cmp = (0u8..3, prop::option::of(value()), prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]), value()).prop_map(
        |(a, m, op, v)| match m {
            Some(m) => format!("arg{a} & {m} {op} {v}"),
            None => format!("arg{a} {op} {v}"),
        },
    );
    let set = (0u8..3, any::<bool>(), prop::collection::vec(value(), 1..4))
        .prop_map(|(a, neg, vs)| format!("arg{a} {}in {{{}}}", if neg { "not " } else { "" }, vs.join(", ")));
    prop_oneof![cmp, set].prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} || {b})")),
            inner.prop_map(|a| format!("!({a})")),
        ]
    })
}

fn rule() -> impl Strategy<Value = String> {
    (action(), prop::sample::subsequence(SYSCALLS.to_vec(), 1..4), any::<bool>(), prop::option::of(cond())).prop_map(|(a, s, group, c)| {
        let c = c.map(|c| format!(" if {c}")).unwrap_or_default();
        let g = if group { "@g, " } else { "" };
        format!("    {a} {g}{}{c}\n", s.join(", "))
    })
}

fn final_rule() -> impl Strategy<Value = String> {
    (action(), prop::sample::subsequence(FINAL.to_vec(), 1..3), prop::option::of(cond())).prop_map(|(a, s, c)| {
        let c = c.map(|c| format!(" if {c}")).unwrap_or_default();
        format!("    final {a} {}{c}\n", s.join(", "))
    })
}

fn policy() -> impl Strategy<Value = String> {
    let targets = prop::sample::subsequence(vec!["x86_64", "x32", "i386", "aarch64", "arm", "riscv64"], 1..4);
    let group = prop::sample::subsequence(vec!["read", "write", "close", "lseek", "dup", "pread64"], 1..4);
    let rules = (prop::collection::vec(final_rule(), 0..2), prop::collection::vec(rule(), 0..6), prop::collection::vec(rule(), 0..6));
    (targets, action(), action(), prop::option::of(action()), group, rules).prop_map(|(t, default, badarch, newer, group, (finals, base, child))| {
        let newer = newer.map(|n| format!("    newer {n}\n")).unwrap_or_default();
        format!(
            "group g = {}\npolicy base {{\n    target {}\n    kernel >= 5.4\n    default {default}\n    badarch {badarch}\n{newer}{}{}}}\npolicy child extends base {{\n{}}}\n",
            group.join(", "),
            t.join(", "),
            finals.concat(),
            base.concat(),
            child.concat()
        )
    })
}

/// Random policies per run: `SCPC_STRESS=1` for the full-scale run (TESTING.md).
fn policies() -> u32 {
    if std::env::var_os("SCPC_STRESS").is_some() {
        2048
    } else {
        160
    }
}

#[test]
fn random_policies_compile_and_validate() {
    let cases = AtomicUsize::new(0);
    let accepted = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: policies(),
        max_global_rejects: policies() * 20,
        ..ProptestConfig::default()
    });
    let result = runner.run(&policy(), |text| {
        let (checked, diags, _) = scpc::check_source("r.scp", &text);
        prop_assume!(!diags.has_errors());
        accepted.fetch_add(1, Ordering::Relaxed);
        for name in ["base", "child"] {
            let policy = &checked.policies[name];
            for profile in [Profile::uniform(), scpc::import::trace::builtin_profile()] {
                match compile(policy, &profile) {
                    Ok(filters) => {
                        assert!(filters.iter().all(|f| f.proven), "every random policy's filter is proven");
                        cases.fetch_add(filters.iter().map(|f| f.validated_cases).sum::<usize>(), Ordering::Relaxed);
                    }
                    Err(e) => prop_assert!(false, "{name}: {e}\n{text}"),
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "{} random policies (base and child, 2 profiles each): {} calls decided alike by the reference interpreter and the emulator on the compiled filters",
        accepted.load(Ordering::Relaxed),
        cases.load(Ordering::Relaxed)
    );
}
