//! Docker's default profile, imported to .scp and compiled by scpc, decides every call exactly
//! as libseccomp's own compilation of the JSON does, on x86_64, x32, i386, aarch64 and arm:
//! every syscall number (and the gaps and the x32 range), and the values on and around every
//! argument comparison.

use std::collections::{BTreeMap, BTreeSet};

#[cfg(scpc_libseccomp)]
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use scpc::abi::{Arch, Width, X32_SYSCALL_BIT};
use scpc::artifact::{compile, for_host};
use scpc::bpf::sim::{run, SeccompData};
use scpc::bpf::Program;
use scpc::diff::{diff, Side};
use serde_json::Value;

const DOCKER: &str = include_str!("fixtures/docker-default.json");

fn policy_of(name: &str, text: &str) -> scpc::policy::Policy {
    let (checked, diags, _) = scpc::check_source(name, text);
    assert!(!diags.has_errors(), "{diags:?}\n{text}");
    assert_eq!(checked.policies.len(), 1, "{text}");
    checked.policies.into_values().next().expect("one policy")
}

/// `std/docker-default.scp` as shipped.
fn stdlib_docker_default() -> scpc::policy::Policy {
    policy_of("docker-default.scp", scpc_stdlib_text())
}

fn scpc_stdlib_text() -> &'static str {
    include_str!("../../stdlib-policies/docker-default.scp")
}

#[test]
fn the_shipped_file_is_what_the_importer_writes() {
    let text = scpc::docker::import(
        "docker-default.json",
        DOCKER,
        &scpc::docker::ImportOptions { name: Some("docker_default".into()), caps: vec![] },
    )
    .expect("imports");
    let report = diff(&Side::Policy(policy_of("imported.scp", &text)), &Side::Policy(stdlib_docker_default())).expect("compares");
    assert!(report.equal && report.differences.is_empty(), "{:?}", report.differences);
}

#[test]
fn capabilities_bring_their_entries_in() {
    let opts = scpc::docker::ImportOptions { name: Some("admin".into()), caps: vec!["CAP_SYS_ADMIN".into(), "CAP_SYS_PTRACE".into()] };
    let text = scpc::docker::import("docker-default.json", DOCKER, &opts).expect("imports");
    let p = policy_of("admin.scp", &text);
    let t = Arch::X86_64.table();
    let decide = |name: &str| scpc::eval::decide(&p, t.audit_arch, t.syscall(name).expect("name").nr, &[0; 6]).action;
    assert_eq!(decide("mount"), scpc::policy::Action::Allow, "CAP_SYS_ADMIN allows mount");
    assert_eq!(decide("clone3"), scpc::policy::Action::Allow, "the ENOSYS entry excludes CAP_SYS_ADMIN");
    assert_eq!(decide("reboot"), scpc::policy::Action::Errno(1), "CAP_SYS_BOOT was not given");
}

#[test]
fn import_of_export_is_the_same_policy() {
    // (std/docker-default.scp is not among them: its 32-bit `<` and `>` comparisons of socket's
    // family read the half the kernel reads, which the format, comparing 64 bits, cannot say)
    let policies = [
        "policy p {\n    target x86_64, aarch64\n    default kill_process\n    allow read, write, close\n    errno(EACCES) openat if flags & 3 == 1\n    allow socket if family == 2 && type == 1\n    allow socket if family == 10\n    log uname\n}\n".to_string(),
        "policy q {\n    target x86_64, x32\n    default errno(ENOSYS)\n    allow exit_group, getpid, mmap\n    allow lseek if offset <= 4096\n    trap kill\n}\n".to_string(),
    ];
    for text in policies {
        let p = policy_of("p.scp", &text);
        let json = scpc::artifact::oci::export(&p).expect("expressible in the JSON format");
        let back = scpc::docker::import("p.json", &json, &scpc::docker::ImportOptions::default()).expect("imports");
        let q = policy_of("back.scp", &back);
        let report = diff(&Side::Policy(p), &Side::Policy(q)).expect("compares");
        assert!(report.equal, "{:?}\n{json}\n{back}", &report.differences[..report.differences.len().min(5)]);
    }
}

