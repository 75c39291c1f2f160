//! Every seccomp action, proven live on this machine's kernel: the test re-runs its own binary
//! as a child (on the child's main thread, so thread-killing actions can be observed), the child
//! installs a filter compiled from a small policy and makes real calls, and the parent observes
//! what happened: return values, signals, which threads survived, the kernel's audit log.
//!
//! A plain `main` (harness = false) because libtest runs tests on helper threads.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use scpc::abi::Arch;
use scpc::artifact::compile;
use scpc::profile::Profile;
use scpc_node::bpf::Insn;
use scpc_node::loader::{install, install_with_listener, receive, respond, Flags};

mod kaudit;

const GETPPID: i64 = libc::SYS_getppid;
const CASE: &str = "SCPC_ACTION_CASE";

/// The host filter of `text`'s policy `p`.
fn filter(text: &str) -> Vec<Insn> {
    let (checked, diags, _) = scpc::check_source("case.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    let filters = compile(&checked.policies["p"], &Profile::uniform()).expect("compiles and validates");
    filters.into_iter().find(|f| f.arch == Arch::X86_64).expect("an x86_64 filter").program.insns
}

fn policy(rules: &str) -> String {
    format!("policy p {{\n  target x86_64\n  kernel >= 5.0\n  default allow\n{rules}\n}}\n")
}

/// A raw call; returns the kernel's value (`-errno` on failure).
fn raw(nr: i64, a: [u64; 3]) -> i64 {
    // SAFETY: the calls the cases make are harmless (getppid, lseek/getpriority on bad input).
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2]) };
    if rc == -1 {
        // SAFETY: reading this thread's errno.
        -(unsafe { *libc::__errno_location() } as i64)
    } else {
        rc
    }
}

/// An i386 call through `int 0x80` from this 64-bit process.
#[cfg(target_arch = "x86_64")]
fn int80(nr: u32) -> i64 {
    let ret: i32;
    // SAFETY: i386 getpid (20) takes no arguments and touches no memory.
    unsafe { std::arch::asm!("int 0x80", inlateout("eax") nr as i32 => ret, options(nostack)) };
    ret as i64
}

static TRAP_SIGNO: AtomicI32 = AtomicI32::new(0);
static TRAP_CODE: AtomicI32 = AtomicI32::new(0);
static TRAP_ERRNO: AtomicI32 = AtomicI32::new(0);
static TRAP_SYSCALL: AtomicI32 = AtomicI32::new(0);
static TRAP_ARCH: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_sigsys(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo; for SIGSYS the union holds `_sigsys`
    // { void *_call_addr; int _syscall; unsigned _arch; } at offset 16 on 64-bit.
    unsafe {
        let base = info as *const u8;
        TRAP_SIGNO.store(sig, Ordering::SeqCst);
        TRAP_ERRNO.store((*info).si_errno, Ordering::SeqCst);
        TRAP_CODE.store((*info).si_code, Ordering::SeqCst);
        TRAP_SYSCALL.store(*(base.add(24) as *const i32), Ordering::SeqCst);
        TRAP_ARCH.store(*(base.add(28) as *const u32), Ordering::SeqCst);
    }
}

fn load(rules: &str) {
    install(&filter(&policy(rules)), Flags::default()).expect("the kernel accepts the filter");
}

