//! Every target architecture judged by its own real kernel: the test bed boots a 32-bit ARM
//! (armmp), an aarch64 and a riscv64 node under qemu (TCG) once for this test binary, and runs on
//! each, through the judge (`testbed/vm/judge.c`):
//! - the differential suite: random layered policies (`policygen/`) compiled for the node's
//!   architecture, their boundary calls (`scpc::verify::boundary_calls`) made on its kernel and
//!   compared with the reference interpreter and the emulator; on aarch64 also the arm half of
//!   its filters, by a 32-bit ARM judge (compat calls, AUDIT_ARCH_ARM);
//! - the standard library's edge baseline and a service policy: their test blocks.
//!
//! `SCPC_STRESS=1` runs the full-scale count (TESTING.md); `SCPC_SEED` picks other policies.

mod policygen;
mod testbed;

use std::time::Instant;

use scpc::abi::Arch;
use testbed::judge::{self, Case, Report};
use testbed::{Fleet, Node, VmArch};

/// Policy files (a base and a child each: two filters) per architecture and judge;
/// `SCPC_NODE_POLICIES=N` sets another count.
fn policies() -> usize {
    if let Some(n) = std::env::var("SCPC_NODE_POLICIES").ok().and_then(|n| n.parse().ok()) {
        n
    } else if std::env::var_os("SCPC_STRESS").is_some() {
        2000
    } else {
        50
    }
}

/// What one judge found on one node.
struct Run {
    what: String,
    filters: usize,
    calls: usize,
    unfiltered: usize,
    seconds: f64,
    failure: Option<String>,
}

fn arch_of(vm: VmArch) -> Arch {
    Arch::from_name(vm.name()).expect("an scpc architecture")
}

/// The judges of a node: its own, and on aarch64 the 32-bit one for the arm half.
fn judges(vm: VmArch) -> Vec<(&'static str, Arch)> {
    match vm {
        VmArch::Aarch64 => vec![("judge", Arch::Aarch64), ("judge-arm", Arch::Arm)],
        VmArch::Arm => vec![("judge", Arch::Arm)],
        VmArch::Riscv64 => vec![("judge", Arch::Riscv64)],
    }
}

fn shape(vm: VmArch) -> policygen::Shape {
    match vm {
        VmArch::Aarch64 => policygen::node(&["aarch64"], &["arm"]),
        VmArch::Arm => policygen::node(&["arm"], &[]),
        VmArch::Riscv64 => policygen::node(&["riscv64"], &[]),
    }
}

/// Sends the probe and `cases` to `program` on `node` in one session and compares.
fn judge_on(node: &Node, program: &str, calls_of: Arch, mut cases: Vec<Case>, what: String) -> Run {
    let started = Instant::now();
    let numbers = judge::numbers(&cases);
    let mut input = Vec::new();
    judge::encode_unfiltered_probe(&numbers, &mut input);
    for c in &cases {
        c.encode(&mut input);
    }
    let text = judge::feed(node.ssh_command(program), input);
    let mut reports = judge::parse(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!reports.is_empty(), "{what}: the judge reported nothing");
    let probe: Report = reports.remove(0);
    let unfiltered = judge::unfiltered(&numbers, &probe);
    let exempt = judge::expect_unfiltered(&mut cases, &unfiltered, calls_of);
    let result = judge::compare(&cases, &reports);
    Run {
        what,
        filters: cases.len(),
        calls: *result.as_ref().unwrap_or(&0),
        unfiltered: exempt,
        seconds: started.elapsed().as_secs_f64(),
        failure: result.err(),
    }
}

/// Policy files whose filters a node judges with real kills (the rest with kills as traps).
fn real_kill_policies() -> usize {
    if std::env::var_os("SCPC_STRESS").is_some() {
        20
    } else {
        1
    }
}

/// Every action on a few syscalls every architecture has, with real kills: that the kernel
/// kills, traps, fails and lets through as the interpreter says, and that a call it lets through
/// is not executed (`exit` and `exit_group` are allowed: had they run, the job would end early).
fn actions_policy(arch: Arch) -> String {
    format!(
        "policy actions {{\n    target {arch}\n    default errno(1)\n    badarch kill_process\n    allow getpid, exit, exit_group\n    \
         errno(13) getuid\n    trap(7) getgid\n    kill_thread getppid\n    kill_process gettid\n    notify sched_yield\n    \
         log umask\n    trace(5) getpgid\n}}\n"
    )
}

fn differential(node: &Node, vm: VmArch, seed: u64) -> Vec<Run> {
    let host = arch_of(vm);
    let samples = policygen::sample(&shape(vm), policies(), seed);
    let actions = actions_policy(host);
    let (checked, diags, _) = scpc::check_source("actions.scp", &actions);
    assert!(!diags.has_errors(), "{actions}");
    let mut runs = Vec::new();
    for (program, calls_of) in judges(vm) {
        let mut cases = vec![judge::case(&actions, &checked.policies["actions"], host, calls_of)];
        for (i, (text, checked)) in samples.iter().enumerate() {
            for policy in checked.policies.values() {
                let mut c = judge::case(text, policy, host, calls_of);
                c.kills_as_traps = i >= real_kill_policies();
                cases.push(c);
            }
        }
        let what = format!(
            "{} random policies (the first {} with real kills) and every action on the {host} kernel ({}), calls of {calls_of}",
            samples.len(),
            real_kill_policies().min(samples.len()),
            node.name
        );
        runs.push(judge_on(node, program, calls_of, cases, what));
    }
    runs
}

#[test]
fn the_real_kernels_of_arm_aarch64_and_riscv64_decide_as_the_interpreter() {
    assert!(testbed::available(), "the test bed needs root, /usr/sbin/sshd and ssh-keygen (.ci/run installs them)");
    let seed = policygen::seed();
    let mut fleet = Fleet::new("kernels");
    let specs: Vec<(String, VmArch)> = VmArch::ALL.iter().map(|a| (format!("edge-{}", a.name()), *a)).collect();
    let named: Vec<(&str, VmArch)> = specs.iter().map(|(n, a)| (n.as_str(), *a)).collect();
    let indices = fleet.add_vms(&named);
    for (&i, (_, vm)) in indices.iter().zip(&specs) {
        let node = &fleet.nodes[i];
        let (_, uname) = node.run("uname -m -r");
        eprintln!("{}: {} booted in {:.1} s", node.name, uname.trim(), node.boot.expect("a VM").as_secs_f64());
        let want = match vm {
            VmArch::Aarch64 => "aarch64",
            VmArch::Arm => "armv7l",
            VmArch::Riscv64 => "riscv64",
        };
        assert!(uname.contains(want), "{}: {uname}", node.name);
    }
    // the three nodes work at once (one vCPU each)
    let runs: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = indices
            .iter()
            .zip(&specs)
            .map(|(&i, (_, vm))| {
                let node = &fleet.nodes[i];
                let vm = *vm;
                s.spawn(move || differential(node, vm, seed ^ vm as u64))
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a node's run")).collect()
    });
    let mut failures = Vec::new();
    for r in &runs {
        println!(
            "{}: {} filters, {} calls decided alike by the kernel, the reference interpreter and the emulator ({} to numbers the kernel does not filter), {:.1} s, {:.0} calls/s",
            r.what,
            r.filters,
            r.calls,
            r.unfiltered,
            r.seconds,
            r.calls as f64 / r.seconds
        );
        if let Some(f) = &r.failure {
            failures.push(format!("{} (seed {seed}):\n{f}", r.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
