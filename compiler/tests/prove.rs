//! Fault injection: mutants of compiled filters — flipped jump targets, off-by-one
//! constants, the wrong half of an argument loaded, a dropped mask, swapped returns, and a
//! wrong decision in an argument region only a 3-way conjunction reaches — are every one
//! caught by the proof, each with a counterexample that the emulator and the reference
//! interpreter confirm independently. The last one is missed by the sampler.

use scpc::abi::Arch;
use scpc::artifact::{compile, for_host};
use scpc::bpf::sim::{run, SeccompData};
use scpc::bpf::{Insn, Program};
use scpc::eval::decide;
use scpc::policy::Policy;
use scpc::profile::Profile;
use scpc::prove::{prove, Proof, DEFAULT_BUDGET};
use scpc::verify::{sample, VerifyError};

const POLICY: &str = "policy p {\n  target x86_64\n  kernel >= 5.4\n  default errno(EPERM)\n  allow read, write, close, exit_group\n\
    allow openat if dfd == AT_FDCWD && flags & O_ACCMODE == O_RDONLY\n  errno(EACCES) openat if flags & O_CREAT != 0\n\
    allow mmap if prot & PROT_EXEC == 0 && flags & 0xffffffff00000000 == 0\n  allow lseek if offset >= 0x100000000 || offset < 10\n\
    allow socket if family in {AF_UNIX, AF_INET, AF_INET6}\n\
    allow socket if family == AF_PACKET && type == SOCK_RAW && protocol == 0x300\n  kill_process ptrace\n}\n";

fn compiled() -> (Policy, Program) {
    let (checked, diags, _) = scpc::check_source("m.scp", POLICY);
    assert!(!diags.has_errors(), "{diags:?}");
    let policy = for_host(&checked.policies["p"], Arch::X86_64);
    let program = compile(&policy, &Profile::uniform()).expect("compiles and is proven").remove(0).program;
    (policy, program)
}

/// The proof's verdict on a mutant, its counterexample confirmed by the two concrete judges.
fn caught(policy: &Policy, mutant: &Program) -> bool {
    match prove(policy, mutant, DEFAULT_BUDGET) {
        Proof::Mismatch(data, got, want) => {
            let ran = run(mutant, &data).expect("runs").ret;
            let decided = decide(policy, data.arch, data.nr, &data.args).action.ret_value();
            assert_eq!((ran, decided), (got, want), "the counterexample {data:x?} is real");
            assert_ne!(ran, decided);
            true
        }
        Proof::Invalid(_) | Proof::NotCacheable(..) => true,
        Proof::Proven => false,
        Proof::OverBudget => panic!("the proof ran out of budget on a small filter"),
    }
}

fn jumps(p: &Program) -> Vec<usize> {
    p.insns.iter().enumerate().filter(|(_, i)| i.code & 0x07 == 0x05 && i.code != 0x05).map(|(pc, _)| pc).collect()
}

#[test]
fn every_mutant_that_changes_a_decision_is_caught_by_the_proof() {
    let (policy, good) = compiled();
    assert_eq!(prove(&policy, &good, DEFAULT_BUDGET), Proof::Proven);
    let mut mutants: Vec<(String, Program)> = Vec::new();
    for pc in jumps(&good) {
        let i = good.insns[pc];
        if i.jt != i.jf {
            let mut m = good.clone();
            (m.insns[pc].jt, m.insns[pc].jf) = (i.jf, i.jt);
            mutants.push((format!("flipped targets at {pc}"), m));
        }
        for k in [i.k.wrapping_add(1), i.k.wrapping_sub(1)] {
            let mut m = good.clone();
            m.insns[pc].k = k;
            mutants.push((format!("constant {:#x} → {k:#x} at {pc}", i.k), m));
        }
    }
    for (pc, i) in good.insns.iter().enumerate() {
        if i.code == 0x20 && i.k >= 16 {
            let mut m = good.clone();
            m.insns[pc].k ^= 4;
            mutants.push((format!("other half loaded at {pc}"), m));
        }
        if i.code == 0x54 {
            let mut m = good.clone();
            m.insns[pc] = Insn::and(u32::MAX);
            mutants.push((format!("mask {:#x} dropped at {pc}", i.k), m));
        }
    }
    let rets: Vec<usize> = good.insns.iter().enumerate().filter(|(_, i)| i.code == 0x06).map(|(pc, _)| pc).collect();
    for (a, &x) in rets.iter().enumerate() {
        for &y in &rets[a + 1..] {
            let mut m = good.clone();
            (m.insns[x].k, m.insns[y].k) = (good.insns[y].k, good.insns[x].k);
            mutants.push((format!("returns {x} and {y} swapped"), m));
        }
    }
    let mut missed = Vec::new();
    for (what, m) in &mutants {
        if !caught(&policy, m) {
            missed.push(what.clone());
        }
    }
    assert!(mutants.len() > 100, "{} mutants", mutants.len());
    // The proof says "equal" only for mutants that are: a search may split a run of values
    // anywhere inside it (`jge 10` and `jge 9` send 3..=9 to the same answer), and a test
    // the code does on a value a bound already fixed changes nothing. Each is checked here
    // on calls of every argument-checked syscall, with arguments around every constant of
    // the filter and random ones.
    let audit = Arch::X86_64.table().audit_arch;
    let target = policy.arch(Arch::X86_64).expect("x86_64");
    let mut near: Vec<u64> = good.insns.iter().flat_map(|i| [i.k.wrapping_sub(1), i.k, i.k.wrapping_add(1)]).map(u64::from).collect();
    near.extend([0, u64::MAX]);
    for (what, m) in mutants.iter().filter(|(what, _)| missed.contains(what)) {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for nr in target.syscalls.keys() {
            for _ in 0..4000 {
                let mut args = [0u64; 6];
                for a in &mut args {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let lo = near[(x % near.len() as u64) as usize];
                    let hi = near[((x >> 20) % near.len() as u64) as usize];
                    *a = match x >> 60 {
                        0..=7 => lo & 0xffff_ffff,
                        8..=11 => (hi << 32) | (lo & 0xffff_ffff),
                        _ => x,
                    };
                }
                let data = SeccompData { nr: *nr, arch: audit, args, ..Default::default() };
                assert_eq!(run(m, &data).map(|o| o.ret), run(&good, &data).map(|o| o.ret), "{what}: {args:x?}");
            }
        }
    }
    assert!(missed.len() <= 8, "{} of {} mutants not caught: {missed:?}", missed.len(), mutants.len());
    println!(
        "{} mutants: {} caught by the proof with a confirmed counterexample, {} equivalent",
        mutants.len(),
        mutants.len() - missed.len(),
        missed.len()
    );
}

