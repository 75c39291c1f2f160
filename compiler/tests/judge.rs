//! The judge (`testbed/vm/judge.c`), which runs filters on the VM nodes' real kernels, tested
//! first on this machine's kernel (x86_64): every action reported as the kernel takes it,
//! nothing under test ever executed, a refused filter reported; then random layered policies
//! (the differential generator) judged call by call, against the reference interpreter and the
//! emulator. `SCPC_STRESS=1` runs the full-scale count.

mod policygen;
mod testbed;

use scpc::abi::Arch;
use scpc::bpf::{Insn, Program};
use testbed::judge::{self, Report, Seen};

const X86_64: u32 = 0xc000_003e;

fn stmt(code: u16, k: u32) -> Insn {
    Insn { code, jt: 0, jf: 0, k }
}

/// A filter answering each of `table`'s numbers with its value, anything else errno(1), and
/// another architecture kill_process.
fn filter(table: &[(u32, u32)]) -> Program {
    let mut insns = vec![stmt(0x20, 4), Insn { code: 0x15, jt: 1, jf: 0, k: X86_64 }, stmt(0x06, 0x8000_0000), stmt(0x20, 0)];
    for &(nr, ret) in table {
        insns.push(Insn { code: 0x15, jt: 0, jf: 1, k: nr });
        insns.push(stmt(0x06, ret));
    }
    insns.push(stmt(0x06, 0x0005_0001));
    Program { insns }
}

fn must_be_root() {
    let out = std::process::Command::new("id").arg("-u").output().expect("id");
    assert_eq!(out.stdout, b"0\n", "the judge tests need root (seccomp listeners, CONTINUE)");
}

#[test]
fn every_action_is_reported_as_the_kernel_takes_it_and_nothing_is_executed() {
    must_be_root();
    let (getpid, getuid, getgid, getppid, gettid, exit_group, exit, sched_yield, umask, getpgrp) =
        (39, 102, 104, 110, 186, 231, 60, 24, 95, 111);
    let table = [
        (getpid, 0x7fff_0000),
        (getuid, 0x0005_000d),
        (getgid, 0x0003_0007),
        (getppid, 0),
        (gettid, 0x8000_0000),
        (exit_group, 0x7fff_0000),
        (exit, 0x7fff_0000),
        (sched_yield, 0x7fc0_0000),
        (umask, 0x7ffc_0000),
        (getpgrp, 0x7ff0_0005),
    ];
    let program = filter(&table);
    let garbage = [0xdead_beef_0000_0001, 0, u64::MAX, 0x8000_0000, 1 << 32, 7];
    let calls: Vec<(u32, [u64; 6])> =
        [getpid, getuid, getgid, getppid, getpid, gettid, getpid, exit_group, exit, sched_yield, umask, getpgrp, 12345, getpid]
            .iter()
            .map(|&nr| (nr, garbage))
            .collect();
    let mut input = Vec::new();
    judge::encode(&program, &calls, false, &mut input);
    let reports = judge::run_local(input);
    let allowed = Seen::Notified { arch: X86_64 };
    assert_eq!(
        reports,
        vec![Report::Calls(vec![
            allowed.clone(),
            Seen::Errno(13),
            Seen::Trapped { data: 7, arch: X86_64, nr: getgid },
            Seen::KilledThread,
            // a fresh thread goes on after a killed one, a fresh process after a killed process
            allowed.clone(),
            Seen::KilledProcess,
            allowed.clone(),
            // exit_group and exit were let through by the filter: had they run, no call after
            // them would have been made
            allowed.clone(),
            allowed.clone(),
            // notify: the filter under test has no listener
            Seen::Errno(38),
            // log and trace reach the supervisor like allow
            allowed.clone(),
            allowed.clone(),
            Seen::Errno(1),
            allowed,
        ])]
    );
    // and each is what `expect` predicts from the value the filter returns
    let Report::Calls(got) = &reports[0] else { unreachable!() };
    for ((nr, _), g) in calls.iter().zip(got) {
        let ret = table.iter().find(|(n, _)| n == nr).map_or(0x0005_0001, |(_, r)| *r);
        assert_eq!(*g, judge::expect(ret, X86_64, *nr), "nr {nr}");
    }
}

