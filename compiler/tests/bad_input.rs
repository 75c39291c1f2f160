//! The bad-input corpus beyond `.scp` (which `tests/ui.rs` covers one diagnostic at a time):
//! malformed Docker profiles (`tests/bad/json`), inventories (`tests/bad/toml`), filters
//! (`tests/bad/bpf`) and audit logs (`tests/bad/audit`), and every `tests/ui` file with an error
//! through `scpc build`. Each must give exit status 1, a diagnostic that names the file and a
//! place in it, no panic, and no output file.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    support::tests_dir()
}

fn files(dir: &str, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(ext))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    v.sort();
    v
}

mod support;

fn scpc(args: &[&str]) -> (i32, String, String) {
    support::scpc_in(&root(), args)
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scpc-bad-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch");
    d
}

fn empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(true)
}

/// `file:LINE:COL` (miette's and scpc's form) somewhere in the text.
fn has_line_col(text: &str, file: &str) -> bool {
    text.split(file).skip(1).any(|rest| {
        let mut parts = rest.trim_start_matches(':').splitn(3, ':');
        let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        rest.starts_with(':') && l.parse::<u32>().is_ok() && c.chars().take_while(char::is_ascii_digit).count() > 0
    })
}

fn assert_bad(name: &str, (code, out, err): &(i32, String, String)) {
    assert_eq!(*code, 1, "{name}: exit status\n{out}{err}");
    assert!(!err.contains("panicked") && !out.contains("panicked"), "{name} panicked: {err}");
}

#[test]
fn the_corpus_has_at_least_200_files() {
    let n: usize = [("ui", ".scp"), ("bad/json", ".json"), ("bad/toml", ".toml"), ("bad/bpf", ".bpf"), ("bad/audit", ".log")]
        .iter()
        .map(|(d, e)| files(d, e).len())
        .sum();
    println!("{n} bad inputs");
    assert!(n >= 200, "{n}");
}

#[test]
fn malformed_docker_profiles() {
    let out = scratch("json");
    for f in files("bad/json", ".json") {
        let target = out.join("imported.scp");
        let r = scpc(&["import", "docker", &f, "-o", target.to_str().expect("utf-8")]);
        assert_bad(&f, &r);
        // located: `FILE: line L, column C: ...` for JSON syntax, `FILE: JSON.PATH: ...` else
        let loc = r.2.split(&format!("{f}: ")).nth(1).and_then(|rest| rest.split_once(": ")).map(|(l, _)| l.to_string());
        assert!(
            loc.is_some_and(|l| l.starts_with("line ") || l.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '(')),
            "{f}: {}",
            r.2
        );
        assert!(empty(&out), "{f}: wrote {:?}", std::fs::read_dir(&out).map(|d| d.count()));
    }
}

#[test]
fn malformed_inventories() {
    for f in files("bad/toml", ".toml") {
        let r = scpc(&["deploy", &f, "--dry-run"]);
        assert_bad(&f, &r);
        assert!(has_line_col(&r.2, &f), "{f}: not located: {}", r.2);
        assert!(r.2.contains("help:") || r.2.contains("here") || r.2.contains("×"), "{f}: {}", r.2);
        let s = scpc(&["status", &f]);
        assert_bad(&f, &s);
    }
}

#[test]
fn malformed_filters() {
    for f in files("bad/bpf", ".bpf") {
        let r = scpc(&["sim", &f, "--arch", "x86_64", "read"]);
        assert_bad(&f, &r);
        assert!(r.2.contains(&format!("{f}: ")) && r.2.contains("byte ") && r.2.contains("help:"), "{f}: {}", r.2);
        // never installed: exec refuses before running anything
        let e = scpc(&["exec", &f, "--", "echo", "ran"]);
        assert_bad(&f, &e);
        assert!(!e.1.contains("ran"), "{f}: the command ran");
        let d = scpc(&["diff", &f, "bad/bpf/../bpf/ends_in_load.bpf"]);
        assert_bad(&f, &d);
    }
}

#[test]
fn malformed_audit_logs() {
    for f in files("bad/audit", ".log") {
        let r = scpc(&["explain", &f]);
        assert_bad(&f, &r);
        assert!(has_line_col(&r.2, &f) || r.2.contains(&format!("{f}:")), "{f}: {}", r.2);
        assert!(r.2.contains("cannot read this seccomp record"), "{f}: {}", r.2);
    }
}

#[test]
fn policies_with_errors_build_nothing() {
    let out = scratch("build");
    let mut n = 0;
    for f in files("ui", ".scp") {
        let text = std::fs::read_to_string(root().join(&f)).expect("read");
        // the policy the first announced error is in (errors in test blocks do not stop a build)
        let Some(at) = text.find("# error[") else { continue };
        let header = text[..at].lines().rfind(|l| l.starts_with("policy ") || l.starts_with("test ")).unwrap_or("");
        // (a fixture whose error shows only in a derived policy names it: `# build: NAME`)
        let named = text.lines().find_map(|l| l.strip_prefix("# build: ")).map(str::trim);
        let Some(policy) = named.or_else(|| header.strip_prefix("policy ").and_then(|r| r.split_whitespace().next())) else { continue };
        let r = scpc(&["build", &f, "--policy", policy, "-o", out.to_str().expect("utf-8"), "--emit", "bpf,c,rust,disasm"]);
        assert_bad(&f, &r);
        assert!(has_line_col(&r.2, &f) || r.2.contains("error"), "{f}: {}", r.2);
        assert!(empty(&out), "{f}: wrote files");
        n += 1;
    }
    assert!(n >= 30, "{n}");
}
