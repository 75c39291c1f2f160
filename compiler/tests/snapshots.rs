//! The IR and the code of a handful of policies, pinned: for each, one snapshot with the
//! resolved policy as the IR prints it (`## IR`) and the listing of every target's filter
//! (`## BPF ARCH`). A change in how rules resolve, how the tree is laid out or how
//! conditions are emitted shows here as a diff to review (`cargo insta review`).

use scpc::artifact::compile;
use scpc::bpf::disasm::disasm;
use scpc::import::trace::builtin_profile;

/// The IR and the listings of policy `name` of `text` (named `file`).
fn render(file: &str, text: &str, name: &str) -> String {
    let (checked, diags, _) = scpc::check_source(file, text);
    assert!(!diags.has_errors(), "{file}: {diags:?}");
    let policy = &checked.policies[name];
    let mut out = format!("## IR\n{policy}");
    for f in compile(policy, &builtin_profile()).expect("compiles and validates") {
        out.push_str(&format!("\n## BPF {} ({} instructions)\n{}", f.arch, f.program.insns.len(), disasm(&f.program)));
    }
    out
}

#[test]
fn the_language_example() {
    let text = include_str!("../../stdlib-policies/examples/web.scp");
    insta::assert_snapshot!("web", render("web.scp", text, "web"));
}

#[test]
fn a_stdlib_service() {
    // named by its path, so that its include of `../edge-baseline.scp` resolves
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../stdlib-policies/services/redis.scp");
    let text = include_str!("../../stdlib-policies/services/redis.scp");
    insta::assert_snapshot!("redis", render(path, text, "redis"));
}

#[test]
fn conditions_of_every_shape() {
    let text = "policy p {\n target x86_64, i386\n kernel >= 5.0\n default errno(EPERM)\n badarch trap(3)\n\
        allow read if fd == 0 || fd > 2 && fd <= 0x7fffffff\n\
        allow write if !(fd in {1, 2}) && count < 4096\n\
        allow openat if dfd == AT_FDCWD && flags & O_ACCMODE == O_RDONLY\n\
        errno(EACCES) openat if flags & O_CREAT != 0\n\
        log socket if family not in {AF_PACKET, AF_NETLINK}\n\
        allow getpid, gettid, exit_group\n\
        kill_thread kill if sig == 9\n}\n";
    insta::assert_snapshot!("conditions", render("conditions.scp", text, "p"));
}

#[test]
fn x32_beside_x86_64_and_layers() {
    let text = "include \"std/groups.scp\"\npolicy base {\n target x86_64, x32\n kernel >= 4.14\n default kill_process\n newer errno(ENOSYS)\n allow @basic-io\n final kill_process kexec_load\n}\n\
        policy svc extends base {\n errno(EPERM) socket if family == AF_PACKET\n allow socket\n}\n";
    insta::assert_snapshot!("layers_x32", render("layers.scp", text, "svc"));
}
