//! scpc side by side with libseccomp (default and SCMP_FLTATR_CTL_OPTIMIZE=2) and
//! Firecracker's seccompiler, on the same policies and the same syscall-frequency profiles,
//! on x86_64. Every filter is run by scpc's BPF emulator on the profile's calls (arguments
//! zero): program length, mean and max instructions executed, mean jumps taken, compile
//! time, and the lower bound (the optimal range tree over the same frequencies, with the
//! arch and x32 checks and the return). Means are given over all calls (kernels before 5.11)
//! and over the calls the kernel's action cache does not absorb (5.11 and later).
//!
//! Then the argument checks at scale: the n-rule generator (`allow S if fd == V`, distinct
//! random 31-bit values over 10 syscalls) at 1k to 20k rules and an ioctl policy with 500
//! `cmd` values, each compiler's length and mean instructions per call (one call per rule),
//! and scpc's time to a verdict (parse, check, code, validation and proof, or the size error).
//!
//! Run: `cargo run --release --manifest-path bench/Cargo.toml` (needs libseccomp-dev);
//! `-- rules` runs only the argument-check tables, `-- instructions` only the instruction
//! counts (no kernel timings, no argument-check tables).

use std::collections::BTreeMap;
use std::time::Instant;

use scpc::abi::Arch;
use scpc::bpf::sim::{run, SeccompData};
use scpc::bpf::{Insn, Program};
use scpc::profile::Profile;

#[derive(Clone, Copy, Debug)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq(u64),
}

#[derive(Clone, Copy, Debug)]
struct Cond {
    index: u8,
    op: Op,
    value: u64,
}

/// A syscall's rules: any of them (each a conjunction) lets it through with `action`.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    errno: Option<u16>,
    rules: Vec<Vec<Cond>>,
}

struct Bench {
    name: &'static str,
    default_errno: u16,
    entries: Vec<Entry>,
}

fn docker() -> Bench {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../compiler/tests/fixtures/docker-default.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("docker-default.json")).expect("json");
    let table = Arch::X86_64.table();
    let mut by_name: BTreeMap<String, Entry> = BTreeMap::new();
    for s in json["syscalls"].as_array().expect("syscalls") {
        let inc = &s["includes"];
        if inc.get("caps").is_some() {
            continue; // a container without extra capabilities
        }
        if let Some(arches) = inc.get("arches").and_then(|a| a.as_array()) {
            if !arches.iter().any(|a| a == "amd64") {
                continue;
            }
        }
        if s["excludes"].get("arches").and_then(|a| a.as_array()).is_some_and(|a| a.iter().any(|x| x == "amd64")) {
            continue;
        }
        let errno = match s["action"].as_str() {
            Some("SCMP_ACT_ALLOW") => None,
            Some("SCMP_ACT_ERRNO") => Some(s["errnoRet"].as_u64().unwrap_or(1) as u16),
            _ => continue,
        };
        let conds: Vec<Cond> = s["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let value = c["value"].as_u64().expect("value");
                        let op = match c["op"].as_str().expect("op") {
                            "SCMP_CMP_EQ" => Op::Eq,
                            "SCMP_CMP_NE" => Op::Ne,
                            "SCMP_CMP_LT" => Op::Lt,
                            "SCMP_CMP_LE" => Op::Le,
                            "SCMP_CMP_GT" => Op::Gt,
                            "SCMP_CMP_GE" => Op::Ge,
                            "SCMP_CMP_MASKED_EQ" => Op::MaskedEq(value),
                            other => panic!("{other}"),
                        };
                        let value = if let Op::MaskedEq(_) = op { c["valueTwo"].as_u64().unwrap_or(0) } else { value };
                        Cond { index: c["index"].as_u64().expect("index") as u8, op, value }
                    })
                    .collect()
            })
            .unwrap_or_default();
        for name in s["names"].as_array().expect("names") {
            let name = name.as_str().expect("name").to_string();
            // names libseccomp 2.5 cannot resolve are left out for every compiler alike
            if table.syscall(&name).is_none() || libseccomp::ScmpSyscall::from_name(&name).is_err() {
                continue;
            }
            let e = by_name.entry(name.clone()).or_insert(Entry { name, errno, rules: vec![] });
            e.rules.push(conds.clone());
        }
    }
    Bench { name: "docker-default", default_errno: 1, entries: by_name.into_values().collect() }
}

