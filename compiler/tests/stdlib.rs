//! Every file of the standard library passes `scpc check` with no warnings, and its test
//! blocks pass on the compiled filter of every target.

use std::path::{Path, PathBuf};
use std::process::Command;

fn stdlib_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("stdlib dir").flatten() {
            let p = e.path();
            if p.is_dir() && !p.ends_with("src") && !p.ends_with("target") {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "scp") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../stdlib-policies"), &mut out);
    out.sort();
    out
}

#[test]
fn every_stdlib_file_checks_clean_and_its_tests_pass_compiled() {
    let files = stdlib_files();
    for must in [
        "groups.scp",
        "edge-baseline.scp",
        "services/nginx.scp",
        "services/redis.scp",
        "services/mosquitto.scp",
        "services/python-http.scp",
        "families.scp",
        "docker-default.scp",
    ] {
        assert!(files.iter().any(|f| f.ends_with(must)), "{must} is missing");
    }
    for f in &files {
        let path = f.to_string_lossy();
        // examples/web.scp is language.md's example verbatim, warning included (`log ptrace`)
        let strict = if path.contains("/examples/") { "--message-format=human" } else { "--deny-warnings" };
        // (services/*.scp include ../edge-baseline.scp: the library's top is an include directory)
        let top = concat!(env!("CARGO_MANIFEST_DIR"), "/../stdlib-policies");
        let out = Command::new(env!("CARGO_BIN_EXE_scpc")).args(["check", "-I", top, strict, &path]).output().expect("check runs");
        assert!(out.status.success(), "{path}:\n{}", String::from_utf8_lossy(&out.stderr));
        let out = Command::new(env!("CARGO_BIN_EXE_scpc")).args(["test", "-I", top, &path]).output().expect("test runs");
        assert!(out.status.success(), "{path}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}