/// The child side: runs one case and prints `key=value` lines.
fn child(case: &str) {
    // No core files from the killing cases.
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    match case {
        "allow" => {
            install(
                &filter("policy p {\n target x86_64\n default kill_process\n allow getppid, write, exit_group, sigaltstack, munmap\n}\n"),
                Flags::default(),
            )
            .expect("loads");
            println!("ret={}", raw(GETPPID, [0; 3]));
        }
        "errno" => {
            load("  errno(77) getppid");
            println!("ret={}", raw(GETPPID, [0; 3]));
        }
        "trap" => {
            // SAFETY: installing a SA_SIGINFO handler that only stores atomics.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_sigsys as *const () as usize;
                sa.sa_flags = libc::SA_SIGINFO;
                libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
            }
            load("  trap(1234) getppid");
            let ret = raw(GETPPID, [0; 3]);
            println!("ret={ret}");
            println!("signo={}", TRAP_SIGNO.load(Ordering::SeqCst));
            println!("code={}", TRAP_CODE.load(Ordering::SeqCst));
            println!("errno={}", TRAP_ERRNO.load(Ordering::SeqCst));
            println!("syscall={}", TRAP_SYSCALL.load(Ordering::SeqCst));
            println!("arch={:#x}", TRAP_ARCH.load(Ordering::SeqCst));
        }
        "kill_process" | "kill_thread" => {
            load(&format!("  {case} getppid"));
            static AFTER: AtomicBool = AtomicBool::new(false);
            std::thread::spawn(|| {
                raw(GETPPID, [0; 3]);
                AFTER.store(true, Ordering::SeqCst);
            });
            // The thread dies (and, for kill_process, the whole process) at its call.
            let deadline = Instant::now() + Duration::from_secs(5);
            while tasks() > 1 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            println!("main=survived");
            println!("tasks={}", tasks());
            println!("thread_after_call={}", AFTER.load(Ordering::SeqCst));
        }
        "log" => {
            load("  log getppid");
            println!("pid={}", std::process::id());
            println!("ret={}", raw(GETPPID, [0; 3]));
            // SAFETY: a libc call without arguments.
            println!("real={}", unsafe { libc::getppid() });
        }
        "notify" => {
            let listener = install_with_listener(&filter(&policy("  notify getppid")), Flags::default()).expect("loads");
            let supervisor = std::thread::spawn(move || {
                let n = receive(&listener).expect("a notification");
                respond(&listener, n.id, 4242, 0).expect("answered");
                n
            });
            let ret = raw(GETPPID, [0x1111, 0xdead_beef_0000_0002, 0]);
            let n = supervisor.join().expect("supervisor");
            println!("ret={ret}");
            println!("nr={}", n.nr);
            println!("arch={:#x}", n.arch);
            println!("arg0={:#x}", n.args[0]);
            println!("arg1={:#x}", n.args[1]);
            println!("same_pid={}", n.pid == std::process::id());
        }
        "args" => {
            load("  errno(11) getpriority if which == 0\n  errno(12) lseek if offset == 5");
            // 32-bit `which`: garbage in the upper half is ignored by the kernel, and by the filter.
            println!("getpriority_garbage={}", raw(libc::SYS_getpriority, [0xdead_beef_0000_0000, 0, 0]));
            println!("getpriority_other={}", raw(libc::SYS_getpriority, [0xdead_beef_0000_0001, 0, 0]));
            // 64-bit `offset`: the upper half is part of the value.
            println!("lseek_5={}", raw(libc::SYS_lseek, [u64::MAX, 5, 0]));
            println!("lseek_garbage={}", raw(libc::SYS_lseek, [u64::MAX, 0xdead_beef_0000_0005, 0]));
        }
        #[cfg(target_arch = "x86_64")]
        "badarch" => {
            load("  badarch errno(99)\n  errno(55) getpid");
            println!("i386={}", int80(20));
            println!("x32={}", raw(0x4000_0000 | libc::SYS_getpid, [0; 3]));
            println!("x86_64={}", raw(libc::SYS_getpid, [0; 3]));
        }
        #[cfg(target_arch = "x86_64")]
        "foreign_targets" => {
            let text = "policy p {\n  target x86_64, x32, i386\n  default allow\n  badarch errno(99)\n  errno(55) getpid\n}\n";
            install(&filter(text), Flags::default()).expect("loads");
            println!("i386={}", int80(20));
            println!("x32={}", raw(0x4000_0000 | libc::SYS_getpid, [0; 3]));
            println!("x86_64={}", raw(libc::SYS_getpid, [0; 3]));
        }
        other => panic!("unknown case {other}"),
    }
}

fn tasks() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn run(case: &str) -> (Output, BTreeMap<String, String>) {
    let out = Command::new(std::env::current_exe().expect("own path")).env(CASE, case).output().expect("child runs");
    let kv = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    (out, kv)
}

fn expect(case: &str, kv: &BTreeMap<String, String>, key: &str, want: &str) -> Result<(), String> {
    match kv.get(key) {
        Some(v) if v == want => Ok(()),
        got => Err(format!("{case}: {key}: expected {want}, got {got:?}")),
    }
}