fn daemon() -> Bench {
    let plain =
        "read write close epoll_wait epoll_ctl epoll_create1 accept4 recvfrom sendto writev readv fstat newfstatat lseek munmap brk \
                 rt_sigaction rt_sigprocmask rt_sigreturn futex clock_gettime getpid gettid exit exit_group bind listen setsockopt \
                 getsockopt shutdown sendfile pread64 getrandom nanosleep madvise pipe2 dup dup3 uname getuid geteuid";
    let mut entries: Vec<Entry> = plain.split_whitespace().map(|n| Entry { name: n.into(), errno: None, rules: vec![vec![]] }).collect();
    let c = |index, op, value| Cond { index, op, value };
    entries.push(Entry { name: "openat".into(), errno: None, rules: vec![vec![c(2, Op::MaskedEq(3), 0)]] });
    entries.push(Entry { name: "mmap".into(), errno: None, rules: vec![vec![c(2, Op::MaskedEq(4), 0)]] });
    entries.push(Entry { name: "mprotect".into(), errno: None, rules: vec![vec![c(2, Op::MaskedEq(4), 0)]] });
    entries.push(Entry { name: "socket".into(), errno: None, rules: [1, 2, 10].iter().map(|f| vec![c(0, Op::Eq, *f)]).collect() });
    entries.push(Entry { name: "fcntl".into(), errno: None, rules: [1, 2, 3, 4].iter().map(|f| vec![c(1, Op::Eq, *f)]).collect() });
    entries.push(Entry { name: "ioctl".into(), errno: None, rules: vec![vec![c(1, Op::Eq, 0x5421)]] });
    entries.push(Entry { name: "clone3".into(), errno: Some(38), rules: vec![vec![]] });
    Bench { name: "network-daemon", default_errno: 1, entries }
}

fn scp_text(b: &Bench, kernel: &str) -> String {
    let mut s = format!("policy bench {{\n target x86_64\n kernel >= {kernel}\n default errno({})\n", b.default_errno);
    for e in &b.entries {
        let action = e.errno.map_or("allow".to_string(), |n| format!("errno({n})"));
        let rules: Vec<String> = e
            .rules
            .iter()
            .map(|conj| {
                let parts: Vec<String> = conj
                    .iter()
                    .map(|c| {
                        let a = format!("arg{}", c.index);
                        match c.op {
                            Op::Eq => format!("{a} == {}", c.value),
                            Op::Ne => format!("{a} != {}", c.value),
                            Op::Lt => format!("{a} < {}", c.value),
                            Op::Le => format!("{a} <= {}", c.value),
                            Op::Gt => format!("{a} > {}", c.value),
                            Op::Ge => format!("{a} >= {}", c.value),
                            Op::MaskedEq(m) => format!("{a} & {m:#x} == {:#x}", c.value),
                        }
                    })
                    .collect();
                parts.join(" && ")
            })
            .collect();
        if rules.iter().any(String::is_empty) {
            s.push_str(&format!(" {action} {}\n", e.name));
        } else if rules.len() > 64 {
            // the generated policies: a rule per line, as their authors would write them
            for r in &rules {
                s.push_str(&format!(" {action} {} if {r}\n", e.name));
            }
        } else {
            s.push_str(&format!(" {action} {} if ({})\n", e.name, rules.join(") || (")));
        }
    }
    s.push_str("}\n");
    s
}

fn scpc_compile(b: &Bench, kernel: &str, profile: &Profile) -> (Program, f64, f64) {
    scpc_compile_for(b, kernel, profile, "x86_64")
}

