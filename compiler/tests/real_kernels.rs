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
        200
    } else {
        50
    }
}

/// What one judge found on one node.
struct Run {
    what: String,
    /// Filters judged (or test lines run).
    filters: usize,
    /// What `filters` counts.
    items: &'static str,
    calls: usize,
    unfiltered: usize,
    seconds: f64,
    failure: Option<String>,
}

fn arch_of(vm: VmArch) -> Arch {
    Arch::from_name(vm.name()).expect("an scpc architecture")
}

/// The judges of a node: its own, and on aarch64 the 32-bit one for the arm half; those
/// [`selected`] by `SCPC_NODE_RUNS`.
fn judges(vm: VmArch) -> Vec<(&'static str, Arch)> {
    let all = match vm {
        VmArch::Aarch64 => vec![("judge", Arch::Aarch64), ("judge-arm", Arch::Arm)],
        VmArch::Arm => vec![("judge", Arch::Arm)],
        VmArch::Riscv64 => vec![("judge", Arch::Riscv64)],
    };
    all.into_iter().filter(|(_, calls_of)| selected(vm, Some(*calls_of))).collect()
}

/// Whether `SCPC_NODE_RUNS` (a list of `NODE/CALLS`, e.g. `aarch64/arm,riscv64/riscv64`: the
/// node's architecture and the architecture of the calls judged there) selects this node
/// (`calls_of` none) or this judge; without it every node and judge runs. A stress run of one
/// judge is `SCPC_STRESS=1 SCPC_NODE_RUNS=aarch64/arm`.
fn selected(vm: VmArch, calls_of: Option<Arch>) -> bool {
    let Ok(runs) = std::env::var("SCPC_NODE_RUNS") else { return true };
    runs.split(',').any(|run| {
        let (node, calls) = run.trim().split_once('/').unwrap_or((run.trim(), ""));
        node == vm.name() && calls_of.is_none_or(|a| calls.is_empty() || calls == a.name())
    })
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
        items: "filters",
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
        "policy actions {{\n    target {arch}\n    kernel >= 5.4\n    default errno(1)\n    badarch kill_process\n    allow getpid, exit, exit_group\n    \
         errno(13) getuid\n    trap(7) getgid\n    kill_thread getppid\n    kill_process gettid\n    notify sched_yield\n    \
         log umask\n    trace(5) getpgid\n}}\n"
    )
}

/// Real calls per judge of a stress run (`SCPC_STRESS=1`): policy files are added until each
/// judge has made at least this many.
const STRESS_CALLS: usize = 1_000_000;

/// Calls per session with the judge (the cases of a chunk are held in memory at once).
const CHUNK: usize = 200_000;

fn differential(node: &Node, vm: VmArch, seed: u64) -> Vec<Run> {
    let host = arch_of(vm);
    let actions = actions_policy(host);
    let (checked, diags, _) = scpc::check_source("actions.scp", &actions);
    assert!(!diags.has_errors(), "{actions}\n{diags:?}");
    let target = if std::env::var_os("SCPC_STRESS").is_some() { STRESS_CALLS } else { 0 };
    let mut runs = Vec::new();
    for (program, calls_of) in judges(vm) {
        let mut files = policygen::samples(&shape(vm), seed).enumerate();
        let mut total = Run { what: String::new(), filters: 0, items: "filters", calls: 0, unfiltered: 0, seconds: 0.0, failure: None };
        let mut first = true;
        let mut count = 0;
        while first || (count < policies() || total.calls < target) && total.failure.is_none() {
            let mut cases = Vec::new();
            if first {
                cases.push(judge::case(&actions, &checked.policies["actions"], host, calls_of));
                first = false;
            }
            let mut calls = 0;
            while calls < CHUNK && (count < policies() || total.calls + calls < target) {
                let Some((i, (text, checked))) = files.next() else { break };
                for policy in checked.policies.values() {
                    let mut c = judge::case(&text, policy, host, calls_of);
                    c.kills_as_traps = i >= real_kill_policies();
                    calls += c.calls.len();
                    cases.push(c);
                }
                count = i + 1;
            }
            let run = judge_on(node, program, calls_of, cases, String::new());
            total.filters += run.filters;
            total.calls += run.calls;
            total.unfiltered += run.unfiltered;
            total.seconds += run.seconds;
            total.failure = run.failure;
            // a stress run takes an hour: say how far each judge is
            eprintln!("{} ({calls_of} calls): {count} policy files, {} calls so far, {:.0} s", node.name, total.calls, total.seconds);
        }
        total.what = format!(
            "{count} random policies (the first {} with real kills) and every action on the {host} kernel ({}), calls of {calls_of}",
            real_kill_policies().min(count),
            node.name
        );
        runs.push(total);
    }
    runs
}

