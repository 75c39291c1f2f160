//! The real kernel as a third judge: random policies whose every decision is a distinct errno
//! (so nothing is ever executed), compiled for x86_64, loaded into a child process that makes
//! the raw calls; the errno each call returns must be the one the reference interpreter
//! decides. Calls use arguments with garbage upper halves, so 32-bit arguments are checked
//! as the kernel reads them. `SCPC_STRESS=1` runs the full-scale count.

use proptest::prelude::*;
use scpc::abi::Arch;
use scpc::artifact::compile;
use scpc::eval::decide;
use scpc::policy::Action;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Harmless if ever executed (they are not: every decision is an errno).
const SYSCALLS: &[&str] = &["getpgid", "getsid", "lseek", "fcntl", "ioctl", "dup", "fsync", "umask", "getpid", "kill"];

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..4, Just(0xffff_ffff), Just(0x8000_0000), Just(u64::MAX), any::<u32>().prop_map(u64::from), any::<u64>()]
}

fn cond() -> impl Strategy<Value = String> {
    let cmp = (0u8..3, prop::option::of(value()), prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]), value()).prop_map(
        |(a, m, op, v)| match m {
            Some(m) => format!("arg{a} & {m:#x} {op} {v:#x}"),
            None => format!("arg{a} {op} {v:#x}"),
        },
    );
    let set = (0u8..3, any::<bool>(), prop::collection::vec(value(), 1..3)).prop_map(|(a, neg, vs)| {
        let vs: Vec<String> = vs.iter().map(|v| format!("{v:#x}")).collect();
        format!("arg{a} {}in {{{}}}", if neg { "not " } else { "" }, vs.join(", "))
    });
    prop_oneof![cmp, set].prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} && {b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a} || {b})")),
        ]
    })
}

fn policy() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::subsequence(SYSCALLS.to_vec(), 1..3), prop::option::of(cond())), 1..8).prop_map(|rules| {
        let mut s = String::from("policy p {\n    target x86_64\n    kernel >= 5.4\n    default errno(299)\n    allow write, exit_group\n");
        for (i, (names, c)) in rules.iter().enumerate() {
            let c = c.as_ref().map(|c| format!(" if {c}")).unwrap_or_default();
            s.push_str(&format!("    errno({}) {}{c}\n", 300 + i, names.join(", ")));
        }
        s.push_str("}\n");
        s
    })
}

/// Random policies per run: `SCPC_STRESS=1` for the full-scale run (TESTING.md).
fn policies() -> u32 {
    if std::env::var_os("SCPC_STRESS").is_some() {
        10_000
    } else {
        48
    }
}

#[test]
fn the_kernel_decides_as_the_source() {
    let calls_checked = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: policies(),
        max_global_rejects: policies() * 20,
        ..ProptestConfig::default()
    });
    let strategy = (policy(), prop::collection::vec(prop::array::uniform6(value()), 8..24));
    let result = runner.run(&strategy, |(text, args)| {
        let (checked, diags, _) = scpc::check_source("k.scp", &text);
        prop_assume!(!diags.has_errors());
        let policy = &checked.policies["p"];
        let filter = compile(policy, &scpc::import::trace::builtin_profile()).expect("compiles and validates").remove(0);
        let table = Arch::X86_64.table();
        let mut calls = Vec::new();
        for name in SYSCALLS {
            let nr = table.syscall(name).expect("x86_64 syscall").nr;
            for a in &args {
                calls.push((nr, *a));
                // the same call with the upper halves flipped
                let mut b = *a;
                b.iter_mut().for_each(|v| *v ^= 0xdead_beef_0000_0000);
                calls.push((nr, b));
            }
        }
        let got = scpc_node::loader::probe(&filter.program.insns, &calls).expect("the kernel accepts the filter");
        prop_assert_eq!(got.len(), calls.len());
        for ((nr, a), e) in calls.iter().zip(got) {
            let Action::Errno(want) = decide(policy, table.audit_arch, *nr, a).action else { panic!("every decision is an errno") };
            prop_assert_eq!(e, i32::from(want), "nr {} args {:x?}\n{}", nr, a, text);
        }
        calls_checked.fetch_add(calls.len(), Ordering::Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "{} random policies loaded into the kernel: {} raw syscalls returned the errno the reference interpreter decides",
        policies(),
        calls_checked.load(Ordering::Relaxed)
    );
}
