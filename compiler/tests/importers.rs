//! The importers of other tools' policies, on every file of each format in
//! `tests/fixtures/realworld/` (copied from the projects that ship them: README.md there):
//! each imports, checks and builds (a filter per target, proven equal to the policy); the
//! seccompiler import is decision-equal to seccompiler's own compilation of each Firecracker
//! filter (the `seccompiler` crate), compared by decision diagrams over every call (complete),
//! and on every syscall number and boundary argument in the emulator besides; minijail's and
//! kafel's meanings are checked on hand-verified cases of their documentation.

use std::path::{Path, PathBuf};

use scpc::abi::Arch;
use scpc::bpf::sim::{run, SeccompData};
use scpc::bpf::{Insn, Program};
use scpc::diff::{diff, Side};
use scpc::import::kafel::KafelOptions;
use scpc::import::minijail::{Disk, MinijailOptions};
use scpc::import::seccompiler::SeccompilerOptions;
use scpc::import::ImportError;
use scpc::ir::{Action, Policy};

fn realworld() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/realworld")
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(realworld().join(dir))
        .expect("fixtures")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Every policy of `text`, checked: no error (warnings are the documented ones).
fn policies(name: &str, text: &str) -> Vec<Policy> {
    let (checked, diags, _) = scpc::check_source(name, text);
    assert!(!diags.has_errors(), "{name}: {diags:?}\n{text}");
    checked.policies.into_values().collect()
}

fn policy(name: &str, text: &str) -> Policy {
    let mut all = policies(name, text);
    assert_eq!(all.len(), 1, "{text}");
    all.remove(0)
}

/// Builds every policy (the build proves each filter equal to its policy).
fn builds(name: &str, p: &Policy) {
    let filters = scpc::artifact::compile(p, &scpc::import::trace::builtin_profile()).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(filters.iter().all(|f| f.proven), "{name}: every filter proven");
}

fn decide(p: &Policy, arch: Arch, name: &str, args: [u64; 6]) -> Action {
    let t = arch.table();
    let nr = t.syscall(name).unwrap_or_else(|| panic!("{name} on {arch}")).nr;
    scpc::eval::decide(p, t.audit_arch, nr, &args).action
}

// ---- seccompiler ----

fn seccompiler_arch(a: Arch) -> seccompiler::TargetArch {
    match a {
        Arch::X86_64 => seccompiler::TargetArch::x86_64,
        Arch::Aarch64 => seccompiler::TargetArch::aarch64,
        _ => seccompiler::TargetArch::riscv64,
    }
}

