//! The judge (`vm/judge.c`) from the tests' side: jobs (a filter and the raw calls to make under
//! it) encoded for its standard input, its report parsed, and what it must report for a call
//! given the value the filter returns for it. The judge runs on this machine's kernel (built
//! with the host's `cc`) or on a VM node's (built by `vm/build.sh`).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use scpc::bpf::Program;

/// What the judge saw one call get.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seen {
    /// The call reached the supervisor (the filter allowed, logged or traced it), and the
    /// kernel's `seccomp_data` held the number and registers it was made with.
    Notified { arch: u32 },
    /// As `Notified`, but `seccomp_data` held these.
    NotifiedAs { nr: u32, arch: u32, args: [u64; 6] },
    /// It returned `-errno` without reaching the supervisor.
    Errno(u32),
    /// It returned another value.
    Returned(u64),
    /// SIGSYS: si_errno, si_arch, si_syscall.
    Trapped { data: u32, arch: u32, nr: u32 },
    /// The thread was killed, the process lived on.
    KilledThread,
    /// The process was killed by SIGSYS.
    KilledProcess,
    /// The process was killed by another signal.
    Signalled(i32),
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Notified { arch } => write!(f, "let through (allow, log or trace) with arch {arch:#x}"),
            Seen::NotifiedAs { nr, arch, args } => write!(f, "let through, but seccomp_data was nr {nr:#x} arch {arch:#x} args {args:x?}"),
            Seen::Errno(e) => write!(f, "errno {e}"),
            Seen::Returned(v) => write!(f, "returned {v:#x}"),
            Seen::Trapped { data, arch, nr } => write!(f, "SIGSYS (trap {data}, arch {arch:#x}, nr {nr:#x})"),
            Seen::KilledThread => write!(f, "thread killed"),
            Seen::KilledProcess => write!(f, "process killed by SIGSYS"),
            Seen::Signalled(s) => write!(f, "process killed by signal {s}"),
        }
    }
}

/// The judge's report on one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The kernel refused the filter with this errno.
    Refused(i32),
    /// What each call got, in order.
    Calls(Vec<Seen>),
}

/// What the judge reports for a call `nr` made on a kernel of `audit_arch` when the filter under
/// test returns `ret`. The outer filter returns SECCOMP_RET_USER_NOTIF; the kernel takes the
/// strongest action of the two (lowest `ret & 0xffff0000` as a signed number), and of two equal
/// ones the filter installed last: the one under test, which has no listener.
pub fn expect(ret: u32, audit_arch: u32, nr: u32) -> Seen {
    const USER_NOTIF: i32 = 0x7fc0_0000;
    let action = (ret & 0xffff_0000) as i32;
    let data = ret & 0xffff;
    match action {
        a if a > USER_NOTIF => Seen::Notified { arch: audit_arch },
        USER_NOTIF => Seen::Errno(38), // ENOSYS: no listener on the filter under test
        0x0005_0000 => Seen::Errno(data.min(4095)),
        0x0003_0000 => Seen::Trapped { data, arch: audit_arch, nr },
        0 => Seen::KilledThread,
        // SECCOMP_RET_KILL_PROCESS, and any action the kernel does not know
        _ => Seen::KilledProcess,
    }
}

/// Appends one job to `out`: the filter and the calls (`nr`, registers). With
/// `kills_as_traps`, the judge replaces the filter's kill actions by traps with marker data
/// and reports those as the kills they stand for (`vm/judge.c`): a kill costs a new thread or
/// process and two filter attachments, milliseconds each under TCG.
pub fn encode(program: &Program, calls: &[(u32, [u64; 6])], kills_as_traps: bool, out: &mut Vec<u8>) {
    out.extend(0x314a_4353u32.to_le_bytes());
    out.extend(u32::from(kills_as_traps).to_le_bytes());
    out.extend((program.insns.len() as u32).to_le_bytes());
    for i in &program.insns {
        out.extend(i.code.to_le_bytes());
        out.extend([i.jt, i.jf]);
        out.extend(i.k.to_le_bytes());
    }
    out.extend((calls.len() as u32).to_le_bytes());
    for (nr, args) in calls {
        out.extend(nr.to_le_bytes());
        let present = args.iter().enumerate().fold(0u8, |m, (i, a)| if *a != 0 { m | 1 << i } else { m });
        out.push(present);
        for a in args.iter().filter(|a| **a != 0) {
            out.extend(a.to_le_bytes());
        }
    }
}