fn check(case: &str) -> Result<(), String> {
    // the `log` case's record is read as the kernel makes it (not from the rate-limited dmesg)
    let audit = if case == "log" { Some(kaudit::Listener::open()?) } else { None };
    let (out, kv) = run(case);
    let ok = |out: &Output| {
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{case}: child failed: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr)))
        }
    };
    match case {
        "allow" => {
            ok(&out)?;
            // SAFETY: a libc call without arguments.
            expect(case, &kv, "ret", &unsafe { libc::getpid() }.to_string())
        }
        "errno" => {
            ok(&out)?;
            expect(case, &kv, "ret", "-77")
        }
        "trap" => {
            ok(&out)?;
            expect(case, &kv, "signo", &libc::SIGSYS.to_string())?;
            expect(case, &kv, "code", "1")?; // SYS_SECCOMP
            expect(case, &kv, "errno", "1234")?;
            expect(case, &kv, "syscall", &GETPPID.to_string())?;
            expect(case, &kv, "arch", "0xc000003e")
        }
        "kill_process" => {
            if out.status.signal() != Some(libc::SIGSYS) {
                return Err(format!("{case}: expected the process killed by SIGSYS, got {:?}", out.status));
            }
            if kv.contains_key("main") {
                return Err(format!("{case}: the main thread outlived the kill: {kv:?}"));
            }
            Ok(())
        }
        "kill_thread" => {
            ok(&out)?;
            expect(case, &kv, "main", "survived")?;
            expect(case, &kv, "tasks", "1")?;
            expect(case, &kv, "thread_after_call", "false")
        }
        "log" => {
            ok(&out)?;
            let real = kv.get("real").cloned().unwrap_or_default();
            expect(case, &kv, "ret", &real)?;
            // The kernel records the call (type=1326, code 0x7ffc0000): this child's own record,
            // told apart by its pid, the syscall and the action, whatever else is logging.
            let pid = kv.get("pid").cloned().unwrap_or_default();
            let audit = audit.as_ref().ok_or("no audit listener")?;
            let ours = |r: &kaudit::Record| {
                r.field("pid") == Some(pid.as_str()) && r.field("syscall") == Some("110") && r.field("code") == Some("0x7ffc0000")
            };
            match audit.wait_for(Duration::from_secs(10), ours) {
                Ok(_) => Ok(()),
                Err(seen) => Err(format!("{case}: no audit record for pid {pid} (saw {} others: {:?})", seen.len(), seen.first())),
            }
        }
        "notify" => {
            ok(&out)?;
            expect(case, &kv, "ret", "4242")?;
            expect(case, &kv, "nr", &GETPPID.to_string())?;
            expect(case, &kv, "arch", "0xc000003e")?;
            expect(case, &kv, "arg0", "0x1111")?;
            expect(case, &kv, "arg1", "0xdeadbeef00000002")?;
            expect(case, &kv, "same_pid", "true")
        }
        "args" => {
            ok(&out)?;
            expect(case, &kv, "getpriority_garbage", "-11")?;
            // which=1 (PRIO_PGRP) passes to the kernel
            if kv.get("getpriority_other").is_none_or(|v| v == "-11") {
                return Err(format!("{case}: getpriority(which=1) was denied: {kv:?}"));
            }
            expect(case, &kv, "lseek_5", "-12")?;
            expect(case, &kv, "lseek_garbage", &(-libc::EBADF).to_string())
        }
        "badarch" => {
            ok(&out)?;
            expect(case, &kv, "i386", "-99")?;
            expect(case, &kv, "x32", "-99")?;
            expect(case, &kv, "x86_64", "-55")
        }
        "foreign_targets" => {
            ok(&out)?;
            // i386 and x32 are targets: their calls meet the policy's rules, not badarch.
            expect(case, &kv, "i386", "-55")?;
            expect(case, &kv, "x32", "-55")?;
            expect(case, &kv, "x86_64", "-55")
        }
        _ => Err(format!("unknown case {case}")),
    }
}

fn main() {
    if let Ok(case) = std::env::var(CASE) {
        child(&case);
        return;
    }
    let mut cases = vec!["allow", "errno", "trap", "kill_process", "kill_thread", "log", "notify", "args"];
    if cfg!(target_arch = "x86_64") {
        cases.extend(["badarch", "foreign_targets"]);
    }
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = 0;
    for case in cases {
        if !filter.is_empty() && !filter.iter().any(|f| case.contains(f.as_str())) {
            continue;
        }
        match check(case) {
            Ok(()) => println!("test live::{case} ... ok"),
            Err(e) => {
                println!("test live::{case} ... FAILED\n{e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        println!("{failed} live action test(s) failed");
        std::process::exit(1);
    }
}
