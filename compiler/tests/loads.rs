//! No path of a compiled filter loads the same argument word from `seccomp_data` twice: each
//! 32-bit half is loaded once per path (a later test of it under another mask reads the copy
//! in scratch memory). Checked on every path of the filters of the standard library, its
//! examples and random policies, with the uniform and the built-in profile.

mod policygen;

use std::path::{Path, PathBuf};

use scpc::bpf::{disasm::disasm, Insn, Program, BPF_ABS, BPF_JMP, BPF_LD, BPF_RET, BPF_W};
use scpc::codegen::emit;
use scpc::profile::Profile;

/// The first path (as instruction indexes) that loads an argument word twice, if any. Every
/// jump goes forward, so the paths are those of a DAG: (pc, words loaded so far) is visited
/// once.
fn double_load(p: &Program) -> Option<Vec<usize>> {
    fn walk(p: &Program, pc: usize, loaded: u16, path: &mut Vec<usize>, seen: &mut std::collections::HashSet<(usize, u16)>) -> bool {
        if !seen.insert((pc, loaded)) {
            return false;
        }
        let Some(&Insn { code, jt, jf, k }) = p.insns.get(pc) else { return false };
        path.push(pc);
        let mut loaded = loaded;
        if code == BPF_LD | BPF_W | BPF_ABS && k >= scpc::bpf::off_arg_lo(0) {
            let bit = 1u16 << ((k - scpc::bpf::off_arg_lo(0)) / 4);
            if loaded & bit != 0 {
                return true;
            }
            loaded |= bit;
        }
        let next: Vec<usize> = match code & 0x07 {
            c if c == BPF_RET => vec![],
            c if c == BPF_JMP && code == BPF_JMP => vec![pc + 1 + k as usize],
            c if c == BPF_JMP => vec![pc + 1 + usize::from(jt), pc + 1 + usize::from(jf)],
            _ => vec![pc + 1],
        };
        for n in next {
            if walk(p, n, loaded, path, seen) {
                return true;
            }
        }
        path.pop();
        false
    }
    let mut path = Vec::new();
    walk(p, 0, 0, &mut path, &mut Default::default()).then_some(path)
}

fn assert_loads_once(what: &str, checked: &scpc::sema::Checked) {
    for profile in [Profile::uniform(), scpc::import::trace::builtin_profile()] {
        for p in checked.policies.values() {
            let prog = emit(p, &profile).unwrap_or_else(|e| panic!("{what}: {e}"));
            if let Some(path) = double_load(&prog) {
                panic!("{what}, policy {}: path {path:?} loads a word twice\n{}", p.name, disasm(&prog));
            }
        }
    }
}

fn scp_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("stdlib dir").flatten() {
        let p = e.path();
        if p.is_dir() && !p.ends_with("src") && !p.ends_with("target") {
            scp_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "scp") {
            out.push(p);
        }
    }
}

#[test]
fn the_checker_sees_a_second_load() {
    let lo = scpc::bpf::off_arg_lo(0);
    let twice = Program { insns: vec![Insn::ld(lo), Insn::jmp(scpc::bpf::BPF_JEQ, 1, 1, 0), Insn::ld(lo), Insn::ret(0x7fff_0000)] };
    assert_eq!(double_load(&twice), Some(vec![0, 1, 2]));
    // the jump past the second load is fine; the other way is not
    let mut once = twice.clone();
    once.insns[2] = Insn::ld(scpc::bpf::off_arg_hi(0));
    assert_eq!(double_load(&once), None);
}

#[test]
fn the_standard_library_and_its_examples_load_each_word_once() {
    let mut files = Vec::new();
    scp_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../stdlib-policies"), &mut files);
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let (checked, diags, _) = scpc::check_source(&f.to_string_lossy(), &text);
        assert!(!diags.has_errors(), "{f:?}: {diags:?}");
        assert_loads_once(&f.to_string_lossy(), &checked);
    }
}

#[test]
fn the_issue_examples_load_each_word_once() {
    // two values of one argument (issue 18: two loads before), Docker's personality values,
    // and a condition that is always true (no load at all)
    let text = "policy p {\n target x86_64, aarch64\n default errno(EPERM)\n\
        allow prctl if option not in {0x40, 0xffffffff}\n\
        allow personality if personality in {0, 8, 0x20000, 0x20008, 0xffffffff}\n\
        allow setns if !(flags < 2 && flags >= 0x40)\n\
        allow openat if flags & O_ACCMODE == O_RDONLY && flags & O_CREAT == 0\n}\n";
    let (checked, diags, _) = scpc::check_source("t.scp", text);
    assert!(!diags.has_errors(), "{diags:?}");
    assert_loads_once("the issue's examples", &checked);
    let prog = emit(&checked.policies["p"], &Profile::uniform()).expect("compiles");
    let table = scpc::abi::Arch::X86_64.table();
    let run = |name: &str, args: [u64; 6]| {
        let data = scpc::bpf::sim::SeccompData {
            nr: table.syscall(name).expect("syscall").nr,
            arch: table.audit_arch,
            instruction_pointer: 0,
            args,
        };
        scpc::bpf::sim::run(&prog, &data).expect("runs")
    };
    // setns's condition is always true: allowed without reading an argument
    let o = run("setns", [0, 0x30, 0, 0, 0, 0]);
    assert!(!o.read_args && o.ret == 0x7fff_0000, "{o:?}");
    assert_eq!(run("prctl", [0x40, 0, 0, 0, 0, 0]).ret & 0xffff_0000, 0x0005_0000);
    assert_eq!(run("prctl", [0x41, 0, 0, 0, 0, 0]).ret, 0x7fff_0000);
}

#[test]
fn random_policies_load_each_word_once() {
    for (text, checked) in policygen::sample(&policygen::DIFFERENTIAL, 80, policygen::seed()) {
        assert_loads_once(&text, &checked);
    }
}