/// The standard library files whose test blocks run on every node.
const STDLIB: &[&str] = &["edge-baseline.scp", "services/mosquitto.scp"];

/// The test blocks of [`STDLIB`] on `node`'s kernel: each line of the node's architecture (and on
/// aarch64 the lines of arm, on its filter's arm half) is made by the judge under the filter
/// `scpc build` writes for the node; the kernel's answer stands for the filter's. Lines of other
/// architectures keep the emulator's answer (the `stdlib` test judges them).
fn stdlib_on(node: &Node, vm: VmArch) -> Run {
    use scpc_lang::diag::Diagnostics;
    use scpc_lang::source::SourceMap;
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashMap};

    let host = arch_of(vm);
    let started = Instant::now();
    let mut failures = Vec::new();
    let (mut lines, mut calls) = (0, 0);
    for file in STDLIB {
        let path = format!("{}/../stdlib-policies/{file}", env!("CARGO_MANIFEST_DIR"));
        let (mut map, mut diags) = (SourceMap::new(), Diagnostics::new());
        let unit = scpc::load(&path, &scpc::fs_loader(), &mut map, &mut diags).expect("a stdlib file");
        let checked = scpc::sema::analyze(&unit, &scpc::sema::Options::default(), &mut diags);
        assert!(!diags.has_errors(), "{path}: {diags:?}");
        let mut programs = BTreeMap::new();
        for (name, policy) in &checked.policies {
            assert!(policy.arch(host).is_some(), "{path}: policy `{name}` does not target {host}");
            for f in scpc::artifact::compile(policy, &scpc::import::trace::builtin_profile()).expect("compiles") {
                programs.insert((name.clone(), f.arch), f.program);
            }
        }
        let emulated = |policy: &str, arch: Arch, nr: u32, args: &[u64; 6]| {
            let data = scpc::bpf::sim::SeccompData { nr, arch: arch.table().audit_arch, instruction_pointer: 0, args: *args };
            scpc::bpf::sim::run(&programs[&(policy.to_string(), arch)], &data).ok().map(|o| o.ret)
        };
        // first pass: the calls the lines make
        let made = RefCell::new(Vec::new());
        let record = Observer(|policy: &str, arch: Arch, nr: u32, args: &[u64; 6]| {
            made.borrow_mut().push((policy.to_string(), arch, nr, *args));
            emulated(policy, arch, nr, args)
        });
        scpc::sema::run_tests(&unit, &checked, scpc::sema::Judge::Compiled(&record), &mut Diagnostics::new());
        // the node's kernel makes those of its architectures
        let mut seen = HashMap::new();
        for (program, calls_of) in judges(vm) {
            let mut jobs: BTreeMap<String, Vec<(u32, [u64; 6])>> = BTreeMap::new();
            for (policy, _, nr, args) in made.borrow().iter().filter(|c| c.1 == calls_of) {
                jobs.entry(policy.clone()).or_default().push((*nr, *args));
            }
            let mut input = Vec::new();
            let mut sent = Vec::new();
            for (policy, list) in &jobs {
                let mut regs = list.clone();
                if calls_of.is_32bit() {
                    regs.iter_mut().for_each(|(_, a)| a.iter_mut().for_each(|v| *v &= 0xffff_ffff));
                }
                judge::encode(&programs[&(policy.clone(), host)], &regs, false, &mut input);
                sent.push((policy, list));
            }
            let reports = judge::parse(&judge::feed(node.ssh_command(program), input)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reports.len(), sent.len(), "{path}: jobs on {}", node.name);
            for ((policy, list), report) in sent.iter().zip(reports) {
                let Report::Calls(got) = report else { panic!("{path}: the {host} kernel refused the filter of `{policy}`: {report:?}") };
                for ((nr, args), g) in list.iter().zip(got) {
                    calls += 1;
                    seen.insert(((*policy).clone(), calls_of, *nr, *args), g);
                }
            }
        }
        // second pass: the lines judged by what the kernel did (the emulator's value where it
        // is what the kernel was seen doing: the judge cannot tell allow, log and trace apart)
        let observed = Observer(|policy: &str, arch: Arch, nr: u32, args: &[u64; 6]| {
            let em = emulated(policy, arch, nr, args)?;
            let Some(g) = seen.get(&(policy.to_string(), arch, nr, *args)) else { return Some(em) };
            let audit = arch.table().audit_arch;
            if judge::expect(em, audit, nr) == *g {
                return Some(em);
            }
            Some(match g {
                judge::Seen::Notified { .. } => 0x7fff_0000,
                judge::Seen::Errno(e) => 0x0005_0000 | e,
                judge::Seen::Trapped { data, .. } => 0x0003_0000 | data,
                judge::Seen::KilledThread => 0,
                // a process killed by SIGSYS, or anything else the filter cannot return
                _ => 0x8000_0000,
            })
        });
        let mut test_diags = Diagnostics::new();
        let outcome = scpc::sema::run_tests(&unit, &checked, scpc::sema::Judge::Compiled(&observed), &mut test_diags);
        lines += outcome.cases;
        if test_diags.has_errors() {
            failures.push(format!("{path} on the {host} kernel: {} of {} lines failed: {test_diags:?}", outcome.failed, outcome.cases));
        }
    }
    Run {
        what: format!("the test blocks of {} on the {host} kernel ({})", STDLIB.join(" and "), node.name),
        filters: lines,
        items: "test lines (of every target; the node's made on its kernel)",
        calls,
        unfiltered: 0,
        seconds: started.elapsed().as_secs_f64(),
        failure: (!failures.is_empty()).then(|| failures.join("\n")),
    }
}