fn scpc_compile_for(b: &Bench, kernel: &str, profile: &Profile, targets: &str) -> (Program, f64, f64) {
    let start = Instant::now();
    let text = scp_text(b, kernel).replace(" target x86_64\n", &format!(" target {targets}\n"));
    let (checked, diags, _) = scpc::check_source("bench.scp", &text);
    let errors: Vec<String> = diags.iter().filter(|d| scpc_lang::diag::is_error(d.as_ref())).map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{text}");
    let policy = &checked.policies["bench"];
    let filters = scpc::artifact::compile(policy, profile).expect("compiles and validates");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    // lower bound: the optimal range tree over the same weights, plus ld arch, jeq, ld nr,
    // jset x32, and the ret
    let target = policy.arch(Arch::X86_64).expect("x86_64");
    let ranges = scpc::codegen::arch_ranges(policy, target, profile);
    // the profile's own weights (the code generator adds a tiny weight everywhere for ties;
    // with few uncached calls that would dominate the bound); cached allows weigh nothing
    // from 5.11
    let table = Arch::X86_64.table();
    let absorbs = policy.kernel >= scpc::codegen::ACTION_CACHE_KERNEL;
    let w: Vec<f64> = ranges
        .iter()
        .map(|r| {
            let cached = absorbs && r.leaf == scpc::codegen::tree::Leaf::Ret(scpc::policy::Action::Allow.ret_value());
            if cached {
                return 0.0;
            }
            table.syscalls.iter().filter(|s| s.nr >= r.lo && s.nr <= r.hi).map(|s| profile.weight(s.name)).sum()
        })
        .collect();
    let tree = scpc::codegen::tree::Tree::optimal(&w);
    let total: f64 = w.iter().sum();
    let bound = 5.0 + tree.cost / total;
    (filters.into_iter().next().expect("one filter").program, ms, bound)
}

fn libseccomp_compile(b: &Bench, optimize: bool) -> (Program, f64) {
    libseccomp_compile_for(b, optimize, false)
}

fn libseccomp_compile_for(b: &Bench, optimize: bool, all_x86: bool) -> (Program, f64) {
    use libseccomp::*;
    let start = Instant::now();
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(b.default_errno as i32)).expect("ctx");
    if all_x86 {
        ctx.add_arch(ScmpArch::X86).expect("x86");
        ctx.add_arch(ScmpArch::X32).expect("x32");
    }
    if optimize {
        ctx.set_ctl_optimize(2).expect("optimize");
    }
    for e in &b.entries {
        let nr = ScmpSyscall::from_name(&e.name).expect("name");
        let action = e.errno.map_or(ScmpAction::Allow, |n| ScmpAction::Errno(n as i32));
        for conj in &e.rules {
            let conds: Vec<ScmpArgCompare> = conj
                .iter()
                .map(|c| {
                    let op = match c.op {
                        Op::Eq => ScmpCompareOp::Equal,
                        Op::Ne => ScmpCompareOp::NotEqual,
                        Op::Lt => ScmpCompareOp::Less,
                        Op::Le => ScmpCompareOp::LessOrEqual,
                        Op::Gt => ScmpCompareOp::Greater,
                        Op::Ge => ScmpCompareOp::GreaterEqual,
                        Op::MaskedEq(m) => ScmpCompareOp::MaskedEqual(m),
                    };
                    ScmpArgCompare::new(c.index as u32, op, c.value)
                })
                .collect();
            ctx.add_rule_conditional(action, nr, &conds).expect("rule");
        }
    }
    let path = std::env::temp_dir().join(format!("scpc-bench-{}.bpf", std::process::id()));
    let file = std::fs::File::create(&path).expect("temp");
    ctx.export_bpf(&file).expect("export");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let bytes = std::fs::read(&path).expect("read back");
    let _ = std::fs::remove_file(&path);
    (Program::from_bytes(&bytes).expect("bpf"), ms)
}

fn seccompiler_compile(b: &Bench) -> (Program, f64) {
    seccompiler_try(b).expect("seccompiler compiles")
}