/// seccompiler's own compilation of `text` for `arch`, per thread.
fn seccompiler_filters(text: &str, arch: Arch) -> Vec<(String, Program)> {
    let map = seccompiler::compile_from_json(text.as_bytes(), seccompiler_arch(arch)).expect("seccompiler compiles it");
    let mut out: Vec<(String, Program)> = map
        .into_iter()
        .map(|(name, prog)| (name, Program { insns: prog.iter().map(|i| Insn { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect() }))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The argument indexes the file's conditions compare.
fn used_indexes(text: &str) -> Vec<usize> {
    let mut v: Vec<usize> = (0..6).filter(|i| text.contains(&format!("\"index\": {i}"))).collect();
    if v.is_empty() {
        v.push(0);
    }
    v
}

/// The values each condition of the file compares with, and around them.
fn boundary_values(text: &str) -> Vec<u64> {
    let json: serde_json::Value = serde_json::from_str(text).expect("json");
    let mut vals = vec![0u64, 1, u64::from(u32::MAX), 1 << 32, u64::MAX];
    for filter in json.as_object().into_iter().flat_map(|m| m.values()) {
        for rule in filter["filter"].as_array().into_iter().flatten() {
            for c in rule["args"].as_array().into_iter().flatten() {
                let v = c["val"].as_u64().unwrap_or(0);
                vals.extend([v, v.wrapping_sub(1), v.wrapping_add(1), v | 0xdead_0000_0000_0000]);
                if let Some(m) = c["op"]["masked_eq"].as_u64() {
                    vals.extend([m, !m, v | !m]);
                }
            }
        }
    }
    vals.sort_unstable();
    vals.dedup();
    vals
}

#[test]
fn seccompiler_imports_decide_as_seccompiler_compiles_on_every_firecracker_filter() {
    let cases = [
        ("x86_64-unknown-linux-musl.json", Arch::X86_64),
        ("aarch64-unknown-linux-musl.json", Arch::Aarch64),
        ("unimplemented.json", Arch::X86_64),
        ("unimplemented.json", Arch::Aarch64),
    ];
    assert_eq!(files("firecracker", "json").len(), 3, "every Firecracker file is a case");
    let mut compared = 0;
    for (file, arch) in cases {
        let text = std::fs::read_to_string(realworld().join("firecracker").join(file)).expect("fixture");
        let imported = scpc::import::seccompiler::import(file, &text, &SeccompilerOptions { arch }).expect("imports");
        let (checked, diags, _) = scpc::check_source(file, &imported);
        assert!(!diags.has_errors(), "{diags:?}");
        let reference = seccompiler_filters(&text, arch);
        assert_eq!(reference.len(), checked.policies.len(), "one policy per thread");
        let vals = boundary_values(&text);
        for (thread, prog) in &reference {
            let p = &checked.policies[thread.as_str()];
            // complete: every call of every architecture, by decision diagrams
            let report = diff(&Side::Filter(prog.clone()), &Side::Policy(p.clone())).expect("compares");
            assert!(report.equal, "{file} {thread} on {arch}: {:?}", &report.differences[..report.differences.len().min(3)]);
            // scpc's own build of the import, against seccompiler's filter
            let built = scpc::artifact::compile(p, &scpc::import::trace::builtin_profile()).expect("builds");
            for f in &built {
                let report = diff(&Side::Filter(prog.clone()), &Side::Filter(f.program.clone())).expect("compares");
                assert!(report.equal, "{file} {thread}: scpc's filter for {} differs", f.arch);
            }
            // and the emulator on every syscall number (x32's too) with boundary arguments
            let audit = arch.table().audit_arch;
            let ours = &built[0].program;
            let last = arch.table().syscalls.iter().map(|s| s.nr).filter(|n| *n < 0x4000_0000).max().unwrap_or(0);
            for nr in (0..=last + 2).chain(0x4000_0000..0x4000_0010).chain([u32::MAX]) {
                // the boundary values where they are compared, zero elsewhere
                let used = used_indexes(&text);
                let conditional = arch.table().by_nr(nr).is_some_and(|s| text.contains(&format!("\"syscall\": \"{}\",\n", s.name)));
                let vals: &[u64] = if nr % 64 == 0 || conditional { &vals } else { &vals[..vals.len().min(8)] };
                for v in vals {
                    for &k in &used {
                        let mut args = [0u64; 6];
                        args[k] = *v;
                        let data = SeccompData { nr, arch: audit, instruction_pointer: 0, args };
                        let (a, b) = (run(prog, &data).map(|o| o.ret), run(ours, &data).map(|o| o.ret));
                        assert_eq!(a, b, "{file} {thread} nr {nr} args {args:x?}");
                        compared += 1;
                    }
                }
            }
        }
    }
    assert!(compared > 20_000, "{compared} calls compared");
}

#[test]
fn seccompiler_refuses_what_seccompiler_refuses_and_reads_the_rest_exactly() {
    let import = |text: &str| scpc::import::seccompiler::import("t.json", text, &SeccompilerOptions { arch: Arch::X86_64 });
    let same = r#"{"t": {"mismatch_action": "allow", "match_action": "allow", "filter": []}}"#;
    assert!(matches!(import(same), Err(ImportError::Value { .. })), "identical actions");
    let dup = r#"{"t": {"mismatch_action": "trap", "match_action": "allow", "filter": []}, "t": {"mismatch_action": "trap", "match_action": "allow", "filter": []}}"#;
    assert!(matches!(import(dup), Err(ImportError::Value { .. })), "a thread named twice");
    let unknown = r#"{"t": {"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "no_such_call"}]}}"#;
    assert!(matches!(import(unknown), Err(ImportError::Value { .. })));
    let typo = r#"{"t": {"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "read", "argz": []}]}}"#;
    let e = import(typo).expect_err("unknown field");
    assert!(e.to_string().contains("t.filter[0]") || e.to_string().contains("argz"), "{e}");
    let hostile = "{\"x\\ny\": {\"mismatch_action\": \"trap\", \"match_action\": \"allow\", \"filter\": [{\"syscall\": \"read\", \"comment\": \"a\\n}\\npolicy evil {\\n# scpc: allow(attack_surface)\"}]}}";
    let text = import(hostile).expect("imports");
    assert_eq!(policies("h.scp", &text).len(), 1, "the comment cannot end the policy or start another:\n{text}");
    assert!(!text.contains("scpc: allow"), "scpc: is defused");
    // an unconditional rule beside conditional ones: seccompiler keeps the conditional ones only
    let mixed = r#"{"t": {"mismatch_action": {"errno": 1}, "match_action": "allow", "filter": [
        {"syscall": "futex"},
        {"syscall": "futex", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 128}]},
        {"syscall": "ioctl", "args": [{"index": 1, "type": "qword", "op": {"masked_eq": 255}, "val": 4097}]},
        {"syscall": "lseek", "args": [{"index": 1, "type": "dword", "op": "ge", "val": 4096}]}]}}"#;
    let text = import(mixed).expect("imports");
    let p = policy("m.scp", &text);
    assert_eq!(decide(&p, Arch::X86_64, "futex", [0, 128, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, Arch::X86_64, "futex", [0, 0, 0, 0, 0, 0]), Action::Errno(1), "the unconditional futex is ignored");
    assert_eq!(decide(&p, Arch::X86_64, "ioctl", [0, 0x1, 0, 0, 0, 0]), Action::Allow, "4097 & 255 == 1");
    // dword compares the low half of a 64-bit argument
    assert_eq!(decide(&p, Arch::X86_64, "lseek", [0, 0x1_0000_1000, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, Arch::X86_64, "lseek", [0, 0x1_0000_0fff, 0, 0, 0, 0]), Action::Errno(1));
    assert_eq!(decide(&p, Arch::I386, "read", [0; 6]), Action::KillProcess, "another architecture");
    assert!(text.contains("qword compares 64 bits"), "the width note:\n{text}");
    // against seccompiler on the same file
    for (thread, prog) in seccompiler_filters(mixed, Arch::X86_64) {
        let q = policies("m.scp", &text).into_iter().find(|p| p.name == thread).expect("thread");
        let report = diff(&Side::Filter(prog), &Side::Policy(q)).expect("compares");
        // (the qword of ioctl's 32-bit cmd differs only where its upper half is not zero)
        assert!(report.differences.iter().all(|d| d.syscall == Some("ioctl")), "{:?}", report.differences);
    }
}

// ---- minijail ----

#[test]
fn every_minijail_policy_of_the_corpus_imports_checks_and_builds() {
    let mut n = 0;
    for dir in ["minijail/crosvm-x86_64", "minijail/crosvm-aarch64", "minijail/minijail"] {
        let arch = if dir.ends_with("minijail") { Some(Arch::X86_64) } else { None };
        for file in files(dir, "policy") {
            let opts = MinijailOptions { arch, ..Default::default() };
            let imported = scpc::import::minijail::import(&file, &opts, &Disk).unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
            let p = policy(&file.to_string_lossy(), &imported.policy);
            builds(&file.to_string_lossy(), &p);
            n += 1;
        }
    }
    assert_eq!(n, 46 + 35 + 3);
}

#[test]
fn minijail_meaning_on_hand_verified_cases() {
    let dir = realworld().join("minijail/crosvm-x86_64");
    // common_device.policy: clone: arg0 & CLONE_THREAD; mmap: arg2 in ~PROT_EXEC; @frequency
    let imported = scpc::import::minijail::import(&dir.join("common_device.policy"), &MinijailOptions::default(), &Disk).expect("imports");
    let p = policy("common.scp", &imported.policy);
    let x = Arch::X86_64;
    assert_eq!(decide(&p, x, "clone", [0x10000, 0, 0, 0, 0, 0]), Action::Allow, "CLONE_THREAD set");
    assert_eq!(decide(&p, x, "clone", [0x11, 0, 0, 0, 0, 0]), Action::KillProcess, "CLONE_THREAD not set");
    assert_eq!(decide(&p, x, "mmap", [0, 0, 3, 0, 0, 0]), Action::Allow, "no PROT_EXEC");
    assert_eq!(decide(&p, x, "mmap", [0, 0, 7, 0, 0, 0]), Action::KillProcess, "PROT_EXEC");
    assert_eq!(decide(&p, x, "ioctl", [0, 0xaa00, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, x, "ioctl", [0, 0xaa01, 0, 0, 0, 0]), Action::KillProcess);
    assert_eq!(decide(&p, x, "socket", [0; 6]), Action::KillProcess, "not listed: killed");
    let profile = imported.profile.expect("@frequency");
    assert!(profile.lines().nth(1).is_some_and(|l| l.starts_with("ioctl\t754417")), "{profile}");
    // cros_default_v0: a denylist
    let deny = realworld().join("minijail/minijail/cros_default_v0.policy");
    let imported = scpc::import::minijail::import(&deny, &MinijailOptions { arch: Some(x), ..Default::default() }, &Disk).expect("imports");
    let p = policy("deny.scp", &imported.policy);
    assert_eq!(decide(&p, x, "bpf", [0; 6]), Action::Errno(1), "bpf: return EPERM");
    assert_eq!(decide(&p, x, "read", [0; 6]), Action::Allow, "the rest allowed");
    // the documented forms, in a file of our own
    let tmp = std::env::temp_dir().join(format!("scpc-minijail-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    std::fs::write(
        tmp.join("t.policy"),
        "# minijail0(5)'s examples\nread: arg0 == 0; return EBADF\nwrite: arg0 == 1 || \\\n   arg0 == 2\nopenat: return ENOENT\n\
         fcntl: arg1 in F_GETFD|F_SETFD && arg2 != 0\n@default trap\n",
    )
    .expect("write");
    let imported = scpc::import::minijail::import(&tmp.join("t.policy"), &MinijailOptions { arch: Some(x), ..Default::default() }, &Disk)
        .expect("imports");
    let p = policy("t.scp", &imported.policy);
    assert_eq!(decide(&p, x, "read", [0; 6]), Action::Allow, "arg0 == 0: allowed");
    assert_eq!(decide(&p, x, "read", [3, 0, 0, 0, 0, 0]), Action::Errno(9), "else EBADF");
    assert_eq!(decide(&p, x, "write", [2, 0, 0, 0, 0, 0]), Action::Allow, "the continued line");
    assert_eq!(decide(&p, x, "write", [3, 0, 0, 0, 0, 0]), Action::Trap(0), "@default trap");
    assert_eq!(decide(&p, x, "openat", [0; 6]), Action::Errno(2));
    assert_eq!(decide(&p, x, "fcntl", [0, 2, 1, 0, 0, 0]), Action::Allow, "F_SETFD is in the set");
    assert_eq!(decide(&p, x, "fcntl", [0, 4, 1, 0, 0, 0]), Action::Trap(0), "F_SETFL is not");
    // an include outside the policy's directory is refused, and its text never shown
    std::fs::write(tmp.join("evil.policy"), "@include /etc/passwd\n").expect("write");
    let e = scpc::import::minijail::import(&tmp.join("evil.policy"), &MinijailOptions { arch: Some(x), ..Default::default() }, &Disk)
        .expect_err("refused");
    assert!(e.to_string().contains("outside") && !e.to_string().contains("root:"), "{e}");
    std::fs::write(tmp.join("loop.policy"), "@include ./loop.policy\n").expect("write");
    assert!(
        scpc::import::minijail::import(&tmp.join("loop.policy"), &MinijailOptions { arch: Some(x), ..Default::default() }, &Disk).is_err()
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

// ---- kafel ----

/// The kafel files of the corpus that use what .scp cannot say, and the construct named.
const KAFEL_INEXPRESSIBLE: &[(&str, &str)] =
    [("kafel-sample_var_cmp.policy", "two arguments"), ("kafel-sample_custom_syscall.policy", "bare number")].as_slice();

#[test]
fn every_kafel_policy_of_the_corpus_imports_checks_and_builds_or_names_what_it_cannot() {
    let mut all = files("kafel", "policy");
    all.extend(files("kafel", "kafel"));
    assert_eq!(all.len(), 29);
    for file in all {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(&file).expect("fixture");
        let result = scpc::import::kafel::import(&name, &text, &KafelOptions { targets: vec![Arch::X86_64, Arch::Aarch64], name: None });
        match KAFEL_INEXPRESSIBLE.iter().find(|(f, _)| *f == name) {
            Some((_, construct)) => {
                let e = result.expect_err("inexpressible");
                assert!(matches!(e, ImportError::Inexpressible { .. }) && e.to_string().contains(construct), "{name}: {e}");
            }
            None => {
                let imported = result.unwrap_or_else(|e| panic!("{name}: {e:?}"));
                let p = policy(&name, &imported);
                builds(&name, &p);
            }
        }
    }
}

#[test]
fn kafel_meaning_on_hand_verified_cases() {
    let x = Arch::X86_64;
    let import = |text: &str| scpc::import::kafel::import("t.policy", text, &KafelOptions { targets: vec![x], name: None });
    // README: the first rule that matches decides; DEFAULT; ERRNO; USE pastes a policy
    let text = import(
        "#define STDOUT 1\nPOLICY a { ERRNO(5) { write { fd == 2 } } }\nPOLICY b { USE a, ALLOW { write(myfd) { myfd == STDOUT, myfd == 2 } }, KILL_PROCESS { ptrace } }\nUSE b DEFAULT ERRNO(38)",
    )
    .expect("imports");
    let p = policy("k.scp", &text);
    assert_eq!(decide(&p, x, "write", [2, 0, 0, 0, 0, 0]), Action::Errno(5), "a's rule comes first");
    assert_eq!(decide(&p, x, "write", [1, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, x, "write", [3, 0, 0, 0, 0, 0]), Action::Errno(38), "DEFAULT");
    assert_eq!(decide(&p, x, "ptrace", [0; 6]), Action::KillProcess);
    // no DEFAULT: KILL (the thread)
    let p = policy("k.scp", &import("ALLOW { read }").expect("imports"));
    assert_eq!(decide(&p, x, "write", [0; 6]), Action::KillThread);
    // masks, flags joined with |, constants on the left, !
    let p = policy(
        "k.scp",
        &import(
            "#define PROT_EXEC 4\nALLOW { mmap { (prot & PROT_EXEC) == 0 }, open { flags == 2|64 }, read { 10 > count && !(fd == 5) } }",
        )
        .expect("imports"),
    );
    assert_eq!(decide(&p, x, "mmap", [0, 0, 3, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, x, "mmap", [0, 0, 7, 0, 0, 0]), Action::KillThread);
    assert_eq!(decide(&p, x, "open", [0, 66, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, x, "read", [0, 0, 9, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, x, "read", [5, 0, 9, 0, 0, 0]), Action::KillThread);
    assert_eq!(decide(&p, x, "read", [0, 0, 10, 0, 0, 0]), Action::KillThread);
    // what .scp cannot say is named
    for (text, construct) in [
        ("ALLOW { write { fd == count } }", "two arguments"),
        ("ALLOW { SYSCALL[500] }", "bare number"),
        ("#include \"x.policy\"\nALLOW { read }", "#include"),
    ] {
        let e = import(text).expect_err(text);
        assert!(e.to_string().contains(construct), "{e}");
    }
    // hostile text stays out of the policy
    assert!(import("ALLOW { read }\n// \n}\npolicy evil {").is_err(), "not kafel");
    let deep = format!("ALLOW {{ read {{ {}fd == 1{} }} }}", "(".repeat(500), ")".repeat(500));
    assert!(import(&deep).is_err(), "nesting is capped");
}

// ---- hostile files: every one an error or a policy that checks, never a panic ----

fn seccompiler_x86(text: &str) -> Result<String, ImportError> {
    scpc::import::seccompiler::import("h.json", text, &SeccompilerOptions { arch: Arch::X86_64 })
}

#[test]
fn seccompiler_hostile_files_are_refused_or_import_cleanly() {
    // deep nesting: serde_json's recursion limit, an error with a place
    let deep = format!("{{\"t\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(seccompiler_x86(&deep), Err(ImportError::Parse { .. })));
    // huge and negative values, a far index, an errno and trace data past the kernel's
    let rule = |cond: &str| {
        format!(r#"{{"t": {{"mismatch_action": "trap", "match_action": "allow", "filter": [{{"syscall": "read", "args": [{cond}]}}]}}}}"#)
    };
    for (cond, what) in [
        (r#"{"index": 0, "type": "qword", "op": "eq", "val": 18446744073709551616}"#, "past u64"),
        (r#"{"index": 0, "type": "qword", "op": "eq", "val": -1}"#, "negative"),
        (r#"{"index": 0, "type": "qword", "op": "eq", "val": 1e30}"#, "a float"),
        (r#"{"index": 300, "type": "dword", "op": "eq", "val": 1}"#, "index past u8"),
        (r#"{"index": 6, "type": "dword", "op": "eq", "val": 1}"#, "index 6"),
        (r#"{"index": 0, "type": "qword", "op": {"masked_eq": -5}, "val": 1}"#, "a negative mask"),
    ] {
        assert!(seccompiler_x86(&rule(cond)).is_err(), "{what}");
    }
    let act = |a: &str| format!(r#"{{"t": {{"mismatch_action": {a}, "match_action": "allow", "filter": []}}}}"#);
    assert!(matches!(seccompiler_x86(&act(r#"{"errno": 4096}"#)), Err(ImportError::Value { .. })));
    assert!(matches!(seccompiler_x86(&act(r#"{"trace": 65536}"#)), Err(ImportError::Value { .. })));
    assert!(seccompiler_x86(&act(r#"{"errno": 4294967296}"#)).is_err());
    // thread names that are keywords of .scp, empty, numeric, or that clash once made names
    let names = ["policy", "allow", "default", "target", "if", "on", "true", "", "9", "x.", "x-", "x__2", "x_", "é"];
    let body = r#"{"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "read"}]}"#;
    let file = format!("{{{}}}", names.iter().map(|n| format!("\"{n}\": {body}")).collect::<Vec<_>>().join(", "));
    let text = seccompiler_x86(&file).unwrap_or_else(|e| panic!("{e:?}"));
    let ps = policies("n.scp", &text);
    assert_eq!(ps.len(), names.len(), "one policy per thread:\n{text}");
    for p in &ps {
        assert_eq!(decide(p, Arch::X86_64, "read", [0; 6]), Action::Allow, "{}", p.name);
        assert_eq!(decide(p, Arch::X86_64, "write", [0; 6]), Action::Trap(0), "{}", p.name);
    }
    // many threads (a quadratic check would show here)
    let many = format!("{{{}}}", (0..2000).map(|i| format!("\"t{i}\": {body}")).collect::<Vec<_>>().join(", "));
    assert_eq!(policies("m.scp", &seccompiler_x86(&many).expect("imports")).len(), 2000);
    // text after the object, and a syscall name carrying policy text
    assert!(seccompiler_x86(&format!("{} }} policy evil {{", act("\"trap\""))).is_err());
    let injected =
        r#"{"t": {"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "read\n}\npolicy evil {\n allow execve"}]}}"#;
    assert!(matches!(seccompiler_x86(injected), Err(ImportError::Value { .. })));
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("scpc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp");
        TempDir(d)
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn minijail_hostile_files_are_refused_or_import_cleanly() {
    let dir = TempDir::new("minijail-hostile");
    let opts = MinijailOptions { arch: Some(Arch::X86_64), ..Default::default() };
    let import = |p: &Path| scpc::import::minijail::import(p, &opts, &Disk);
    // parentheses nested without end: an error at the line, not a stack overflow
    let deep = dir.write("deep.policy", &format!("read: arg0 == {}1{}\n", "(".repeat(100_000), ")".repeat(100_000)));
    let e = import(&deep).expect_err("too deep");
    assert!(e.to_string().contains("deep.policy:1:1") && e.to_string().contains("nested"), "{e}");
    // a hundred parentheses still read
    let ok = dir.write("ok.policy", &format!("read: arg0 == {}1{}\n", "(".repeat(100), ")".repeat(100)));
    let p = policy("ok.scp", &import(&ok).expect("imports").policy);
    assert_eq!(decide(&p, Arch::X86_64, "read", [1, 0, 0, 0, 0, 0]), Action::Allow);
    // a long `||` (written as consecutive rules, the language capping an expression's length)
    let ors = (0..2_000).map(|i| format!("arg0 == {i}")).collect::<Vec<_>>().join(" || ");
    let long = dir.write("long.policy", &format!("read: {ors}; return 1\nwrite: 1\n"));
    let p = policy("long.scp", &import(&long).expect("imports").policy);
    assert_eq!(decide(&p, Arch::X86_64, "read", [1_999, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, Arch::X86_64, "read", [2_000, 0, 0, 0, 0, 0]), Action::Errno(1));
    // huge numbers, errno past 4095, a bad argument index
    for (line, what) in [
        ("read: arg0 == 0x1ffffffffffffffff", "past 64 bits"),
        ("read: arg0 == 99999999999999999999999", "past 64 bits, decimal"),
        ("read: return 4096", "errno past 4095"),
        ("read: arg6 == 1", "arg6"),
        ("read: arg0 == 0x100000000", "wider than the 32-bit fd"),
    ] {
        let f = dir.write("v.policy", &format!("{line}\n"));
        let e = import(&f).expect_err(what);
        assert!(e.to_string().contains("v.policy:1:1"), "{what}: {e}");
    }
    // frequency counts that overflow saturate
    dir.write("f.frequency", "read: 18446744073709551615\nread: 18446744073709551615\nwrite: 3\n");
    let f = dir.write("f.policy", "@frequency ./f.frequency\nread: 1\nwrite: 1\n");
    let profile = import(&f).expect("imports").profile.expect("profile");
    assert!(profile.contains(&format!("read\t{}", u64::MAX)), "{profile}");
    // an include bomb (each level including the next many times over) stops at the budget
    dir.write("c.policy", "read: 1\n");
    dir.write("b.policy", &"@include ./c.policy\n".repeat(2000));
    let bomb = dir.write("a.policy", &"@include ./b.policy\n".repeat(2000));
    let e = import(&bomb).expect_err("budget");
    assert!(e.to_string().contains("included"), "{e}");
    // an include that is missing: located at its line
    let missing = dir.write("m.policy", "read: 1\n@include ./nowhere.policy\n");
    let e = import(&missing).expect_err("missing");
    assert!(e.to_string().contains("m.policy:2:1") && e.to_string().contains("nowhere"), "{e}");
    // a link below the directory that leads out of it
    std::os::unix::fs::symlink("/etc/passwd", dir.0.join("link.policy")).expect("symlink");
    let out = dir.write("out.policy", "@include ./link.policy\n");
    let e = import(&out).expect_err("outside");
    assert!(e.to_string().contains("outside") && !e.to_string().contains("root:"), "{e}");
    // a file name carrying policy text goes into a comment, escaped
    let evil_name = "x\n}\npolicy evil {\n allow execve\n# scpc: allow(all).policy";
    dir.write(evil_name, "write: 1\n");
    let inc = dir.write("inc.policy", &format!("read: 1\n@include ./{}\n", evil_name.replace('\n', "\\n")));
    // (a line cannot hold a newline: the name with one is not nameable, so it is not found)
    assert!(import(&inc).is_err());
    let sub = dir.write("x }policy evil { allow execve scpc: allow(all).policy", "write: 1\n");
    let inc = dir.write("inc2.policy", &format!("read: 1\n@include ./{}\n", sub.file_name().and_then(|n| n.to_str()).expect("name")));
    let text = import(&inc).expect("imports").policy;
    assert_eq!(policies("i.scp", &text).len(), 1, "{text}");
    assert!(!text.contains("scpc: allow"), "{text}");
    // a syscall name with policy text, and braces
    for line in ["read}: 1", "read: 1 }", "{read, write}: 1", "read: 1; policy"] {
        let f = dir.write("s.policy", &format!("{line}\n"));
        assert!(import(&f).is_err(), "{line}");
    }
    // constants.json that is not one
    let cdir = TempDir::new("minijail-constants");
    cdir.write("constants.json", &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)));
    let f = cdir.write("p.policy", "read: 1\n");
    assert!(matches!(import(&f), Err(ImportError::Parse { .. })));
    cdir.write("constants.json", r#"{"arch_nr": "x86_64", "constants": {}, "syscalls": {}}"#);
    assert!(matches!(import(&f), Err(ImportError::Parse { .. })));
}

#[test]
fn kafel_hostile_files_are_refused_or_import_cleanly() {
    let x = Arch::X86_64;
    let import = |text: &str| scpc::import::kafel::import("h.policy", text, &KafelOptions { targets: vec![x], name: None });
    // long chains are flat: any length reads without a deep stack
    let ors = format!("ALLOW {{ read {{ {} }} }}", (0..2_000).map(|i| format!("fd == {i}")).collect::<Vec<_>>().join(" || "));
    let p = policy("o.scp", &import(&ors).expect("imports"));
    assert_eq!(decide(&p, x, "read", [1_999, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(decide(&p, x, "read", [2_000, 0, 0, 0, 0, 0]), Action::KillThread);
    let ands = format!("ALLOW {{ read {{ {} }} }}", (0..2_000).map(|i| format!("fd != {}", i + 1)).collect::<Vec<_>>().join(" && "));
    // (a conjunction longer than the language's cap on operators is refused, cleanly)
    let e = import(&ands).expect_err("longer than .scp's expressions");
    assert!(matches!(e, ImportError::Check { .. }) && e.to_string().contains("deeper"), "{e}");
    let ands = format!("ALLOW {{ read {{ {} }} }}", (0..200).map(|i| format!("fd != {}", i + 1)).collect::<Vec<_>>().join(" && "));
    let p = policy("a.scp", &import(&ands).expect("imports"));
    assert_eq!(decide(&p, x, "read", [0; 6]), Action::Allow);
    assert_eq!(decide(&p, x, "read", [7, 0, 0, 0, 0, 0]), Action::KillThread);
    let bits =
        format!("ALLOW {{ open {{ flags == {} }} }}", (0..2_000).map(|i| (1u64 << (i % 20)).to_string()).collect::<Vec<_>>().join("|"));
    let p = policy("b.scp", &import(&bits).expect("imports"));
    assert_eq!(decide(&p, x, "open", [0, 0xf_ffff, 0, 0, 0, 0]), Action::Allow);
    // nesting by parentheses and `!` is capped
    for deep in [
        format!("ALLOW {{ read {{ {}fd == 1{} }} }}", "(".repeat(100_000), ")".repeat(100_000)),
        format!("ALLOW {{ read {{ {}fd == 1 }} }}", "!".repeat(100_000)),
    ] {
        assert!(import(&deep).expect_err("capped").to_string().contains("nested"));
    }
    // USE bombs: empty policies used many times over, a long chain of USEs
    let mut bomb = String::from("POLICY p0 { }\n");
    for i in 1..30 {
        let uses = (0..10).map(|_| format!("USE p{}", i - 1)).collect::<Vec<_>>().join(", ");
        bomb += &format!("POLICY p{i} {{ {uses} }}\n");
    }
    bomb += "USE p29\n";
    assert!(import(&bomb).expect_err("budget").to_string().contains("USE"));
    let mut chain = String::from("POLICY p0 { ALLOW { read } }\n");
    for i in 1..5000 {
        chain += &format!("POLICY p{i} {{ USE p{} }}\n", i - 1);
    }
    chain += "USE p4999\n";
    assert!(import(&chain).expect_err("too deep").to_string().contains("nested"));
    // a USE of a policy defined after the one using it
    assert!(import("POLICY a { USE b } POLICY b { ALLOW { read } } USE a").is_err());
    // values past 64 bits, errno past 4095, text after the policy, names carrying text
    for text in [
        "#define X 0x1ffffffffffffffff\nALLOW { read }",
        "ALLOW { read { fd == 99999999999999999999999 } }",
        "ERRNO(4096) { read }",
        "ALLOW { read } }\npolicy evil { allow execve",
        "ALLOW { read { fd == 1 } } DEFAULT ALLOW DEFAULT KILL",
        "ALLOW { \"read\" }",
    ] {
        assert!(import(text).is_err(), "{text}");
    }
    let named = scpc::import::kafel::import(
        "x\n}\npolicy evil {\n# scpc: allow(all).policy",
        "ALLOW { read }",
        &KafelOptions { targets: vec![x], name: None },
    )
    .expect("imports");
    assert_eq!(policies("n.scp", &named).len(), 1, "{named}");
    assert!(!named.contains("scpc: allow"), "{named}");
}