fn hex32(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 16).map_err(|e| format!("{s}: {e}"))
}

fn hex64(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s, 16).map_err(|e| format!("{s}: {e}"))
}

/// Parses the judge's standard output.
pub fn parse(text: &str) -> Result<Vec<Report>, String> {
    let mut out = Vec::new();
    let mut current: Option<Vec<Seen>> = None;
    let mut refused = None;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("the judge wrote `{line}`");
        match (w.first().copied(), &mut current) {
            (Some("job"), None) => {
                current = Some(Vec::new());
                refused = None;
            }
            (Some("end"), Some(_)) => {
                let calls = current.take().ok_or_else(bad)?;
                out.push(match refused {
                    Some(e) => Report::Refused(e),
                    None => Report::Calls(calls),
                });
            }
            (Some("refused"), Some(_)) => refused = Some(w.get(1).ok_or_else(bad)?.parse().map_err(|_| bad())?),
            (Some(kind), Some(calls)) => {
                let seen = match (kind, w.len()) {
                    ("n", 2) => Seen::Notified { arch: hex32(w[1])? },
                    ("N", 9) => {
                        let mut args = [0u64; 6];
                        for (a, s) in args.iter_mut().zip(&w[3..]) {
                            *a = hex64(s)?;
                        }
                        Seen::NotifiedAs { nr: hex32(w[1])?, arch: hex32(w[2])?, args }
                    }
                    ("e", 2) => Seen::Errno(w[1].parse().map_err(|_| bad())?),
                    ("r", 2) => Seen::Returned(hex64(w[1])?),
                    ("t", 4) => {
                        Seen::Trapped { data: w[1].parse().map_err(|_| bad())?, arch: hex32(w[2])?, nr: w[3].parse().map_err(|_| bad())? }
                    }
                    ("kt", 1) => Seen::KilledThread,
                    ("kp", 1) => Seen::KilledProcess,
                    // the kill actions of a filter judged with kills as traps
                    ("Kt", 1) => Seen::KilledThread,
                    ("Kp", 1) => Seen::KilledProcess,
                    ("s", 2) => Seen::Signalled(w[1].parse().map_err(|_| bad())?),
                    _ => return Err(bad()),
                };
                calls.push(seen);
            }
            _ => return Err(bad()),
        }
    }
    if current.is_some() {
        return Err("the judge's report ends inside a job".into());
    }
    Ok(out)
}

/// The judge built for this machine (x86_64) with the host's C compiler, once per source
/// version, under the target directory.
pub fn host_judge() -> PathBuf {
    static JUDGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    JUDGE
        .get_or_init(|| {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testbed/vm/judge.c");
            let text = std::fs::read(&source).expect("judge.c");
            let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
            std::fs::create_dir_all(tmp).expect("target tmpdir");
            let path = tmp.join(format!("judge-{}", &super::sha256(&text)[..16]));
            // test binaries side by side build it once
            let lock = std::fs::File::create(tmp.join("judge.lock")).expect("lock file");
            lock.lock().expect("lock the judge");
            if !path.exists() {
                let partial = tmp.join("judge.partial");
                let out = Command::new("cc")
                    .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
                    .arg(&partial)
                    .arg(&source)
                    .output()
                    .expect("cc runs (.ci/run installs gcc)");
                assert!(
                    out.status.success(),
                    "building the judge failed (needs gcc and libc6-dev):\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::fs::rename(&partial, &path).expect("judge in place");
            }
            path
        })
        .clone()
}

/// Feeds `input` to `cmd`; returns (success, standard output, standard error).
pub fn feed_result(mut cmd: Command, input: Vec<u8>) -> (bool, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the judge starts");
    let mut stdin = child.stdin.take().expect("stdin");
    // the judge may stop reading (bad input): a broken pipe is its report, not ours
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut text = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut text).expect("the judge's report");
    let status = child.wait().expect("the judge ends");
    let _ = writer.join();
    (status.success(), text, errors.join().unwrap_or_default())
}