/// seccompiler's filter, `None` when it refuses (past 4,096 instructions).
fn seccompiler_try(b: &Bench) -> Option<(Program, f64)> {
    use seccompiler::*;
    let start = Instant::now();
    let table = Arch::X86_64.table();
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for e in b.entries.iter().filter(|e| e.errno.is_none()) {
        let sys = table.syscall(&e.name).expect("x86_64 syscall");
        let list: Vec<SeccompRule> = if e.rules.iter().any(Vec::is_empty) {
            vec![]
        } else {
            e.rules
                .iter()
                .map(|conj| {
                    let conds = conj
                        .iter()
                        .map(|c| {
                            let width = sys.params.get(c.index as usize).map_or(scpc::abi::Width::W64, |p| p.width);
                            let len = if width == scpc::abi::Width::W64 { SeccompCmpArgLen::Qword } else { SeccompCmpArgLen::Dword };
                            let op = match c.op {
                                Op::Eq => SeccompCmpOp::Eq,
                                Op::Ne => SeccompCmpOp::Ne,
                                Op::Lt => SeccompCmpOp::Lt,
                                Op::Le => SeccompCmpOp::Le,
                                Op::Gt => SeccompCmpOp::Gt,
                                Op::Ge => SeccompCmpOp::Ge,
                                Op::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
                            };
                            SeccompCondition::new(c.index, len, op, c.value).expect("condition")
                        })
                        .collect();
                    SeccompRule::new(conds).expect("rule")
                })
                .collect()
        };
        rules.insert(sys.nr as i64, list);
    }
    let filter =
        SeccompFilter::new(rules, SeccompAction::Errno(b.default_errno as u32), SeccompAction::Allow, TargetArch::x86_64).expect("filter");
    let prog: BpfProgram = filter.try_into().ok()?;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    Some((Program { insns: prog.iter().map(|i| Insn { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect() }, ms))
}

struct Stats {
    len: usize,
    mean: f64,
    mean_uncached: f64,
    max: usize,
    taken: f64,
}

fn measure(prog: &Program, b: &Bench, profile: &Profile) -> Stats {
    let table = Arch::X86_64.table();
    let always_allowed = |name: &str| b.entries.iter().any(|e| e.name == name && e.errno.is_none() && e.rules.iter().any(Vec::is_empty));
    let (mut w_all, mut sum, mut w_unc, mut sum_unc, mut taken, mut max) = (0.0, 0.0, 0.0, 0.0, 0.0, 0);
    for s in table.syscalls {
        let w = profile.weight(s.name);
        if w == 0.0 {
            continue;
        }
        let data = SeccompData { nr: s.nr, arch: table.audit_arch, instruction_pointer: 0, args: [0; 6] };
        let o = run(prog, &data).expect("filter runs");
        w_all += w;
        sum += w * o.executed as f64;
        taken += w * o.taken as f64;
        max = max.max(o.executed);
        if !always_allowed(s.name) {
            w_unc += w;
            sum_unc += w * o.executed as f64;
        }
    }
    Stats {
        len: prog.insns.len(),
        mean: sum / w_all,
        mean_uncached: if w_unc > 0.0 { sum_unc / w_unc } else { 0.0 },
        max,
        taken: taken / w_all,
    }
}

/// Median of seven runs, in ms.
fn median_ms(mut f: impl FnMut() -> f64) -> f64 {
    let mut t: Vec<f64> = (0..7).map(|_| f()).collect();
    t.sort_by(f64::total_cmp);
    t[3]
}

fn main() {
    let mode = std::env::args().nth(1);
    if mode.as_deref() == Some("rules") {
        rules_table();
        return;
    }
    let profiles: Vec<(&str, Profile)> = [
        ("nginx", include_str!("../../compiler/profiles/nginx.strace-c.txt")),
        ("redis", include_str!("../../compiler/profiles/redis.strace-c.txt")),
        ("git+python", include_str!("../../compiler/profiles/git-python.strace-c.txt")),
    ]
    .into_iter()
    .map(|(n, t)| (n, scpc::import::trace::profile(n, t).expect("profile")))
    .collect();
    let d = docker();
    let builtin = scpc::import::trace::builtin_profile();
    let scpc_ms = median_ms(|| scpc_compile_for(&d, "4.14", &builtin, "x86_64, x32, i386").1);
    let lib_ms = median_ms(|| libseccomp_compile_for(&d, false, true).1);
    let lib2_ms = median_ms(|| libseccomp_compile_for(&d, true, true).1);
    println!("Compile time, Docker's default for x86_64 + x32 + i386 (median of 7): scpc {scpc_ms:.2} ms (parse, check, three trees, translation validation), libseccomp 2.5 {lib_ms:.2} ms, libseccomp optimize=2 {lib2_ms:.2} ms\n");
    println!("| policy | profile | compiler | insns | mean (all calls) | mean (5.11+, uncached) | max | taken jumps | compile ms |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for b in [docker(), daemon()] {
        for (pname, profile) in &profiles {
            let (old, ms, bound_old) = scpc_compile(&b, "4.14", profile);
            let (new, _, bound_new) = scpc_compile(&b, "5.11", profile);
            let s_old = measure(&old, &b, profile);
            let s_new = measure(&new, &b, profile);
            let row = |who: &str, s: &Stats, uncached: f64, ms: f64| {
                println!(
                    "| {} | {pname} | {who} | {} | {:.2} | {:.2} | {} | {:.2} | {:.2} |",
                    b.name, s.len, s.mean, uncached, s.max, s.taken, ms
                );
            };
            println!("| {} | {pname} | lower bound (optimal range tree) | | {bound_old:.2} | {bound_new:.2} | | | |", b.name);
            row("scpc (kernel >= 4.14 layout)", &s_old, s_old.mean_uncached, ms);
            row("scpc (kernel >= 5.11 layout)", &s_new, s_new.mean_uncached, ms);
            for (who, (p, ms)) in [
                ("libseccomp 2.5", libseccomp_compile(&b, false)),
                ("libseccomp 2.5 optimize=2", libseccomp_compile(&b, true)),
                ("seccompiler 0.5", seccompiler_compile(&b)),
            ] {
                let s = measure(&p, &b, profile);
                row(who, &s, s.mean_uncached, ms);
            }
        }
    }
    if mode.as_deref() == Some("instructions") {
        probe_line();
        return;
    }
    kernel_table();
    rules_table();
}

/// The 10 syscalls of the n-rule generator: each takes an `int fd` first.
const RULE_SYSCALLS: [&str; 10] = ["read", "write", "close", "fstat", "lseek", "fsync", "fdatasync", "fchdir", "fchmod", "flock"];

/// `n` rules `allow S if fd == V` over [`RULE_SYSCALLS`], round robin, with distinct random
/// 31-bit values (a fixed seed: the same policy every run).
fn n_rules(n: usize) -> Bench {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut seen = std::collections::BTreeSet::new();
    let mut entries: Vec<Entry> = RULE_SYSCALLS.iter().map(|s| Entry { name: s.to_string(), errno: None, rules: vec![] }).collect();
    let mut i = 0;
    while i < n {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let v = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) & 0x7fff_ffff;
        if seen.insert(v) {
            entries[i % 10].rules.push(vec![Cond { index: 0, op: Op::Eq, value: v }]);
            i += 1;
        }
    }
    Bench { name: "n-rule", default_errno: 1, entries }
}

/// An ioctl policy: 500 `cmd` values (the `_IOR`/`_IOW` shape: type, number, size), and a
/// plain allowlist around it.
fn ioctl_500() -> Bench {
    let mut entries: Vec<Entry> =
        ["read", "write", "close", "openat", "fstat", "mmap", "munmap", "exit_group"].iter().map(|n| Entry { name: n.to_string(), errno: None, rules: vec![vec![]] }).collect();
    let mut rules = Vec::new();
    for i in 0..500u64 {
        let (dir, ty, nr, size) = (1 + i % 2, 0x40 + i / 64, i % 64, 4 + 4 * (i % 5));
        rules.push(vec![Cond { index: 1, op: Op::Eq, value: dir << 30 | size << 16 | ty << 8 | nr }]);
    }
    entries.push(Entry { name: "ioctl".into(), errno: None, rules });
    Bench { name: "ioctl-500", default_errno: 1, entries }
}

/// scpc's phases on `b` in ms: check, code, sampling, proof (the filter must compile).
fn scpc_phases(b: &Bench) -> [f64; 4] {
    let t = Instant::now();
    let text = scp_text(b, "5.11");
    let (checked, _, _) = scpc::check_source("bench.scp", &text);
    let policy = &checked.policies["bench"];
    let t1 = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let prog = scpc::codegen::emit(policy, &Profile::uniform()).expect("compiles");
    let t2 = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    scpc::verify::sample(policy, &prog).expect("samples");
    let t3 = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let proof = scpc::prove::prove(policy, &prog, scpc::prove::DEFAULT_BUDGET);
    assert!(matches!(proof, scpc::prove::Proof::Proven), "{proof:?}");
    [t1, t2, t3, t.elapsed().as_secs_f64() * 1e3]
}

/// scpc's time to a verdict on `b` (parse, check, code, validation, proof): the filter, or
/// the error.
fn scpc_verdict(b: &Bench) -> (Result<Program, String>, f64) {
    let start = Instant::now();
    let text = scp_text(b, "5.11");
    let (checked, diags, _) = scpc::check_source("bench.scp", &text);
    assert!(!diags.has_errors(), "{diags:?}");
    let out = scpc::artifact::compile(&checked.policies["bench"], &Profile::uniform())
        .map(|f| f.into_iter().next().expect("one filter").program)
        .map_err(|e| e.to_string());
    (out, start.elapsed().as_secs_f64() * 1e3)
}

/// Mean instructions per call over one call per rule (its syscall, its argument value), and
/// the mean of the same calls through a linear chain of `jeq`s in source order after the same
/// arch check and syscall tree (what `prog` executes before its first argument load, then one
/// load, the chain up to the value, and the `ret`).
fn rule_calls(prog: &Program, b: &Bench) -> Option<(f64, f64)> {
    let table = Arch::X86_64.table();
    let (mut sum, mut linear, mut calls) = (0.0, 0.0, 0.0);
    for e in &b.entries {
        let nr = table.syscall(&e.name).expect("syscall").nr;
        for (pos, conj) in e.rules.iter().enumerate() {
            let Some(c) = conj.first() else { continue };
            let mut args = [0u64; 6];
            args[c.index as usize] = c.value;
            let data = SeccompData { nr, arch: table.audit_arch, instruction_pointer: 0, args };
            // a filter past the kernel's 4,096 instructions does not run
            let o = run(prog, &data).ok()?;
            assert_eq!(o.ret, 0x7fff_0000, "{} {:#x} is allowed", e.name, c.value);
            sum += o.executed as f64;
            // the prefix: up to the first load of an argument word on this path
            let prefix = prefix_len(prog, &data);
            linear += (prefix + 1 + pos + 1 + 1) as f64;
            calls += 1.0;
        }
    }
    Some((sum / calls, linear / calls))
}

/// Instructions `prog` executes on `data` before its first load of an argument word.
fn prefix_len(prog: &Program, data: &SeccompData) -> usize {
    let first_arg = scpc::bpf::off_arg_lo(0);
    let (mut pc, mut n, mut acc) = (0usize, 0usize, 0u32);
    let word = |off: u32| -> u32 {
        match off {
            0 => data.nr,
            4 => data.arch,
            _ => 0,
        }
    };
    loop {
        let i = prog.insns[pc];
        if i.code == scpc::bpf::BPF_LD | scpc::bpf::BPF_W | scpc::bpf::BPF_ABS {
            if i.k >= first_arg {
                return n;
            }
            acc = word(i.k);
        }
        n += 1;
        if i.code & 0x07 == scpc::bpf::BPF_JMP {
            let op = i.code & 0xf0;
            if op == 0 {
                pc += 1 + i.k as usize;
                continue;
            }
            let taken = match op {
                0x10 => acc == i.k,
                0x20 => acc > i.k,
                0x30 => acc >= i.k,
                _ => acc & i.k != 0,
            };
            pc += 1 + usize::from(if taken { i.jt } else { i.jf });
        } else if i.code & 0x07 == 0x06 {
            return n;
        } else {
            pc += 1;
        }
    }
}

/// Instructions each compiler's filter runs for Docker's `personality(0xffffffff)` probe
/// (the `kernel >= 5.11` layout with the built-in profile for scpc).
fn probe_line() {
    let b = docker();
    let table = Arch::X86_64.table();
    let nr = table.syscall("personality").expect("personality").nr;
    let data = SeccompData { nr, arch: table.audit_arch, instruction_pointer: 0, args: [0xffff_ffff, 0, 0, 0, 0, 0] };
    let builtin = scpc::import::trace::builtin_profile();
    let path = |p: &Program| run(p, &data).expect("runs").executed;
    if std::env::var_os("SCPC_BENCH_LISTING").is_some() {
        println!("{}", scpc::bpf::disasm::disasm(&scpc_compile(&b, "5.11", &builtin).0));
    }
    println!(
        "\nDocker's default, personality(0xffffffff) probe, instructions on its path: scpc {}, libseccomp 2.5 {}, libseccomp optimize=2 {}, seccompiler 0.5 {}",
        path(&scpc_compile(&b, "5.11", &builtin).0),
        path(&libseccomp_compile(&b, false).0),
        path(&libseccomp_compile(&b, true).0),
        path(&seccompiler_compile(&b).0)
    );
}

/// The argument checks at scale, every compiler side by side.
fn rules_table() {
    probe_line();
    println!("\n| policy | rules | compiler | insns | mean per call | linear chain | scpc time to verdict (ms) |");
    println!("|---|---|---|---|---|---|---|");
    let mut benches: Vec<(Bench, usize)> = [1_000, 2_000, 3_800, 5_000, 10_000, 20_000].into_iter().map(|n| (n_rules(n), n)).collect();
    benches.insert(0, (ioctl_500(), 500));
    for (b, n) in &benches {
        let ms = median_of(if *n >= 10_000 { 3 } else { 5 }, || scpc_verdict(b).1);
        match scpc_verdict(b).0 {
            Ok(p) => {
                let (mean, linear) = rule_calls(&p, b).expect("scpc's filter runs");
                let [c, e, s, pr] = scpc_phases(b);
                println!(
                    "| {} | {n} | scpc | {} | {mean:.2} | {linear:.2} | {ms:.1} (check {c:.1}, code {e:.1}, sampling {s:.1}, proof {pr:.1}) |",
                    b.name,
                    p.insns.len()
                );
            }
            Err(e) => {
                let e: String = e.chars().take(160).collect();
                println!("| {} | {n} | scpc | {e}… | | | {ms:.1} |", b.name);
            }
        }
        if *n > 5_000 {
            continue; // the others' filters are far past 4,096 here
        }
        for (who, compiled) in [
            ("libseccomp 2.5", Some(libseccomp_compile(b, false))),
            ("libseccomp 2.5 optimize=2", Some(libseccomp_compile(b, true))),
            ("seccompiler 0.5", seccompiler_try(b)),
        ] {
            let Some((p, _)) = compiled else {
                println!("| {} | {n} | {who} | refused (over 4,096) | | | |", b.name);
                continue;
            };
            let mean = rule_calls(&p, b).map_or("does not load (over 4,096)".to_string(), |m| format!("{:.2}", m.0));
            println!("| {} | {n} | {who} | {} | {mean} | | |", b.name, p.insns.len());
        }
    }
}

/// Median of `runs` runs, in ms.
fn median_of(runs: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut t: Vec<f64> = (0..runs).map(|_| f()).collect();
    t.sort_by(f64::total_cmp);
    t[runs / 2]
}

/// ns per call of `nr(args)` in a child process under `filter` (none: no filter), median of
/// five runs of 200,000 calls.
fn ns_per_call(filter: Option<&Program>, nr: u32, args: [u64; 6]) -> f64 {
    let mut fds = [0i32; 2];
    // SAFETY: pipe with a valid two-int buffer.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only installs the filter, makes raw syscalls, writes and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        if let Some(f) = filter {
            if scpc_node::loader::install(&f.insns, scpc_node::loader::Flags::default()).is_err() {
                unsafe { libc::_exit(3) };
            }
        }
        let mut runs = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            for _ in 0..200_000 {
                // SAFETY: the calls are harmless (denied by the filter, or queries).
                unsafe { libc::syscall(nr as libc::c_long, args[0], args[1], args[2], args[3], args[4], args[5]) };
            }
            runs.push(start.elapsed().as_nanos() as f64 / 200_000.0);
        }
        runs.sort_by(f64::total_cmp);
        let bytes = runs[2].to_le_bytes();
        // SAFETY: writing 8 bytes from a live buffer to our pipe.
        unsafe {
            libc::write(fds[1], bytes.as_ptr().cast(), 8);
            libc::_exit(0);
        }
    }
    let mut buf = [0u8; 8];
    // SAFETY: reading 8 bytes into a live buffer; waiting for our child.
    unsafe {
        libc::close(fds[1]);
        libc::read(fds[0], buf.as_mut_ptr().cast(), 8);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    f64::from_le_bytes(buf)
}

