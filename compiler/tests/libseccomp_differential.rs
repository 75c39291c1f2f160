//! scpc against libseccomp on random policies that libseccomp's API can express: a default
//! action and, per syscall, one rule with up to three argument comparisons (AND, one per
//! argument; ==, !=, <, <=, >, >=, masked ==). Both compile for x86_64; both filters run in
//! the emulator on every syscall number of the table and on the values at and around every
//! comparison; the decisions must be identical.
//!
//! Arguments the kernel reads narrower than 64 bits are passed zero-extended, as callers pass
//! them (libseccomp compares all 64 bits, scpc the bits the kernel reads; see docs/compiler.md).
//! `SCPC_STRESS=1` runs 50 times more policies.

#![cfg(scpc_libseccomp)]

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use proptest::prelude::*;
use scpc::abi::{Arch, Width};
use scpc::artifact::compile;
use scpc::bpf::sim::{run, SeccompData};
use scpc::bpf::Program;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

const SYSCALLS: &[&str] =
    &["read", "write", "openat", "lseek", "mmap", "ioctl", "fcntl", "kill", "socket", "getpid", "umask", "dup3", "madvise"];

static CASES: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Debug)]
enum Act {
    Allow,
    Errno(u16),
    Trap,
    Log,
    Kill,
}

impl Act {
    fn scp(&self) -> String {
        match self {
            Act::Allow => "allow".into(),
            Act::Errno(n) => format!("errno({n})"),
            Act::Trap => "trap(0)".into(),
            Act::Log => "log".into(),
            Act::Kill => "kill_process".into(),
        }
    }

    fn scmp(&self) -> ScmpAction {
        match self {
            Act::Allow => ScmpAction::Allow,
            Act::Errno(n) => ScmpAction::Errno(i32::from(*n)),
            Act::Trap => ScmpAction::Trap,
            Act::Log => ScmpAction::Log,
            Act::Kill => ScmpAction::KillProcess,
        }
    }
}

fn act() -> impl Strategy<Value = Act> {
    // (libseccomp refuses errno 4095, its MAX_ERRNO, and the rule would silently be missing)
    prop_oneof![Just(Act::Allow), (1u16..4095).prop_map(Act::Errno), Just(Act::Trap), Just(Act::Log), Just(Act::Kill)]
}

#[derive(Clone, Debug)]
struct Cmp {
    arg: usize,
    op: usize,
    mask: u64,
    value: u64,
}

const OPS: &[&str] = &["==", "!=", "<", "<=", ">", ">=", "&=="];

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..8,
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(0xffff_ffff),
        any::<u32>().prop_map(u64::from),
        any::<u64>(),
        Just(u64::MAX)
    ]
}

#[derive(Clone, Debug)]
struct Rule {
    syscall: usize,
    act: Act,
    cmps: Vec<Cmp>,
}

fn rules() -> impl Strategy<Value = Vec<Rule>> {
    let cmp = (0usize..3, 0usize..OPS.len(), value(), value()).prop_map(|(arg, op, mask, value)| Cmp { arg, op, mask, value });
    let rule = (0usize..SYSCALLS.len(), act(), prop::collection::vec(cmp, 0..3));
    prop::collection::vec(rule, 1..8).prop_map(|rs| {
        let mut seen = BTreeSet::new();
        rs.into_iter()
            .filter(|(s, _, _)| seen.insert(*s))
            .map(|(syscall, act, cmps)| {
                let mut args = BTreeSet::new();
                Rule { syscall, act, cmps: cmps.into_iter().filter(|c| args.insert(c.arg)).collect() }
            })
            .collect()
    })
}

fn width_mask(w: Width) -> u64 {
    match w {
        Width::W16 => 0xffff,
        Width::W32 => 0xffff_ffff,
        Width::W64 => u64::MAX,
    }
}