/// Feeds `input` to `cmd` and returns its standard output; fails on a non-zero exit.
///
/// An SSH session that ends before the key exchange (a guest under TCG on a loaded machine can
/// be too slow to answer, or still reaping earlier connections) never reached the judge, so it is
/// tried again, at most [`SSH_TRIES`] times; any other failure fails at once.
pub fn feed(cmd: Command, input: Vec<u8>) -> String {
    let (program, args): (std::ffi::OsString, Vec<std::ffi::OsString>) =
        (cmd.get_program().to_owned(), cmd.get_args().map(|a| a.to_owned()).collect());
    let mut cmd = cmd;
    for attempt in 1.. {
        let (ok, text, errors) = feed_result(cmd, input.clone());
        let before_login = text.is_empty() && (errors.contains("kex_exchange_identification") || errors.contains("during banner exchange"));
        if ok || !before_login || attempt == SSH_TRIES {
            assert!(ok, "the judge failed: {errors}\n(report so far: {} bytes, try {attempt})", text.len());
            return text;
        }
        eprintln!("the judge's session ended before login (try {attempt} of {SSH_TRIES}): {}", errors.trim());
        std::thread::sleep(std::time::Duration::from_secs(3 * attempt as u64));
        cmd = Command::new(&program);
        cmd.args(&args);
    }
    unreachable!("the loop returns on its last try")
}

/// Tries of a judge session that ends before login.
const SSH_TRIES: usize = 5;

/// Runs jobs on this machine's kernel.
pub fn run_local(input: Vec<u8>) -> Vec<Report> {
    parse(&feed(Command::new(host_judge()), input)).unwrap_or_else(|e| panic!("{e}"))
}

/// One filter and the calls to judge it on: a policy's boundary calls for one architecture, with
/// what the reference interpreter and the emulator say the judge must see for each.
pub struct Case {
    /// `policy on host (calls of arch)`, for messages.
    pub label: String,
    /// The policy's source, for messages.
    pub source: String,
    /// The filter a host of the host architecture loads.
    pub program: Program,
    /// The calls (registers as the judge's architecture holds them).
    pub calls: Vec<(u32, [u64; 6])>,
    /// What the reference interpreter decides, as the judge sees it.
    pub want: Vec<Seen>,
    /// What the emulator's run of the filter gives, as the judge sees it.
    pub emulated: Vec<Seen>,
    /// Whether the judge replaces the kill actions by traps ([`encode`]).
    pub kills_as_traps: bool,
}

impl Case {
    /// Appends the case's job to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode(&self.program, &self.calls, self.kills_as_traps, out);
    }
}

/// The cases of one checked policy: its filter for `host`, judged with the calls of `calls_of`
/// (`host` itself, or the arm half of an aarch64 filter) made by a judge whose registers have
/// that architecture's width.
pub fn case(source: &str, policy: &scpc::policy::Policy, host: scpc::abi::Arch, calls_of: scpc::abi::Arch) -> Case {
    use scpc::bpf::sim::{run, SeccompData};
    let host_policy = scpc::artifact::for_host(policy, host);
    let filters = scpc::artifact::compile(policy, &scpc::import::trace::builtin_profile()).expect("compiles and validates");
    let program = filters.into_iter().find(|f| f.arch == host).expect("a filter for the host").program;
    let audit = calls_of.table().audit_arch;
    let mut calls = scpc::verify::boundary_calls(&host_policy, audit);
    if calls_of.is_32bit() {
        // one register per argument: the kernel sees the low half, zero-extended
        calls.iter_mut().for_each(|(_, a)| a.iter_mut().for_each(|v| *v &= 0xffff_ffff));
        let mut seen = std::collections::HashSet::new();
        calls.retain(|c| seen.insert(*c));
    }
    let want = calls.iter().map(|(nr, a)| expect(scpc::eval::decide(&host_policy, audit, *nr, a).action.ret_value(), audit, *nr)).collect();
    let emulated = calls
        .iter()
        .map(|(nr, a)| {
            let data = SeccompData { nr: *nr, arch: audit, instruction_pointer: 0, args: *a };
            expect(run(&program, &data).expect("the filter runs").ret, audit, *nr)
        })
        .collect();
    Case {
        label: format!("`{}` on {host} (calls of {calls_of})", policy.name, host = host.name()),
        source: source.to_string(),
        program,
        calls,
        want,
        emulated,
        kills_as_traps: false,
    }
}

