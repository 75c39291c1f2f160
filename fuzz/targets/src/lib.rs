//! The bodies of scpc's fuzz targets. `fuzz/fuzz_targets/*.rs` (cargo-fuzz, nightly) call
//! them on what libFuzzer generates; `tests/replay.rs` (stable, in `cargo test`) calls them on
//! every file of `fuzz/corpus/TARGET/`, so each crash found and fixed stays a regression test.
//!
//! Each function takes raw bytes, must never panic on any input, and asserts the property
//! its target names.

pub mod compile;

use scpc_lang::{diag::Diagnostics, fmt::format, source::SourceMap, syntax::parse_file};
use std::sync::OnceLock;

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and cargo-fuzz binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("parse", parse),
    ("check", check),
    ("compile", compile::run),
    ("emulator", emulator),
    ("docker", docker),
    ("auditlog", auditlog),
    ("inventory", inventory),
    ("seccompiler", seccompiler),
    ("minijail", minijail),
    ("kafel", kafel),
];

/// Arbitrary text through the parser and, when it parses, the formatter: the formatted text
/// parses to the same tree, and formatting is idempotent.
pub fn parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut map = SourceMap::new();
    let id = map.add("fuzz.scp", text);
    let Some(file) = parse_file(&map, id, &mut Diagnostics::new()) else { return };
    let formatted = format(&file, text, 0);
    let id2 = map.add("fmt.scp", formatted.as_str());
    let again = parse_file(&map, id2, &mut Diagnostics::new()).expect("formatted text parses");
    assert_eq!(again.without_spans(), file.without_spans());
    assert_eq!(format(&again, &formatted, map.file(id2).base), formatted, "formatting is idempotent");
}

/// Arbitrary text through the whole front end (parse, resolve, type-check, lints, test
/// blocks on the reference interpreter) and both diagnostic renderers: never a panic; every
/// diagnostic has a location inside the text.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (_, diags, map) = scpc::check_source("fuzz.scp", text);
    let items = diags.into_sorted();
    let _ = scpc::report::render_human(&items, &map, false, 100);
    let _ = scpc::report::render_json(&items, &map);
}

/// Random BPF programs and inputs through the emulator: never a panic; a program that runs
/// ends on a `ret` after at most one pass over its instructions (jumps go forward only).
pub fn emulator(data: &[u8]) {
    use scpc::bpf::sim::{run, SeccompData};
    use scpc::bpf::Program;
    if data.len() < 64 {
        return;
    }
    let (head, code) = data.split_at(64);
    let word = |i: usize| u64::from_le_bytes(head[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    let data = SeccompData {
        nr: word(0) as u32,
        arch: (word(0) >> 32) as u32,
        instruction_pointer: word(1),
        args: [word(2), word(3), word(4), word(5), word(6), word(7)],
    };
    let program = Program::from_bytes(&code[..code.len() / 8 * 8]).expect("a multiple of 8 bytes");
    assert_eq!(Program::from_bytes(&program.to_bytes()).as_ref(), Some(&program));
    if let Ok(out) = run(&program, &data) {
        assert!(out.executed >= 1 && out.executed <= program.insns.len(), "{out:?}");
        assert!(out.taken < out.executed, "{out:?}");
    }
}

/// Arbitrary JSON through the Docker profile importer: never a panic, and every profile it
/// accepts becomes a policy that checks without errors.
pub fn docker(data: &[u8]) {
    use scpc::docker::{import, ImportOptions};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = ImportOptions { name: Some("fuzzed".into()), caps: vec!["CAP_SYS_ADMIN".into()] };
    if let Ok(scp) = import("fuzz.json", text, &opts) {
        let (_, diags, map) = scpc::check_source("imported.scp", &scp);
        if diags.has_errors() {
            let items = diags.into_sorted();
            panic!("import wrote a policy that does not check:\n{scp}\n{}", scpc::report::render_human(&items, &map, false, 100));
        }
    }
}

/// An importer's result: when it accepts the input, the policy it writes checks (the importers
/// check it themselves; this holds them to it).
fn checks(scp: &str) {
    let (_, diags, map) = scpc::check_source("imported.scp", scp);
    if diags.has_errors() {
        let items = diags.into_sorted();
        panic!("import wrote a policy that does not check:\n{scp}\n{}", scpc::report::render_human(&items, &map, false, 100));
    }
}

/// Arbitrary JSON through the seccompiler importer (x86_64 and aarch64): never a panic, and
/// every file it accepts becomes policies that check.
pub fn seccompiler(data: &[u8]) {
    use scpc::import::seccompiler::{import, SeccompilerOptions};
    let Ok(text) = std::str::from_utf8(data) else { return };
    for arch in [scpc::abi::Arch::X86_64, scpc::abi::Arch::Aarch64] {
        if let Ok(scp) = import("fuzz.json", text, &SeccompilerOptions { arch }) {
            checks(&scp);
        }
    }
}

/// Arbitrary text as a minijail policy (in memory; its includes name no file): never a panic,
/// and every policy it accepts checks.
pub fn minijail(data: &[u8]) {
    use scpc::import::minijail::{import, Files, MinijailOptions};
    struct One(String);
    impl Files for One {
        fn read(&self, path: &std::path::Path) -> std::io::Result<String> {
            if path == std::path::Path::new("fuzz/p.policy") {
                Ok(self.0.clone())
            } else {
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            }
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = MinijailOptions { arch: Some(scpc::abi::Arch::X86_64), ..Default::default() };
    if let Ok(imported) = import(std::path::Path::new("fuzz/p.policy"), &opts, &One(text.to_string())) {
        checks(&imported.policy);
    }
}

/// Arbitrary text as a kafel policy for x86_64 and arm: never a panic, and every policy it
/// accepts checks.
pub fn kafel(data: &[u8]) {
    use scpc::import::kafel::{import, KafelOptions};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let opts = KafelOptions { targets: vec![scpc::abi::Arch::X86_64, scpc::abi::Arch::Arm], name: None };
    if let Ok(scp) = import("fuzz.policy", text, &opts) {
        checks(&scp);
    }
}

/// Arbitrary text through the audit-log reader and `explain` against a fixed policy: never a
/// panic; every non-blank line is counted once (a record, an unreadable record or another line).
pub fn auditlog(data: &[u8]) {
    static POLICY: OnceLock<scpc::policy::Policy> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        let text = "policy p {\n  target x86_64, aarch64, arm, i386\n  default kill_process\n  allow read, write\n  errno(EPERM) socket if family == 10\n}\n";
        let (checked, diags, _) = scpc::check_source("p.scp", text);
        assert!(!diags.has_errors());
        checked.policies["p"].clone()
    });
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = scpc::import::audit::parse(text);
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(parsed.records.len() + parsed.unreadable.len() + parsed.other_lines, lines);
    for r in &parsed.records {
        let _ = r.syscall_name();
        let _ = scpc::analysis::explain::explain(policy, r);
    }
}

/// Arbitrary text through the inventory reader: never a panic; an error always points inside
/// the text.
pub fn inventory(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = scpc_deploy::inventory::Inventory::parse("fuzz.toml", text) {
        if let Some(span) = e.span() {
            assert!(span.end <= text.len(), "{e:?}");
        }
    }
}