fn check(default: &Act, rules: &[Rule]) -> Result<(), TestCaseError> {
    let table = Arch::X86_64.table();
    // fit each value to the width of its argument, as a well-typed policy must
    let mut rules = rules.to_vec();
    for r in &mut rules {
        let params = table.syscall(SYSCALLS[r.syscall]).expect("x86_64 syscall").params;
        r.cmps.retain(|c| c.arg < params.len());
        for c in &mut r.cmps {
            let m = width_mask(params[c.arg].width);
            c.value &= m;
            c.mask &= m;
            if OPS[c.op] == "&==" {
                c.value &= c.mask;
            }
        }
    }
    let mut text = format!("policy p {{\n    target x86_64\n    kernel >= 5.4\n    default {}\n    badarch kill_process\n", default.scp());
    for r in &rules {
        let conds: Vec<String> = r
            .cmps
            .iter()
            .map(|c| match OPS[c.op] {
                "&==" => format!("arg{} & {:#x} == {:#x}", c.arg, c.mask, c.value),
                op => format!("arg{} {op} {:#x}", c.arg, c.value),
            })
            .collect();
        let cond = if conds.is_empty() { String::new() } else { format!(" if {}", conds.join(" && ")) };
        text.push_str(&format!("    {} {}{cond}\n", r.act.scp(), SYSCALLS[r.syscall]));
    }
    text.push_str("}\n");
    let (checked, diags, _) = scpc::check_source("l.scp", &text);
    prop_assert!(!diags.has_errors(), "{diags:?}\n{text}");
    let ours = compile(&checked.policies["p"], &scpc::import::trace::builtin_profile()).expect("compiles").remove(0).program;

    let mut ctx = ScmpFilterContext::new(default.scmp()).expect("ctx");
    ctx.remove_arch(ScmpArch::Native).expect("remove native");
    ctx.add_arch(ScmpArch::X8664).expect("arch");
    ctx.set_act_badarch(ScmpAction::KillProcess).expect("badarch");
    for r in &rules {
        let conds: Vec<ScmpArgCompare> = r
            .cmps
            .iter()
            .map(|c| {
                let op = match OPS[c.op] {
                    "==" => ScmpCompareOp::Equal,
                    "!=" => ScmpCompareOp::NotEqual,
                    "<" => ScmpCompareOp::Less,
                    "<=" => ScmpCompareOp::LessOrEqual,
                    ">" => ScmpCompareOp::Greater,
                    ">=" => ScmpCompareOp::GreaterEqual,
                    _ => ScmpCompareOp::MaskedEqual(c.mask),
                };
                ScmpArgCompare::new(c.arg as u32, op, c.value)
            })
            .collect();
        let nr = ScmpSyscall::from_name(SYSCALLS[r.syscall]).expect("known to libseccomp");
        // libseccomp refuses a rule whose action is the default one; so does nothing change
        let _ = ctx.add_rule_conditional(r.act.scmp(), nr, &conds);
    }
    let path = std::env::temp_dir().join(format!("scpc-libseccomp-diff-{}-{:?}.bpf", std::process::id(), std::thread::current().id()));
    ctx.export_bpf(std::fs::File::create(&path).expect("temp")).expect("export");
    let reference = Program::from_bytes(&std::fs::read(&path).expect("read back")).expect("bpf");
    let _ = std::fs::remove_file(&path);

    // every number of the table (and a few beyond), with boundary arguments for ruled syscalls
    let mut numbers: Vec<u32> = table.syscalls.iter().map(|s| s.nr).collect();
    // (not 0xffffffff: libseccomp exempts nr -1, which tracers use to skip a call, from its
    // x32 check and lets the default decide; scpc treats it as the x32 number it looks like
    // and applies `badarch` — stricter, and documented in docs/compiler.md)
    numbers.extend([table.syscalls.iter().map(|s| s.nr).max().unwrap_or(0) + 1, 1000, 0x4000_0000, 0x4000_0001, 0xffff_fffe]);
    let mut cases = 0;
    for nr in numbers {
        let mut vectors: BTreeSet<[u64; 6]> = [[0; 6]].into();
        if let Some(r) = rules.iter().find(|r| table.syscall(SYSCALLS[r.syscall]).is_some_and(|s| s.nr == nr)) {
            for c in &r.cmps {
                for v in [c.value.wrapping_sub(1), c.value, c.value.wrapping_add(1), c.mask, !c.value, 0x1_0000_0000 | c.value] {
                    let mut a = [0u64; 6];
                    a[c.arg] = v;
                    vectors.insert(a);
                    // and with the other comparisons satisfied at their value
                    for o in &r.cmps {
                        if o.arg != c.arg {
                            a[o.arg] = o.value;
                        }
                    }
                    vectors.insert(a);
                }
            }
        }
        let params = table.by_nr(nr).map_or(&[][..], |s| s.params);
        for mut args in vectors {
            for (i, a) in args.iter_mut().enumerate() {
                *a &= params.get(i).map_or(u64::MAX, |p| width_mask(p.width));
            }
            let data = SeccompData { nr, arch: table.audit_arch, instruction_pointer: 0, args };
            let (want, got) = (run(&reference, &data).expect("libseccomp's runs").ret, run(&ours, &data).expect("ours runs").ret);
            prop_assert_eq!(want, got, "nr {} args {:x?}: libseccomp {:#x}, scpc {:#x}\n{}", nr, args, want, got, text);
            cases += 1;
        }
    }
    CASES.fetch_add(cases, Ordering::Relaxed);
    Ok(())
}

fn policies() -> u32 {
    if std::env::var_os("SCPC_STRESS").is_some() {
        3200
    } else {
        64
    }
}

#[test]
fn libseccomp_and_scpc_decide_alike() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: policies(),
        max_global_rejects: policies() * 20,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&(act(), rules()), |(default, rules)| check(&default, &rules)) {
        panic!("{e}");
    }
    println!("{} policies, {} calls decided alike by libseccomp and scpc", policies(), CASES.load(Ordering::Relaxed));
}
