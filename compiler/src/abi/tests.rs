use super::*;

#[test]
fn openat_has_its_number_on_every_architecture() {
    let expect = [
        (Arch::X86_64, 257),
        (Arch::Aarch64, 56),
        (Arch::Arm, 322),
        (Arch::I386, 295),
        (Arch::Riscv64, 56),
        (Arch::X32, 257 | X32_SYSCALL_BIT),
    ];
    for (arch, nr) in expect {
        assert_eq!(arch.table().syscall("openat").map(|s| s.nr), Some(nr), "{arch}");
        assert_eq!(arch.table().by_nr(nr).map(|s| s.name), Some("openat"), "{arch}");
    }
}

#[test]
fn audit_arch_values_are_the_kernels() {
    assert_eq!(Arch::X86_64.table().audit_arch, 0xc000_003e);
    assert_eq!(Arch::X32.table().audit_arch, 0xc000_003e);
    assert_eq!(Arch::I386.table().audit_arch, 0x4000_0003);
    assert_eq!(Arch::Aarch64.table().audit_arch, 0xc000_00b7);
    assert_eq!(Arch::Arm.table().audit_arch, 0x4000_0028);
    assert_eq!(Arch::Riscv64.table().audit_arch, 0xc000_00f3);
    assert_eq!(Arch::X32.table().nr_offset, X32_SYSCALL_BIT);
}

#[test]
fn widths_follow_the_declared_types() {
    let openat = Arch::X86_64.table().syscall("openat").expect("openat");
    let widths: Vec<_> = openat.params.iter().map(|p| (p.name, p.width, p.pointer)).collect();
    assert_eq!(
        widths,
        [("dfd", Width::W32, false), ("filename", Width::W64, true), ("flags", Width::W32, false), ("mode", Width::W16, false)]
    );
    let mmap = Arch::Arm.table().syscall("mprotect").expect("mprotect");
    assert!(mmap.params.iter().all(|p| p.width == Width::W32), "32-bit arm reads 32-bit registers");
    // arm (EABI) passes pread64's loff_t in the register pair r4/r5, r3 left as padding
    let pread = Arch::Arm.table().syscall("pread64").expect("pread64");
    let pos = pread.params.last().expect("pos");
    assert_eq!((pos.name, pos.width, pos.reg, pos.reg_hi), ("pos", Width::W64, 4, Some(5)));
    // fanotify_mark's u64 mask is already at an even register: r2/r3, dfd in r4, pathname in r5
    let mark = Arch::Arm.table().syscall("fanotify_mark").expect("fanotify_mark");
    let regs: Vec<_> = mark.params.iter().map(|p| (p.name, p.reg, p.reg_hi)).collect();
    assert_eq!(regs, [("fanotify_fd", 0, None), ("flags", 1, None), ("mask", 2, Some(3)), ("dfd", 4, None), ("pathname", 5, None)]);
    // arm_fadvise64_64 exists so that both pairs fit: fd, advice, offset r2/r3, len r4/r5
    let fadvise = Arch::Arm.table().syscall("arm_fadvise64_64").expect("arm_fadvise64_64");
    assert_eq!(fadvise.params.iter().map(|p| (p.reg, p.reg_hi)).collect::<Vec<_>>(), [(0, None), (1, None), (2, Some(3)), (4, Some(5))]);
    // i386 takes pairs in consecutive registers (lookup_dcookie's cookie in ebx/ecx)
    let dcookie = Arch::I386.table().syscall("lookup_dcookie").expect("lookup_dcookie");
    assert_eq!(dcookie.params.iter().map(|p| (p.reg, p.reg_hi)).collect::<Vec<_>>(), [(0, Some(1)), (2, None), (3, None)]);
}

#[test]
fn constants_differ_where_the_headers_differ() {
    assert_eq!(Arch::X86_64.table().constant("O_DIRECTORY"), Some(0o200000));
    assert_eq!(Arch::Aarch64.table().constant("O_DIRECTORY"), Some(0o40000));
    assert_eq!(Arch::Arm.table().constant("O_LARGEFILE"), Some(0o400000));
    assert_eq!(Arch::X86_64.table().constant("AT_FDCWD"), Some((-100i64) as u64));
    assert_eq!(Arch::Aarch64.table().constant("MAP_32BIT"), None);
    assert_eq!(Arch::X86_64.table().constant("MAP_32BIT"), Some(0x40));
    assert_eq!(Arch::Aarch64.table().constant("PROT_BTI"), Some(0x10));
    assert_eq!(Arch::X86_64.table().constant("PROT_BTI"), None);
}

#[test]
fn clone3_first_kernel_is_5_3() {
    let c = Arch::X86_64.table().syscall("clone3").expect("clone3");
    assert_eq!(c.since, Since::Exact(KernelVersion::new(5, 3)));
    assert!(!c.since.present_in(KernelVersion::new(4, 14)));
    assert!(c.since.present_in(KernelVersion::new(5, 3)));
}

/// The x86_64 table must equal this machine's `<asm/unistd_64.h>` where the header is
/// installed (linux-libc-dev; `.ci/run` installs it).
#[test]
fn x86_64_table_equals_asm_unistd_64_h() {
    let candidates = ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"];
    let Some(text) = candidates.iter().find_map(|p| std::fs::read_to_string(p).ok()) else {
        panic!("<asm/unistd_64.h> not found: install linux-libc-dev");
    };
    let mut header: Vec<(String, u32)> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("#define __NR_")?;
            let mut it = rest.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect();
    header.sort();
    assert!(header.len() > 300, "parsed {} entries", header.len());
    let table = Arch::X86_64.table();
    for (name, nr) in &header {
        assert_eq!(table.syscall(name).map(|s| s.nr), Some(*nr), "{name} in <asm/unistd_64.h>");
    }
    // and every syscall the header's kernel version has is in the header
    let version = std::fs::read_to_string("/usr/include/linux/version.h").expect("<linux/version.h>");
    let field = |name: &str| -> u16 {
        version.lines().find_map(|l| l.strip_prefix(&format!("#define {name} "))?.trim().parse().ok()).unwrap_or_else(|| panic!("{name}"))
    };
    let header_kernel = KernelVersion::new(field("LINUX_VERSION_MAJOR"), field("LINUX_VERSION_PATCHLEVEL"));
    let mut compared = 0;
    for s in table.syscalls.iter().filter(|s| matches!(s.since, Since::Exact(v) | Since::AtMost(v) if v <= header_kernel)) {
        assert!(header.iter().any(|(n, nr)| n == s.name && *nr == s.nr), "{} ({}) not in the {header_kernel} header", s.name, s.nr);
        compared += 1;
    }
    assert!(compared > 300, "{compared}");
}