/// Compares the judge's reports with the cases; returns the number of calls compared, or every
/// difference (arch, policy, call, both answers).
pub fn compare(cases: &[Case], reports: &[Report]) -> Result<usize, String> {
    if cases.len() != reports.len() {
        return Err(format!("{} jobs sent, {} reported", cases.len(), reports.len()));
    }
    let mut calls = 0;
    let mut diffs = Vec::new();
    for (c, r) in cases.iter().zip(reports) {
        let got = match r {
            Report::Refused(e) => {
                diffs.push(format!("{}: the kernel refused the filter (errno {e})\n{}", c.label, c.source));
                continue;
            }
            Report::Calls(got) => got,
        };
        if got.len() != c.calls.len() {
            diffs.push(format!("{}: {} calls sent, {} reported", c.label, c.calls.len(), got.len()));
            continue;
        }
        for (i, g) in got.iter().enumerate() {
            calls += 1;
            if *g != c.want[i] || *g != c.emulated[i] {
                let (nr, a) = c.calls[i];
                if diffs.len() < 20 {
                    diffs.push(format!(
                        "{}: nr {nr:#x} args {a:x?}: the kernel: {g}; the reference interpreter: {}; the emulator: {}\n{}",
                        c.label, c.want[i], c.emulated[i], c.source
                    ));
                }
            }
        }
    }
    if diffs.is_empty() {
        Ok(calls)
    } else {
        Err(diffs.join("\n"))
    }
}

/// A job finding the numbers a kernel does not filter at all: a filter that answers errno(1) to
/// every call, made with each of `numbers`. x86_64 kernels since 6.11 pass `uretprobe` (and later
/// `uprobe`) by seccomp without running any filter (`seccomp_uprobe_exception`): those calls run,
/// whatever the policy says (from outside a uprobe trampoline: SIGILL, and ENXIO).
pub fn encode_unfiltered_probe(numbers: &std::collections::BTreeSet<u32>, out: &mut Vec<u8>) {
    let everything_errno_1 = Program { insns: vec![scpc::bpf::Insn { code: 0x06, jt: 0, jf: 0, k: 0x0005_0001 }] };
    let calls: Vec<(u32, [u64; 6])> = numbers.iter().map(|&nr| (nr, [0; 6])).collect();
    encode(&everything_errno_1, &calls, false, out);
}

/// The numbers the probe's report shows unfiltered, with what each got.
pub fn unfiltered(numbers: &std::collections::BTreeSet<u32>, report: &Report) -> std::collections::BTreeMap<u32, Seen> {
    let Report::Calls(got) = report else { panic!("the kernel refused a one-instruction filter: {report:?}") };
    assert_eq!(got.len(), numbers.len(), "the probe's report");
    numbers.iter().zip(got).filter(|(_, g)| **g != Seen::Errno(1)).map(|(nr, g)| (*nr, g.clone())).collect()
}

/// Every call number of the cases.
pub fn numbers(cases: &[Case]) -> std::collections::BTreeSet<u32> {
    cases.iter().flat_map(|c| c.calls.iter().map(|(nr, _)| *nr)).collect()
}

/// Checks that the only numbers `arch`'s kernel leaves unfiltered are its `uretprobe` and
/// `uprobe` (the kernel's documented exception), and makes the cases expect what those calls
/// get unfiltered; returns how many calls that concerns.
pub fn expect_unfiltered(cases: &mut [Case], unfiltered: &std::collections::BTreeMap<u32, Seen>, arch: scpc::abi::Arch) -> usize {
    let table = arch.table();
    for (nr, seen) in unfiltered {
        let name = table.by_nr(*nr).map_or("?", |s| s.name);
        assert!(
            matches!(name, "uretprobe" | "uprobe"),
            "the {arch} kernel does not filter nr {nr:#x} ({name}): a filter answering errno(1) to everything got {seen}"
        );
    }
    let mut n = 0;
    for c in cases.iter_mut() {
        for (i, (nr, _)) in c.calls.iter().enumerate() {
            if let Some(seen) = unfiltered.get(nr) {
                c.want[i] = seen.clone();
                c.emulated[i] = seen.clone();
                n += 1;
            }
        }
    }
    n
}