/// The kernel: ns per call for an argument-checked allowed call and a denied call under each
/// compiler's filter, against no filter and the cheapest filter that decides the call the
/// same way (the floor).
fn kernel_table() {
    let table = Arch::X86_64.table();
    let nr = |n: &str| table.syscall(n).expect("syscall").nr;
    println!("\n| policy | call | no filter | floor | scpc | libseccomp optimize=2 | libseccomp | seccompiler |");
    println!("|---|---|---|---|---|---|---|---|");
    let builtin = scpc::import::trace::builtin_profile();
    let cases: [(Bench, Vec<(&str, u32, [u64; 6])>); 2] = [
        (
            docker(),
            vec![
                ("personality(0xffffffff), arg-checked allow (rare)", nr("personality"), [0xffff_ffff, 0, 0, 0, 0, 0]),
                ("umount2, denied", nr("umount2"), [0; 6]),
            ],
        ),
        (
            daemon(),
            vec![
                ("mprotect(0, 0, PROT_READ), arg-checked allow (frequent)", nr("mprotect"), [0, 0, 1, 0, 0, 0]),
                ("fcntl(0, F_GETFL), arg-checked allow (rare)", nr("fcntl"), [0, 3, 0, 0, 0, 0]),
                ("getppid, denied", nr("getppid"), [0; 6]),
            ],
        ),
    ];
    for (b, calls) in cases {
        let scpc = scpc_compile(&b, "5.11", &builtin).0;
        let lib2 = libseccomp_compile(&b, true).0;
        let lib = libseccomp_compile(&b, false).0;
        let sc = seccompiler_compile(&b).0;
        for (label, nr, args) in calls {
            let action = if label.contains("denied") { 0x0005_0001 } else { 0x7fff_0000 };
            // the cheapest filter that decides this call so and, for an argument-checked call,
            // has to run (it reads an argument, so the action cache cannot answer for it)
            let floor = if label.contains("arg-checked") {
                let k = scpc::bpf::BPF_JEQ;
                Program { insns: vec![Insn::ld(0), Insn::jmp(k, nr, 1, 0), Insn::ret(0x7fff_0000), Insn::ld(16), Insn::ret(action)] }
            } else {
                Program { insns: vec![Insn::ld(0), Insn::jmp(scpc::bpf::BPF_JEQ, nr, 0, 1), Insn::ret(action), Insn::ret(0x7fff_0000)] }
            };
            let none = ns_per_call(None, nr, args);
            let cols: Vec<String> = [Some(&floor), Some(&scpc), Some(&lib2), Some(&lib), Some(&sc)]
                .iter()
                .map(|f| format!("{:+.1}", ns_per_call(*f, nr, args) - none))
                .collect();
            println!("| {} | {label} | {none:.1} ns | {} |", b.name, cols.join(" | "));
        }
    }
}