#[test]
fn the_real_kernels_of_arm_aarch64_and_riscv64_decide_as_the_interpreter() {
    assert!(testbed::available(), "the test bed needs root, /usr/sbin/sshd and ssh-keygen (.ci/run installs them)");
    let seed = policygen::seed();
    let mut fleet = Fleet::new("kernels");
    let specs: Vec<(String, VmArch)> =
        VmArch::ALL.iter().filter(|a| selected(**a, None)).map(|a| (format!("edge-{}", a.name()), *a)).collect();
    assert!(!specs.is_empty(), "SCPC_NODE_RUNS selects no node of {:?}", VmArch::ALL.map(|a| a.name()));
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
                s.spawn(move || {
                    let mut runs = vec![stdlib_on(node, vm)];
                    runs.extend(differential(node, vm, seed ^ vm as u64));
                    runs
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a node's run")).collect()
    });
    let mut failures = Vec::new();
    for r in &runs {
        println!(
            "{}: {} {}, {} calls decided alike by the kernel, the reference interpreter and the emulator ({} to numbers the kernel does not filter), {:.1} s, {:.0} calls/s",
            r.what,
            r.filters,
            r.items,
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

/// Test lines judged by a closure (what a kernel was seen doing), by policy name.
struct Observer<F>(F);

impl<F: Fn(&str, Arch, u32, &[u64; 6]) -> Option<u32>> scpc::sema::FilterJudge for Observer<F> {
    fn ret(&self, policy: &str, arch: Arch, nr: u32, args: &[u64; 6]) -> Option<u32> {
        (self.0)(policy, arch, nr, args)
    }
}