/// A wrong decision in the region only `family == AF_PACKET && type == SOCK_RAW && protocol ==
/// 0x300` reaches: the sampler passes the filter, the proof refuses it with a call in that
/// region.
#[test]
fn the_sampler_misses_a_three_way_conjunction_the_proof_catches() {
    let (policy, good) = compiled();
    // the compare of protocol with 0x300: send its true branch to errno(EPERM)'s return
    let at = good.insns.iter().position(|i| i.code == 0x15 && i.k == 0x300).expect("jeq 0x300");
    let eperm = good.insns.iter().position(|i| i.code == 0x06 && i.k == 0x0005_0001).expect("ret errno(1)");
    let mut mutant = good.clone();
    mutant.insns[at].jt = u8::try_from(eperm - at - 1).expect("a short jump");
    assert!(sample(&policy, &mutant).is_ok(), "the sampler does not see it");
    match prove(&policy, &mutant, DEFAULT_BUDGET) {
        Proof::Mismatch(data, got, want) => {
            let socket = Arch::X86_64.table().syscall("socket").expect("socket").nr;
            assert_eq!((data.nr, data.args[0] as u32, data.args[1] as u32, data.args[2] as u32), (socket, 17, 3, 0x300));
            assert_eq!((got, want), (0x0005_0001, 0x7fff_0000));
        }
        other => panic!("expected a counterexample, got {other:?}"),
    }
    // and the build's validation (sampler, then proof) refuses it as a compiler bug
    match scpc::verify::validate(&policy, &mutant) {
        Err(VerifyError::Mismatch { args, .. }) => assert_eq!(args[..3], [17, 3, 0x300]),
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// A filter that reads an argument on the path of a call the policy always allows is
/// refused (the kernel's action cache could not answer it), by the exact check.
#[test]
fn an_argument_read_on_an_always_allowed_path_is_refused() {
    let text = "policy p {\n  target x86_64\n  default errno(EPERM)\n  allow read\n}\n";
    let (checked, _, _) = scpc::check_source("c.scp", text);
    let policy = for_host(&checked.policies["p"], Arch::X86_64);
    let good = compile(&policy, &Profile::uniform()).expect("compiles").remove(0).program;
    // prepend nothing; replace the `ret allow` with `ld args[0].lo; ret allow` by making the
    // allow return read first: ld [16] then jump to the original ret
    let allow = good.insns.iter().position(|i| i.code == 0x06 && i.k == 0x7fff_0000).expect("ret allow");
    let mut insns = good.insns.clone();
    insns.insert(allow, Insn::ld(16));
    // jumps over the inserted instruction to later ones grow by one
    for (pc, i) in insns.iter_mut().enumerate().take(allow) {
        if i.code & 0x07 == 0x05 && i.code != 0x05 {
            if pc + 1 + usize::from(i.jt) > allow {
                i.jt += 1;
            }
            if pc + 1 + usize::from(i.jf) > allow {
                i.jf += 1;
            }
        }
    }
    let mutant = Program { insns };
    let read = Arch::X86_64.table().syscall("read").expect("read").nr;
    let data = SeccompData { nr: read, arch: Arch::X86_64.table().audit_arch, ..Default::default() };
    assert_eq!(run(&mutant, &data).map(|o| (o.ret, o.read_args)), Ok((0x7fff_0000, true)));
    assert_eq!(prove(&policy, &mutant, DEFAULT_BUDGET), Proof::NotCacheable(data.arch, read));
}

/// `scpc build --require-proof` on the bundled library, the example and Docker's default,
/// every target: each filter proven, the build output says so.
#[test]
fn the_stdlib_the_example_and_docker_default_build_proven() {
    let dir = std::env::temp_dir().join(format!("scpc-prove-{}", std::process::id()));
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../stdlib-policies");
    let builds = [
        ("docker-default.scp", "docker_default"),
        ("edge-baseline.scp", "edge"),
        ("examples/web.scp", "base"),
        ("examples/web.scp", "web"),
        ("services/nginx.scp", "nginx"),
        ("services/redis.scp", "redis"),
        ("services/mosquitto.scp", "mosquitto"),
        ("services/python-http.scp", "python-http"),
    ];
    for (file, policy) in builds {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scpc"))
            .args(["build", &format!("{root}/{file}"), "--policy", policy, "--require-proof", "-o"])
            .arg(&dir)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file} {policy}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains(".bpf:")).collect();
        assert!(!lines.is_empty() && lines.iter().all(|l| l.ends_with("proven equal to the source on every input")), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
