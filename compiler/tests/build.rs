//! `scpc build`, `scpc test`, `scpc sim` and `scpc disasm` as users call them.

use std::path::{Path, PathBuf};

mod support;
use support::scpc;

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../stdlib-policies/examples/web.scp").to_string_lossy().into_owned()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scpc-build-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn two_builds_give_identical_bytes() {
    let (a, b) = (temp("a"), temp("b"));
    for dir in [&a, &b] {
        let (code, _, err) = scpc(&["build", &example(), "--policy", "web", "-o", &dir.to_string_lossy(), "--emit", "bpf,c,rust,disasm"]);
        assert_eq!(code, 0, "{err}");
    }
    let mut names: Vec<_> = std::fs::read_dir(&a).expect("out").flatten().map(|e| e.file_name()).collect();
    names.sort();
    assert_eq!(names.len(), 1 + 3 * 4, "{names:?}");
    for n in names {
        assert_eq!(std::fs::read(a.join(&n)).expect("a"), std::fs::read(b.join(&n)).expect("b"), "{n:?} differs");
    }
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(a.join("web.manifest.json")).expect("manifest")).expect("json");
    let x86 = &manifest["targets"][0];
    let bpf = std::fs::read(a.join("web.x86_64.bpf")).expect("bpf");
    assert_eq!(x86["sha256"].as_str(), Some(scpc_node::Sha256::of(&bpf).to_string().as_str()));
    assert_eq!(x86["instructions"].as_u64(), Some(bpf.len() as u64 / 8));
}

#[test]
fn bad_input_writes_nothing() {
    let dir = temp("bad");
    let src = dir.with_extension("scp");
    std::fs::write(&src, "policy p {\n target x86_64\n default allow\n allow opneat\n}\n").expect("write");
    let (code, _, err) = scpc(&["build", &src.to_string_lossy(), "--policy", "p", "-o", &dir.to_string_lossy()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unknown syscall `opneat`"), "{err}");
    assert!(!dir.exists(), "no output directory for a failed build");
    let (code, _, err) = scpc(&["build", &example(), "--policy", "nope", "-o", &dir.to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(err.contains("the file defines no policy `nope`") && err.contains("`base`, `web`"), "{err}");
}

#[test]
fn test_sim_and_disasm_work_on_compiled_filters() {
    let (code, _, err) = scpc(&["test", &example()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("13 test case(s) on compiled filters, 0 failed"), "{err}");
    let dir = temp("sim");
    let (code, _, err) = scpc(&["build", &example(), "--policy", "web", "--target", "x86_64", "-o", &dir.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let bpf = dir.join("web.x86_64.bpf").to_string_lossy().into_owned();
    let (code, out, _) = scpc(&["sim", &bpf, "--arch", "x86_64", "openat", "AT_FDCWD", "0", "0x41"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("errno(13) ("), "{out}");
    let (_, out, _) = scpc(&["sim", &bpf, "--arch", "aarch64", "openat"]);
    assert!(out.starts_with("kill_process"), "another architecture: {out}");
    let (code, out, _) = scpc(&["disasm", &bpf]);
    assert_eq!(code, 0);
    assert!(out.contains("ld arch") && out.contains("ret allow"), "{out}");
    let failing = dir.with_extension("scp");
    std::fs::write(&failing, "policy p {\n target x86_64\n default allow\n}\ntest p {\n read -> errno(EPERM)\n}\n").expect("write");
    let (code, _, err) = scpc(&["test", &failing.to_string_lossy()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("gives allow, expected errno(1)"), "{err}");
}

#[test]
fn emit_oci_writes_a_profile_or_refuses_with_a_reason() {
    let dir = temp("oci");
    let src = dir.with_extension("scp");
    std::fs::write(
        &src,
        "policy p {\n target x86_64, aarch64\n default errno(EPERM)\n allow read, write\n allow socket if family == AF_UNIX\n}\n",
    )
    .expect("write");
    let (code, _, err) = scpc(&["build", &src.to_string_lossy(), "--policy", "p", "--emit", "bpf,oci", "-o", &dir.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let profile: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("p.oci.json")).expect("p.oci.json")).expect("json");
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    let out = temp("oci-refused");
    let (code, _, err) = scpc(&["build", &example(), "--policy", "web", "--emit", "oci", "-o", &out.to_string_lossy()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot be expressed as an OCI seccomp profile"), "{err}");
    assert!(!out.exists(), "nothing written when a rendering fails");
}

#[test]
fn a_failed_write_leaves_no_partial_build() {
    // the manifest, written last, cannot be written: its temporary's name is taken by a directory
    let out = temp("partial");
    std::fs::create_dir_all(out.join("web.manifest.json.scpc-fmt.tmp")).expect("blocker");
    let (code, _, err) = scpc(&["build", &example(), "--policy", "web", "-o", out.to_str().expect("utf-8"), "--emit", "bpf,disasm"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot write") && err.contains("web.manifest.json"), "{err}");
    let left: Vec<String> = std::fs::read_dir(&out).expect("out").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    // (before, the filters were already in place when the manifest failed)
    assert_eq!(left, ["web.manifest.json.scpc-fmt.tmp"], "no filter, listing or temporary written");
}
