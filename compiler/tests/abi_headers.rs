//! Every uapi constant of every architecture's table is the value that architecture's own
//! headers give (issue 14, item 4): `compiler/tools/extract-constants.py` reads them again with
//! each architecture's preprocessor from the Debian cross header packages (`.ci/run` installs
//! them; a missing one fails this test naming the package), and each value is compared with the
//! table scpc compiles against, in both directions.

use std::collections::BTreeMap;
use std::process::Command;

use scpc::abi::Arch;

fn from_headers(arch: Arch) -> BTreeMap<String, u64> {
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/extract-constants.py");
    let out = Command::new("python3").arg(tool).args(["--print", "--arch", arch.name()]).output().expect("python3 runs");
    assert!(out.status.success(), "{arch}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#') && *l != "name\tvalue")
        .map(|l| {
            let (name, value) = l.split_once('\t').expect("name<TAB>value");
            (name.to_string(), value.parse::<i64>().expect("a number") as u64)
        })
        .collect()
}

#[test]
fn every_constant_is_its_architectures_header_value() {
    let mut compared = 0;
    for arch in Arch::ALL {
        let headers = from_headers(arch);
        let table = arch.table();
        assert!(headers.len() > 1000, "{arch}: {} constants from the headers", headers.len());
        for (name, value) in &headers {
            assert_eq!(table.constant(name), Some(*value), "{arch}: {name}: the headers say {value:#x}");
            compared += 1;
        }
        for name in table.constant_names() {
            assert!(headers.contains_key(name), "{arch}: {name} is in the table but not in {arch}'s headers");
        }
    }
    println!("{compared} values compared");
}

#[test]
fn the_values_the_review_found_wrong_are_right() {
    let c = |arch: Arch, name: &str| arch.table().constant(name);
    for arch in [Arch::Arm, Arch::Aarch64] {
        assert_eq!(c(arch, "O_TMPFILE"), Some(0x404000), "{arch}: __O_TMPFILE | O_DIRECTORY of arm");
        assert_eq!(c(arch, "PTRACE_GETFPXREGS"), None, "{arch}: x86 only");
        assert_eq!(c(arch, "MAP_32BIT"), None);
    }
    assert_eq!(c(Arch::X86_64, "O_TMPFILE"), Some(0x410000));
    assert_eq!(c(Arch::Arm, "FIOQSIZE"), Some(0x545e));
    assert_eq!(c(Arch::X86_64, "FIOQSIZE"), Some(0x5460));
    assert_eq!(c(Arch::Arm, "PTRACE_GET_THREAD_AREA"), Some(22), "arm's own request number");
    assert_eq!(c(Arch::X86_64, "PTRACE_GET_THREAD_AREA"), Some(25));
    assert_eq!(c(Arch::Riscv64, "PTRACE_GETREGS"), None);
    // _IOR('f', 1, long): the size of long is the architecture's
    assert_eq!(c(Arch::X86_64, "FS_IOC_GETFLAGS"), Some(0x80086601));
    assert_eq!(c(Arch::I386, "FS_IOC_GETFLAGS"), Some(0x80046601));
    assert_eq!(c(Arch::Aarch64, "PROT_BTI"), Some(0x10));
    assert_eq!(c(Arch::X86_64, "ARCH_SET_FS"), Some(0x1002));
    assert_eq!(c(Arch::Arm, "ARCH_SET_FS"), None);
}

/// The evaluator is checked against the real compiler where this machine can run what it
/// compiles: x86_64's values printed by C programs built with the machine's compiler (one over
/// the C library's <sys/socket.h> for AF_* and SOCK_*, which the kernel does not export, one
/// over the kernel's headers for the rest: the two sets of headers cannot be mixed in C).
#[test]
fn the_x86_64_values_match_a_compiled_program() {
    let tool = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/extract-constants.py")).expect("tool");
    let headers: Vec<&str> =
        tool.split("HEADERS = \"\"\"").nth(1).and_then(|r| r.split("\"\"\"").next()).expect("HEADERS").split_whitespace().collect();
    let dir = std::env::temp_dir().join(format!("scpc-abi-headers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (libc, kernel): (Vec<String>, Vec<String>) =
        Arch::X86_64.table().constant_names().map(String::from).partition(|n| n.starts_with("AF_") || n.starts_with("SOCK_"));
    let mut n = 0;
    for (tag, names, includes) in [
        ("libc", &libc, vec!["sys/socket.h"]),
        ("kernel", &kernel, headers.iter().copied().filter(|h| *h != "sys/socket.h").chain(["asm/prctl.h", "asm/socket.h"]).collect()),
    ] {
        let mut c = String::from("#include <stdio.h>\n");
        for h in includes {
            c.push_str(&format!("#include <{h}>\n"));
        }
        c.push_str("int main(void) {\n");
        for name in names {
            c.push_str(&format!("    printf(\"%s\\t%lld\\n\", \"{name}\", (long long)({name}));\n"));
        }
        c.push_str("    return 0;\n}\n");
        let src = dir.join(format!("{tag}.c"));
        std::fs::write(&src, c).expect("write");
        let bin = dir.join(tag);
        let out = Command::new("cc").arg("-w").arg("-o").arg(&bin).arg(&src).output().expect("cc (gcc) runs");
        assert!(out.status.success(), "cc failed on {}: {}", src.display(), String::from_utf8_lossy(&out.stderr));
        let out = Command::new(&bin).output().expect("runs");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let (name, value) = line.split_once('\t').expect("name<TAB>value");
            let value: i64 = value.parse().expect("number");
            assert_eq!(Arch::X86_64.table().constant(name), Some(value as u64), "{name}");
            n += 1;
        }
    }
    assert_eq!(n, libc.len() + kernel.len());
}