/// libseccomp's compilation of a Docker profile for a host, as Docker (moby) builds it: the
/// native architecture and its sub-architectures, no added capabilities, entries for other
/// hosts left out, rules whose syscall a filter architecture lacks ignored.
#[cfg(scpc_libseccomp)]
fn libseccomp_filter(json: &Value, native: &str, archs: &[ScmpArch]) -> Program {
    let errno = json["defaultErrnoRet"].as_u64().unwrap_or(1) as i32;
    let mut ctx = ScmpFilterContext::new(ScmpAction::Errno(errno)).expect("ctx");
    ctx.remove_arch(ScmpArch::Native).expect("remove native");
    for a in archs {
        ctx.add_arch(*a).expect("arch");
    }
    for s in json["syscalls"].as_array().expect("syscalls") {
        let strs = |p: &str| -> Vec<&str> {
            s.pointer(p).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
        };
        if !strs("/includes/caps").is_empty() {
            continue;
        }
        let inc = strs("/includes/arches");
        if !inc.is_empty() && !inc.contains(&native) || strs("/excludes/arches").contains(&native) {
            continue;
        }
        let action = match s["action"].as_str().expect("action") {
            "SCMP_ACT_ALLOW" => ScmpAction::Allow,
            "SCMP_ACT_ERRNO" => ScmpAction::Errno(s["errnoRet"].as_u64().unwrap_or(1) as i32),
            other => panic!("unexpected action {other}"),
        };
        let conds: Vec<ScmpArgCompare> = s["args"]
            .as_array()
            .map(|args| {
                args.iter()
                    .map(|a| {
                        let v = a["value"].as_u64().expect("value");
                        let op = match a["op"].as_str().expect("op") {
                            "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
                            "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
                            "SCMP_CMP_LT" => ScmpCompareOp::Less,
                            "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
                            "SCMP_CMP_GT" => ScmpCompareOp::Greater,
                            "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
                            "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(v),
                            other => panic!("{other}"),
                        };
                        let datum = if matches!(op, ScmpCompareOp::MaskedEqual(_)) { a["valueTwo"].as_u64().unwrap_or(0) } else { v };
                        ScmpArgCompare::new(a["index"].as_u64().expect("index") as u32, op, datum)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for name in s["names"].as_array().expect("names").iter().filter_map(Value::as_str) {
            // moby ignores names libseccomp cannot resolve and rules no architecture takes
            let Ok(nr) = ScmpSyscall::from_name(name) else { continue };
            let _ = ctx.add_rule_conditional(action, nr, &conds);
        }
    }
    let path = std::env::temp_dir().join(format!("scpc-docker-{native}-{}.bpf", std::process::id()));
    ctx.export_bpf(std::fs::File::create(&path).expect("temp")).expect("export");
    let bytes = std::fs::read(&path).expect("read back");
    let _ = std::fs::remove_file(&path);
    Program::from_bytes(&bytes).expect("bpf")
}

/// Per syscall name, the values its argument rules compare with, and values around them.
fn boundary_values(json: &Value) -> BTreeMap<String, BTreeSet<[u64; 6]>> {
    let mut out: BTreeMap<String, BTreeSet<[u64; 6]>> = BTreeMap::new();
    for s in json["syscalls"].as_array().expect("syscalls") {
        let Some(args) = s["args"].as_array() else { continue };
        for name in s["names"].as_array().expect("names").iter().filter_map(Value::as_str) {
            let set = out.entry(name.to_string()).or_default();
            for a in args {
                let i = a["index"].as_u64().expect("index") as usize;
                let v = a["value"].as_u64().expect("value");
                let two = a["valueTwo"].as_u64().unwrap_or(0);
                let mut vals: BTreeSet<u64> =
                    [0, 1, u32::MAX as u64, u64::MAX, two, v, v.wrapping_sub(1), v.wrapping_add(1), !v & 0xffff_ffff].into();
                for bit in 0..32 {
                    if v & (1 << bit) != 0 {
                        vals.insert(1 << bit);
                        vals.insert(v & !(1 << bit));
                    }
                }
                vals.extend([0x3d0f00, 0x1200011, 0x0100_0000 | 0x11]); // pthread_create, fork
                for val in vals {
                    let mut args = [0u64; 6];
                    args[i] = val;
                    set.insert(args);
                }
            }
        }
    }
    out
}

/// Names the profile allows without conditions, capabilities or architectures.
fn unconditionally_allowed(json: &Value) -> BTreeSet<String> {
    json["syscalls"]
        .as_array()
        .expect("syscalls")
        .iter()
        .filter(|s| {
            s["action"] == "SCMP_ACT_ALLOW"
                && s.get("args").is_none_or(Value::is_null)
                && s.get("includes").is_none_or(|i| i.as_object().is_none_or(|o| o.is_empty()))
        })
        .flat_map(|s| s["names"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from))
        .collect()
}

fn scmp(arch: Arch) -> ScmpArch {
    match arch {
        Arch::X86_64 => ScmpArch::X8664,
        Arch::X32 => ScmpArch::X32,
        Arch::I386 => ScmpArch::X86,
        Arch::Aarch64 => ScmpArch::Aarch64,
        Arch::Arm => ScmpArch::Arm,
        Arch::Riscv64 => ScmpArch::Riscv64,
    }
}

fn numbers(arch: Arch) -> Vec<u32> {
    let t = arch.table();
    let top = t.syscalls.iter().map(|s| s.nr - t.nr_offset).max().unwrap_or(0) + 64;
    let mut out: Vec<u32> = (0..=top).map(|n| t.nr_offset | n).collect();
    out.extend([0x3fff_ffff, 0x7fff_ffff, 0xffff_ffff].map(|e| {
        if arch == Arch::X32 {
            e | X32_SYSCALL_BIT
        } else if arch == Arch::X86_64 {
            e & !X32_SYSCALL_BIT
        } else {
            e
        }
    }));
    out
}

#[cfg(scpc_libseccomp)]
#[test]
fn docker_default_is_decision_equal_to_libseccomp_on_five_architectures() {
    let json: Value = serde_json::from_str(DOCKER).expect("json");
    let policy = &stdlib_docker_default();
    let bounds = boundary_values(&json);
    let allowed = unconditionally_allowed(&json);
    let mut newer: BTreeSet<String> = BTreeSet::new();
    let mut cases = 0usize;
    for (host, native, seccomp_archs, archs) in [
        (Arch::X86_64, "amd64", vec![ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32], vec![Arch::X86_64, Arch::X32, Arch::I386]),
        (Arch::Aarch64, "arm64", vec![ScmpArch::Aarch64, ScmpArch::Arm], vec![Arch::Aarch64, Arch::Arm]),
    ] {
        let reference = libseccomp_filter(&json, native, &seccomp_archs);
        let ours = compile(&for_host(policy, host), &scpc::import::trace::builtin_profile())
            .expect("compiles")
            .into_iter()
            .find(|f| f.arch == host)
            .expect("host filter")
            .program;
        let mut differences = Vec::new();
        for arch in archs {
            let t = arch.table();
            for nr in numbers(arch) {
                let name = t.by_nr(nr).map(|s| s.name);
                let mut vectors: BTreeSet<[u64; 6]> = [[0; 6]].into();
                if let Some(b) = name.and_then(|n| bounds.get(n)) {
                    vectors.extend(b.iter().copied());
                }
                // names this libseccomp (Debian's 2.5) does not know: it drops Docker's rule,
                // scpc keeps it; the profile's own action is the right answer
                let unknown_to_libseccomp = name.is_some_and(|n| {
                    ScmpSyscall::from_name_by_arch(n, scmp(arch)).map_or(true, |s| i32::from(s) < 0) && allowed.contains(n)
                });
                for mut args in vectors {
                    // the kernel reads a 32-bit argument's low half (libseccomp compares all 64
                    // bits, scpc the half the kernel reads): callers pass them zero-extended
                    for (i, a) in args.iter_mut().enumerate() {
                        let narrow = t.by_nr(nr).and_then(|s| s.params.get(i)).is_some_and(|p| p.width != Width::W64);
                        if narrow || arch.is_32bit() {
                            *a &= 0xffff_ffff;
                        }
                    }
                    let data = SeccompData { nr, arch: t.audit_arch, instruction_pointer: 0, args };
                    let (a, b) = (run(&reference, &data).expect("libseccomp's runs").ret, run(&ours, &data).expect("ours runs").ret);
                    cases += 1;
                    if a != b && unknown_to_libseccomp && b == 0x7fff_0000 {
                        newer.insert(format!("{arch}:{}", name.unwrap_or("?")));
                        continue;
                    }
                    if a != b {
                        differences.push(format!("{arch} {} ({nr}) {args:x?}: libseccomp {a:#x}, scpc {b:#x}", name.unwrap_or("?")));
                    }
                }
            }
        }
        assert!(
            differences.is_empty(),
            "{} differences on the {native} host, e.g.:\n{}",
            differences.len(),
            differences[..differences.len().min(20)].join("\n")
        );
    }
    println!("{cases} calls decided the same by libseccomp and scpc; allowed by the profile but unknown to this libseccomp: {newer:?}");
    assert!(cases > 5_000);
}

/// Docker's own probes on the `kernel >= 5.11` layout with the built-in profile (what
/// BENCHMARKS.md measures): the persona query `personality(0xffffffff)`, which no recorded
/// workload makes, still runs at most 16 instructions, because a syscall whose arguments the
/// policy checks is placed ahead of the numbers nobody should call; and `socket(AF_UNIX)`
/// decides one compare after its argument is loaded, because small values are the common case.
#[test]
fn docker_probes_take_short_paths() {
    let text = scpc_stdlib_text().replacen("    default errno(EPERM)\n", "    kernel >= 5.11\n    default errno(EPERM)\n", 1);
    let policy = policy_of("docker-default.scp", &text);
    let profile = scpc::import::trace::builtin_profile();
    let filters = compile(&policy, &profile).expect("compiles");
    let x86 = filters.iter().find(|f| f.arch == Arch::X86_64).expect("an x86_64 filter");
    let table = Arch::X86_64.table();
    let call = |name: &str, arg0: u64| {
        let nr = table.syscall(name).expect("a syscall").nr;
        let data = SeccompData { nr, arch: table.audit_arch, instruction_pointer: 0, args: [arg0, 0, 0, 0, 0, 0] };
        let (outcome, steps) = scpc::bpf::sim::run_traced(&x86.program, &data);
        (outcome.expect("runs"), steps)
    };
    let listing = scpc::bpf::disasm::disasm(&x86.program);
    let (probe, _) = call("personality", 0xffff_ffff);
    assert_eq!(probe.ret, 0x7fff_0000, "the persona query is allowed");
    assert!(probe.executed <= 16, "personality(0xffffffff) runs {} instructions:\n{listing}", probe.executed);
    let (unix, steps) = call("socket", 1);
    assert_eq!(unix.ret, 0x7fff_0000, "AF_UNIX sockets are allowed");
    let load =
        steps.iter().position(|s| x86.program.insns[s.pc] == scpc::bpf::Insn::ld(scpc::bpf::off_arg_lo(0))).expect("the family is loaded");
    assert_eq!(steps.len() - load, 3, "ld, one compare, ret:\n{listing}");
    let (vsock, _) = call("socket", 40);
    assert_eq!(vsock.ret, 0x0005_0001, "AF_VSOCK is refused with EPERM");
}