#[test]
fn kills_as_traps_are_reported_as_the_kills_and_a_filter_s_own_traps_keep_their_data() {
    must_be_root();
    // traps with the data the markers would take first: the judge picks others
    let table = [(39, 0x8000_0000), (102, 0), (104, 0x0003_ffff), (110, 0x0003_fffe), (186, 0x0003_0000)];
    let calls: Vec<(u32, [u64; 6])> = [39, 102, 104, 110, 186, 39, 500].iter().map(|&nr| (nr, [0; 6])).collect();
    let mut real = Vec::new();
    judge::encode(&filter(&table), &calls, false, &mut real);
    let mut traps = Vec::new();
    judge::encode(&filter(&table), &calls, true, &mut traps);
    let real = judge::run_local(real);
    assert_eq!(
        real,
        vec![Report::Calls(vec![
            Seen::KilledProcess,
            Seen::KilledThread,
            Seen::Trapped { data: 0xffff, arch: X86_64, nr: 104 },
            Seen::Trapped { data: 0xfffe, arch: X86_64, nr: 110 },
            Seen::Trapped { data: 0, arch: X86_64, nr: 186 },
            Seen::KilledProcess,
            Seen::Errno(1),
        ])]
    );
    assert_eq!(judge::run_local(traps), real);
}

#[test]
fn the_kernel_sees_the_registers_the_judge_passes() {
    must_be_root();
    // allow everything: each call reaches the supervisor with the kernel's seccomp_data, which
    // the judge compares with the registers it set (all 64 bits on x86_64)
    let program = Program { insns: vec![stmt(0x06, 0x7fff_0000)] };
    let calls: Vec<(u32, [u64; 6])> = (0..64u64)
        .map(|i| (500 + i as u32, [i << 58 | 0x1234_5678_9abc, u64::MAX - i, 1 << i, i, 0xffff_ffff_0000_0000, i * 0x0101_0101_0101_0101]))
        .collect();
    let mut input = Vec::new();
    judge::encode(&program, &calls, false, &mut input);
    assert_eq!(judge::run_local(input), vec![Report::Calls(vec![Seen::Notified { arch: X86_64 }; 64])]);
}

#[test]
fn a_filter_the_kernel_refuses_is_reported_and_the_next_job_runs() {
    must_be_root();
    // a load past the end of seccomp_data: the kernel's checker refuses it with EINVAL
    let bad = Program { insns: vec![stmt(0x20, 64), stmt(0x06, 0x7fff_0000)] };
    let good = filter(&[]);
    let mut input = Vec::new();
    judge::encode(&bad, &[(39, [0; 6])], false, &mut input);
    judge::encode(&good, &[(39, [0; 6])], false, &mut input);
    assert_eq!(judge::run_local(input), vec![Report::Refused(22), Report::Calls(vec![Seen::Errno(1)])]);
}

#[test]
fn garbage_input_fails_the_judge_with_a_message() {
    must_be_root();
    let out = judge::feed_result(std::process::Command::new(judge::host_judge()), b"not a job".to_vec());
    assert!(!out.0, "{out:?}");
    assert!(out.2.contains("bad magic"), "{out:?}");
}

/// Random policies per run: `SCPC_STRESS=1` for the full-scale run (TESTING.md).
fn policies() -> usize {
    if std::env::var_os("SCPC_STRESS").is_some() {
        400
    } else {
        24
    }
}

#[test]
fn random_policies_are_judged_by_this_kernel_as_the_interpreter_and_the_emulator_decide() {
    must_be_root();
    let shape = policygen::node(&["x86_64"], &["x32"]);
    let seed = policygen::seed();
    let mut cases = Vec::new();
    for (text, checked) in policygen::sample(&shape, policies(), seed) {
        for policy in checked.policies.values() {
            cases.push(judge::case(&text, policy, Arch::X86_64, Arch::X86_64));
        }
    }
    let numbers = judge::numbers(&cases);
    let mut probe = Vec::new();
    judge::encode_unfiltered_probe(&numbers, &mut probe);
    let unfiltered = judge::unfiltered(&numbers, &judge::run_local(probe)[0]);
    let exempt = judge::expect_unfiltered(&mut cases, &unfiltered, Arch::X86_64);
    let mut input = Vec::new();
    for c in &cases {
        c.encode(&mut input);
    }
    let reports = judge::run_local(input);
    let calls = judge::compare(&cases, &reports).unwrap_or_else(|e| panic!("seed {seed}:\n{e}"));
    // the VM nodes judge most filters with their kills replaced by traps: on this kernel, the
    // same jobs that way give the same reports
    let mut input = Vec::new();
    for c in cases.iter_mut() {
        c.kills_as_traps = true;
        c.encode(&mut input);
    }
    assert_eq!(judge::run_local(input), reports, "kills as traps differ from real kills");
    println!(
        "{} random policies (seed {seed}), {} filters: {calls} raw calls judged by this kernel as the reference interpreter and the emulator decide \
         ({exempt} of them to numbers the kernel does not filter: {unfiltered:?})",
        policies(),
        cases.len()
    );
}
